//! The extract step: run the model on a fresh DataFusion session, stage its rows as Parquet and
//! write the key index of every mapping it serves as they go (mappings of one model due together
//! share one extraction, see [`super::extract_job`]); start again from scratch when the source
//! reports its connection lost or refused, up to the source's `connection_retries`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::Schema;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::catalog::model::ModelDef;
use crate::catalog::source::CONNECTION_RETRIES_KEY;
use crate::destination::ActionSpec;
use crate::diff::fingerprint::Fingerprinter;
use crate::diff::index::{KeyIndex, KeyIndexWriter};
use crate::error::Error;
use crate::mapping::plan::MappingPlan;
use crate::mapping::spec::MappingDef;
use crate::model::plan::{ModelSession, validate_output};
use crate::source::Source;
use crate::staging;
use crate::sync::run::SyncRun;

/// The longest wait between two attempts of an extract.
const MAX_EXTRACT_BACKOFF: Duration = Duration::from_secs(30);

/// A staged extract with its key index and the mapping plan compiled against it.
#[derive(Debug)]
pub struct Extract {
    /// The staged Parquet.
    pub staged: staging::StagedExtract,
    /// Keys and fingerprints of its rows.
    pub index: KeyIndex,
    /// The mapping, compiled against the extract's columns.
    pub plan: MappingPlan,
}

/// The mapped columns by index in a staged schema, and the fingerprinter for them.
#[derive(Debug)]
pub struct Fingerprinted {
    /// The unique id column.
    pub key_column: usize,
    /// The columns the mapping reads, in the plan's order.
    pub columns: Vec<usize>,
    /// Fingerprints those columns.
    pub fingerprinter: Fingerprinter,
}

/// A mapping whose key index an extraction writes: the mapped columns are fingerprinted per
/// mapping, so mappings of one model share the staged rows but not the index.
#[derive(Debug, Clone)]
pub struct IndexTarget {
    /// The mapping.
    pub mapping: MappingDef,
    /// The mapping's action.
    pub action_spec: &'static ActionSpec,
    /// Where its key index is written.
    pub index_path: PathBuf,
}

/// Where an extraction reports as it goes: the live records of the runs it serves (their
/// `extracted` count) and the warnings those runs will carry.
#[derive(Debug, Default)]
pub struct ExtractReport {
    /// The live records of the runs served.
    pub records: Vec<watch::Sender<SyncRun>>,
    /// What the runs should know (an attempt that failed and was started again).
    pub warnings: Vec<String>,
}

impl ExtractReport {
    fn update(&self, change: impl Fn(&mut SyncRun)) {
        for record in &self.records {
            record.send_modify(&change);
        }
    }
}

/// The extract step: one query of a model, staged once, indexed for every target.
pub struct Extraction<'a> {
    /// The model's source, built.
    pub source: Arc<dyn Source>,
    /// The model.
    pub model: &'a ModelDef,
    /// The mappings whose key indexes are written.
    pub targets: &'a [IndexTarget],
    /// Memory a model's query may use before it spills.
    pub memory_bytes: usize,
    /// Where the extract is staged.
    pub staging_dir: PathBuf,
    /// Where spill files go.
    pub spill_dir: &'a Path,
    /// How often an extract whose connection was lost starts again.
    pub connection_retries: u32,
    /// Wait before the first retry (doubling, up to 30 s).
    pub backoff: Duration,
    /// Stops the extraction (every run it serves has stopped).
    pub cancel: &'a CancellationToken,
}

/// What an extraction gives each target, in the targets' order: its extract, or why the
/// mapping does not fit the model's output.
pub type PerTarget = Vec<Result<Extract, Error>>;

impl Extraction<'_> {
    /// Runs the model and stages its rows with retries, writing each target's key index.
    ///
    /// # Errors
    /// The source's error (after the retries for a lost connection), a local I/O failure, or
    /// cancellation: the extraction failed for every target. A mapping that no longer fits the
    /// model (`FailedPrecondition`) fails in its own entry only.
    pub async fn run(&self, report: &mut ExtractReport) -> Result<PerTarget, Error> {
        let attempts = self.connection_retries + 1;
        let mut backoff = self.backoff;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Planning and the first rows wait on the warehouse (a locked table, a busy
            // cluster): a stopped run stops waiting.
            let attempt_result = tokio::select! {
                r = self.once(report) => r,
                _ = self.cancel.cancelled() => Err(Error::Cancelled {
                    reason: "run stopped while extracting".to_string(),
                }),
            };
            let error = match attempt_result {
                Ok(extracts) => return Ok(extracts),
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
                        "gave up after {attempts} attempts in {} s (the source's {CONNECTION_RETRIES_KEY} setting allows {} retries): ",
                        started.elapsed().as_secs(),
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
            let warning = format!(
                "extract attempt {attempt} of {attempts} failed and was started again after {} ms: {source_error}",
                backoff.as_millis()
            );
            report.update(|run| {
                run.counts.extracted = 0;
                run.warnings.push(warning.clone());
            });
            report.warnings.push(warning);
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

    /// The mapping plan of `target` for the model's output `schema`.
    ///
    /// # Errors
    /// `FailedPrecondition` when the model's output no longer fits the mapping.
    pub fn compile_plan(
        &self,
        target: &IndexTarget,
        schema: &Schema,
    ) -> Result<MappingPlan, Error> {
        compile_plan(self.model, target, schema)
    }

    /// A target's plan and key index writer for the staged `schema`.
    fn open_target(
        &self,
        target: &IndexTarget,
        schema: &Schema,
    ) -> Result<(MappingPlan, KeyIndexWriter), Error> {
        let plan = self.compile_plan(target, schema)?;
        let fingerprinted = fingerprinted(schema, &self.model.unique_id, &plan)?;
        let writer = KeyIndexWriter::create(
            &target.index_path,
            schema,
            fingerprinted.key_column,
            fingerprinted.columns,
            fingerprinted.fingerprinter,
        )?;
        Ok((plan, writer))
    }

    /// One attempt: plans the model on a fresh session and stages its rows, writing the key
    /// indexes as they go.
    async fn once(&self, report: &ExtractReport) -> Result<PerTarget, Error> {
        let source = Arc::clone(&self.source);
        let session =
            ModelSession::new(source.as_ref(), self.memory_bytes, Some(self.spill_dir)).await?;
        let plan = session.plan(&self.model.sql).await?;
        let stream = session.execute(plan).await?;
        let schema = staging::staged_schema(&stream.schema());
        let mut results: Vec<Option<Result<Extract, Error>>> = Vec::new();
        let mut live: Vec<(usize, MappingPlan, KeyIndexWriter)> = Vec::new();
        for (i, target) in self.targets.iter().enumerate() {
            match self.open_target(target, &schema) {
                Ok((plan, writer)) => {
                    results.push(None);
                    live.push((i, plan, writer));
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if !live.is_empty() {
            let classify = |e: &datafusion::error::DataFusionError| {
                source.classify_read_error(e as &(dyn std::error::Error + 'static))
            };
            let staged = staging::stage(
                stream,
                &self.staging_dir,
                self.cancel,
                &classify,
                &mut |batch| {
                    for (_, _, writer) in live.iter_mut() {
                        writer.append(batch)?;
                    }
                    Ok(())
                },
                |rows| report.update(|run| run.counts.extracted = rows),
            )
            .await?;
            for (i, plan, writer) in live {
                results[i] = Some(writer.finish().map(|index| Extract {
                    staged: staged.clone(),
                    index,
                    plan,
                }));
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::internal("an extraction target got no result")))
            })
            .collect())
    }
}

/// The mapping plan of `target` for `model`'s output `schema`.
///
/// # Errors
/// `FailedPrecondition` when the model's output no longer fits the mapping.
pub fn compile_plan(
    model: &ModelDef,
    target: &IndexTarget,
    schema: &Schema,
) -> Result<MappingPlan, Error> {
    // The model's output may have drifted since the mapping was validated.
    validate_output(schema, &model.unique_id)?;
    MappingPlan::compile(target.mapping.rules(), schema, target.action_spec).map_err(|e| match e {
        Error::InvalidArgument { field, message } => Error::precondition(format!(
            "the mapping no longer fits its model ({field}: {message}); update the mapping or the model"
        )),
        other => other,
    })
}

/// The key column, the plan's columns and their fingerprinter in `schema`.
///
/// # Errors
/// `Internal` when a column is missing (the plan was compiled against this schema).
pub fn fingerprinted(
    schema: &Schema,
    unique_id: &str,
    plan: &MappingPlan,
) -> Result<Fingerprinted, Error> {
    let position = |name: &str| {
        schema
            .index_of(name)
            .map_err(|_| Error::internal(format!("the staged extract has no column '{name}'")))
    };
    let key_column = position(unique_id)?;
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
