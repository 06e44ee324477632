//! [`Engine`]: the facade the server calls. One per data directory.
//!
//! It validates definitions before storing them (no network access at create time), keeps
//! referential integrity (a source used by a model cannot be deleted, ...), resolves and starts
//! sync runs in the background, and tracks live runs for watching and cancelling.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::destination::{DestinationDef, DestinationPatch, LIMITS_KEY, NewDestination};
use crate::catalog::mapping::{MappingDef, MappingPatch, NewMapping};
use crate::catalog::model::{ModelDef, ModelPatch, NewModel, Preview, PreviewTarget};
use crate::catalog::source::{ConfigMap, NewSource, SourceDef, SourcePatch};
use crate::catalog::{Catalog, Kind};
use crate::connector::{DestinationType, Registry};
use crate::delivery::DestinationLimiter;
use crate::destination::spec::{ConfigField, DeliveryLimits};
use crate::destination::{Action, Destination};
use crate::error::{Error, Result};
use crate::id::{DestinationId, MappingId, ModelId, SourceId, generate_slug, validate_slug};
use crate::mapping::plan::{MappingPlan, default_selection};
use crate::mapping::value::json_value;
use crate::model::plan::{ModelSession, validate_model};
use crate::secret::Secret;
use crate::source::{ColumnInfo, Source, SourceTestReport, TableInfo};
use crate::state::StateStore;
use crate::state::rocks::RocksStateStore;
use crate::store::Store;
use crate::sync::run::{RunStage, RunStatus, SyncRun};
use crate::sync::runner::{RunEnv, RunInputs, SyncRunner};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Memory a model's query (its extract, a preview) may use before it spills to disk, in
    /// bytes.
    pub sort_memory_bytes: usize,
    /// Memory the diff's sort of the key index may use before it spills to disk, in bytes
    /// (only an extract that does not arrive in key order is sorted).
    pub key_sort_memory_bytes: usize,
    /// Fraction of the state's keys that may vanish in one run before deletes are held back.
    pub mass_delete_fraction: f64,
    /// Below this many keys in the state the mass-delete safety stop does not apply.
    pub mass_delete_min_keys: u64,
    /// Keep the staged extracts of this many runs per model.
    pub staging_runs_kept: usize,
    /// Wait before the first retry of an extract whose connection was lost or refused; each
    /// further retry waits twice as long, up to 30 s.
    pub extract_retry_backoff: std::time::Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            sort_memory_bytes: 256 * 1024 * 1024,
            key_sort_memory_bytes: 64 * 1024 * 1024,
            mass_delete_fraction: 0.5,
            mass_delete_min_keys: 10,
            staging_runs_kept: 2,
            extract_retry_backoff: std::time::Duration::from_secs(1),
        }
    }
}

/// Options of one triggered sync.
#[derive(Debug, Clone, Default)]
pub struct TriggerOptions {
    /// Send deletes even when more than the safety-stop fraction of keys vanished.
    pub confirm_mass_delete: bool,
    /// `manual` (API/CLI, the default) or `schedule`.
    pub trigger: Option<String>,
}

struct ActiveRun {
    mapping_id: String,
    cancel: CancellationToken,
    progress: watch::Receiver<SyncRun>,
    handle: Option<JoinHandle<()>>,
}

struct Inner {
    data_dir: PathBuf,
    registry: Registry,
    options: EngineOptions,
    catalog: Catalog,
    state: Arc<RocksStateStore>,
    /// The database behind both (flushed at shutdown).
    store: Store,
    limiters: Mutex<HashMap<String, Arc<DestinationLimiter>>>,
    /// Extraction slots per source id, with the limit they were made for.
    extraction_slots: Mutex<HashMap<String, (usize, Arc<tokio::sync::Semaphore>)>>,
    active: Mutex<HashMap<String, ActiveRun>>,
    /// Preview results per source and SQL text.
    previews: Mutex<PreviewCache>,
    /// Serializes catalog mutations so referential checks and writes do not interleave.
    writes: tokio::sync::Mutex<()>,
}

/// The retl engine over one data directory. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

fn lock_poisoned() -> Error {
    Error::internal("a lock was poisoned by a panicking thread")
}

fn check_id(field: &str, wanted: Option<String>, prefix: &str) -> Result<String> {
    match wanted.filter(|s| !s.is_empty()) {
        Some(id) => {
            validate_slug(field, &id)?;
            Ok(id)
        }
        None => Ok(generate_slug(prefix)),
    }
}

/// Previews kept per daemon (oldest evicted first).
const PREVIEW_CACHE_ENTRIES: usize = 128;

/// Cached previews, keyed by (source id, SQL text, row limit).
#[derive(Default)]
struct PreviewCache {
    entries: HashMap<(String, String, usize), Preview>,
    order: std::collections::VecDeque<(String, String, usize)>,
}

impl PreviewCache {
    fn get(&self, key: &(String, String, usize)) -> Option<Preview> {
        self.entries.get(key).cloned()
    }

    fn put(&mut self, key: (String, String, usize), preview: Preview) {
        if self.entries.insert(key.clone(), preview).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > PREVIEW_CACHE_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    /// Forgets the entries of a source, or only those with this SQL text.
    fn evict(&mut self, source_id: &str, sql: Option<&str>) {
        self.entries
            .retain(|(s, q, _), _| !(s == source_id && sql.is_none_or(|sql| sql == q)));
        let entries = &self.entries;
        self.order.retain(|k| entries.contains_key(k));
    }
}

/// The source config key holding the maximum of concurrent extractions (default 1); handled by
/// the engine, never passed to the connector.
pub const MAX_EXTRACTIONS_KEY: &str = "max_concurrent_extractions";

/// The largest `max_concurrent_extractions` accepted.
const MAX_EXTRACTIONS_LIMIT: u64 = 64;

fn max_extractions(config: &ConfigMap) -> Result<usize> {
    match config.get(MAX_EXTRACTIONS_KEY) {
        None => Ok(1),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_EXTRACTIONS_LIMIT).contains(&n) => Ok(n as usize),
            _ => Err(Error::invalid(
                format!("source.config.{MAX_EXTRACTIONS_KEY}"),
                format!(
                    "must be a whole number from 1 to {MAX_EXTRACTIONS_LIMIT} (extractions of this source that may run at once; further runs queue)"
                ),
            )),
        },
    }
}

/// The source config key holding how many times an extract whose connection was lost or
/// refused is started again before the run fails (default 2); handled by the engine, never
/// passed to the connector.
pub const CONNECTION_RETRIES_KEY: &str = "connection_retries";

/// The largest `connection_retries` accepted.
const CONNECTION_RETRIES_LIMIT: u64 = 10;

/// `connection_retries` when the source does not set it.
const DEFAULT_CONNECTION_RETRIES: u32 = 2;

/// Source config keys the engine reads itself.
const ENGINE_SOURCE_KEYS: &[&str] = &[MAX_EXTRACTIONS_KEY, CONNECTION_RETRIES_KEY];

fn connection_retries(config: &ConfigMap) -> Result<u32> {
    match config.get(CONNECTION_RETRIES_KEY) {
        None => Ok(DEFAULT_CONNECTION_RETRIES),
        Some(v) => match v.as_u64() {
            Some(n) if n <= CONNECTION_RETRIES_LIMIT => Ok(n as u32),
            _ => Err(Error::invalid(
                format!("source.config.{CONNECTION_RETRIES_KEY}"),
                format!(
                    "must be a whole number from 0 to {CONNECTION_RETRIES_LIMIT} (how often an extract whose connection was lost or refused starts again before the run fails)"
                ),
            )),
        },
    }
}

/// Refuses to delete `kind` `id` while other definitions (`users_kind`) refer to it.
fn refuse_if_used(
    kind: &str,
    id: &str,
    users_kind: &str,
    users: impl Iterator<Item = String>,
) -> Result<()> {
    let users: Vec<String> = users.collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(Error::precondition(format!(
        "{kind} '{id}' is used by {users_kind} {}; delete them first",
        users.join(", ")
    )))
}

/// Applies config keys to the plain and secret parts, by the type's field specs: a secret
/// field goes to `secrets`, anything else to `plain`, and a `null` removes the key from both.
fn split_config(
    what: &str,
    specs: &[ConfigField],
    config: ConfigMap,
    plain: &mut ConfigMap,
    secrets: &mut BTreeMap<String, Secret>,
) -> Result<()> {
    for (key, value) in config {
        let secret = specs.iter().any(|f| f.name == key && f.secret);
        if value.is_null() {
            plain.remove(&key);
            secrets.remove(&key);
        } else if secret {
            let serde_json::Value::String(s) = value else {
                return Err(Error::invalid(
                    format!("{what}.config.{key}"),
                    "a secret field must be a string",
                ));
            };
            secrets.insert(key, Secret::new(s));
        } else {
            plain.insert(key, value);
        }
    }
    Ok(())
}

/// The display name of a new definition: the given one, or its id.
fn name_or_id(display_name: String, id: &str) -> String {
    if display_name.is_empty() {
        id.to_string()
    } else {
        display_name
    }
}

/// A definition stored with secrets (sources and destinations).
trait WithSecrets: serde::de::DeserializeOwned {
    /// Its catalog kind.
    const KIND: Kind;
    /// Its id.
    fn id_str(&self) -> &str;
    /// Where its secrets go once loaded.
    fn secrets_mut(&mut self) -> &mut BTreeMap<String, Secret>;
}

impl WithSecrets for SourceDef {
    const KIND: Kind = Kind::Source;
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
    fn secrets_mut(&mut self) -> &mut BTreeMap<String, Secret> {
        &mut self.secrets
    }
}

impl WithSecrets for DestinationDef {
    const KIND: Kind = Kind::Destination;
    fn id_str(&self) -> &str {
        self.id.as_str()
    }
    fn secrets_mut(&mut self) -> &mut BTreeMap<String, Secret> {
        &mut self.secrets
    }
}

/// The full config (secrets included) a connector's `build` receives.
fn merged_config(
    plain: &ConfigMap,
    secrets: &BTreeMap<String, Secret>,
    skip: &[&str],
) -> serde_json::Value {
    let mut all = plain.clone();
    for key in skip {
        all.remove(*key);
    }
    for (k, v) in secrets {
        all.insert(k.clone(), serde_json::Value::String(v.expose().to_string()));
    }
    serde_json::Value::Object(all)
}

fn effective_limits(
    destination_type: &DestinationType,
    config: &ConfigMap,
) -> Result<DeliveryLimits> {
    let defaults = (destination_type.default_limits)();
    let Some(overrides) = config.get(LIMITS_KEY) else {
        return Ok(defaults);
    };
    let serde_json::Value::Object(overrides) = overrides else {
        return Err(Error::invalid(
            "destination.config.limits",
            "limits must be an object, e.g. {\"requests_per_second\": 5, \"batch_size\": 50}",
        ));
    };
    let mut merged = match serde_json::to_value(&defaults) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => {
            return Err(Error::internal(
                "default limits did not serialize to an object",
            ));
        }
    };
    for (k, v) in overrides {
        merged.insert(k.clone(), v.clone());
    }
    let limits: DeliveryLimits = serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| Error::invalid("destination.config.limits", e.to_string()))?;
    limits
        .validate()
        .map_err(|(field, msg)| Error::invalid(format!("destination.config.{field}"), msg))?;
    Ok(limits)
}

impl Engine {
    /// Opens (or creates) the data directory and closes runs a stopped daemon left open.
    pub async fn open(
        data_dir: &Path,
        registry: Registry,
        options: EngineOptions,
    ) -> Result<Engine> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Storage(crate::error::StorageError::io(data_dir)(e)))?;
        let store = Store::open(&data_dir.join("db"))?;
        let catalog = Catalog::new(store.clone());
        for mut run in catalog.unfinished_runs()? {
            run.status = RunStatus::Failed;
            run.stage = RunStage::Done;
            run.end_time = Some(Utc::now());
            run.error = Some("the daemon stopped during this run; acknowledged records were committed and the rest will be sent by the next run".to_string());
            catalog.put_run(&run)?;
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                registry,
                options,
                catalog,
                state: Arc::new(RocksStateStore::new(store.clone())),
                store,
                limiters: Mutex::new(HashMap::new()),
                extraction_slots: Mutex::new(HashMap::new()),
                previews: Mutex::new(PreviewCache::default()),
                active: Mutex::new(HashMap::new()),
                writes: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The connector registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The engine options.
    pub fn options(&self) -> &EngineOptions {
        &self.inner.options
    }

    /// The sync state store (for inspection and tests).
    pub fn state(&self) -> &dyn StateStore {
        self.inner.state.as_ref()
    }

    /// Destination types with their actions and fields.
    pub fn destination_types(&self) -> Vec<&DestinationType> {
        self.inner.registry.destination_types().collect()
    }

    fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    fn load<T: serde::de::DeserializeOwned>(&self, kind: Kind, id: &str) -> Result<T> {
        self.catalog()
            .get(kind, id)?
            .ok_or_else(|| Error::not_found(kind.as_str(), id))
    }

    fn load_with_secrets<T: WithSecrets>(&self, id: &str) -> Result<T> {
        let mut def: T = self.load(T::KIND, id)?;
        *def.secrets_mut() = self.catalog().secrets(T::KIND, id)?;
        Ok(def)
    }

    fn list_with_secrets<T: WithSecrets>(&self) -> Result<Vec<T>> {
        let mut defs: Vec<T> = self.catalog().list(T::KIND)?;
        for def in &mut defs {
            *def.secrets_mut() = self.catalog().secrets(T::KIND, def.id_str())?;
        }
        Ok(defs)
    }

    fn ensure_absent(&self, kind: Kind, id: &str) -> Result<()> {
        if self.catalog().get::<serde_json::Value>(kind, id)?.is_some() {
            return Err(Error::AlreadyExists {
                kind: kind.as_str(),
                id: id.to_string(),
            });
        }
        Ok(())
    }

    fn put<T: Serialize>(
        &self,
        kind: Kind,
        id: &str,
        value: &T,
        secrets: Option<&BTreeMap<String, Secret>>,
    ) -> Result<()> {
        Ok(self.catalog().put(kind, id, value, secrets)?)
    }

    // ---- sources ----

    fn build_source(&self, def: &SourceDef) -> Result<Arc<dyn Source>> {
        let source_type = self.inner.registry.source_type(&def.source_type)?;
        max_extractions(&def.config)?;
        connection_retries(&def.config)?;
        Ok((source_type.build)(&merged_config(
            &def.config,
            &def.secrets,
            ENGINE_SOURCE_KEYS,
        ))?)
    }

    /// Creates a source after validating its config (no network access).
    pub async fn create_source(&self, new: NewSource) -> Result<SourceDef> {
        let _guard = self.inner.writes.lock().await;
        let id = check_id("source_id", new.id, "source")?;
        let source_type = self.inner.registry.source_type(&new.source_type)?;
        self.ensure_absent(Kind::Source, &id)?;
        let (mut config, mut secrets) = (ConfigMap::new(), BTreeMap::new());
        split_config(
            "source",
            source_type.config,
            new.config,
            &mut config,
            &mut secrets,
        )?;
        let now = Utc::now();
        let def = SourceDef {
            display_name: name_or_id(new.display_name, &id),
            id: SourceId::new(id),
            source_type: new.source_type,
            config,
            secrets,
            create_time: now,
            update_time: now,
        };
        self.build_source(&def)?;
        self.put(Kind::Source, def.id.as_str(), &def, Some(&def.secrets))?;
        Ok(def)
    }

    /// A source by id (with its secrets loaded; never send them outward).
    pub fn get_source(&self, id: &str) -> Result<SourceDef> {
        self.load_with_secrets(id)
    }

    /// All sources, by id.
    pub fn list_sources(&self) -> Result<Vec<SourceDef>> {
        self.list_with_secrets()
    }

    /// Updates a source; its config must still build.
    pub async fn update_source(&self, id: &str, patch: SourcePatch) -> Result<SourceDef> {
        let _guard = self.inner.writes.lock().await;
        let mut def = self.get_source(id)?;
        if let Some(name) = patch.display_name {
            def.display_name = name;
        }
        if let Some(config) = patch.config {
            let source_type = self.inner.registry.source_type(&def.source_type)?;
            split_config(
                "source",
                source_type.config,
                config,
                &mut def.config,
                &mut def.secrets,
            )?;
        }
        def.update_time = Utc::now();
        self.build_source(&def)?;
        self.put(Kind::Source, id, &def, Some(&def.secrets))?;
        self.evict_previews(id, None);
        Ok(def)
    }

    /// Deletes a source no model uses.
    pub async fn delete_source(&self, id: &str) -> Result<()> {
        let _guard = self.inner.writes.lock().await;
        let _: SourceDef = self.load(Kind::Source, id)?;
        let users = self
            .list_models()?
            .into_iter()
            .filter(|m| m.source_id.as_str() == id)
            .map(|m| m.id.to_string());
        refuse_if_used("source", id, "models", users)?;
        self.evict_previews(id, None);
        Ok(self.catalog().delete(Kind::Source, id)?)
    }

    /// Checks a source's reachability and credentials.
    pub async fn test_source(&self, id: &str) -> Result<SourceTestReport> {
        let source = self.build_source(&self.get_source(id)?)?;
        Ok(source.test().await?)
    }

    /// Tables of a source.
    pub async fn list_tables(&self, id: &str) -> Result<Vec<TableInfo>> {
        let source = self.build_source(&self.get_source(id)?)?;
        Ok(source.list_tables().await?)
    }

    // ---- models ----

    async fn validate_model(
        &self,
        source_id: &str,
        sql: &str,
        unique_id: &str,
    ) -> Result<Vec<ColumnInfo>> {
        let source_def: SourceDef = self.get_source(source_id).map_err(|e| match e {
            Error::NotFound { .. } => Error::invalid(
                "model.source_id",
                format!("source '{source_id}' does not exist; create it first or use one of `retl source list`"),
            ),
            other => other,
        })?;
        let source = self.build_source(&source_def)?;
        validate_model(
            source.as_ref(),
            sql,
            unique_id,
            self.inner.options.sort_memory_bytes,
        )
        .await
    }

    /// Creates a model after validating its SQL and unique id.
    pub async fn create_model(&self, new: NewModel) -> Result<ModelDef> {
        let _guard = self.inner.writes.lock().await;
        let id = check_id("model_id", new.id, "model")?;
        self.ensure_absent(Kind::Model, &id)?;
        let columns = self
            .validate_model(&new.source_id, &new.sql, &new.unique_id)
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
        self.put(Kind::Model, def.id.as_str(), &def, None)?;
        Ok(def)
    }

    /// A model by id.
    pub fn get_model(&self, id: &str) -> Result<ModelDef> {
        self.load(Kind::Model, id)
    }

    /// All models, by id.
    pub fn list_models(&self) -> Result<Vec<ModelDef>> {
        Ok(self.catalog().list(Kind::Model)?)
    }

    /// Updates a model; the result is validated again, and so is every mapping using it.
    pub async fn update_model(&self, id: &str, patch: ModelPatch) -> Result<ModelDef> {
        let _guard = self.inner.writes.lock().await;
        let mut def = self.get_model(id)?;
        // A model edit must show fresh rows: forget previews of the old SQL.
        self.evict_previews(def.source_id.as_str(), Some(&def.sql));
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
            .validate_model(def.source_id.as_str(), &def.sql, &def.unique_id)
            .await?;
        for mapping in self
            .list_mappings()?
            .into_iter()
            .filter(|m| m.model_id.as_str() == id)
        {
            let spec = self.action_spec(&mapping)?;
            MappingPlan::compile(&mapping.fields, mapping.selection, &def.columns, spec).map_err(|e| {
                Error::invalid(
                    "model.sql",
                    format!("the change would break mapping '{}': {e}; update or delete the mapping first", mapping.id),
                )
            })?;
        }
        def.update_time = Utc::now();
        self.put(Kind::Model, id, &def, None)?;
        self.evict_previews(def.source_id.as_str(), Some(&def.sql));
        Ok(def)
    }

    /// Deletes a model no mapping uses.
    pub async fn delete_model(&self, id: &str) -> Result<()> {
        let _guard = self.inner.writes.lock().await;
        let _: ModelDef = self.load(Kind::Model, id)?;
        let users = self
            .list_mappings()?
            .into_iter()
            .filter(|m| m.model_id.as_str() == id)
            .map(|m| m.id.to_string());
        refuse_if_used("model", id, "mappings", users)?;
        Ok(self.catalog().delete(Kind::Model, id)?)
    }

    /// The first `limit` rows of a model (or of unsaved SQL).
    ///
    /// Answers are cached per source, SQL text and limit, so that clients building a SQL editor
    /// do not hit the warehouse on every keystroke; `refresh` bypasses (and renews) the cache,
    /// and so does any change to the source or to a model with that SQL. Syncs never use it.
    pub async fn preview_model(
        &self,
        target: PreviewTarget,
        limit: usize,
        refresh: bool,
    ) -> Result<Preview> {
        let (source_id, sql) = match target {
            PreviewTarget::Model(id) => {
                let m = self.get_model(&id)?;
                (m.source_id.to_string(), m.sql)
            }
            PreviewTarget::Sql { source_id, sql } => (source_id, sql),
        };
        let key = (source_id.clone(), sql.clone(), limit);
        if !refresh
            && let Some(mut hit) = self
                .inner
                .previews
                .lock()
                .map_err(|_| lock_poisoned())?
                .get(&key)
        {
            hit.cached = true;
            return Ok(hit);
        }
        let source = self.build_source(&self.get_source(&source_id)?)?;
        let session =
            ModelSession::new(source.as_ref(), self.inner.options.sort_memory_bytes, None).await?;
        let plan = session.plan(&sql).await?;
        let df = session
            .context()
            .execute_logical_plan(plan)
            .await
            .and_then(|df| df.limit(0, Some(limit)))
            .map_err(|e| Error::invalid("model.sql", e.to_string()))?;
        let schema = df.schema().as_arrow().clone();
        let batches = df
            .collect()
            .await
            .map_err(|e| crate::source::SourceError::Read {
                message: e.to_string(),
            })?;
        let columns: Vec<ColumnInfo> = schema
            .fields()
            .iter()
            .map(|f| ColumnInfo::from_field(f))
            .collect();
        let mut rows = Vec::new();
        for batch in batches {
            for row in 0..batch.num_rows() {
                let mut obj = serde_json::Map::new();
                for (i, field) in schema.fields().iter().enumerate() {
                    let value = json_value(batch.column(i).as_ref(), row)
                        .map_err(|e| Error::internal(format!("converting a preview value: {e}")))?;
                    obj.insert(field.name().clone(), value);
                }
                rows.push(obj);
            }
        }
        let preview = Preview {
            columns,
            rows,
            cached: false,
        };
        self.inner
            .previews
            .lock()
            .map_err(|_| lock_poisoned())?
            .put(key, preview.clone());
        Ok(preview)
    }

    fn evict_previews(&self, source_id: &str, sql: Option<&str>) {
        if let Ok(mut cache) = self.inner.previews.lock() {
            cache.evict(source_id, sql);
        }
    }

    // ---- destinations ----

    fn build_destination(
        &self,
        def: &DestinationDef,
    ) -> Result<(Arc<dyn Destination>, DeliveryLimits)> {
        let destination_type = self
            .inner
            .registry
            .destination_type(&def.destination_type)?;
        let limits = effective_limits(destination_type, &def.config)?;
        let destination = (destination_type.build)(
            &merged_config(&def.config, &def.secrets, &[LIMITS_KEY]),
            limits.clone(),
        )?;
        Ok((destination, limits))
    }

    /// Creates a destination after validating its config.
    pub async fn create_destination(&self, new: NewDestination) -> Result<DestinationDef> {
        let _guard = self.inner.writes.lock().await;
        let id = check_id("destination_id", new.id, "destination")?;
        let destination_type = self
            .inner
            .registry
            .destination_type(&new.destination_type)?;
        self.ensure_absent(Kind::Destination, &id)?;
        let (mut config, mut secrets) = (ConfigMap::new(), BTreeMap::new());
        split_config(
            "destination",
            destination_type.config,
            new.config,
            &mut config,
            &mut secrets,
        )?;
        let now = Utc::now();
        let def = DestinationDef {
            display_name: name_or_id(new.display_name, &id),
            id: DestinationId::new(id),
            destination_type: new.destination_type,
            config,
            secrets,
            enabled: new.enabled.unwrap_or(true),
            create_time: now,
            update_time: now,
        };
        self.build_destination(&def)?;
        self.put(Kind::Destination, def.id.as_str(), &def, Some(&def.secrets))?;
        Ok(def)
    }

    /// A destination by id (with its secrets loaded; never send them outward).
    pub fn get_destination(&self, id: &str) -> Result<DestinationDef> {
        self.load_with_secrets(id)
    }

    /// All destinations, by id.
    pub fn list_destinations(&self) -> Result<Vec<DestinationDef>> {
        self.list_with_secrets()
    }

    /// Updates a destination.
    pub async fn update_destination(
        &self,
        id: &str,
        patch: DestinationPatch,
    ) -> Result<DestinationDef> {
        let _guard = self.inner.writes.lock().await;
        let mut def = self.get_destination(id)?;
        if let Some(v) = patch.display_name {
            def.display_name = v;
        }
        if let Some(v) = patch.enabled {
            def.enabled = v;
        }
        if let Some(config) = patch.config {
            let destination_type = self
                .inner
                .registry
                .destination_type(&def.destination_type)?;
            split_config(
                "destination",
                destination_type.config,
                config,
                &mut def.config,
                &mut def.secrets,
            )?;
        }
        def.update_time = Utc::now();
        self.build_destination(&def)?;
        self.put(Kind::Destination, id, &def, Some(&def.secrets))?;
        Ok(def)
    }

    /// Deletes a destination no mapping uses.
    pub async fn delete_destination(&self, id: &str) -> Result<()> {
        let _guard = self.inner.writes.lock().await;
        let _: DestinationDef = self.load(Kind::Destination, id)?;
        let users = self
            .list_mappings()?
            .into_iter()
            .filter(|m| m.destination_id.as_str() == id)
            .map(|m| m.id.to_string());
        refuse_if_used("destination", id, "mappings", users)?;
        if let Ok(mut limiters) = self.inner.limiters.lock() {
            limiters.remove(id);
        }
        Ok(self.catalog().delete(Kind::Destination, id)?)
    }

    /// Checks a destination's reachability and credentials.
    pub async fn test_destination(&self, id: &str) -> Result<String> {
        let (destination, _) = self.build_destination(&self.get_destination(id)?)?;
        Ok(destination.test().await?)
    }

    // ---- mappings ----

    fn action_spec(
        &self,
        mapping: &MappingDef,
    ) -> Result<&'static crate::destination::spec::ActionSpec> {
        let destination: DestinationDef =
            self.load(Kind::Destination, mapping.destination_id.as_str())?;
        let destination_type = self
            .inner
            .registry
            .destination_type(&destination.destination_type)?;
        Ok(destination_type.action(&mapping.action)?)
    }

    /// Creates a mapping after validating columns, fields, action and selection.
    pub async fn create_mapping(&self, new: NewMapping) -> Result<MappingDef> {
        let _guard = self.inner.writes.lock().await;
        let id = check_id("mapping_id", new.id, "mapping")?;
        self.ensure_absent(Kind::Mapping, &id)?;
        let model: ModelDef = self
            .catalog()
            .get(Kind::Model, &new.model_id)?
            .ok_or_else(|| {
                Error::invalid(
                    "mapping.model_id",
                    format!("model '{}' does not exist", new.model_id),
                )
            })?;
        let destination: DestinationDef = self
            .catalog()
            .get(Kind::Destination, &new.destination_id)?
            .ok_or_else(|| {
                Error::invalid(
                    "mapping.destination_id",
                    format!("destination '{}' does not exist", new.destination_id),
                )
            })?;
        if !destination.enabled {
            return Err(Error::precondition(format!(
                "destination '{}' is disabled; enable it before mapping to it (retl destination enable {})",
                destination.id, destination.id
            )));
        }
        let destination_type = self
            .inner
            .registry
            .destination_type(&destination.destination_type)?;
        let spec = destination_type
            .action(&new.action)
            .map_err(|e| Error::invalid("mapping.action", e.to_string()))?;
        let selection = new.selection.unwrap_or_else(|| default_selection(spec));
        MappingPlan::compile(&new.fields, selection, &model.columns, spec)?;
        let now = Utc::now();
        let def = MappingDef {
            display_name: name_or_id(new.display_name, &id),
            id: MappingId::new(id),
            model_id: model.id,
            destination_id: destination.id,
            action: new.action,
            fields: new.fields,
            selection,
            initial_sync: new.initial_sync,
            enabled: new.enabled.unwrap_or(true),
            create_time: now,
            update_time: now,
        };
        // A mapping id may be reused after a delete: start from a clean state.
        self.inner
            .state
            .reset(&def.id)
            .map_err(|e| Error::internal(e.to_string()))?;
        self.catalog().clear_initialized(&def.id)?;
        self.put(Kind::Mapping, def.id.as_str(), &def, None)?;
        Ok(def)
    }

    /// A mapping by id.
    pub fn get_mapping(&self, id: &str) -> Result<MappingDef> {
        self.load(Kind::Mapping, id)
    }

    /// All mappings, by id.
    pub fn list_mappings(&self) -> Result<Vec<MappingDef>> {
        Ok(self.catalog().list(Kind::Mapping)?)
    }

    /// Updates a mapping.
    pub async fn update_mapping(&self, id: &str, patch: MappingPatch) -> Result<MappingDef> {
        let _guard = self.inner.writes.lock().await;
        let mut def = self.get_mapping(id)?;
        if let Some(v) = patch.display_name {
            def.display_name = v;
        }
        if let Some(v) = patch.fields {
            def.fields = v;
        }
        if let Some(v) = patch.selection {
            def.selection = v;
        }
        if let Some(v) = patch.enabled {
            def.enabled = v;
        }
        let model = self.get_model(def.model_id.as_str())?;
        MappingPlan::compile(
            &def.fields,
            def.selection,
            &model.columns,
            self.action_spec(&def)?,
        )?;
        def.update_time = Utc::now();
        self.put(Kind::Mapping, id, &def, None)?;
        Ok(def)
    }

    fn active_run_of(&self, mapping_id: &str) -> Result<Option<String>> {
        let active = self.inner.active.lock().map_err(|_| lock_poisoned())?;
        Ok(active
            .iter()
            .find(|(_, a)| a.mapping_id == mapping_id)
            .map(|(id, _)| id.clone()))
    }

    /// Deletes a mapping and its sync state.
    pub async fn delete_mapping(&self, id: &str) -> Result<()> {
        let _guard = self.inner.writes.lock().await;
        let def = self.get_mapping(id)?;
        if let Some(run) = self.active_run_of(id)? {
            return Err(Error::precondition(format!(
                "mapping '{id}' has run {run} in progress; cancel it first (retl sync cancel {run})"
            )));
        }
        self.catalog().delete(Kind::Mapping, id)?;
        self.inner
            .state
            .reset(&def.id)
            .map_err(|e| Error::internal(e.to_string()))?;
        self.catalog().clear_initialized(&def.id)?;
        Ok(())
    }

    /// Enables or disables a mapping.
    pub async fn set_mapping_enabled(&self, id: &str, enabled: bool) -> Result<MappingDef> {
        let _guard = self.inner.writes.lock().await;
        let mut def = self.get_mapping(id)?;
        def.enabled = enabled;
        def.update_time = Utc::now();
        self.put(Kind::Mapping, id, &def, None)?;
        Ok(def)
    }

    // ---- sync runs ----

    fn limiter(
        &self,
        destination_id: &str,
        limits: &DeliveryLimits,
    ) -> Result<Arc<DestinationLimiter>> {
        let mut limiters = self.inner.limiters.lock().map_err(|_| lock_poisoned())?;
        if let Some(l) = limiters
            .get(destination_id)
            .filter(|l| l.limits() == limits)
        {
            return Ok(Arc::clone(l));
        }
        let l = Arc::new(DestinationLimiter::new(limits));
        limiters.insert(destination_id.to_string(), Arc::clone(&l));
        Ok(l)
    }

    fn extraction_slots(&self, source: &SourceDef) -> Result<Arc<tokio::sync::Semaphore>> {
        let limit = max_extractions(&source.config)?;
        let mut slots = self
            .inner
            .extraction_slots
            .lock()
            .map_err(|_| lock_poisoned())?;
        if let Some((n, s)) = slots.get(source.id.as_str())
            && *n == limit
        {
            return Ok(Arc::clone(s));
        }
        // A changed limit applies to runs triggered from now on.
        let s = Arc::new(tokio::sync::Semaphore::new(limit));
        slots.insert(source.id.to_string(), (limit, Arc::clone(&s)));
        Ok(s)
    }

    /// Starts a sync of a mapping in the background; returns the new run.
    ///
    /// # Errors
    /// `FailedPrecondition` when the mapping or its destination is disabled or the mapping
    /// already has a run in progress; `NotFound` for an unknown mapping.
    pub async fn trigger_sync(&self, mapping_id: &str, options: TriggerOptions) -> Result<SyncRun> {
        let mapping = self.get_mapping(mapping_id)?;
        if !mapping.enabled {
            return Err(Error::precondition(format!(
                "mapping '{mapping_id}' is disabled; enable it first (retl mapping enable {mapping_id})"
            )));
        }
        let destination_def = self.get_destination(mapping.destination_id.as_str())?;
        if !destination_def.enabled {
            return Err(Error::precondition(format!(
                "destination '{}' is disabled; enable it first (retl destination enable {})",
                destination_def.id, destination_def.id
            )));
        }
        let model = self.get_model(mapping.model_id.as_str())?;
        let source_def = self.get_source(model.source_id.as_str())?;
        let source = self.build_source(&source_def)?;
        let extraction_slots = self.extraction_slots(&source_def)?;
        let connection_retries = connection_retries(&source_def.config)?;
        let (destination, limits) = self.build_destination(&destination_def)?;
        let destination_type = self
            .inner
            .registry
            .destination_type(&destination_def.destination_type)?;
        let action: Arc<dyn Action> =
            destination.action(destination_type.action(&mapping.action)?)?;
        let action_spec = action.spec();
        let limiter = self.limiter(destination_def.id.as_str(), &limits)?;

        let run = SyncRun::queued(
            mapping.id.clone(),
            options.trigger.as_deref().unwrap_or("manual"),
        );
        let (tx, rx) = watch::channel(run.clone());
        let cancel = CancellationToken::new();
        {
            let mut active = self.inner.active.lock().map_err(|_| lock_poisoned())?;
            if let Some((id, _)) = active.iter().find(|(_, a)| a.mapping_id == mapping_id) {
                return Err(Error::precondition(format!(
                    "mapping '{mapping_id}' already has run {id} in progress; watch it (retl sync watch {id}) or cancel it"
                )));
            }
            active.insert(
                run.id.to_string(),
                ActiveRun {
                    mapping_id: mapping_id.to_string(),
                    cancel: cancel.clone(),
                    progress: rx,
                    handle: None,
                },
            );
        }
        self.catalog().put_run(&run)?;
        let env = RunEnv {
            catalog: self.catalog().clone(),
            state: Arc::clone(&self.inner.state) as Arc<dyn StateStore>,
            data_dir: self.inner.data_dir.clone(),
            options: self.inner.options.clone(),
        };
        let inputs = RunInputs {
            mapping,
            model,
            source,
            action,
            action_spec,
            limiter,
            limits,
            confirm_mass_delete: options.confirm_mass_delete,
            extraction_slots,
            connection_retries,
        };
        let runner = SyncRunner::new(env, inputs, run.clone(), tx, cancel);
        let engine = self.clone();
        let run_id = run.id.to_string();
        let span = tracing::info_span!("sync_run", mapping_id = %mapping_id, run_id = %run_id);
        let handle = tokio::spawn(tracing::Instrument::instrument(
            async move {
                runner.run().await;
                if let Ok(mut active) = engine.inner.active.lock() {
                    active.remove(&run_id);
                }
            },
            span,
        ));
        if let Ok(mut active) = self.inner.active.lock()
            && let Some(a) = active.get_mut(run.id.as_str())
        {
            a.handle = Some(handle);
        }
        Ok(run)
    }

    /// A run by id (live counts while it runs).
    pub fn get_run(&self, run_id: &str) -> Result<SyncRun> {
        if let Some(live) = self
            .inner
            .active
            .lock()
            .map_err(|_| lock_poisoned())?
            .get(run_id)
            .map(|a| a.progress.borrow().clone())
        {
            return Ok(live);
        }
        self.catalog()
            .get_run(run_id)?
            .ok_or_else(|| Error::not_found("sync run", run_id))
    }

    /// Runs, newest first, older than run `before` when given (a page cursor), optionally of
    /// one mapping, at most `limit`.
    pub fn list_runs(
        &self,
        mapping_id: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SyncRun>> {
        if let Some(m) = mapping_id {
            let _: MappingDef = self.load(Kind::Mapping, m)?;
        }
        let mut runs = self.catalog().list_runs(mapping_id, before, limit)?;
        let active = self.inner.active.lock().map_err(|_| lock_poisoned())?;
        for run in &mut runs {
            if let Some(a) = active.get(run.id.as_str()) {
                *run = a.progress.borrow().clone();
            }
        }
        Ok(runs)
    }

    /// Live snapshots of a run. The channel closes after the final snapshot; for a finished run
    /// it holds only the final record.
    pub fn watch_run(&self, run_id: &str) -> Result<watch::Receiver<SyncRun>> {
        if let Some(rx) = self
            .inner
            .active
            .lock()
            .map_err(|_| lock_poisoned())?
            .get(run_id)
            .map(|a| a.progress.clone())
        {
            return Ok(rx);
        }
        let run = self
            .catalog()
            .get_run(run_id)?
            .ok_or_else(|| Error::not_found("sync run", run_id))?;
        let (_tx, rx) = watch::channel(run);
        Ok(rx)
    }

    /// Asks a run to stop; acknowledged records stay committed.
    pub fn cancel_run(&self, run_id: &str) -> Result<SyncRun> {
        let active = self.inner.active.lock().map_err(|_| lock_poisoned())?;
        if let Some(a) = active.get(run_id) {
            a.cancel.cancel();
            return Ok(a.progress.borrow().clone());
        }
        drop(active);
        let run = self
            .catalog()
            .get_run(run_id)?
            .ok_or_else(|| Error::not_found("sync run", run_id))?;
        Err(Error::precondition(format!(
            "run {run_id} already ended ({}); nothing to cancel",
            run.status.as_str()
        )))
    }

    /// Cancels running syncs and waits for them to record their end.
    pub async fn shutdown(&self) {
        let handles: Vec<JoinHandle<()>> = match self.inner.active.lock() {
            Ok(mut active) => active
                .values_mut()
                .filter_map(|a| {
                    a.cancel.cancel();
                    a.handle.take()
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        for h in handles {
            let _ = h.await;
        }
        // Written tables instead of a write-ahead log to replay: the next start opens at once
        // (replaying the log of a 10M-row sync took seconds and memory).
        if let Err(e) = self.inner.store.flush_memtables() {
            tracing::warn!(error = %e, "could not flush the database at shutdown; the next start replays its log");
        }
    }
}
