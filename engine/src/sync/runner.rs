//! [`SyncRunner`]: one run of one mapping, from extract to report.
//!
//! Stages: extract (model plan -> staged Parquet) -> diff (staged extract sorted by key, merged
//! with the state) -> select -> map -> deliver (bounded in-flight batches) -> commit (per
//! acknowledged batch) -> deletes (only now that the extract is known complete, unless the
//! mass-delete safety stop holds them) -> report.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use datafusion::arrow::array::ArrayRef;
use datafusion::prelude::{ParquetReadOptions, ident};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::catalog::mapping::{InitialSync, MappingDef};
use crate::catalog::model::ModelDef;
use crate::delivery::{BatchDelivery, Delivered, DestinationLimiter, deliver_batch};
use crate::destination::spec::{ActionSpec, ChangeKind, DeliveryLimits, Payload};
use crate::destination::{Action, DeliveryContext, DestinationError};
use crate::diff::fingerprint::{Fingerprint, Fingerprinter};
use crate::diff::key::{decode_key, encode_key, key_text};
use crate::diff::local::{BatchColumns, DiffEvent, RowRef, SortMergeDiffer};
use crate::engine::EngineOptions;
use crate::error::{Error, StorageError};
use crate::mapping::plan::MappingPlan;
use crate::model::plan::{ModelSession, session_context, validate_output};
use crate::source::{Source, SourceError};
use crate::staging;
use crate::state::{StateStore, StateWrite};
use crate::sync::run::{RecordError, RunStage, RunStatus, SyncRun};

/// Not-selected state writes are committed in chunks of this size.
const UNSENT_CHUNK: usize = 4096;

/// Everything a run needs, resolved from the catalog when it was triggered.
pub struct RunInputs {
    /// The mapping.
    pub mapping: MappingDef,
    /// Its model.
    pub model: ModelDef,
    /// The model's source, built.
    pub source: Arc<dyn Source>,
    /// The destination action, built.
    pub action: Arc<dyn Action>,
    /// The action's spec.
    pub action_spec: &'static ActionSpec,
    /// The destination's shared limiter.
    pub limiter: Arc<DestinationLimiter>,
    /// The destination's effective limits.
    pub limits: DeliveryLimits,
    /// Send deletes even past the safety-stop fraction.
    pub confirm_mass_delete: bool,
    /// The source's extraction slots (its maximum of concurrent extractions).
    pub extraction_slots: Arc<Semaphore>,
    /// How often an extract whose connection was lost or refused starts again.
    pub connection_retries: u32,
}

/// The longest wait between two attempts of an extract.
const MAX_EXTRACT_BACKOFF: Duration = Duration::from_secs(30);

/// Shared services a run uses.
#[derive(Clone)]
pub struct RunEnv {
    /// Catalog (run records, meta).
    pub catalog: Catalog,
    /// State store.
    pub state: Arc<dyn StateStore>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Engine options.
    pub options: EngineOptions,
}

struct Pending {
    key: Vec<u8>,
    /// The fingerprint to store once accepted; `None` for a delete.
    fingerprint: Option<Fingerprint>,
    change: ChangeKind,
}

type InFlight = BoxFuture<'static, (Vec<Pending>, BatchDelivery)>;

/// One run of one mapping.
pub struct SyncRunner {
    env: RunEnv,
    inputs: RunInputs,
    run: SyncRun,
    progress: watch::Sender<SyncRun>,
    cancel: CancellationToken,
    ctx: DeliveryContext,
    batch: Vec<Payload>,
    batch_items: Vec<Pending>,
    batch_bytes: usize,
    in_flight: FuturesUnordered<InFlight>,
    unsent: Vec<StateWrite>,
    fatal: Option<DestinationError>,
    deliver_wait: Duration,
    commit_time: Duration,
    last_publish: Instant,
    /// Held while the run extracts from its source.
    extraction_slot: Option<OwnedSemaphorePermit>,
}

/// Bytes of a payload's JSON, counted without building the text.
fn json_size(payload: &Payload) -> usize {
    struct Counter(usize);
    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Serializing a Payload to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, payload);
    counter.0
}

fn spill_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Storage(StorageError::io(path)(e))
}

impl SyncRunner {
    /// A runner for `run` (already saved as queued).
    pub fn new(
        env: RunEnv,
        inputs: RunInputs,
        run: SyncRun,
        progress: watch::Sender<SyncRun>,
        cancel: CancellationToken,
    ) -> Self {
        let ctx = DeliveryContext {
            destination_id: inputs.mapping.destination_id.clone(),
            mapping_id: inputs.mapping.id.clone(),
            run_id: run.id.clone(),
        };
        SyncRunner {
            env,
            inputs,
            run,
            progress,
            cancel,
            ctx,
            batch: Vec::new(),
            batch_items: Vec::new(),
            batch_bytes: 0,
            in_flight: FuturesUnordered::new(),
            unsent: Vec::new(),
            fatal: None,
            deliver_wait: Duration::ZERO,
            commit_time: Duration::ZERO,
            last_publish: Instant::now(),
            extraction_slot: None,
        }
    }

    fn publish(&mut self, force: bool) {
        if force || self.last_publish.elapsed() >= Duration::from_millis(100) {
            self.progress.send_replace(self.run.clone());
            self.last_publish = Instant::now();
        }
    }

    fn save(&mut self) {
        if let Err(e) = self.env.catalog.put_run(&self.run) {
            tracing::error!(run_id = %self.run.id, error = %e, "could not save the run record");
        }
        self.publish(true);
    }

    fn set_stage(&mut self, stage: RunStage) {
        self.run.stage = stage;
        self.save();
    }

    /// Runs to the end and returns the final run record (also saved and published).
    pub async fn run(mut self) -> SyncRun {
        // Wait for an extraction slot of the source: several extractions at once can overload
        // a warehouse, so runs beyond the source's limit queue here (status `queued`).
        let slots = Arc::clone(&self.inputs.extraction_slots);
        let slot = tokio::select! {
            permit = slots.acquire_owned() => permit.ok(),
            _ = self.cancel.cancelled() => None,
        };
        let started = Instant::now();
        let now = Utc::now();
        self.run.timings.queued_ms = (now - self.run.create_time).num_milliseconds().max(0) as u64;
        self.run.start_time = Some(now);
        let result = match slot {
            Some(slot) => {
                self.extraction_slot = Some(slot);
                self.run.status = RunStatus::Running;
                self.save();
                self.execute().await
            }
            None => Err(Error::Cancelled {
                reason: "cancelled while queued for an extraction slot".to_string(),
            }),
        };
        // Whatever happened, settle what is in flight and record what was acknowledged.
        let drained = self.drain().await;
        let committed = self.commit_unsent();
        let result = result.and(drained).and(committed);
        self.run.timings.deliver_ms = self.deliver_wait.as_millis() as u64;
        self.run.timings.commit_ms = self.commit_time.as_millis() as u64;
        self.run.timings.total_ms = started.elapsed().as_millis() as u64;
        self.run.status = match &result {
            Ok(()) if self.run.counts.failed > 0 || self.run.counts.deletes_held_back > 0 => {
                RunStatus::PartiallyFailed
            }
            Ok(()) => RunStatus::Succeeded,
            Err(Error::Cancelled { .. }) => RunStatus::Cancelled,
            Err(_) => RunStatus::Failed,
        };
        if let Err(e) = result {
            tracing::warn!(run_id = %self.run.id, error = %e, "sync run did not complete");
            self.run.error = Some(e.to_string());
        }
        // Anything selected but never settled (cancelled or aborted mid-way) counts as failed.
        let settled = self.run.counts.delivered + self.run.counts.failed;
        if self.run.counts.selected > settled {
            self.run.counts.failed += self.run.counts.selected - settled;
        }
        self.run.stage = RunStage::Done;
        self.run.end_time = Some(Utc::now());
        // Logged before the final snapshot is published, so a watcher that saw the end can
        // rely on the log line being there.
        tracing::info!(
            status = self.run.status.as_str(),
            extracted = self.run.counts.extracted,
            delivered = self.run.counts.delivered,
            failed = self.run.counts.failed,
            "sync run ended"
        );
        self.save();
        self.run
    }

    fn check_cancel(&self) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled {
                reason: "CancelSyncRun was called".to_string(),
            });
        }
        if let Some(fatal) = &self.fatal {
            return Err(Error::precondition(format!(
                "{fatal}; fix the destination's credentials, then run the sync again"
            )));
        }
        Ok(())
    }

    async fn execute(&mut self) -> Result<(), Error> {
        let options = self.env.options.clone();
        let spill_dir = self.env.data_dir.join("tmp");
        std::fs::create_dir_all(&spill_dir)
            .map_err(|e| Error::Storage(StorageError::io(&spill_dir)(e)))?;

        // Extract + stage.
        self.set_stage(RunStage::Extracting);
        let t = Instant::now();
        let staged = self.extract_with_retries(&spill_dir).await;
        // Recorded for a failed extract too: the time spent trying is part of the report.
        self.run.timings.extract_ms = t.elapsed().as_millis() as u64;
        let staged = staged?;
        self.run.counts.extracted = staged.rows;
        // The warehouse is done with; let the next queued extraction of this source start.
        self.extraction_slot = None;

        // Diff + deliver.
        self.set_stage(RunStage::Delivering);
        let t = Instant::now();
        let wait_before = self.deliver_wait + self.commit_time;
        let deletes_path = spill_dir.join(format!("{}.deletes", self.run.id));
        let deleted = self
            .diff_and_deliver(&staged.dir, &spill_dir, &deletes_path)
            .await;
        let phase = t.elapsed();
        self.run.timings.diff_ms = phase
            .saturating_sub(self.deliver_wait + self.commit_time - wait_before)
            .as_millis() as u64;
        let (deleted, state_keys) = match deleted {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&deletes_path);
                return Err(e);
            }
        };

        // Deletes, now that the extract is known complete.
        let result = self
            .deliver_deletes(&deletes_path, deleted, state_keys)
            .await;
        let _ = std::fs::remove_file(&deletes_path);
        result?;
        self.drain().await?;
        self.commit_unsent()?;
        self.env.catalog.mark_initialized(&self.inputs.mapping.id)?;
        if let Err(e) = staging::prune(
            &self.env.data_dir,
            self.inputs.model.id.as_str(),
            options.staging_runs_kept,
        ) {
            self.run
                .warnings
                .push(format!("could not prune old staged extracts: {e}"));
        }
        Ok(())
    }

    /// Runs the model and stages its rows, starting again (after a backoff) when the source
    /// reports its connection lost or refused, at most `connection_retries` times. Each attempt
    /// stages from scratch, so a retried extract is as complete as a first one.
    async fn extract_with_retries(
        &mut self,
        spill_dir: &Path,
    ) -> Result<staging::StagedExtract, Error> {
        let attempts = self.inputs.connection_retries + 1;
        let mut backoff = self.env.options.extract_retry_backoff;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.extract_once(spill_dir).await {
                Ok(staged) => return Ok(staged),
                Err(error) => error,
            };
            let Error::Source(source_error) = error else {
                return Err(error);
            };
            if !source_error.is_transient() {
                return Err(Error::Source(source_error));
            }
            if attempt >= attempts {
                let hint = if attempts > 1 {
                    format!(
                        "gave up after {attempts} attempts in {} s (the source's {} setting allows {} retries): ",
                        started.elapsed().as_secs(),
                        crate::engine::CONNECTION_RETRIES_KEY,
                        attempts - 1
                    )
                } else {
                    String::new()
                };
                return Err(Error::Source(source_error.with_prefix(&hint)));
            }
            tracing::warn!(
                attempt,
                attempts,
                error = %source_error,
                retry_in_ms = backoff.as_millis() as u64,
                "extract lost its connection; starting it again"
            );
            self.run.warnings.push(format!(
                "extract attempt {attempt} of {attempts} failed and was started again after {} ms: {source_error}",
                backoff.as_millis()
            ));
            self.run.counts.extracted = 0;
            self.publish(true);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.cancel.cancelled() => {
                    return Err(Error::Cancelled {
                        reason: "run cancelled while waiting to retry the extract".to_string(),
                    });
                }
            }
            backoff = (backoff * 2).min(MAX_EXTRACT_BACKOFF);
        }
    }

    /// One attempt: plans the model on a fresh session and stages its rows.
    async fn extract_once(&mut self, spill_dir: &Path) -> Result<staging::StagedExtract, Error> {
        let source = Arc::clone(&self.inputs.source);
        let session = ModelSession::new(
            source.as_ref(),
            self.env.options.sort_memory_bytes,
            Some(spill_dir),
        )
        .await?;
        let plan = session.plan(&self.inputs.model.sql).await?;
        let stream = session.execute(plan).await?;
        let dir = staging::run_dir(
            &self.env.data_dir,
            self.inputs.model.id.as_str(),
            self.run.id.as_str(),
        );
        self.run.staging_path = Some(dir.display().to_string());
        let progress = self.progress.clone();
        let classify = |e: &datafusion::error::DataFusionError| {
            source.classify_read_error(e as &(dyn std::error::Error + 'static))
        };
        staging::stage(stream, &dir, &self.cancel, &classify, |rows| {
            progress.send_modify(|r| r.counts.extracted = rows);
        })
        .await
    }

    /// Returns (keys deleted, keys that were in the state).
    async fn diff_and_deliver(
        &mut self,
        staged_dir: &Path,
        spill_dir: &Path,
        deletes_path: &Path,
    ) -> Result<(u64, u64), Error> {
        let unique_id = self.inputs.model.unique_id.clone();
        let ctx = session_context(self.env.options.sort_memory_bytes, Some(spill_dir))?;
        let df = ctx
            .read_parquet(
                staged_dir.display().to_string(),
                ParquetReadOptions::default(),
            )
            .await
            .map_err(|e| Error::internal(format!("reading the staged extract: {e}")))?;
        // The model's output may have drifted since the mapping was validated.
        let columns = validate_output(df.schema().as_arrow(), &unique_id)?;
        let plan = MappingPlan::compile(
            &self.inputs.mapping.fields,
            self.inputs.mapping.selection,
            &columns,
            self.inputs.action_spec,
        )
        .map_err(|e| match e {
            Error::InvalidArgument { field, message } => Error::precondition(format!(
                "the mapping no longer fits its model ({field}: {message}); update the mapping or the model"
            )),
            other => other,
        })?;
        let mut select: Vec<String> = vec![unique_id.clone()];
        for c in &plan.columns {
            if !select.contains(c) {
                select.push(c.clone());
            }
        }
        let plan_idx: Vec<usize> = plan
            .columns
            .iter()
            .filter_map(|c| select.iter().position(|s| s == c))
            .collect();
        let df = df
            .select(select.iter().map(|c| ident(c.as_str())).collect::<Vec<_>>())
            .and_then(|df| df.sort(vec![ident(unique_id.as_str()).sort(true, true)]))
            .map_err(|e| Error::internal(format!("planning the diff: {e}")))?;
        let types: Vec<_> = plan_idx
            .iter()
            .map(|&i| df.schema().field(i).data_type().clone())
            .collect();
        let fingerprinter = Fingerprinter::new(&types, &plan.definition)
            .map_err(|e| Error::internal(format!("fingerprinting: {e}")))?;
        let mut stream = df
            .execute_stream()
            .await
            .map_err(|e| Error::internal(format!("sorting the staged extract: {e}")))?;

        let state = Arc::clone(&self.env.state);
        let mut differ =
            SortMergeDiffer::new(state.as_ref(), self.inputs.mapping.id.clone(), &unique_id);
        let file = std::fs::File::create(deletes_path).map_err(spill_error(deletes_path))?;
        let mut deletes = BufWriter::new(file);
        let mut deleted = 0u64;
        let mut events = Vec::new();
        let first_run_marks_synced = self.inputs.mapping.initial_sync
            == InitialSync::MarkExistingSynced
            && !self.env.catalog.is_initialized(&self.inputs.mapping.id)?;
        while let Some(batch) = stream.next().await {
            self.check_cancel()?;
            let batch = batch.map_err(|e| {
                Error::from(SourceError::Read {
                    message: format!("reading the staged extract: {e}"),
                })
            })?;
            let n = batch.num_rows();
            let key_col = batch.column(0);
            let cols: Vec<ArrayRef> = plan_idx
                .iter()
                .map(|&i| Arc::clone(batch.column(i)))
                .collect();
            let fps = fingerprinter
                .fingerprints(&cols, n)
                .map_err(|e| Error::internal(format!("fingerprinting: {e}")))?;
            let keys: Vec<Option<Vec<u8>>> =
                (0..n).map(|r| encode_key(key_col.as_ref(), r)).collect();
            let data = Arc::new(BatchColumns { columns: cols });
            let rows: Vec<RowRef> = fps
                .into_iter()
                .enumerate()
                .map(|(row, fingerprint)| RowRef {
                    batch: Arc::clone(&data),
                    row,
                    fingerprint,
                })
                .collect();
            differ.push(keys, rows, &mut events)?;
            deleted += self
                .handle_events(
                    &mut events,
                    &plan,
                    first_run_marks_synced,
                    &mut deletes,
                    deletes_path,
                )
                .await?;
            self.run.counts.unchanged = differ.unchanged;
            self.publish(false);
        }
        differ.finish(&mut events)?;
        deleted += self
            .handle_events(
                &mut events,
                &plan,
                first_run_marks_synced,
                &mut deletes,
                deletes_path,
            )
            .await?;
        self.run.counts.unchanged = differ.unchanged;
        deletes.flush().map_err(spill_error(deletes_path))?;
        self.flush_batch().await;
        Ok((deleted, differ.state_keys))
    }

    async fn handle_events(
        &mut self,
        events: &mut Vec<DiffEvent>,
        plan: &MappingPlan,
        first_run_marks_synced: bool,
        deletes: &mut BufWriter<std::fs::File>,
        deletes_path: &Path,
    ) -> Result<u64, Error> {
        let mut deleted = 0;
        for event in events.drain(..) {
            match event {
                DiffEvent::Rejected { key, reason } => {
                    self.run.counts.rejected += 1;
                    self.run.push_record_error(RecordError {
                        key,
                        change: None,
                        stage: "validate".to_string(),
                        reason,
                    });
                }
                DiffEvent::Deleted { key } => {
                    deleted += 1;
                    self.run.counts.deleted += 1;
                    let len = u32::try_from(key.len())
                        .map_err(|_| Error::internal("key longer than 4 GiB"))?;
                    deletes
                        .write_all(&len.to_le_bytes())
                        .and_then(|()| deletes.write_all(&key))
                        .map_err(spill_error(deletes_path))?;
                }
                DiffEvent::Changed { change, key, row } => {
                    match change {
                        ChangeKind::Added => self.run.counts.added += 1,
                        _ => self.run.counts.updated += 1,
                    }
                    let selected = self.inputs.mapping.selection.includes(change)
                        && !(first_run_marks_synced && change == ChangeKind::Added);
                    if !selected {
                        self.run.counts.not_selected += 1;
                        self.push_unsent(StateWrite::Put {
                            key,
                            fingerprint: row.fingerprint,
                        })?;
                        continue;
                    }
                    self.run.counts.selected += 1;
                    match plan.payload(&row.batch.columns, row.row, decode_key(&key), change) {
                        Ok(payload) => {
                            let pending = Pending {
                                key,
                                fingerprint: Some(row.fingerprint),
                                change,
                            };
                            self.enqueue(payload, pending).await?;
                        }
                        Err(reason) => {
                            self.run.counts.failed += 1;
                            self.run.push_record_error(RecordError {
                                key: key_text(&key),
                                change: Some(change),
                                stage: "map".to_string(),
                                reason,
                            });
                        }
                    }
                }
            }
        }
        Ok(deleted)
    }

    async fn deliver_deletes(
        &mut self,
        path: &Path,
        deleted: u64,
        state_keys: u64,
    ) -> Result<(), Error> {
        if deleted == 0 {
            return Ok(());
        }
        let options = &self.env.options;
        let fraction = deleted as f64 / state_keys.max(1) as f64;
        if !self.inputs.confirm_mass_delete
            && state_keys >= options.mass_delete_min_keys
            && fraction > options.mass_delete_fraction
        {
            self.run.counts.deletes_held_back = deleted;
            self.run.warnings.push(format!(
                "safety stop: {deleted} of {state_keys} synced keys ({:.0}%) are missing from the extract, more than the {:.0}% allowed in one run, so no delete was sent and the state keeps them; this is more often a broken model than real deletions. If the deletions are real, run the sync again with confirm_mass_delete (CLI: retl sync run <mapping> --confirm-mass-delete)",
                fraction * 100.0,
                options.mass_delete_fraction * 100.0
            ));
            return Ok(());
        }
        self.set_stage(RunStage::DeliveringDeletes);
        let file = std::fs::File::open(path).map_err(spill_error(path))?;
        let mut reader = BufReader::new(file);
        let mut len_buf = [0u8; 4];
        loop {
            self.check_cancel()?;
            match reader.read_exact(&mut len_buf) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(spill_error(path)(e)),
            }
            let mut key = vec![0u8; u32::from_le_bytes(len_buf) as usize];
            reader.read_exact(&mut key).map_err(spill_error(path))?;
            if self.inputs.mapping.selection.deleted {
                self.run.counts.selected += 1;
                let payload = Payload::delete(decode_key(&key));
                let pending = Pending {
                    key,
                    fingerprint: None,
                    change: ChangeKind::Deleted,
                };
                self.enqueue(payload, pending).await?;
            } else {
                self.run.counts.not_selected += 1;
                self.push_unsent(StateWrite::Delete { key })?;
            }
            self.publish(false);
        }
        self.flush_batch().await;
        Ok(())
    }

    fn push_unsent(&mut self, write: StateWrite) -> Result<(), Error> {
        self.unsent.push(write);
        if self.unsent.len() >= UNSENT_CHUNK {
            self.commit_unsent()?;
        }
        Ok(())
    }

    fn commit_unsent(&mut self) -> Result<(), Error> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        let writes = std::mem::take(&mut self.unsent);
        self.env
            .state
            .commit(&self.inputs.mapping.id, &writes)
            .map_err(|e| Error::internal(format!("committing sync state: {e}")))?;
        self.commit_time += t.elapsed();
        Ok(())
    }

    async fn enqueue(&mut self, payload: Payload, pending: Pending) -> Result<(), Error> {
        self.check_cancel()?;
        let size = json_size(&payload);
        if !self.batch.is_empty() && self.batch_bytes + size > self.inputs.limits.max_batch_bytes {
            self.flush_batch().await;
        }
        self.batch.push(payload);
        self.batch_items.push(pending);
        self.batch_bytes += size;
        if self.batch.len() >= self.inputs.limits.batch_size {
            self.flush_batch().await;
        }
        Ok(())
    }

    async fn flush_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        while self.in_flight.len() >= self.inputs.limits.max_in_flight.max(1) {
            self.settle_one().await;
        }
        let payloads = std::mem::take(&mut self.batch);
        let items = std::mem::take(&mut self.batch_items);
        self.batch_bytes = 0;
        let fut = deliver_batch(
            Arc::clone(&self.inputs.action),
            self.ctx.clone(),
            Arc::clone(&self.inputs.limiter),
            self.inputs.limits.clone(),
            payloads,
            self.cancel.clone(),
        );
        self.in_flight
            .push(Box::pin(async move { (items, fut.await) }));
    }

    async fn settle_one(&mut self) {
        let t = Instant::now();
        let Some((items, delivery)) = self.in_flight.next().await else {
            return;
        };
        self.deliver_wait += t.elapsed();
        let mut writes = Vec::new();
        for (item, outcome) in items.into_iter().zip(delivery.outcomes) {
            match outcome {
                Delivered::Accepted => {
                    self.run.counts.delivered += 1;
                    writes.push(match item.fingerprint {
                        Some(fingerprint) => StateWrite::Put {
                            key: item.key,
                            fingerprint,
                        },
                        None => StateWrite::Delete { key: item.key },
                    });
                }
                Delivered::Rejected(reason) | Delivered::Failed(reason) => {
                    self.run.counts.failed += 1;
                    self.run.push_record_error(RecordError {
                        key: key_text(&item.key),
                        change: Some(item.change),
                        stage: "deliver".to_string(),
                        reason,
                    });
                }
            }
        }
        // Commit after acknowledgement: only accepted records advance the state.
        let t = Instant::now();
        if let Err(e) = self.env.state.commit(&self.inputs.mapping.id, &writes) {
            tracing::error!(run_id = %self.run.id, error = %e, "could not commit acknowledged records; they will be sent again");
            self.run.counts.delivered -= writes.len() as u64;
            self.run.counts.failed += writes.len() as u64;
            self.run
                .warnings
                .push(format!("committing acknowledged records failed: {e}"));
        }
        self.commit_time += t.elapsed();
        if let Some(fatal) = delivery.fatal {
            self.fatal.get_or_insert(fatal);
        }
        self.publish(false);
    }

    async fn drain(&mut self) -> Result<(), Error> {
        if !self.cancel.is_cancelled() && self.fatal.is_none() {
            self.flush_batch().await;
        } else {
            self.batch.clear();
            self.batch_items.clear();
        }
        while !self.in_flight.is_empty() {
            self.settle_one().await;
        }
        self.check_cancel()
    }
}
