//! [`Engine`]: the facade the server calls. One per data directory.

use std::path::{Path, PathBuf};

use crate::catalog::destination::{DestinationDef, DestinationPatch, NewDestination};
use crate::catalog::mapping::{MappingDef, MappingPatch, NewMapping};
use crate::catalog::model::{ModelDef, ModelPatch, NewModel, Preview, PreviewTarget};
use crate::catalog::source::{NewSource, SourceDef, SourcePatch};
use crate::connector::{DestinationType, Registry};
use crate::error::{Error, Result};
use crate::source::{SourceTestReport, TableInfo};
use crate::sync::run::SyncRun;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Memory the diff's sort may use before it spills to disk, in bytes.
    pub sort_memory_bytes: usize,
    /// Fraction of the state's keys that may vanish in one run before deletes are held back.
    pub mass_delete_fraction: f64,
    /// Below this many keys in the state the mass-delete safety stop does not apply.
    pub mass_delete_min_keys: u64,
    /// Keep the staged extracts of this many runs per model.
    pub staging_runs_kept: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            sort_memory_bytes: 256 * 1024 * 1024,
            mass_delete_fraction: 0.5,
            mass_delete_min_keys: 10,
            staging_runs_kept: 2,
        }
    }
}

/// Options of one triggered sync.
#[derive(Debug, Clone, Default)]
pub struct TriggerOptions {
    /// Send deletes even when more than the safety-stop fraction of keys vanished.
    pub confirm_mass_delete: bool,
    /// `manual` (API/CLI) or `schedule`.
    pub trigger: Option<String>,
}

/// The retl engine over one data directory.
pub struct Engine {
    data_dir: PathBuf,
    registry: Registry,
    options: EngineOptions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

fn todo(what: &str) -> Error {
    Error::Unimplemented {
        what: what.to_string(),
    }
}

impl Engine {
    /// Opens (or creates) the data directory.
    pub async fn open(data_dir: &Path, registry: Registry, options: EngineOptions) -> Result<Engine> {
        Ok(Engine {
            data_dir: data_dir.to_path_buf(),
            registry,
            options,
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The connector registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The engine options.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Destination types with their actions and fields.
    pub fn destination_types(&self) -> Vec<&DestinationType> {
        self.registry.destination_types().collect()
    }

    // ---- sources ----

    /// Creates a source after validating its config (no network access).
    pub async fn create_source(&self, _new: NewSource) -> Result<SourceDef> {
        Err(todo("create_source"))
    }
    /// A source by id.
    pub fn get_source(&self, _id: &str) -> Result<SourceDef> {
        Err(todo("get_source"))
    }
    /// All sources, by id.
    pub fn list_sources(&self) -> Result<Vec<SourceDef>> {
        Err(todo("list_sources"))
    }
    /// Updates a source; models using it are not re-validated.
    pub async fn update_source(&self, _id: &str, _patch: SourcePatch) -> Result<SourceDef> {
        Err(todo("update_source"))
    }
    /// Deletes a source no model uses.
    pub fn delete_source(&self, _id: &str) -> Result<()> {
        Err(todo("delete_source"))
    }
    /// Checks a source's reachability and credentials.
    pub async fn test_source(&self, _id: &str) -> Result<SourceTestReport> {
        Err(todo("test_source"))
    }
    /// Tables of a source.
    pub async fn list_tables(&self, _id: &str) -> Result<Vec<TableInfo>> {
        Err(todo("list_tables"))
    }

    // ---- models ----

    /// Creates a model after validating its SQL and unique id.
    pub async fn create_model(&self, _new: NewModel) -> Result<ModelDef> {
        Err(todo("create_model"))
    }
    /// A model by id.
    pub fn get_model(&self, _id: &str) -> Result<ModelDef> {
        Err(todo("get_model"))
    }
    /// All models, by id.
    pub fn list_models(&self) -> Result<Vec<ModelDef>> {
        Err(todo("list_models"))
    }
    /// Updates a model; the result is validated again.
    pub async fn update_model(&self, _id: &str, _patch: ModelPatch) -> Result<ModelDef> {
        Err(todo("update_model"))
    }
    /// Deletes a model no mapping uses.
    pub fn delete_model(&self, _id: &str) -> Result<()> {
        Err(todo("delete_model"))
    }
    /// The first `limit` rows of a model.
    pub async fn preview_model(&self, _target: PreviewTarget, _limit: usize) -> Result<Preview> {
        Err(todo("preview_model"))
    }

    // ---- destinations ----

    /// Creates a destination after validating its config.
    pub async fn create_destination(&self, _new: NewDestination) -> Result<DestinationDef> {
        Err(todo("create_destination"))
    }
    /// A destination by id.
    pub fn get_destination(&self, _id: &str) -> Result<DestinationDef> {
        Err(todo("get_destination"))
    }
    /// All destinations, by id.
    pub fn list_destinations(&self) -> Result<Vec<DestinationDef>> {
        Err(todo("list_destinations"))
    }
    /// Updates a destination.
    pub async fn update_destination(
        &self,
        _id: &str,
        _patch: DestinationPatch,
    ) -> Result<DestinationDef> {
        Err(todo("update_destination"))
    }
    /// Deletes a destination no mapping uses.
    pub fn delete_destination(&self, _id: &str) -> Result<()> {
        Err(todo("delete_destination"))
    }
    /// Checks a destination's reachability and credentials.
    pub async fn test_destination(&self, _id: &str) -> Result<String> {
        Err(todo("test_destination"))
    }

    // ---- mappings ----

    /// Creates a mapping after validating columns, fields, action and selection.
    pub async fn create_mapping(&self, _new: NewMapping) -> Result<MappingDef> {
        Err(todo("create_mapping"))
    }
    /// A mapping by id.
    pub fn get_mapping(&self, _id: &str) -> Result<MappingDef> {
        Err(todo("get_mapping"))
    }
    /// All mappings, by id.
    pub fn list_mappings(&self) -> Result<Vec<MappingDef>> {
        Err(todo("list_mappings"))
    }
    /// Updates a mapping.
    pub async fn update_mapping(&self, _id: &str, _patch: MappingPatch) -> Result<MappingDef> {
        Err(todo("update_mapping"))
    }
    /// Deletes a mapping and its sync state.
    pub fn delete_mapping(&self, _id: &str) -> Result<()> {
        Err(todo("delete_mapping"))
    }
    /// Enables or disables a mapping.
    pub fn set_mapping_enabled(&self, _id: &str, _enabled: bool) -> Result<MappingDef> {
        Err(todo("set_mapping_enabled"))
    }

    // ---- sync runs ----

    /// Starts a sync of a mapping in the background; returns the new run (queued or running).
    pub async fn trigger_sync(&self, _mapping_id: &str, _options: TriggerOptions) -> Result<SyncRun> {
        Err(todo("trigger_sync"))
    }
    /// A run by id.
    pub fn get_run(&self, _run_id: &str) -> Result<SyncRun> {
        Err(todo("get_run"))
    }
    /// Runs, newest first, optionally of one mapping, at most `limit`.
    pub fn list_runs(&self, _mapping_id: Option<&str>, _limit: usize) -> Result<Vec<SyncRun>> {
        Err(todo("list_runs"))
    }
    /// Live snapshots of a run; the receiver's last value is the final record once it ends.
    pub fn watch_run(&self, _run_id: &str) -> Result<tokio::sync::watch::Receiver<SyncRun>> {
        Err(todo("watch_run"))
    }
    /// Asks a run to stop; acknowledged records stay committed.
    pub fn cancel_run(&self, _run_id: &str) -> Result<SyncRun> {
        Err(todo("cancel_run"))
    }
    /// Waits for running syncs to stop (they are cancelled) and flushes the store.
    pub async fn shutdown(&self) {}
}
