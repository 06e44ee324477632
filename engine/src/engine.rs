//! [`Engine`]: a thin handle over the engine's services, one per data directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::catalog::service::{
    CatalogContext, DestinationService, MappingService, ModelService, SourceService,
};
use crate::connector::Registry;
use crate::delivery::Limiters;
use crate::error::{Error, StorageError};
use crate::model::preview::Previews;
use crate::options::EngineOptions;
use crate::query::system::SystemSources;
use crate::query::{QueryLimits, QueryService};
use crate::schedule::state::ScheduleStates;
use crate::schedule::{Clock, Scheduler, SystemClock};
use crate::state::StateStore;
use crate::state::rocks::RocksStateStore;
use crate::store::Store;
use crate::sync::active::ActiveRuns;
use crate::sync::failures::FailureLedger;
use crate::sync::history::RunHistory;
use crate::sync::manager::{SyncManager, SyncManagerParts};

/// The services of one data directory.
struct Services {
    data_dir: PathBuf,
    registry: Arc<Registry>,
    options: EngineOptions,
    /// The database behind catalog, state and history (flushed at shutdown).
    store: Store,
    state: Arc<RocksStateStore>,
    sources: SourceService,
    models: ModelService,
    destinations: DestinationService,
    mappings: MappingService,
    syncs: Arc<SyncManager>,
    /// Read-only SQL over staging and the system tables.
    query: QueryService,
    /// The scheduler (on the system clock).
    scheduler: Scheduler,
    /// The running scheduler task and how to stop it.
    scheduling: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
    /// The alert task and how to stop it (`None` without an alert sink).
    alerting: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
}

/// The retl engine over one data directory. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    services: Arc<Services>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.services.data_dir)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens (or creates) the data directory and closes runs a stopped daemon left open.
    ///
    /// # Errors
    /// The directory or its database cannot be opened.
    pub async fn open(
        data_dir: &Path,
        registry: Registry,
        options: EngineOptions,
    ) -> Result<Engine, Error> {
        std::fs::create_dir_all(data_dir).map_err(StorageError::io(data_dir))?;
        let store = Store::open(&data_dir.join("db"))?;
        let registry = Arc::new(registry);
        let catalog = Catalog::new(store.clone());
        let history = RunHistory::new(store.clone());
        let state = Arc::new(RocksStateStore::new(store.clone()));
        let ctx = CatalogContext::new(catalog.clone(), Arc::clone(&registry));
        let previews = Arc::new(Previews::new(
            catalog.clone(),
            Arc::clone(&registry),
            options.clone(),
        ));
        let active = Arc::new(ActiveRuns::default());
        let limiters = Arc::new(Limiters::default());
        let state_store = Arc::clone(&state) as Arc<dyn StateStore>;
        let failures = FailureLedger::new(store.clone());
        let scheduler = Scheduler::new(
            catalog.clone(),
            ScheduleStates::new(store.clone()),
            Arc::new(SystemClock),
        );
        let alerter = registry.alert_sink().map(|sink| {
            crate::alert::notifier::Alerter::new(
                store.clone(),
                catalog.clone(),
                failures.clone(),
                options.alert_webhooks.clone(),
                sink,
            )
        });
        let syncs = Arc::new(SyncManager::new(SyncManagerParts {
            catalog: catalog.clone(),
            registry: Arc::clone(&registry),
            history: history.clone(),
            state: Arc::clone(&state_store),
            data_dir: data_dir.to_path_buf(),
            options: options.clone(),
            active: Arc::clone(&active),
            limiters: Arc::clone(&limiters),
            failures: failures.clone(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        })?);
        let query = QueryService::new(
            SystemSources {
                catalog: catalog.clone(),
                history: history.clone(),
                active: Arc::clone(&active),
                failures: failures.clone(),
                state: Arc::clone(&state_store),
                syncs: Arc::clone(&syncs),
            },
            data_dir.to_path_buf(),
            QueryLimits {
                max_rows: options.query_max_rows,
                timeout: options.query_timeout,
                memory_bytes: options.sort_memory_bytes,
            },
        );
        // Alerts follow every finished run from now until shutdown.
        let alerting = alerter.map(|alerter| {
            let stop = CancellationToken::new();
            let finished = syncs.subscribe_finished();
            let token = stop.clone();
            let handle = tokio::spawn(async move { alerter.run(finished, token).await });
            (stop, handle)
        });
        let services = Services {
            sources: SourceService::new(ctx.clone(), Arc::clone(&previews)),
            models: ModelService::new(ctx.clone(), options.clone(), previews),
            destinations: DestinationService::new(ctx.clone(), limiters),
            mappings: MappingService::new(
                ctx,
                options.clone(),
                state_store,
                history,
                active,
                failures,
            ),
            syncs,
            query,
            scheduler,
            scheduling: Mutex::new(None),
            alerting: Mutex::new(alerting),
            data_dir: data_dir.to_path_buf(),
            registry,
            options,
            store,
            state,
        };
        Ok(Engine {
            services: Arc::new(services),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.services.data_dir
    }

    /// The connector registry.
    pub fn registry(&self) -> &Registry {
        &self.services.registry
    }

    /// The engine options.
    pub fn options(&self) -> &EngineOptions {
        &self.services.options
    }

    /// The sync state store (for inspection and tests).
    pub fn state(&self) -> &dyn StateStore {
        self.services.state.as_ref()
    }

    /// Sources.
    pub fn sources(&self) -> &SourceService {
        &self.services.sources
    }

    /// Models and previews.
    pub fn models(&self) -> &ModelService {
        &self.services.models
    }

    /// Destinations and the catalog of destination types.
    pub fn destinations(&self) -> &DestinationService {
        &self.services.destinations
    }

    /// Mappings.
    pub fn mappings(&self) -> &MappingService {
        &self.services.mappings
    }

    /// Sync runs.
    pub fn syncs(&self) -> &SyncManager {
        &self.services.syncs
    }

    /// Read-only SQL over the staged extracts and the system tables.
    pub fn query(&self) -> &QueryService {
        &self.services.query
    }

    /// The scheduler (its state per mapping, one pass on demand).
    pub fn scheduler(&self) -> &Scheduler {
        &self.services.scheduler
    }

    /// A scheduler over this engine's mappings reading time from `clock` (tests drive passes
    /// with [`Scheduler::tick`] on a manual clock).
    pub fn scheduler_with_clock(&self, clock: Arc<dyn Clock>) -> Scheduler {
        Scheduler::new(
            Catalog::new(self.services.store.clone()),
            ScheduleStates::new(self.services.store.clone()),
            clock,
        )
    }

    /// Starts scheduling (the daemon does; an engine opened for a one-off task does not).
    /// Calling it again does nothing.
    pub fn start_scheduler(&self) {
        let mut scheduling = self
            .services
            .scheduling
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if scheduling.is_some() {
            return;
        }
        let stop = CancellationToken::new();
        let engine = self.clone();
        let token = stop.clone();
        let finished = self.services.syncs.subscribe_finished();
        let handle = tokio::spawn(async move {
            let services = &engine.services;
            services
                .scheduler
                .run(&services.syncs, finished, token)
                .await;
        });
        *scheduling = Some((stop, handle));
    }

    /// Stops scheduling, cancels running syncs, waits for them to record their end, and flushes
    /// the database.
    pub async fn shutdown(&self) {
        let scheduling = self
            .services
            .scheduling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((stop, handle)) = scheduling {
            stop.cancel();
            let _ = handle.await;
        }
        self.services.syncs.shutdown().await;
        // After the runs: their ends still alert.
        let alerting = self
            .services
            .alerting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((stop, handle)) = alerting {
            tokio::task::yield_now().await;
            stop.cancel();
            let _ = handle.await;
        }
        // Written tables instead of a write-ahead log to replay: the next start opens at once
        // (replaying the log of a 10M-row sync took seconds and memory).
        if let Err(e) = self.services.store.flush_memtables() {
            tracing::warn!(error = %e, "could not flush the database at shutdown; the next start replays its log");
        }
    }
}
