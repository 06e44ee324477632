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
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::Schema;
use datafusion::parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
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
use crate::diff::changed::ChangedRows;
use crate::diff::fingerprint::{Fingerprint, Fingerprinter};
use crate::diff::index::{KeyIndex, KeyIndexWriter};
use crate::diff::key::{decode_key, encode_key_into, key_text};
use crate::diff::local::{DiffSink, SortMergeDiffer, null_key_reason};
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

/// A staged extract with its key index and the mapping plan compiled against it.
struct Extract {
    staged: staging::StagedExtract,
    index: KeyIndex,
    plan: MappingPlan,
}

/// Mapped columns by index in a staged schema, and the fingerprinter for them.
struct Fingerprinted {
    key_column: usize,
    columns: Vec<usize>,
    fingerprinter: Fingerprinter,
}

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
        let t = Instant::now();
        if let Err(e) = self.env.state.sync() {
            tracing::error!(run_id = %self.run.id, error = %e, "could not sync the state to disk");
            self.run.warnings.push(format!(
                "syncing the state to disk failed ({e}); after a power loss some records may be sent again"
            ));
        }
        self.commit_time += t.elapsed();
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

        // Extract + stage (+ key index).
        self.set_stage(RunStage::Extracting);
        let t = Instant::now();
        let index_path = spill_dir.join(format!("{}.keys", self.run.id));
        let extract = self.extract_with_retries(&spill_dir, &index_path).await;
        // Recorded for a failed extract too: the time spent trying is part of the report.
        self.run.timings.extract_ms = t.elapsed().as_millis() as u64;
        let extract = match extract {
            Ok(extract) => extract,
            Err(e) => {
                let _ = std::fs::remove_file(&index_path);
                return Err(e);
            }
        };
        self.run.counts.extracted = extract.staged.rows;
        // The warehouse is done with; let the next queued extraction of this source start.
        self.extraction_slot = None;

        // Diff + deliver.
        self.set_stage(RunStage::Delivering);
        let t = Instant::now();
        let wait_before = self.deliver_wait + self.commit_time;
        let deletes_path = spill_dir.join(format!("{}.deletes", self.run.id));
        let deleted = self
            .diff_and_deliver(&extract, &spill_dir, &deletes_path)
            .await;
        let _ = std::fs::remove_file(&index_path);
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
        index_path: &Path,
    ) -> Result<Extract, Error> {
        let attempts = self.inputs.connection_retries + 1;
        let mut backoff = self.env.options.extract_retry_backoff;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.extract_once(spill_dir, index_path).await {
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

    /// The mapping plan for the model's output `schema`.
    fn compile_plan(&self, schema: &Schema) -> Result<MappingPlan, Error> {
        // The model's output may have drifted since the mapping was validated.
        let columns = validate_output(schema, &self.inputs.model.unique_id)?;
        MappingPlan::compile(
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
        })
    }

    /// The key column, the plan's columns and their fingerprinter in `schema`.
    fn fingerprinted(&self, schema: &Schema, plan: &MappingPlan) -> Result<Fingerprinted, Error> {
        let position = |name: &str| {
            schema
                .index_of(name)
                .map_err(|_| Error::internal(format!("the staged extract has no column '{name}'")))
        };
        let key_column = position(&self.inputs.model.unique_id)?;
        let columns = plan
            .columns
            .iter()
            .map(|c| position(c))
            .collect::<Result<Vec<_>, _>>()?;
        let types: Vec<_> = columns
            .iter()
            .map(|&i| schema.field(i).data_type().clone())
            .collect();
        let fingerprinter = Fingerprinter::new(&types, &plan.definition)
            .map_err(|e| Error::internal(format!("fingerprinting: {e}")))?;
        Ok(Fingerprinted {
            key_column,
            columns,
            fingerprinter,
        })
    }

    /// One attempt: plans the model on a fresh session and stages its rows, writing the key
    /// index as they go.
    async fn extract_once(
        &mut self,
        spill_dir: &Path,
        index_path: &Path,
    ) -> Result<Extract, Error> {
        let source = Arc::clone(&self.inputs.source);
        let session = ModelSession::new(
            source.as_ref(),
            self.env.options.sort_memory_bytes,
            Some(spill_dir),
        )
        .await?;
        let plan = session.plan(&self.inputs.model.sql).await?;
        let stream = session.execute(plan).await?;
        let schema = staging::staged_schema(&stream.schema());
        let mapping_plan = self.compile_plan(&schema)?;
        let fingerprinted = self.fingerprinted(&schema, &mapping_plan)?;
        let mut index = KeyIndexWriter::create(
            index_path,
            &schema,
            fingerprinted.key_column,
            fingerprinted.columns,
            fingerprinted.fingerprinter,
        )?;
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
        let staged = staging::stage(
            stream,
            &dir,
            &self.cancel,
            &classify,
            &mut |batch| index.append(batch),
            |rows| {
                progress.send_modify(|r| r.counts.extracted = rows);
            },
        )
        .await?;
        Ok(Extract {
            staged,
            index: index.finish()?,
            plan: mapping_plan,
        })
    }

    /// Merges the key index with the state (marking the rows to send, recording the rest),
    /// then sends the marked rows. Returns (keys deleted, keys that were in the state).
    async fn diff_and_deliver(
        &mut self,
        extract: &Extract,
        spill_dir: &Path,
        deletes_path: &Path,
    ) -> Result<(u64, u64), Error> {
        let ctx = session_context(self.env.options.key_sort_memory_bytes, Some(spill_dir))?;
        tracing::debug!(
            rows = extract.index.rows,
            in_key_order = extract.index.sorted,
            "merging the key index with the state (sorted first unless the extract came in key order)"
        );
        let mut order = extract.index.read_in_key_order(&ctx).await?;
        let first_run_marks_synced = self.inputs.mapping.initial_sync
            == InitialSync::MarkExistingSynced
            && !self.env.catalog.is_initialized(&self.inputs.mapping.id)?;
        let reason = null_key_reason(&self.inputs.model.unique_id);
        for _ in 0..extract.index.null_keys {
            self.run.counts.rejected += 1;
            self.run.push_record_error(RecordError {
                key: "<null>".to_string(),
                change: None,
                stage: "validate".to_string(),
                reason: reason.clone(),
            });
        }
        let file = std::fs::File::create(deletes_path).map_err(spill_error(deletes_path))?;
        let state = Arc::clone(&self.env.state);
        let mut differ = SortMergeDiffer::new(state.as_ref(), self.inputs.mapping.id.clone());
        let mut sink = MergeSink {
            changed: ChangedRows::new(extract.index.rows),
            deletes: BufWriter::new(file),
            deletes_path,
            deleted: 0,
            first_run_marks_synced,
            runner: self,
        };
        while let Some(batch) = order.next().await {
            sink.runner.check_cancel()?;
            let batch = batch?;
            for i in 0..batch.len() {
                let (key, fingerprint, row) = batch.entry(i);
                differ.push(key, row, fingerprint, &mut sink)?;
            }
            sink.runner.run.counts.unchanged = differ.unchanged;
            sink.runner.publish(false);
        }
        differ.finish(&mut sink)?;
        sink.runner.run.counts.unchanged = differ.unchanged;
        let MergeSink {
            changed,
            mut deletes,
            deleted,
            ..
        } = sink;
        deletes.flush().map_err(spill_error(deletes_path))?;
        drop(order);
        self.deliver_changed(extract, &changed).await?;
        self.flush_batch().await;
        Ok((deleted, differ.state_keys))
    }

    /// Reads the marked rows back from the staged extract and sends them.
    async fn deliver_changed(
        &mut self,
        extract: &Extract,
        changed: &ChangedRows,
    ) -> Result<(), Error> {
        if changed.marked() == 0 {
            return Ok(());
        }
        let path = staging::staged_file(&extract.staged.dir);
        let read_error = |e: &dyn std::fmt::Display| {
            Error::from(SourceError::Read {
                message: format!("reading the staged extract {}: {e}", path.display()),
            })
        };
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(spill_error(&path))?;
        let builder = ParquetRecordBatchStreamBuilder::new(file)
            .await
            .map_err(|e| read_error(&e))?;
        // Columns by name: the file may hold them in another order than the plan.
        let staged_schema = Arc::clone(&extract.staged.schema);
        let fingerprinted = self.fingerprinted(&staged_schema, &extract.plan)?;
        let mut wanted: Vec<usize> = fingerprinted.columns.clone();
        wanted.push(fingerprinted.key_column);
        let file_schema = Arc::clone(builder.schema());
        let roots = wanted
            .iter()
            .map(|&i| {
                let name = staged_schema.field(i).name();
                file_schema
                    .index_of(name)
                    .map_err(|_| read_error(&format!("column '{name}' is missing")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let mut stream = builder
            .with_projection(mask)
            .with_row_selection(changed.selection())
            .with_batch_size(8192)
            .build()
            .map_err(|e| read_error(&e))?;
        let mut kinds = changed.changes();
        let mut key = Vec::with_capacity(32);
        while let Some(batch) = stream.next().await {
            self.check_cancel()?;
            let batch = batch.map_err(|e| read_error(&e))?;
            let n = batch.num_rows();
            // Each column as the key index saw it (the staged schema's type).
            let column = |i: usize| -> Result<ArrayRef, Error> {
                let field = staged_schema.field(i);
                let array = batch
                    .column_by_name(field.name())
                    .ok_or_else(|| read_error(&format!("column '{}' is missing", field.name())))?;
                if array.data_type() == field.data_type() {
                    Ok(Arc::clone(array))
                } else {
                    cast(array, field.data_type()).map_err(|e| read_error(&e))
                }
            };
            let cols = fingerprinted
                .columns
                .iter()
                .map(|&i| column(i))
                .collect::<Result<Vec<_>, _>>()?;
            let key_col = column(fingerprinted.key_column)?;
            let fps = fingerprinted
                .fingerprinter
                .fingerprints(&cols, n)
                .map_err(|e| Error::internal(format!("fingerprinting: {e}")))?;
            for (row, fingerprint) in fps.into_iter().enumerate() {
                let (Some(change), true) = (
                    kinds.next(),
                    encode_key_into(key_col.as_ref(), row, &mut key),
                ) else {
                    return Err(Error::internal(
                        "the staged extract changed under the diff (a marked row is missing or lost its key)",
                    ));
                };
                match extract.plan.payload(&cols, row, decode_key(&key), change) {
                    Ok(payload) => {
                        let pending = Pending {
                            key: key.clone(),
                            fingerprint: Some(fingerprint),
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
            self.publish(false);
        }
        Ok(())
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
        if self.fatal.is_some() {
            return; // the destination refused the run (e.g. credentials): send nothing more
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

/// Where the differ's findings go during the merge: rows to send are marked (and read back
/// afterwards), not-selected changes go to the state, deletes to a spill file, rejections to
/// the run record.
struct MergeSink<'r, 'p> {
    runner: &'r mut SyncRunner,
    changed: ChangedRows,
    deletes: BufWriter<std::fs::File>,
    deletes_path: &'p Path,
    deleted: u64,
    first_run_marks_synced: bool,
}

impl DiffSink for MergeSink<'_, '_> {
    fn changed(
        &mut self,
        change: ChangeKind,
        key: &[u8],
        row: u64,
        fingerprint: Fingerprint,
    ) -> Result<(), Error> {
        let run = &mut self.runner.run;
        match change {
            ChangeKind::Added => run.counts.added += 1,
            _ => run.counts.updated += 1,
        }
        let selected = self.runner.inputs.mapping.selection.includes(change)
            && !(self.first_run_marks_synced && change == ChangeKind::Added);
        if selected {
            self.runner.run.counts.selected += 1;
            self.changed.mark(row, change);
            Ok(())
        } else {
            self.runner.run.counts.not_selected += 1;
            self.runner.push_unsent(StateWrite::Put {
                key: key.to_vec(),
                fingerprint,
            })
        }
    }

    fn deleted(&mut self, key: &[u8]) -> Result<(), Error> {
        self.deleted += 1;
        self.runner.run.counts.deleted += 1;
        let len = u32::try_from(key.len()).map_err(|_| Error::internal("key longer than 4 GiB"))?;
        self.deletes
            .write_all(&len.to_le_bytes())
            .and_then(|()| self.deletes.write_all(key))
            .map_err(spill_error(self.deletes_path))
    }

    fn rejected(&mut self, key: String, reason: String) {
        self.runner.run.counts.rejected += 1;
        self.runner.run.push_record_error(RecordError {
            key,
            change: None,
            stage: "validate".to_string(),
            reason,
        });
    }
}
