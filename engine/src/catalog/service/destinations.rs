//! [`DestinationService`]: destinations (configured business tools).

use std::sync::Arc;

use chrono::Utc;

use crate::catalog::Kind;
use crate::catalog::destination::{DestinationDef, DestinationPatch, LIMITS_KEY, NewDestination};
use crate::catalog::secrets::{Secrets, split_config};
use crate::catalog::service::{
    CatalogContext, check_id, ensure_absent, name_or_id, refuse_if_used,
};
use crate::catalog::source::ConfigMap;
use crate::connector::DestinationType;
use crate::connector::build::build_destination;
use crate::delivery::Limiters;
use crate::error::Error;
use crate::id::DestinationId;

/// Create, read, update, delete and test destinations.
#[derive(Debug, Clone)]
pub struct DestinationService {
    ctx: CatalogContext,
    limiters: Arc<Limiters>,
}

impl DestinationService {
    /// The service over a catalog; a deleted destination's limiter is dropped from `limiters`.
    pub fn new(ctx: CatalogContext, limiters: Arc<Limiters>) -> Self {
        DestinationService { ctx, limiters }
    }

    /// Destination types with their actions and fields.
    pub fn types(&self) -> Vec<&DestinationType> {
        self.ctx.registry.destination_types().collect()
    }

    /// Applies config keys to a definition: `limits` to the limit overrides, secret fields to
    /// `secrets`, the rest to `config`.
    fn apply_config(&self, def: &mut DestinationDef, mut config: ConfigMap) -> Result<(), Error> {
        let destination_type = self.ctx.registry.destination_type(&def.destination_type)?;
        match config.remove(LIMITS_KEY) {
            None => {}
            Some(serde_json::Value::Null) => def.limits.clear(),
            // Like any config key, a new `limits` object replaces the old one.
            Some(serde_json::Value::Object(limits)) => def.limits = limits,
            Some(_) => {
                return Err(Error::invalid(
                    "destination.config.limits",
                    "limits must be an object, e.g. {\"requests_per_second\": 5, \"batch_size\": 50}",
                ));
            }
        }
        let is_secret = |k: &str| {
            destination_type
                .config
                .iter()
                .any(|f| f.name == k && f.secret)
        };
        split_config(
            "destination",
            is_secret,
            config,
            &mut def.config,
            &mut def.secrets,
        )
    }

    /// Creates a destination after validating its config (no network access).
    ///
    /// # Errors
    /// `InvalidArgument` for a bad id, type, config or limits; `AlreadyExists`.
    pub async fn create(&self, new: NewDestination) -> Result<DestinationDef, Error> {
        let id = check_id("destination_id", new.id, "destination")?;
        let now = Utc::now();
        let mut def = DestinationDef {
            display_name: name_or_id(new.display_name, &id),
            id: DestinationId::new(id),
            destination_type: new.destination_type,
            config: ConfigMap::new(),
            secrets: Secrets::new(),
            limits: ConfigMap::new(),
            enabled: new.enabled.unwrap_or(true),
            create_time: now,
            update_time: now,
        };
        self.apply_config(&mut def, new.config)?;
        build_destination(&self.ctx.registry, &def)?;
        let _guard = self.ctx.write_lock().await;
        ensure_absent(&self.ctx.catalog, Kind::Destination, def.id.as_str())?;
        self.ctx
            .catalog
            .put(Kind::Destination, def.id.as_str(), &def, Some(&def.secrets))?;
        Ok(def)
    }

    /// A destination by id (with its secrets loaded; never send them outward).
    pub fn get(&self, id: &str) -> Result<DestinationDef, Error> {
        self.ctx.catalog.destination(id)
    }

    /// All destinations, by id.
    pub fn list(&self) -> Result<Vec<DestinationDef>, Error> {
        self.ctx.catalog.destinations()
    }

    /// Updates a destination; its config must still build.
    ///
    /// # Errors
    /// `NotFound`; `InvalidArgument` for a config or limits that do not build.
    pub async fn update(&self, id: &str, patch: DestinationPatch) -> Result<DestinationDef, Error> {
        let _guard = self.ctx.write_lock().await;
        let mut def = self.get(id)?;
        if let Some(v) = patch.display_name {
            def.display_name = v;
        }
        if let Some(v) = patch.enabled {
            def.enabled = v;
        }
        if let Some(config) = patch.config {
            self.apply_config(&mut def, config)?;
        }
        def.update_time = Utc::now();
        build_destination(&self.ctx.registry, &def)?;
        self.ctx
            .catalog
            .put(Kind::Destination, id, &def, Some(&def.secrets))?;
        Ok(def)
    }

    /// Deletes a destination no mapping uses.
    ///
    /// # Errors
    /// `NotFound`; `FailedPrecondition` naming the mappings that use it.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        let _guard = self.ctx.write_lock().await;
        self.get(id)?;
        let users = self
            .ctx
            .catalog
            .mappings()?
            .into_iter()
            .filter(|m| m.destination_id.as_str() == id)
            .map(|m| m.id.to_string());
        refuse_if_used("destination", id, "mappings", users)?;
        self.limiters.remove(id);
        Ok(self.ctx.catalog.delete(Kind::Destination, id)?)
    }

    /// Checks a destination's reachability and credentials; a one-line summary.
    pub async fn test(&self, id: &str) -> Result<String, Error> {
        let built = build_destination(&self.ctx.registry, &self.get(id)?)?;
        Ok(built.destination.test().await?)
    }
}
