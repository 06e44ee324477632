//! The `retl.v1` gRPC services over the engine facade.
//!
//! # Layout
//! - [`sources`], [`models`], [`destinations`], [`mappings`], [`syncs`], [`query`]: one service
//!   implementation each, thin: validate the request shape, convert, call [`Engine`], convert back.
//! - [`convert`]: proto <-> engine types (secrets never leave).
//! - [`json`]: proto messages as JSON, for `--output json` in the CLI.
//! - [`status`]: engine errors -> gRPC status codes, in one place.
//!
//! List RPCs paginate over the engine's sorted lists; a page token is the last id of the previous
//! page, so pages stay consistent while objects are added or removed.

pub mod convert;
pub mod destinations;
pub mod json;
pub mod mappings;
pub mod models;
pub mod query;
pub mod sources;
pub mod status;
pub mod syncs;

use std::collections::BTreeSet;

use tonic::Status;

pub use destinations::DestinationApi;
pub use mappings::MappingApi;
pub use models::ModelApi;
pub use query::QueryApi;
pub use sources::SourceApi;
pub use syncs::SyncApi;

/// Page size used when a List request asks for 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page size; larger requests are capped (AIP-158).
pub const MAX_PAGE_SIZE: usize = 1000;

/// The order of a list the server paginates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Ids ascending (sources, models, destinations, mappings).
    Ascending,
    /// Ids descending (runs, newest first).
    Descending,
}

/// The effective page size of a List request: 0 = the default, capped at the maximum.
pub(crate) fn effective_page_size(page_size: i32) -> Result<usize, Status> {
    match usize::try_from(page_size) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(n) => Ok(n.min(MAX_PAGE_SIZE)),
        Err(_) => Err(status::invalid_argument(
            "page_size",
            "must not be negative",
        )),
    }
}

/// One page of `items` (sorted by `id` in `order`) after `page_token`, and the next token.
pub(crate) fn paginate<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> &str,
    order: Order,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<T>, String), Status> {
    let size = effective_page_size(page_size)?;
    let mut page: Vec<T> = items
        .into_iter()
        .filter(|item| {
            page_token.is_empty()
                || match order {
                    Order::Ascending => id(item) > page_token,
                    Order::Descending => id(item) < page_token,
                }
        })
        .take(size + 1)
        .collect();
    let next = if page.len() > size {
        page.truncate(size);
        page.last()
            .map(|item| id(item).to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((page, next))
}

/// The paths of an update request's field mask, checked against what the resource allows.
///
/// Returns `None` for an empty mask (the caller then updates every field that is set).
pub(crate) fn update_paths(
    resource: &str,
    mask: Option<prost_types::FieldMask>,
    allowed: &[&str],
    immutable: &[&str],
) -> Result<Option<BTreeSet<String>>, Status> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Ok(None);
    }
    let mut set = BTreeSet::new();
    for path in paths {
        if immutable.contains(&path.as_str()) {
            return Err(status::invalid_argument(
                &format!("{resource}.{path}"),
                &format!("cannot be changed after creation; create a new {resource} instead"),
            ));
        }
        if !allowed.contains(&path.as_str()) {
            return Err(status::invalid_argument(
                "update_mask",
                &format!(
                    "has unknown path '{path}'; paths of a {resource} that can be updated: {}",
                    allowed.join(", ")
                ),
            ));
        }
        set.insert(path);
    }
    Ok(Some(set))
}

/// Whether an update touches `path`: named in the mask, or (empty mask) `is_set`.
pub(crate) fn touches(paths: &Option<BTreeSet<String>>, path: &str, is_set: bool) -> bool {
    match paths {
        Some(p) => p.contains(path),
        None => is_set,
    }
}

/// The id a Create request asks for: `<kind>_id`, or the resource's own `id` when only that is
/// set; `None` = generate one. Both set and different is an error.
pub(crate) fn create_id(
    kind: &str,
    request_id: String,
    resource_id: String,
) -> Result<Option<String>, Status> {
    match (request_id.is_empty(), resource_id.is_empty()) {
        (true, true) => Ok(None),
        (false, true) => Ok(Some(request_id)),
        (true, false) => Ok(Some(resource_id)),
        (false, false) if request_id == resource_id => Ok(Some(request_id)),
        (false, false) => Err(status::invalid_argument(
            &format!("{kind}_id"),
            &format!("'{request_id}' differs from {kind}.id '{resource_id}'; set only {kind}_id"),
        )),
    }
}

/// A required id of a request.
pub(crate) fn required_id<'a>(field: &str, id: &'a str) -> Result<&'a str, Status> {
    if id.is_empty() {
        Err(status::required(field))
    } else {
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_tokens() {
        let items: Vec<String> = (0..5).map(|i| format!("id-{i}")).collect();
        let (p1, t1) = paginate(items.clone(), |s| s, Order::Ascending, 2, "").unwrap();
        assert_eq!(p1, ["id-0", "id-1"]);
        assert_eq!(t1, "id-1");
        let (p2, t2) = paginate(items.clone(), |s| s, Order::Ascending, 2, &t1).unwrap();
        assert_eq!(p2, ["id-2", "id-3"]);
        let (p3, t3) = paginate(items.clone(), |s| s, Order::Ascending, 2, &t2).unwrap();
        assert_eq!(p3, ["id-4"]);
        assert_eq!(t3, "");
        let (all, t) = paginate(items.clone(), |s| s, Order::Ascending, 0, "").unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(t, "");
        let mut desc = items;
        desc.reverse();
        let (d1, dt) = paginate(desc.clone(), |s| s, Order::Descending, 3, "").unwrap();
        assert_eq!(d1, ["id-4", "id-3", "id-2"]);
        let (d2, _) = paginate(desc, |s| s, Order::Descending, 3, &dt).unwrap();
        assert_eq!(d2, ["id-1", "id-0"]);
        assert!(paginate(Vec::<String>::new(), |s| s, Order::Ascending, -1, "").is_err());
    }

    #[test]
    fn masks_are_checked() {
        let mask = |p: &[&str]| {
            Some(prost_types::FieldMask {
                paths: p.iter().map(|s| s.to_string()).collect(),
            })
        };
        let allowed = ["display_name", "config"];
        assert!(
            update_paths("source", None, &allowed, &["type"])
                .unwrap()
                .is_none()
        );
        let p = update_paths("source", mask(&["config"]), &allowed, &["type"]).unwrap();
        assert!(touches(&p, "config", false));
        assert!(!touches(&p, "display_name", true));
        let err = update_paths("source", mask(&["type"]), &allowed, &["type"]).unwrap_err();
        assert!(err.message().contains("source.type"));
        let err = update_paths("source", mask(&["nope"]), &allowed, &["type"]).unwrap_err();
        assert!(err.message().contains("display_name, config"));
    }
}
