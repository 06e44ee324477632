//! [`ModelService`]: models (SQL over a source plus a unique identifier column).

use std::sync::Arc;

use chrono::Utc;

use crate::catalog::Kind;
use crate::catalog::model::{ModelDef, ModelPatch, NewModel, Preview, PreviewTarget};
use crate::catalog::service::{
    CatalogContext, check_id, ensure_absent, name_or_id, refuse_if_used,
};
use crate::connector::build::build_source;
use crate::error::Error;
use crate::id::{ModelId, SourceId};
use crate::mapping::MappingPlan;
use crate::mapping::expression::schema_of;
use crate::model::plan::validate_model;
use crate::model::preview::Previews;
use crate::options::EngineOptions;
use crate::source::ColumnInfo;

/// Create, read, update, delete and preview models.
#[derive(Debug, Clone)]
pub struct ModelService {
    ctx: CatalogContext,
    options: EngineOptions,
    previews: Arc<Previews>,
}

impl ModelService {
    /// The service over a catalog.
    pub fn new(ctx: CatalogContext, options: EngineOptions, previews: Arc<Previews>) -> Self {
        ModelService {
            ctx,
            options,
            previews,
        }
    }

    /// Plans the SQL against its source (which may take as long as the warehouse does: never
    /// called under the write lock) and checks the unique id; returns the output columns.
    async fn validate(
        &self,
        source_id: &str,
        sql: &str,
        unique_id: &str,
    ) -> Result<Vec<ColumnInfo>, Error> {
        let source_def = self.ctx.catalog.source(source_id).map_err(|e| match e {
            Error::NotFound { .. } => Error::invalid(
                "model.source_id",
                format!("source '{source_id}' does not exist; create it first or use one of `retl source list`"),
            ),
            other => other,
        })?;
        let source = build_source(&self.ctx.registry, &source_def)?;
        validate_model(
            source.as_ref(),
            sql,
            unique_id,
            self.options.sort_memory_bytes,
        )
        .await
    }

    /// `InvalidArgument` unless the model's source still exists (checked under the lock).
    fn ensure_source(&self, source_id: &SourceId) -> Result<(), Error> {
        if self.ctx.catalog.exists(Kind::Source, source_id.as_str())? {
            return Ok(());
        }
        Err(Error::invalid(
            "model.source_id",
            format!("source '{source_id}' was deleted while the model was validated"),
        ))
    }

    /// Creates a model after validating its SQL and unique id.
    ///
    /// # Errors
    /// `InvalidArgument` for a bad id, source, SQL or unique id; `AlreadyExists`.
    pub async fn create(&self, new: NewModel) -> Result<ModelDef, Error> {
        let id = check_id("model_id", new.id, "model")?;
        ensure_absent(&self.ctx.catalog, Kind::Model, &id)?;
        let columns = self
            .validate(&new.source_id, &new.sql, &new.unique_id)
            .await?;
        let now = Utc::now();
        let def = ModelDef {
            display_name: name_or_id(new.display_name, &id),
            id: ModelId::new(id),
            source_id: SourceId::new(new.source_id),
            sql: new.sql,
            unique_id: new.unique_id,
            columns,
            create_time: now,
            update_time: now,
        };
        let _guard = self.ctx.write_lock().await;
        ensure_absent(&self.ctx.catalog, Kind::Model, def.id.as_str())?;
        self.ensure_source(&def.source_id)?;
        self.ctx
            .catalog
            .put(Kind::Model, def.id.as_str(), &def, None)?;
        Ok(def)
    }

    /// A model by id.
    pub fn get(&self, id: &str) -> Result<ModelDef, Error> {
        self.ctx.catalog.model(id)
    }

    /// All models, by id.
    pub fn list(&self) -> Result<Vec<ModelDef>, Error> {
        self.ctx.catalog.models()
    }

    /// Updates a model; the result is validated again, and so is every mapping using it.
    ///
    /// # Errors
    /// `NotFound`; `InvalidArgument` for invalid SQL, or when a mapping of the model would no
    /// longer fit it (naming the mapping).
    pub async fn update(&self, id: &str, patch: ModelPatch) -> Result<ModelDef, Error> {
        let mut def = self.get(id)?;
        let old_sql = def.sql.clone();
        if let Some(v) = patch.display_name {
            def.display_name = v;
        }
        if let Some(v) = patch.source_id {
            def.source_id = SourceId::new(v);
        }
        if let Some(v) = patch.sql {
            def.sql = v;
        }
        if let Some(v) = patch.unique_id {
            def.unique_id = v;
        }
        def.columns = self
            .validate(def.source_id.as_str(), &def.sql, &def.unique_id)
            .await?;
        let _guard = self.ctx.write_lock().await;
        let current = self.get(id)?;
        self.ensure_source(&def.source_id)?;
        for mapping in self
            .ctx
            .catalog
            .mappings()?
            .into_iter()
            .filter(|m| m.model_id.as_str() == id)
        {
            let spec = self.ctx.action_spec(&mapping)?;
            MappingPlan::compile(mapping.rules(), &schema_of(&def.columns), spec).map_err(|e| {
                Error::invalid(
                    "model.sql",
                    format!("the change would break mapping '{}': {e}; update or delete the mapping first", mapping.id),
                )
            })?;
        }
        def.update_time = Utc::now();
        self.ctx.catalog.put(Kind::Model, id, &def, None)?;
        // A model edit must show fresh rows: forget previews of the old and the new SQL.
        self.previews
            .evict(current.source_id.as_str(), Some(&old_sql));
        self.previews
            .evict(current.source_id.as_str(), Some(&current.sql));
        self.previews.evict(def.source_id.as_str(), Some(&def.sql));
        Ok(def)
    }

    /// Deletes a model no mapping uses.
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
            .filter(|m| m.model_id.as_str() == id)
            .map(|m| m.id.to_string());
        refuse_if_used("model", id, "mappings", users)?;
        Ok(self.ctx.catalog.delete(Kind::Model, id)?)
    }

    /// The first `limit` rows of a model or of unsaved SQL (cached; see [`Previews`]).
    pub async fn preview(
        &self,
        target: PreviewTarget,
        limit: usize,
        refresh: bool,
    ) -> Result<Preview, Error> {
        self.previews.preview(target, limit, refresh).await
    }
}
