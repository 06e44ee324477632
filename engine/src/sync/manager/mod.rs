//! [`SyncManager`]: triggers runs and keeps track of them — the runs in progress, the
//! destinations' shared rate limiters and the sources' extraction slots — answers get, list,
//! watch and cancel, closes the runs a stopped daemon left open, and stops every run at
//! shutdown.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::{Semaphore, broadcast, watch};
use tokio::task::JoinHandle;

use crate::catalog::Catalog;
use crate::catalog::model::ModelDef;
use crate::catalog::source::{ExtractionSettings, SourceDef};
use crate::connector::Registry;
use crate::connector::build::build_source;
use crate::delivery::{DestinationLimiter, Limiters};
use crate::destination::Action;
use crate::destination::spec::{ActionSpec, DeliveryLimits};
use crate::diff::{Differ, LocalDiffer};
use crate::error::Error;
use crate::mapping::spec::MappingDef;
use crate::metrics::{Metrics, RequestMetrics};
use crate::options::EngineOptions;
use crate::source::Source;
use crate::staging;
use crate::state::StateStore;
use crate::sync::active::ActiveRuns;
use crate::sync::extract::IndexTarget;
use crate::sync::extract_job::{ExtractJob, ExtractTicket, JobMember};
use crate::sync::failures::{FailedRecord, FailureLedger};
use crate::sync::history::RunHistory;
use crate::sync::housekeeping::{HistoryPruner, clean_tmp};
use crate::sync::progress::Progress;
use crate::sync::run::{RunStage, RunStatus, SyncRun};
use crate::sync::runner::{RunEnv, RunInputs, SyncRunner};
use crate::sync::stop::RunStop;

mod explain;
mod preview;
mod resolve;

use resolve::Resolved;

pub use preview::PreviewOptions;

/// Options of one triggered sync.
#[derive(Debug, Clone, Default)]
pub struct TriggerOptions {
    /// Send deletes even when more than the safety-stop fraction of keys vanished.
    pub confirm_mass_delete: bool,
    /// `manual` (API/CLI, the default) or `schedule`.
    pub trigger: Option<String>,
}

/// Extraction slots per source id, with the limit they were made for.
type Slots = HashMap<String, (usize, Arc<Semaphore>)>;

/// What a run uses besides its extraction, resolved from the catalog.
struct PreparedInputs {
    mapping: MappingDef,
    model: ModelDef,
    action: Arc<dyn Action>,
    action_spec: &'static ActionSpec,
    limiter: Arc<DestinationLimiter>,
    limits: DeliveryLimits,
    confirm_mass_delete: bool,
    request_metrics: RequestMetrics,
}

/// A run recorded as queued, not started yet.
struct PreparedRun {
    source: Arc<dyn Source>,
    extraction: ExtractionSettings,
    extraction_slots: Arc<Semaphore>,
    inputs: PreparedInputs,
    progress: Progress,
    stop: RunStop,
    destination_id: String,
}

/// Sync runs: trigger, get, list, watch, cancel.
pub struct SyncManager {
    catalog: Catalog,
    registry: Arc<Registry>,
    history: RunHistory,
    state: Arc<dyn StateStore>,
    data_dir: PathBuf,
    options: EngineOptions,
    active: Arc<ActiveRuns>,
    limiters: Arc<Limiters>,
    extraction_slots: Mutex<Slots>,
    /// Every run's final record, as it ends (the scheduler starts chained mappings from it).
    finished: broadcast::Sender<SyncRun>,
    /// Records that failed, across runs.
    failures: FailureLedger,
    /// Applies the run-history retention.
    pruner: Arc<HistoryPruner>,
    /// The Prometheus metrics runs update.
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for SyncManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncManager")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// What the manager is built from.
pub struct SyncManagerParts {
    /// Stored definitions.
    pub catalog: Catalog,
    /// Connector types.
    pub registry: Arc<Registry>,
    /// Run records.
    pub history: RunHistory,
    /// Sync state.
    pub state: Arc<dyn StateStore>,
    /// Data directory (staging, spill files).
    pub data_dir: PathBuf,
    /// Engine options.
    pub options: EngineOptions,
    /// Runs in progress (shared with the mapping service).
    pub active: Arc<ActiveRuns>,
    /// Destination limiters (shared with the destination service).
    pub limiters: Arc<Limiters>,
    /// Records that failed, across runs.
    pub failures: FailureLedger,
    /// The Prometheus metrics runs update.
    pub metrics: Arc<Metrics>,
}

/// Sets a mapping's pending and given-up gauges from the failure ledger; a failure is logged.
fn update_failure_gauges(
    metrics: &Metrics,
    failures: &FailureLedger,
    mapping: &crate::id::MappingId,
    destination: &str,
) {
    match failures.counts(mapping) {
        Ok((pending, given_up)) => {
            metrics.failed_records(mapping.as_str(), destination, pending, given_up);
        }
        Err(e) => {
            tracing::warn!(mapping_id = %mapping, error = %e, "could not count the failed records for the metrics");
        }
    }
}

impl SyncManager {
    /// The manager; closes the runs a stopped daemon left open (their acknowledged records
    /// are committed, the rest will be sent by the next run).
    ///
    /// # Errors
    /// The run history cannot be read or written.
    pub fn new(parts: SyncManagerParts) -> Result<SyncManager, Error> {
        clean_tmp(&parts.data_dir.join("tmp"));
        let pruner = Arc::new(HistoryPruner {
            history: parts.history.clone(),
            options: parts.options.clone(),
            last: Mutex::new(None),
        });
        pruner.maybe_prune();
        for mut run in parts.history.unfinished()? {
            run.status = RunStatus::Failed;
            run.stage = RunStage::Done;
            run.end_time = Some(Utc::now());
            run.error = Some("the daemon stopped during this run; acknowledged records were committed and the rest will be sent by the next run".to_string());
            parts.history.put(&run)?;
        }
        // The gauges start from the ledger, not at zero, after a restart.
        match parts.catalog.mappings() {
            Ok(mappings) => {
                for m in mappings {
                    parts
                        .metrics
                        .mapping_seen(m.id.as_str(), m.destination_id.as_str());
                    update_failure_gauges(
                        &parts.metrics,
                        &parts.failures,
                        &m.id,
                        m.destination_id.as_str(),
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list the mappings for the metrics"),
        }
        Ok(SyncManager {
            metrics: parts.metrics,
            catalog: parts.catalog,
            registry: parts.registry,
            history: parts.history,
            state: parts.state,
            data_dir: parts.data_dir,
            options: parts.options,
            active: parts.active,
            limiters: parts.limiters,
            extraction_slots: Mutex::new(HashMap::new()),
            finished: broadcast::channel(256).0,
            failures: parts.failures,
            pruner,
        })
    }

    /// The extraction slots of a source (a changed limit applies to runs triggered from now).
    fn extraction_slots(&self, source: &SourceDef) -> Result<Arc<Semaphore>, Error> {
        let limit = source.extraction.max_concurrent_extractions;
        let mut slots = self
            .extraction_slots
            .lock()
            .map_err(|_| Error::internal("the extraction-slot lock was poisoned"))?;
        if let Some((n, s)) = slots.get(source.id.as_str())
            && *n == limit
        {
            return Ok(Arc::clone(s));
        }
        let s = Arc::new(Semaphore::new(limit));
        slots.insert(source.id.to_string(), (limit, Arc::clone(&s)));
        Ok(s)
    }

    /// Starts a sync of a mapping in the background; returns the new run.
    ///
    /// # Errors
    /// `FailedPrecondition` when the mapping or its destination is disabled or the mapping
    /// already has a run in progress; `NotFound` for an unknown mapping.
    pub async fn trigger(
        &self,
        mapping_id: &str,
        options: TriggerOptions,
    ) -> Result<SyncRun, Error> {
        self.trigger_together(&[mapping_id], options)
            .await
            .pop()
            .unwrap_or_else(|| Err(Error::internal("a trigger returned no run")))
    }

    /// Starts syncs of several mappings at once (mappings due at the same tick): the mappings
    /// of one model share one extraction, each diffing against its own state. Returns each
    /// mapping's new run, or why it did not start, in the order given.
    pub async fn trigger_together(
        &self,
        mapping_ids: &[&str],
        options: TriggerOptions,
    ) -> Vec<Result<SyncRun, Error>> {
        let mut results: Vec<Result<SyncRun, Error>> = Vec::with_capacity(mapping_ids.len());
        let mut groups: Vec<Vec<(usize, PreparedRun)>> = Vec::new();
        for (i, mapping_id) in mapping_ids.iter().enumerate() {
            match self.prepare(mapping_id, &options) {
                Ok(prepared) => {
                    results.push(Ok(prepared.progress.run.clone()));
                    let model_id = prepared.inputs.model.id.clone();
                    match groups.iter_mut().find(|g| {
                        g.first()
                            .is_some_and(|(_, p)| p.inputs.model.id == model_id)
                    }) {
                        Some(group) => group.push((i, prepared)),
                        None => groups.push(vec![(i, prepared)]),
                    }
                }
                Err(e) => results.push(Err(e)),
            }
        }
        for group in groups {
            self.launch(group);
        }
        results
    }

    /// Resolves a run of a mapping from the catalog and records it as queued.
    fn prepare(&self, mapping_id: &str, options: &TriggerOptions) -> Result<PreparedRun, Error> {
        let resolved = self.resolve(mapping_id)?;
        if let Some(why) = resolved.disabled().into_iter().next() {
            return Err(Error::precondition(why));
        }
        let Resolved {
            mapping,
            destination: destination_def,
            model,
            source: source_def,
            built,
            action_spec,
        } = resolved;
        let source = build_source(&self.registry, &source_def)?;
        let extraction_slots = self.extraction_slots(&source_def)?;
        let action = built.destination.action(action_spec)?;
        let limiter = self
            .limiters
            .get(destination_def.id.as_str(), &built.limits);

        let run = SyncRun::queued(
            mapping.id.clone(),
            options.trigger.as_deref().unwrap_or("manual"),
        );
        let (tx, rx) = watch::channel(run.clone());
        let stop = RunStop::new();
        let run_id = run.id.to_string();
        self.active.insert(&run_id, mapping_id, stop.clone(), rx)?;
        if let Err(e) = self.history.put(&run) {
            self.active.remove(&run_id);
            return Err(e.into());
        }
        let request_metrics = self
            .metrics
            .requests(mapping_id, destination_def.id.as_str());
        self.metrics
            .mapping_seen(mapping_id, destination_def.id.as_str());
        Ok(PreparedRun {
            source,
            extraction: source_def.extraction,
            extraction_slots,
            inputs: PreparedInputs {
                mapping,
                model,
                action,
                action_spec,
                limiter,
                limits: built.limits,
                confirm_mass_delete: options.confirm_mass_delete,
                request_metrics,
            },
            progress: Progress::new(run, tx, self.history.clone()),
            stop,
            destination_id: destination_def.id.to_string(),
        })
    }

    /// Starts one extraction for a group of prepared runs of one model, and the runs.
    fn launch(&self, group: Vec<(usize, PreparedRun)>) {
        let Some((_, first)) = group.first() else {
            return;
        };
        let spill_dir = self.data_dir.join("tmp");
        let job = ExtractJob {
            source: Arc::clone(&first.source),
            model: first.inputs.model.clone(),
            settings: first.extraction,
            slots: Arc::clone(&first.extraction_slots),
            memory_bytes: self.options.sort_memory_bytes,
            spill_dir: spill_dir.clone(),
            // Named after the first run: run ids sort by time, so pruning keeps the newest.
            staging_dir: staging::run_dir(
                &self.data_dir,
                first.inputs.model.id.as_str(),
                first.progress.run.id.as_str(),
            ),
            backoff: self.options.extract_retry_backoff,
        };
        let members = group
            .iter()
            .map(|(_, p)| JobMember {
                target: IndexTarget {
                    mapping: p.inputs.mapping.clone(),
                    action_spec: p.inputs.action_spec,
                    index_path: spill_dir.join(format!("{}.keys", p.progress.run.id)),
                },
                record: p.progress.sender(),
                stopping: p.stop.stopping().clone(),
            })
            .collect();
        let tickets = job.spawn(members);
        for ((_, prepared), ticket) in group.into_iter().zip(tickets) {
            self.spawn_run(prepared, ticket);
        }
    }

    /// Starts the runner of a prepared run.
    fn spawn_run(&self, prepared: PreparedRun, extract: ExtractTicket) {
        let PreparedRun {
            inputs: p,
            progress,
            stop,
            destination_id,
            ..
        } = prepared;
        let mapping_id = p.mapping.id.to_string();
        let run_id = progress.run.id.to_string();
        let differ: Arc<dyn Differ> = Arc::new(LocalDiffer::new(
            Arc::clone(&self.state),
            self.options.key_sort_memory_bytes,
            self.data_dir.join("tmp"),
        ));
        let env = RunEnv {
            history: self.history.clone(),
            differ,
            state: Arc::clone(&self.state),
            data_dir: self.data_dir.clone(),
            options: self.options.clone(),
            failures: self.failures.clone(),
        };
        let inputs = RunInputs {
            mapping: p.mapping,
            model: p.model,
            extract,
            action: p.action,
            action_spec: p.action_spec,
            limiter: p.limiter,
            limits: p.limits,
            confirm_mass_delete: p.confirm_mass_delete,
            request_metrics: p.request_metrics,
        };
        let runner = SyncRunner::new(env, inputs, progress, stop);
        let active = Arc::clone(&self.active);
        let finished = self.finished.clone();
        let pruner = Arc::clone(&self.pruner);
        let metrics = Arc::clone(&self.metrics);
        let failures = self.failures.clone();
        let span = tracing::info_span!("sync_run", mapping_id = %mapping_id, run_id = %run_id);
        let task_run_id = run_id.clone();
        let handle = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let run = runner.run().await;
                active.remove(&task_run_id);
                metrics.run_finished(&run, &destination_id);
                update_failure_gauges(&metrics, &failures, &run.mapping_id, &destination_id);
                pruner.maybe_prune();
                // No receiver (no scheduler) is fine.
                let _ = finished.send(run);
            },
            span,
        ));
        self.active.set_handle(&run_id, handle);
    }

    /// Whether a mapping exists.
    ///
    /// # Errors
    /// `NotFound` naming it.
    pub fn mapping_exists(&self, mapping_id: &str) -> Result<(), Error> {
        self.catalog.mapping(mapping_id).map(|_| ())
    }

    /// The run of a mapping in progress, if any.
    ///
    /// # Errors
    /// The registry of runs is unusable (a poisoned lock).
    pub fn running_run_of(&self, mapping_id: &str) -> Result<Option<String>, Error> {
        self.active.of_mapping(mapping_id)
    }

    /// The records of a mapping that failed in some run and are still pending or given up,
    /// after key `after` (an encoded key, the previous page's last), at most `limit`.
    ///
    /// # Errors
    /// `NotFound` for an unknown mapping; the store cannot be read.
    pub fn failed_records(
        &self,
        mapping_id: &str,
        after: Option<&[u8]>,
        limit: usize,
        given_up_only: bool,
    ) -> Result<Vec<FailedRecord>, Error> {
        let mapping = self.catalog.mapping(mapping_id)?;
        Ok(self
            .failures
            .list(&mapping.id, after, limit, given_up_only)?)
    }

    /// Makes given-up records of a mapping pending again (all, or those with these key texts):
    /// the next run sends them. Returns how many.
    ///
    /// # Errors
    /// `NotFound` for an unknown mapping; the store cannot be written.
    pub fn retry_failed(&self, mapping_id: &str, keys: &[String]) -> Result<u64, Error> {
        let mapping = self.catalog.mapping(mapping_id)?;
        let n = self.failures.retry(&mapping.id, keys)?;
        update_failure_gauges(
            &self.metrics,
            &self.failures,
            &mapping.id,
            mapping.destination_id.as_str(),
        );
        Ok(n)
    }

    /// The Prometheus metrics as OpenMetrics text ([`crate::metrics::CONTENT_TYPE`]), with the
    /// running and queued gauges taken from the runs in progress now.
    ///
    /// # Errors
    /// Formatting the exposition failed (not expected).
    pub fn metrics_text(&self) -> Result<String, Error> {
        self.metrics.set_live(&self.active.snapshots());
        self.metrics
            .encode()
            .map_err(|_| Error::internal("could not format the metrics exposition"))
    }

    /// Every run's final record from now on, as each ends.
    pub fn subscribe_finished(&self) -> broadcast::Receiver<SyncRun> {
        self.finished.subscribe()
    }

    /// A run by id (live counts while it runs).
    ///
    /// # Errors
    /// `NotFound` for an unknown run.
    pub fn get(&self, run_id: &str) -> Result<SyncRun, Error> {
        if let Some(live) = self.active.snapshot(run_id)? {
            return Ok(live);
        }
        self.history
            .get(run_id)?
            .ok_or_else(|| Error::not_found("sync run", run_id))
    }

    /// Runs, newest first, older than run `before` when given (a page cursor), optionally of
    /// one mapping, at most `limit`.
    ///
    /// # Errors
    /// `NotFound` for an unknown mapping.
    pub fn list(
        &self,
        mapping_id: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SyncRun>, Error> {
        if let Some(m) = mapping_id {
            self.catalog.mapping(m)?;
        }
        let mut runs = self.history.list(mapping_id, before, limit)?;
        for run in &mut runs {
            if let Some(live) = self.active.snapshot(run.id.as_str())? {
                *run = live;
            }
        }
        Ok(runs)
    }

    /// Live snapshots of a run. The channel closes after the final snapshot; for a finished
    /// run it holds only the final record.
    ///
    /// # Errors
    /// `NotFound` for an unknown run.
    pub fn watch(&self, run_id: &str) -> Result<watch::Receiver<SyncRun>, Error> {
        if let Some(rx) = self.active.watch(run_id)? {
            return Ok(rx);
        }
        let run = self
            .history
            .get(run_id)?
            .ok_or_else(|| Error::not_found("sync run", run_id))?;
        let (_tx, rx) = watch::channel(run);
        Ok(rx)
    }

    /// Asks a run to stop; acknowledged records stay committed.
    ///
    /// # Errors
    /// `NotFound` for an unknown run; `FailedPrecondition` for a run that already ended.
    pub fn cancel(&self, run_id: &str) -> Result<SyncRun, Error> {
        if let Some(live) = self.active.cancel(run_id)? {
            return Ok(live);
        }
        let run = self
            .history
            .get(run_id)?
            .ok_or_else(|| Error::not_found("sync run", run_id))?;
        Err(Error::precondition(format!(
            "run {run_id} already ended ({}); nothing to cancel",
            run.status.as_str()
        )))
    }

    /// Stops running syncs: they send nothing new, their requests in flight may finish (and
    /// what they acknowledge is committed) within the shutdown grace period, after which those
    /// requests are given up; waits for every run to record its end.
    pub async fn shutdown(&self) {
        let runs: Vec<(RunStop, JoinHandle<()>)> = self.active.shut_down_all();
        if runs.is_empty() {
            return;
        }
        tracing::info!(
            runs = runs.len(),
            grace_s = self.options.shutdown_grace.as_secs_f64(),
            "letting running syncs finish their requests in flight"
        );
        let deadline = tokio::time::Instant::now() + self.options.shutdown_grace;
        for (stop, mut handle) in runs {
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                tracing::warn!(
                    "shutdown grace period over: giving up the requests still in flight"
                );
                stop.abort();
                let _ = handle.await;
            }
        }
    }
}
