//! [`SyncRunner`]: one run of one mapping, read top to bottom as the data flow:
//! extract (+ stage + key index) -> diff (select as it goes) -> map and deliver the changed rows
//! -> deliver the deletes (only now that the extract is known complete, unless the mass-delete
//! guard holds them) -> commit (per acknowledged request) -> report.
//!
//! Each step lives in its own module; this file only orders them and keeps the run's record.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use crate::catalog::model::ModelDef;
use crate::delivery::batcher::{Batch, Batcher};
use crate::delivery::pipeline::Pipeline;
use crate::delivery::{DestinationLimiter, Sender};
use crate::destination::spec::{ActionSpec, ChangeKind, DeliveryLimits, Payload};
use crate::destination::{Action, DeliveryContext, DestinationError};
use crate::diff::changed::ChangedRows;
use crate::diff::deletes::{DeleteSpill, DeleteSpillWriter};
use crate::diff::guard::{self, DeleteDecision, MassDeletePolicy};
use crate::diff::key::{decode_key, key_text};
use crate::diff::{DiffInput, DiffSummary, Differ};
use crate::error::{Error, StorageError};
use crate::mapping::plan::resolve_sync_mode;
use crate::mapping::select::Selector;
use crate::mapping::spec::{InitialSync, MappingDef};
use crate::metrics::RequestMetrics;
use crate::options::EngineOptions;
use crate::staging;
use crate::state::StateWrite;
use crate::sync::collect::ChangeCollector;
use crate::sync::commit::{Committer, Ledger, Pending};
use crate::sync::extract::Extract;
use crate::sync::extract_job::ExtractTicket;
use crate::sync::failures::{Failure, FailureLedger};
use crate::sync::history::RunHistory;
use crate::sync::marked::{MarkedRecord, MarkedRecords};
use crate::sync::progress::Progress;
use crate::sync::report;
use crate::sync::run::{RecordError, RunStage, RunStatus, SyncRun};
use crate::sync::stop::RunStop;
use crate::sync::watchdog::{self, WaitingOn};

/// Everything a run needs, resolved from the catalog when it was triggered.
pub struct RunInputs {
    /// The mapping.
    pub mapping: MappingDef,
    /// Its model.
    pub model: ModelDef,
    /// The run's side of its extraction (shared with the runs of the mappings of the same
    /// model due together).
    pub extract: ExtractTicket,
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
    /// Where the run's requests are counted.
    pub request_metrics: RequestMetrics,
}

/// Shared services a run uses.
#[derive(Clone)]
pub struct RunEnv {
    /// Run records and per-mapping markers.
    pub history: RunHistory,
    /// Compares the extract with the state.
    pub differ: Arc<dyn Differ>,
    /// The mapping's state writer.
    pub state: Arc<dyn crate::state::StateStore>,
    /// Data directory.
    pub data_dir: std::path::PathBuf,
    /// Engine options.
    pub options: EngineOptions,
    /// Records that failed, across runs.
    pub failures: FailureLedger,
}

/// One run of one mapping.
pub struct SyncRunner {
    env: RunEnv,
    inputs: RunInputs,
    progress: Progress,
    stop: RunStop,
    /// What the run waits on now (for the watchdog's message).
    waiting_on: WaitingOn,
    committer: Committer,
    batcher: Batcher<Pending>,
    pipeline: Pipeline<Pending>,
    /// A failure that stops the run (refused credentials): every later request would fail.
    fatal: Option<DestinationError>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Storage(StorageError::io(path)(e))
}

impl SyncRunner {
    /// A runner for the run in `progress` (already saved as queued).
    pub fn new(env: RunEnv, inputs: RunInputs, progress: Progress, stop: RunStop) -> Self {
        let ctx = DeliveryContext {
            destination_id: inputs.mapping.destination_id.clone(),
            mapping_id: inputs.mapping.id.clone(),
            run_id: progress.run.id.clone(),
            // Validated when the mapping was saved; an action that lost the mode since falls
            // back to its default.
            sync_mode: resolve_sync_mode(inputs.action.spec(), inputs.mapping.sync_mode)
                .unwrap_or_else(|_| inputs.action.spec().default_sync_mode()),
            trace: None,
        };
        let sender = Sender {
            action: Arc::clone(&inputs.action),
            ctx,
            limiter: Arc::clone(&inputs.limiter),
            limits: inputs.limits.clone(),
            metrics: inputs.request_metrics.clone(),
        };
        // Requests in flight are given up only when the run aborts (cancel, stall, end of the
        // shutdown grace); a shutdown lets them finish.
        let pipeline = Pipeline::new(sender, stop.aborting().clone());
        SyncRunner {
            committer: Committer::new(
                Arc::clone(&env.state),
                inputs.mapping.id.clone(),
                progress.run.id.as_str(),
            ),
            batcher: Batcher::new(&inputs.limits),
            pipeline,
            env,
            inputs,
            progress,
            stop,
            waiting_on: WaitingOn::default(),
            fatal: None,
        }
    }

    /// Runs to the end and returns the final run record (also saved and published).
    pub async fn run(mut self) -> SyncRun {
        let watchdog = watchdog::spawn(
            self.progress.sender().subscribe(),
            self.env.options.stall_timeout,
            self.waiting_on.clone(),
            self.stop.clone(),
        );
        // Extractions beyond the source's limit of concurrent extractions queue (the run is
        // `queued`): several extractions at once can overload a warehouse.
        let slot = self.inputs.extract.started(self.stop.stopping()).await;
        let started = Instant::now();
        let now = Utc::now();
        let run = &mut self.progress.run;
        run.timings.queued_ms = (now - run.create_time).num_milliseconds().max(0) as u64;
        run.start_time = Some(now);
        let result = match slot {
            Ok(()) => {
                self.progress.run.status = RunStatus::Running;
                self.progress.save();
                self.execute().await
            }
            Err(e) => Err(e),
        };
        // A stopped run reports why it was stopped (a stall is a failure, not a cancel).
        let result = match (result, self.stop.error()) {
            (Err(Error::Cancelled { .. }), Some(why)) => Err(why),
            (result, _) => result,
        };
        // Whatever happened, settle what is in flight and record what was acknowledged.
        let drained = self.drain().await;
        let committed = self.committer.flush_not_sent();
        self.committer.sync(&mut self.progress.run);
        let run = &mut self.progress.run;
        run.timings.deliver_ms = self.pipeline.waited.as_millis() as u64;
        run.timings.commit_ms = self.committer.time.as_millis() as u64;
        run.timings.total_ms = started.elapsed().as_millis() as u64;
        let drained = match (drained, self.stop.error()) {
            (Err(Error::Cancelled { .. }), Some(why)) => Err(why),
            (drained, _) => drained,
        };
        report::finish(run, result.and(drained).and(committed));
        watchdog.abort();
        self.progress.save();
        self.progress.run
    }

    /// Stops the run when it was cancelled or a request failed for good.
    fn check_cancel(&self) -> Result<(), Error> {
        if self.stop.is_stopping() {
            return Err(self.stop.error().unwrap_or_else(|| Error::Cancelled {
                reason: "the run was stopped".to_string(),
            }));
        }
        if let Some(fatal) = &self.fatal {
            return Err(Error::precondition(format!(
                "{fatal}; fix the destination's credentials, then run the sync again"
            )));
        }
        Ok(())
    }

    async fn execute(&mut self) -> Result<(), Error> {
        let spill_dir = self.env.data_dir.join("tmp");
        std::fs::create_dir_all(&spill_dir).map_err(io_error(&spill_dir))?;
        self.committer.set_ledger(Ledger {
            known: self.env.failures.load(&self.inputs.mapping.id)?,
            ledger: self.env.failures.clone(),
            policy: self.inputs.mapping.retry_policy,
        });
        let run_id = self.progress.run.id.to_string();

        // Extract + stage (+ key index).
        self.progress.set_stage(RunStage::Extracting);
        let t = Instant::now();
        self.progress.run.staging_path =
            Some(self.inputs.extract.staging_dir.display().to_string());
        let source_id = &self.inputs.model.source_id;
        self.waiting_on.set(format!(
            "the source '{source_id}' (the query of model '{}')",
            self.inputs.model.id
        ));
        let extracted = self.inputs.extract.extracted(self.stop.stopping()).await;
        // Recorded for a failed extract too: the time spent trying is part of the report.
        self.progress.run.timings.extract_ms = t.elapsed().as_millis() as u64;
        let extract = match extracted {
            Ok(extracted) => {
                self.progress.run.warnings.extend(extracted.warnings);
                extracted.extract
            }
            Err(e) => Err(e),
        };
        self.progress.run.counts.extracted = extract.as_ref().map_or(0, |e| e.staged.rows);
        let extract = extract?;
        let index_path = extract.index.path.clone();

        // Diff (+ select), then map and deliver the changed rows.
        self.progress.set_stage(RunStage::Delivering);
        self.waiting_on
            .set("the comparison of the extract with the sync state");
        let t = Instant::now();
        let waited_before = self.pipeline.waited + self.committer.time;
        let deletes_path = spill_dir.join(format!("{run_id}.deletes"));
        let diffed = self.diff(&extract, &deletes_path).await;
        let _ = std::fs::remove_file(&index_path);
        let delivered = match diffed {
            Ok((changed, deletes, summary)) => self
                .deliver_changed(&extract, &changed)
                .await
                .map(|()| (deletes, summary)),
            Err(e) => Err(e),
        };
        let waited = self.pipeline.waited + self.committer.time - waited_before;
        self.progress.run.timings.diff_ms = t.elapsed().saturating_sub(waited).as_millis() as u64;

        // Deletes, now that the extract is known complete.
        let result = match delivered {
            Ok((deletes, summary)) => self.deliver_deletes(&deletes, summary).await,
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&deletes_path);
        result?;
        self.drain().await?;
        self.committer.flush_not_sent()?;
        let history = self.progress.history().clone();
        history.mark_initialized(&self.inputs.mapping.id)?;
        let kept = self.env.options.staging_runs_kept;
        if let Err(e) = staging::prune(&self.env.data_dir, self.inputs.model.id.as_str(), kept) {
            let warning = format!("could not prune old staged extracts: {e}");
            self.progress.run.warnings.push(warning);
        }
        Ok(())
    }

    /// Compares the extract with the state, marking the rows to send, recording the changes
    /// not sent, and spilling the deleted keys.
    async fn diff(
        &mut self,
        extract: &Extract,
        deletes_path: &Path,
    ) -> Result<(ChangedRows, DeleteSpill, DiffSummary), Error> {
        let mapping = &self.inputs.mapping;
        let first_run_marks_synced = mapping.initial_sync == InitialSync::MarkExistingSynced
            && !self.progress.history().is_initialized(&mapping.id)?;
        let mut collector = ChangeCollector {
            progress: &mut self.progress,
            committer: &mut self.committer,
            selector: Selector::new(mapping.selection, first_run_marks_synced),
            changed: ChangedRows::new(extract.index.rows),
            deletes: DeleteSpillWriter::create(deletes_path)?,
            cancel: self.stop.stopping(),
        };
        let input = DiffInput {
            mapping: &mapping.id,
            unique_id: &self.inputs.model.unique_id,
            index: &extract.index,
        };
        let summary = self.env.differ.diff(input, &mut collector).await?;
        let ChangeCollector {
            changed, deletes, ..
        } = collector;
        Ok((changed, deletes.finish()?, summary))
    }

    /// The map step: reads the marked rows back from the staged extract, turns each into a
    /// payload, and sends it.
    async fn deliver_changed(
        &mut self,
        extract: &Extract,
        changed: &ChangedRows,
    ) -> Result<(), Error> {
        if changed.marked() == 0 {
            return Ok(());
        }
        let unique_id = self.inputs.model.unique_id.clone();
        let mut records = MarkedRecords::open(extract, changed, &unique_id).await?;
        while let Some(batch) = records.next_batch().await {
            self.check_cancel()?;
            for record in batch? {
                let MarkedRecord {
                    key,
                    change,
                    fingerprint,
                    payload,
                } = record;
                if self.committer.given_up(&key, Some(fingerprint.0)) {
                    self.progress.run.counts.given_up += 1;
                    continue;
                }
                match payload {
                    Ok(payload) => {
                        let pending = Pending {
                            key,
                            fingerprint: Some(fingerprint),
                            change,
                        };
                        self.enqueue(payload, pending).await?;
                    }
                    Err(reason) => {
                        self.progress.run.counts.failed += 1;
                        self.progress.run.push_record_error(RecordError {
                            key: key_text(&key),
                            change: Some(change),
                            stage: "map".to_string(),
                            reason: reason.clone(),
                        });
                        let failure = Failure {
                            key,
                            change,
                            fingerprint: Some(fingerprint.0),
                            reason,
                        };
                        self.committer.failed(vec![failure], &mut self.progress.run);
                    }
                }
            }
            self.progress.publish();
        }
        self.flush_batch().await;
        Ok(())
    }

    /// Sends (or, when not selected, records) the deleted keys, unless the mass-delete guard
    /// holds them back.
    async fn deliver_deletes(
        &mut self,
        deletes: &DeleteSpill,
        summary: DiffSummary,
    ) -> Result<(), Error> {
        let policy = MassDeletePolicy {
            max_fraction: self.env.options.mass_delete_fraction,
            min_keys: self.env.options.mass_delete_min_keys,
        };
        let confirmed = self.inputs.confirm_mass_delete;
        if let DeleteDecision::HoldBack { warning } =
            guard::decide(&policy, deletes.count, summary.state_keys, confirmed)
        {
            self.progress.run.counts.deletes_held_back = deletes.count;
            self.progress.run.warnings.push(warning);
            return Ok(());
        }
        if deletes.count == 0 {
            return Ok(());
        }
        self.progress.set_stage(RunStage::DeliveringDeletes);
        let mut reader = deletes.reader()?;
        let sends = self.inputs.mapping.selection.deleted;
        while let Some(key) = reader.next_key()? {
            self.check_cancel()?;
            if sends && self.committer.given_up(&key, None) {
                self.progress.run.counts.selected += 1;
                self.progress.run.counts.given_up += 1;
            } else if sends {
                self.progress.run.counts.selected += 1;
                let payload = Payload::delete(decode_key(&key));
                let change = ChangeKind::Deleted;
                let pending = Pending {
                    key,
                    fingerprint: None,
                    change,
                };
                self.enqueue(payload, pending).await?;
            } else {
                self.progress.run.counts.not_selected += 1;
                self.committer.not_sent(StateWrite::Delete { key })?;
            }
            self.progress.publish();
        }
        self.flush_batch().await;
        Ok(())
    }

    /// Adds a record to the current batch, sending the batch when it is full.
    async fn enqueue(&mut self, payload: Payload, pending: Pending) -> Result<(), Error> {
        self.check_cancel()?;
        if let Some(batch) = self.batcher.push(payload, pending) {
            self.send(batch).await;
        }
        Ok(())
    }

    /// Sends the partial batch gathered so far.
    async fn flush_batch(&mut self) {
        if let Some(batch) = self.batcher.take() {
            self.send(batch).await;
        }
    }

    /// Starts a request once one is free, unless the destination refused the run meanwhile
    /// (e.g. its credentials: nothing more is sent, and the batch's records count as failed in
    /// the report) or the run was told to stop.
    async fn send(&mut self, batch: Batch<Pending>) {
        while !self.pipeline.has_room() {
            self.settle_one().await;
        }
        // A run told to stop sends nothing new (its records stay pending for the next run).
        if self.fatal.is_none() && !self.stop.is_stopping() {
            self.pipeline.start(batch);
        }
    }

    /// Waits for one request and commits what it acknowledged.
    async fn settle_one(&mut self) {
        self.waiting_on.set(format!(
            "the destination '{}' to answer a request",
            self.inputs.mapping.destination_id
        ));
        if let Some((items, delivery)) = self.pipeline.next_settled().await {
            crate::crash_point::reached(crate::crash_point::AFTER_ACK_BEFORE_COMMIT);
            let run = &mut self.progress.run;
            if let Some(fatal) = self.committer.settle(items, delivery, run) {
                self.fatal.get_or_insert(fatal);
            }
            self.progress.publish();
        }
    }

    /// Sends what is gathered (unless the run is stopping) and waits for every request.
    async fn drain(&mut self) -> Result<(), Error> {
        if !self.stop.is_stopping() && self.fatal.is_none() {
            self.flush_batch().await;
        } else {
            self.batcher.clear();
        }
        while !self.pipeline.is_empty() {
            self.settle_one().await;
        }
        self.check_cancel()
    }
}
