//! [`MappingService`]: mappings (model -> one action of a destination).

use std::sync::Arc;

use chrono::Utc;

use crate::catalog::Kind;
use crate::catalog::service::{CatalogContext, check_id, ensure_absent, name_or_id};
use crate::error::Error;
use crate::id::MappingId;
use crate::mapping::expression::schema_of;
use crate::mapping::plan::{MappingPlan, MappingRules, default_selection};
use crate::mapping::spec::{MappingDef, MappingPatch, NewMapping};
use crate::options::EngineOptions;
use crate::schedule::spec::{ACCEPTED_FORMS, Schedule};
use crate::state::StateStore;
use crate::sync::active::ActiveRuns;
use crate::sync::failures::{FailureLedger, RetryPolicy};
use crate::sync::history::RunHistory;

/// Checks a retry policy: at least one run, and a duration of at least a minute.
fn check_retry_policy(policy: &RetryPolicy) -> Result<(), Error> {
    if policy.max_runs == 0 {
        return Err(Error::invalid(
            "mapping.retry_policy.max_runs",
            "must be at least 1 (the number of runs a failing record is sent in before it is given up; default 5)",
        ));
    }
    if policy.max_age.as_secs() < 60 {
        return Err(Error::invalid(
            "mapping.retry_policy.max_age",
            "must be at least 1 minute (how long after its first failure a record is given up; default 14 days)",
        ));
    }
    Ok(())
}

/// Create, read, update, delete and enable mappings.
#[derive(Clone)]
pub struct MappingService {
    pub(super) ctx: CatalogContext,
    pub(super) options: EngineOptions,
    state: Arc<dyn StateStore>,
    history: RunHistory,
    active: Arc<ActiveRuns>,
    failures: FailureLedger,
}

impl std::fmt::Debug for MappingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappingService").finish_non_exhaustive()
    }
}

impl MappingService {
    /// The service over a catalog; a mapping's sync state and run markers are reset when it is
    /// created or deleted, and a mapping with a run in `active` cannot be deleted.
    pub fn new(
        ctx: CatalogContext,
        options: EngineOptions,
        state: Arc<dyn StateStore>,
        history: RunHistory,
        active: Arc<ActiveRuns>,
        failures: FailureLedger,
    ) -> Self {
        MappingService {
            ctx,
            options,
            state,
            history,
            active,
            failures,
        }
    }

    /// Checks a schedule of mapping `id`: its form, and that a mapping it follows exists.
    fn validate_schedule(&self, id: &str, schedule: Option<&Schedule>) -> Result<(), Error> {
        let Some(schedule) = schedule else {
            return Ok(());
        };
        let compiled = schedule.compile(id).map_err(|m| {
            Error::invalid(
                "mapping.schedule",
                format!("{m}; accepted: {ACCEPTED_FORMS}"),
            )
        })?;
        if let Some(other) = compiled.after_mapping()
            && self.ctx.catalog.mapping(other.as_str()).is_err()
        {
            return Err(Error::invalid(
                "mapping.schedule",
                format!(
                    "mapping '{other}' (to run after) does not exist; name an existing mapping"
                ),
            ));
        }
        Ok(())
    }

    /// Checks fields and selection against the model's columns and the action's fields.
    fn validate(&self, def: &MappingDef) -> Result<(), Error> {
        let model = self.ctx.catalog.model(def.model_id.as_str())?;
        MappingPlan::compile(
            def.rules(),
            &schema_of(&model.columns),
            self.ctx.action_spec(def)?,
        )?;
        Ok(())
    }

    /// Creates a mapping after validating columns, fields, action and selection.
    ///
    /// # Errors
    /// `InvalidArgument` for a bad id, model, destination, action, field or selection;
    /// `FailedPrecondition` for a disabled destination; `AlreadyExists`.
    pub async fn create(&self, new: NewMapping) -> Result<MappingDef, Error> {
        let id = check_id("mapping_id", new.id, "mapping")?;
        self.validate_schedule(&id, new.schedule.as_ref())?;
        if let Some(policy) = &new.retry_policy {
            check_retry_policy(policy)?;
        }
        if let Some(alerts) = &new.alerts {
            alerts.check()?;
        }
        let _guard = self.ctx.write_lock().await;
        ensure_absent(&self.ctx.catalog, Kind::Mapping, &id)?;
        let model = self.ctx.catalog.model(&new.model_id).map_err(|e| match e {
            Error::NotFound { .. } => Error::invalid(
                "mapping.model_id",
                format!("model '{}' does not exist", new.model_id),
            ),
            other => other,
        })?;
        let destination =
            self.ctx
                .catalog
                .destination(&new.destination_id)
                .map_err(|e| match e {
                    Error::NotFound { .. } => Error::invalid(
                        "mapping.destination_id",
                        format!("destination '{}' does not exist", new.destination_id),
                    ),
                    other => other,
                })?;
        if !destination.enabled {
            return Err(Error::precondition(format!(
                "destination '{}' is disabled; enable it before mapping to it (retl destination enable {})",
                destination.id, destination.id
            )));
        }
        let destination_type = self
            .ctx
            .registry
            .destination_type(&destination.destination_type)?;
        let spec = destination_type
            .action(&new.action)
            .map_err(|e| Error::invalid("mapping.action", e.to_string()))?;
        let selection = new.selection.unwrap_or_else(|| default_selection(spec));
        let rules = MappingRules {
            fields: &new.fields,
            selection,
            sync_mode: new.sync_mode,
            null_values: new.null_values,
        };
        MappingPlan::compile(rules, &schema_of(&model.columns), spec)?;
        let now = Utc::now();
        let def = MappingDef {
            display_name: name_or_id(new.display_name, &id),
            id: MappingId::new(id),
            model_id: model.id,
            destination_id: destination.id,
            action: new.action,
            fields: new.fields,
            selection,
            sync_mode: new.sync_mode,
            null_values: new.null_values,
            initial_sync: new.initial_sync,
            enabled: new.enabled.unwrap_or(true),
            schedule: new.schedule,
            retry_policy: new.retry_policy.unwrap_or_default(),
            alerts: new.alerts.unwrap_or_default(),
            create_time: now,
            update_time: now,
        };
        // A mapping id may be reused after a delete: start from a clean state.
        self.state.reset(&def.id)?;
        self.history.clear_initialized(&def.id)?;
        self.failures.reset(&def.id)?;
        self.ctx
            .catalog
            .put(Kind::Mapping, def.id.as_str(), &def, None)?;
        Ok(def)
    }

    /// A mapping by id.
    pub fn get(&self, id: &str) -> Result<MappingDef, Error> {
        self.ctx.catalog.mapping(id)
    }

    /// All mappings, by id.
    pub fn list(&self) -> Result<Vec<MappingDef>, Error> {
        self.ctx.catalog.mappings()
    }

    /// Updates a mapping.
    ///
    /// # Errors
    /// `NotFound`; `InvalidArgument` for fields or a selection that do not fit.
    pub async fn update(&self, id: &str, patch: MappingPatch) -> Result<MappingDef, Error> {
        let _guard = self.ctx.write_lock().await;
        let mut def = self.get(id)?;
        if let Some(v) = patch.display_name {
            def.display_name = v;
        }
        if let Some(v) = patch.fields {
            def.fields = v;
        }
        if let Some(v) = patch.selection {
            def.selection = v;
        }
        if let Some(v) = patch.sync_mode {
            def.sync_mode = Some(v);
        }
        if let Some(v) = patch.null_values {
            def.null_values = v;
        }
        if let Some(v) = patch.enabled {
            def.enabled = v;
        }
        if let Some(v) = patch.retry_policy {
            check_retry_policy(&v)?;
            def.retry_policy = v;
        }
        if let Some(v) = patch.alerts {
            v.check()?;
            def.alerts = v;
        }
        if let Some(v) = patch.schedule {
            self.validate_schedule(id, v.as_ref())?;
            def.schedule = v;
        }
        self.validate(&def)?;
        def.update_time = Utc::now();
        self.ctx.catalog.put(Kind::Mapping, id, &def, None)?;
        Ok(def)
    }

    /// Deletes a mapping and its sync state.
    ///
    /// # Errors
    /// `NotFound`; `FailedPrecondition` while a run of it is in progress.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        let _guard = self.ctx.write_lock().await;
        let def = self.get(id)?;
        if let Some(run) = self.active.of_mapping(id)? {
            return Err(Error::precondition(format!(
                "mapping '{id}' has run {run} in progress; cancel it first (retl sync cancel {run})"
            )));
        }
        self.ctx.catalog.delete(Kind::Mapping, id)?;
        self.state.reset(&def.id)?;
        self.history.clear_initialized(&def.id)?;
        self.failures.reset(&def.id)?;
        Ok(())
    }

    /// Enables or disables a mapping.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<MappingDef, Error> {
        let _guard = self.ctx.write_lock().await;
        let mut def = self.get(id)?;
        def.enabled = enabled;
        def.update_time = Utc::now();
        self.ctx.catalog.put(Kind::Mapping, id, &def, None)?;
        Ok(def)
    }
}
