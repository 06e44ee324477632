//! The catalog services: create, read, update and delete sources, models, destinations and
//! mappings, with validation and referential integrity (a source used by a model cannot be
//! deleted, ...).
//!
//! Each mutation validates first — which may plan SQL against a warehouse — and only then takes
//! the catalog's write lock for its checks and its write, so a slow warehouse never stalls other
//! calls. Checks that depend on other definitions run again under the lock.

pub mod destinations;
pub mod mapping_tools;
pub mod mappings;
pub mod models;
pub mod sources;

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::connector::Registry;
use crate::destination::ActionSpec;
use crate::error::Error;
use crate::id::{generate_slug, validate_slug};
use crate::mapping::spec::MappingDef;

pub use destinations::DestinationService;
pub use mappings::MappingService;
pub use models::ModelService;
pub use sources::SourceService;

/// What every catalog service shares: the store, the connector registry and the write lock.
#[derive(Debug, Clone)]
pub struct CatalogContext {
    /// The stored definitions.
    pub catalog: Catalog,
    /// Connector types.
    pub registry: Arc<Registry>,
    /// Serializes catalog mutations so referential checks and writes do not interleave.
    writes: Arc<tokio::sync::Mutex<()>>,
}

impl CatalogContext {
    /// A context over a catalog and a registry.
    pub fn new(catalog: Catalog, registry: Arc<Registry>) -> Self {
        CatalogContext {
            catalog,
            registry,
            writes: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Takes the catalog's write lock.
    pub(crate) async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// The action spec a mapping uses (resolved through its destination's type).
    pub(crate) fn action_spec(&self, mapping: &MappingDef) -> Result<&'static ActionSpec, Error> {
        let destination = self.catalog.destination(mapping.destination_id.as_str())?;
        let destination_type = self
            .registry
            .destination_type(&destination.destination_type)?;
        Ok(destination_type.action(&mapping.action)?)
    }
}

/// The id of a new definition: the one asked for (validated), or a generated one.
pub(crate) fn check_id(field: &str, wanted: Option<String>, prefix: &str) -> Result<String, Error> {
    match wanted.filter(|s| !s.is_empty()) {
        Some(id) => {
            validate_slug(&id).map_err(|message| Error::invalid(field, message))?;
            Ok(id)
        }
        None => Ok(generate_slug(prefix)),
    }
}

/// The display name of a new definition: the given one, or its id.
pub(crate) fn name_or_id(display_name: String, id: &str) -> String {
    if display_name.is_empty() {
        id.to_string()
    } else {
        display_name
    }
}

/// Refuses to delete `kind` `id` while other definitions (`users_kind`) refer to it.
pub(crate) fn refuse_if_used(
    kind: &str,
    id: &str,
    users_kind: &str,
    users: impl Iterator<Item = String>,
) -> Result<(), Error> {
    let users: Vec<String> = users.collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(Error::precondition(format!(
        "{kind} '{id}' is used by {users_kind} {}; delete them first",
        users.join(", ")
    )))
}

/// `AlreadyExists` unless the id is free.
pub(crate) fn ensure_absent(
    catalog: &Catalog,
    kind: crate::catalog::Kind,
    id: &str,
) -> Result<(), Error> {
    if catalog.exists(kind, id)? {
        return Err(Error::AlreadyExists {
            kind: kind.as_str(),
            id: id.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_or_generated_and_users_block_deletes() {
        assert_eq!(
            check_id("source_id", Some("wh".into()), "source").unwrap(),
            "wh"
        );
        assert!(check_id("source_id", Some("Bad Id".into()), "source").is_err());
        assert!(
            check_id("source_id", None, "source")
                .unwrap()
                .starts_with("source")
        );
        assert_eq!(name_or_id(String::new(), "wh"), "wh");
        assert!(refuse_if_used("source", "wh", "models", std::iter::empty()).is_ok());
        let err =
            refuse_if_used("source", "wh", "models", ["m1".to_string()].into_iter()).unwrap_err();
        assert!(err.to_string().contains("used by models m1"), "{err}");
    }
}
