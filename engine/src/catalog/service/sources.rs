//! [`SourceService`]: sources (warehouse connections).

use std::sync::Arc;

use chrono::Utc;

use crate::catalog::Kind;
use crate::catalog::secrets::{Secrets, split_config};
use crate::catalog::service::{
    CatalogContext, check_id, ensure_absent, name_or_id, refuse_if_used,
};
use crate::catalog::source::{ConfigMap, ExtractionSettings, NewSource, SourceDef, SourcePatch};
use crate::connector::build::build_source;
use crate::error::Error;
use crate::id::SourceId;
use crate::model::preview::Previews;
use crate::source::{SourceTestReport, TableInfo};

/// Create, read, update, delete, test and browse sources.
#[derive(Debug, Clone)]
pub struct SourceService {
    ctx: CatalogContext,
    previews: Arc<Previews>,
}

impl SourceService {
    /// The service over a catalog; `previews` is told when a source changes.
    pub fn new(ctx: CatalogContext, previews: Arc<Previews>) -> Self {
        SourceService { ctx, previews }
    }

    /// Applies config keys to a definition: the engine's settings to `extraction`, secret
    /// fields to `secrets`, the rest to `config`.
    fn apply_config(&self, def: &mut SourceDef, mut config: ConfigMap) -> Result<(), Error> {
        let source_type = self.ctx.registry.source_type(&def.source_type)?;
        def.extraction.take_from(&mut config)?;
        let is_secret = |k: &str| source_type.config.iter().any(|f| f.name == k && f.secret);
        split_config(
            "source",
            is_secret,
            config,
            &mut def.config,
            &mut def.secrets,
        )
    }

    /// Creates a source after validating its config (no network access).
    ///
    /// # Errors
    /// `InvalidArgument` for a bad id, type or config; `AlreadyExists` for a taken id.
    pub async fn create(&self, new: NewSource) -> Result<SourceDef, Error> {
        let id = check_id("source_id", new.id, "source")?;
        let now = Utc::now();
        let mut def = SourceDef {
            display_name: name_or_id(new.display_name, &id),
            id: SourceId::new(id),
            source_type: new.source_type,
            config: ConfigMap::new(),
            secrets: Secrets::new(),
            extraction: ExtractionSettings::default(),
            create_time: now,
            update_time: now,
        };
        self.apply_config(&mut def, new.config)?;
        build_source(&self.ctx.registry, &def)?;
        let _guard = self.ctx.write_lock().await;
        ensure_absent(&self.ctx.catalog, Kind::Source, def.id.as_str())?;
        self.ctx
            .catalog
            .put(Kind::Source, def.id.as_str(), &def, Some(&def.secrets))?;
        Ok(def)
    }

    /// A source by id (with its secrets loaded; never send them outward).
    pub fn get(&self, id: &str) -> Result<SourceDef, Error> {
        self.ctx.catalog.source(id)
    }

    /// All sources, by id.
    pub fn list(&self) -> Result<Vec<SourceDef>, Error> {
        self.ctx.catalog.sources()
    }

    /// Updates a source; its config must still build.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `InvalidArgument` for a config that does not build.
    pub async fn update(&self, id: &str, patch: SourcePatch) -> Result<SourceDef, Error> {
        let _guard = self.ctx.write_lock().await;
        let mut def = self.get(id)?;
        if let Some(name) = patch.display_name {
            def.display_name = name;
        }
        if let Some(config) = patch.config {
            self.apply_config(&mut def, config)?;
        }
        def.update_time = Utc::now();
        build_source(&self.ctx.registry, &def)?;
        self.ctx
            .catalog
            .put(Kind::Source, id, &def, Some(&def.secrets))?;
        self.previews.evict(id, None);
        Ok(def)
    }

    /// Deletes a source no model uses.
    ///
    /// # Errors
    /// `NotFound`; `FailedPrecondition` naming the models that use it.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        let _guard = self.ctx.write_lock().await;
        self.get(id)?;
        let users = self
            .ctx
            .catalog
            .models()?
            .into_iter()
            .filter(|m| m.source_id.as_str() == id)
            .map(|m| m.id.to_string());
        refuse_if_used("source", id, "models", users)?;
        self.previews.evict(id, None);
        Ok(self.ctx.catalog.delete(Kind::Source, id)?)
    }

    /// Checks a source's reachability and credentials.
    pub async fn test(&self, id: &str) -> Result<SourceTestReport, Error> {
        let source = build_source(&self.ctx.registry, &self.get(id)?)?;
        Ok(source.test().await?)
    }

    /// Tables of a source.
    pub async fn tables(&self, id: &str) -> Result<Vec<TableInfo>, Error> {
        let source = build_source(&self.ctx.registry, &self.get(id)?)?;
        Ok(source.list_tables().await?)
    }
}
