//! Previews of a mapping's next run on the manager: the extract they compare (the model's
//! latest complete staged extract, or a fresh one through the same extraction path as a run),
//! `preview` (record by record, for `retl.diff`) and `dry_run` (the report of
//! `retl sync run --dry-run`). Neither sends a request nor changes the state, the failure
//! ledger or the run history.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Resolved, SyncManager};
use crate::connector::build::build_source;
use crate::diff::LocalDiffer;
use crate::diff::guard::MassDeletePolicy;
use crate::diff::index::KeyIndexWriter;
use crate::error::{Error, StorageError};
use crate::id::RunId;
use crate::mapping::spec::InitialSync;
use crate::source::SourceError;
use crate::staging::{self, StagedExtract};
use crate::sync::dry_run::{Budget, DryRun, RequestCounter, estimate};
use crate::sync::extract::{Extract, IndexTarget, compile_plan, fingerprinted};
use crate::sync::extract_job::{ExtractJob, JobMember};
use crate::sync::preview::{Preview, PreviewSink, PreviewSummary};
use crate::sync::run::SyncRun;

/// Which extract a preview compares, and how.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreviewOptions {
    /// Run the model now (staging a new extract) instead of reusing its latest extract.
    pub fresh: bool,
    /// Count the deletes as sent even past the mass-delete safety stop.
    pub confirm_mass_delete: bool,
}

/// What a preview compared and found.
#[derive(Debug)]
pub struct PreviewReport {
    /// The totals and warnings.
    pub summary: PreviewSummary,
    /// The extract compared.
    pub staging_path: String,
    /// Time spent extracting (0 when the latest extract was reused).
    pub extract_ms: u64,
    /// Time spent comparing and mapping.
    pub diff_ms: u64,
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Storage(StorageError::io(path)(e))
}

fn read_error(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::from(SourceError::Read {
        message: format!("reading the staged extract {}: {e}", path.display()),
    })
}

impl SyncManager {
    /// What the next run of `mapping_id` would do, record by record, into `sink`.
    ///
    /// # Errors
    /// `NotFound` for an unknown mapping; `FailedPrecondition` when there is no staged extract
    /// to compare (and `fresh` is off) or the mapping no longer fits its model; the source's
    /// error for a fresh extract; `Cancelled` when `cancel` fires.
    pub async fn preview(
        &self,
        mapping_id: &str,
        options: PreviewOptions,
        sink: &mut dyn PreviewSink,
        cancel: &CancellationToken,
    ) -> Result<PreviewReport, Error> {
        let resolved = self.resolve(mapping_id)?;
        self.preview_resolved(&resolved, options, sink, cancel)
            .await
    }

    pub(super) async fn preview_resolved(
        &self,
        r: &Resolved,
        options: PreviewOptions,
        sink: &mut dyn PreviewSink,
        cancel: &CancellationToken,
    ) -> Result<PreviewReport, Error> {
        let spill_dir = self.data_dir.join("tmp");
        std::fs::create_dir_all(&spill_dir).map_err(io(&spill_dir))?;
        let index_path = spill_dir.join(format!("preview-{}.keys", RunId::generate()));
        let target = IndexTarget {
            mapping: r.mapping.clone(),
            action_spec: r.action_spec,
            index_path: index_path.clone(),
        };
        let t = Instant::now();
        let extract = if options.fresh {
            self.fresh_extract(r, target, cancel).await
        } else {
            self.latest_extract(r, &target).await
        };
        let extract_ms = if options.fresh {
            t.elapsed().as_millis() as u64
        } else {
            0
        };
        let result = match extract {
            Ok(extract) => {
                let t = Instant::now();
                let result = self.compare(r, &extract, options, sink, cancel).await;
                result.map(|summary| PreviewReport {
                    summary,
                    staging_path: extract.staged.dir.display().to_string(),
                    extract_ms,
                    diff_ms: t.elapsed().as_millis() as u64,
                })
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&index_path);
        result
    }

    /// Compares an extract with the mapping's state as its next run would.
    async fn compare(
        &self,
        r: &Resolved,
        extract: &Extract,
        options: PreviewOptions,
        sink: &mut dyn PreviewSink,
        cancel: &CancellationToken,
    ) -> Result<PreviewSummary, Error> {
        let differ = LocalDiffer::new(
            Arc::clone(&self.state),
            self.options.key_sort_memory_bytes,
            self.data_dir.join("tmp"),
        );
        let mapping = &r.mapping;
        let first_run_marks_synced = mapping.initial_sync == InitialSync::MarkExistingSynced
            && !self.history.is_initialized(&mapping.id)?;
        let spill_dir = self.data_dir.join("tmp");
        let preview = Preview {
            mapping,
            unique_id: &r.model.unique_id,
            differ: &differ,
            known_failures: self.failures.load(&mapping.id)?,
            first_run_marks_synced,
            mass_delete: MassDeletePolicy {
                max_fraction: self.options.mass_delete_fraction,
                min_keys: self.options.mass_delete_min_keys,
            },
            confirm_mass_delete: options.confirm_mass_delete,
            spill_dir: &spill_dir,
            cancel,
        };
        preview.run(extract, sink).await
    }

    /// Runs the model now, staging a new extract (it becomes the model's latest).
    async fn fresh_extract(
        &self,
        r: &Resolved,
        target: IndexTarget,
        cancel: &CancellationToken,
    ) -> Result<Extract, Error> {
        let run_id = RunId::generate();
        let job = ExtractJob {
            source: build_source(&self.registry, &r.source)?,
            model: r.model.clone(),
            settings: r.source.extraction,
            slots: self.extraction_slots(&r.source)?,
            memory_bytes: self.options.sort_memory_bytes,
            spill_dir: self.data_dir.join("tmp"),
            staging_dir: staging::run_dir(&self.data_dir, r.model.id.as_str(), run_id.as_str()),
            backoff: self.options.extract_retry_backoff,
        };
        let (record, _) = watch::channel(SyncRun::queued(r.mapping.id.clone(), "dry_run"));
        let stopping = cancel.child_token();
        let member = JobMember {
            target,
            record,
            stopping: stopping.clone(),
        };
        let mut ticket = job
            .spawn(vec![member])
            .pop()
            .ok_or_else(|| Error::internal("an extraction job gave no ticket"))?;
        // Dropping out (an error, a cancel) stops the job.
        let _stop_job = stopping.clone().drop_guard();
        ticket.started(&stopping).await?;
        let extract = ticket.extracted(&stopping).await?.extract?;
        let kept = self.options.staging_runs_kept;
        if let Err(e) = staging::prune(&self.data_dir, r.model.id.as_str(), kept) {
            tracing::warn!(model_id = %r.model.id, error = %e, "could not prune old staged extracts");
        }
        Ok(extract)
    }

    /// The model's latest complete staged extract, with the mapping's key index built from it.
    async fn latest_extract(&self, r: &Resolved, target: &IndexTarget) -> Result<Extract, Error> {
        let model = r.model.id.as_str();
        let Some((_, dir)) = staging::complete_runs(&self.data_dir, model).pop() else {
            return Err(Error::precondition(format!(
                "model '{model}' has no staged extract yet; run a sync of mapping '{m}' first, or ask for a fresh extract (retl sync run {m} --dry-run, retl explain {m} <id> --fresh, or retl.diff('{m}', 'fresh'))",
                m = r.mapping.id
            )));
        };
        let path = staging::staged_file(&dir);
        let file = tokio::fs::File::open(&path).await.map_err(io(&path))?;
        let builder = ParquetRecordBatchStreamBuilder::new(file)
            .await
            .map_err(|e| read_error(&path, e))?;
        let schema = Arc::clone(builder.schema());
        let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        let plan = compile_plan(&r.model, target, &schema)?;
        let fp = fingerprinted(&schema, &r.model.unique_id, &plan)?;
        let mut writer = KeyIndexWriter::create(
            &target.index_path,
            &schema,
            fp.key_column,
            fp.columns,
            fp.fingerprinter,
        )?;
        let mut batches = builder
            .with_batch_size(8192)
            .build()
            .map_err(|e| read_error(&path, e))?;
        while let Some(batch) = batches.next().await {
            writer.append(&batch.map_err(|e| read_error(&path, e))?)?;
        }
        Ok(Extract {
            staged: StagedExtract { dir, rows, schema },
            index: writer.finish()?,
            plan,
        })
    }

    /// What a run of `mapping_id` would do: counts, samples, requests, ETA, budget.
    ///
    /// # Errors
    /// As [`SyncManager::preview`].
    pub async fn dry_run(
        &self,
        mapping_id: &str,
        options: PreviewOptions,
        cancel: &CancellationToken,
    ) -> Result<DryRun, Error> {
        let r = self.resolve(mapping_id)?;
        let limits = r.built.limits.clone();
        let mut counter = RequestCounter::new(&limits);
        let report = self
            .preview_resolved(&r, options, &mut counter, cancel)
            .await?;
        let requests = counter.finish();
        let mut warnings = r.disabled();
        warnings.extend(report.summary.warnings);
        for (key, reason) in &counter.rejected {
            warnings.push(format!("row with key {key} would be rejected: {reason}"));
        }
        let (latency, used_last_24h) = self.destination_usage(&r)?;
        let budget = limits.daily_request_budget.map(|daily| Budget {
            daily,
            used_last_24h,
        });
        if let Some(b) = budget
            && b.exceeded_by(requests)
        {
            warnings.push(format!(
                "this run's {requests} requests would go past destination '{}''s daily budget of {} requests ({} used in the last 24 hours); raise limits.daily_request_budget or narrow the mapping's record selection",
                r.destination.id, b.daily, b.used_last_24h
            ));
        }
        Ok(DryRun {
            mapping_id: r.mapping.id.clone(),
            staging_path: report.staging_path,
            counts: report.summary.counts,
            samples: counter.samples,
            requests,
            eta: estimate(requests, &limits, latency),
            budget,
            requests_last_24h: used_last_24h,
            warnings,
            extract_ms: report.extract_ms,
            diff_ms: report.diff_ms,
        })
    }

    /// The destination's mean request latency over its mappings' recent runs, and the
    /// requests those runs made in the last 24 hours.
    fn destination_usage(&self, r: &Resolved) -> Result<(Option<Duration>, u64), Error> {
        const RECENT_RUNS: usize = 20;
        let since = Utc::now() - chrono::Duration::hours(24);
        let (mut request_ms, mut requests, mut used) = (0u64, 0u64, 0u64);
        for mapping in self.catalog.mappings()? {
            if mapping.destination_id != r.destination.id {
                continue;
            }
            let mut recent = self
                .history
                .list(Some(mapping.id.as_str()), None, usize::MAX)?;
            recent.retain(|run| run.counts.requests > 0);
            for (i, run) in recent.iter().enumerate() {
                if run.create_time >= since {
                    used += run.counts.requests;
                }
                if i < RECENT_RUNS && run.timings.request_ms > 0 {
                    request_ms += run.timings.request_ms;
                    requests += run.counts.requests;
                }
            }
        }
        let latency = (requests > 0)
            .then(|| Duration::from_secs_f64(request_ms as f64 / requests as f64 / 1000.0));
        Ok((latency, used))
    }
}
