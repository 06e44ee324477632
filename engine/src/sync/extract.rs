//! The extract step: run the model on a fresh DataFusion session, stage its rows as Parquet and
//! write the key index as they go; start again from scratch when the source reports its
//! connection lost or refused, up to the source's `connection_retries`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::Schema;
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
use crate::sync::progress::Progress;

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

/// What the extract step needs.
pub struct Extraction<'a> {
    /// The model's source, built.
    pub source: Arc<dyn Source>,
    /// The model.
    pub model: &'a ModelDef,
    /// The mapping.
    pub mapping: &'a MappingDef,
    /// The mapping's action.
    pub action_spec: &'static ActionSpec,
    /// Memory a model's query may use before it spills.
    pub memory_bytes: usize,
    /// Where the extract is staged.
    pub staging_dir: PathBuf,
    /// Where spill files and the key index go.
    pub spill_dir: &'a Path,
    /// How often an extract whose connection was lost starts again.
    pub connection_retries: u32,
    /// Wait before the first retry (doubling, up to 30 s).
    pub backoff: Duration,
    /// The run's cancellation.
    pub cancel: &'a CancellationToken,
}

impl Extraction<'_> {
    /// Runs the model and stages its rows with retries; the key index goes to `index_path`.
    ///
    /// # Errors
    /// The source's error (after the retries for a lost connection), a model that no longer
    /// fits the mapping (`FailedPrecondition`), a local I/O failure, or cancellation.
    pub async fn run(&self, index_path: &Path, progress: &mut Progress) -> Result<Extract, Error> {
        let attempts = self.connection_retries + 1;
        let mut backoff = self.backoff;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Planning and the first rows wait on the warehouse (a locked table, a busy
            // cluster): a stopped run stops waiting.
            let attempt_result = tokio::select! {
                r = self.once(index_path, progress) => r,
                _ = self.cancel.cancelled() => Err(Error::Cancelled {
                    reason: "run stopped while extracting".to_string(),
                }),
            };
            let error = match attempt_result {
                Ok(extract) => return Ok(extract),
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
            progress.run.warnings.push(format!(
                "extract attempt {attempt} of {attempts} failed and was started again after {} ms: {source_error}",
                backoff.as_millis()
            ));
            progress.run.counts.extracted = 0;
            progress.publish_now();
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
    pub fn compile_plan(&self, schema: &Schema) -> Result<MappingPlan, Error> {
        // The model's output may have drifted since the mapping was validated.
        validate_output(schema, &self.model.unique_id)?;
        MappingPlan::compile(self.mapping.rules(), schema, self.action_spec)
        .map_err(|e| match e {
            Error::InvalidArgument { field, message } => Error::precondition(format!(
                "the mapping no longer fits its model ({field}: {message}); update the mapping or the model"
            )),
            other => other,
        })
    }

    /// One attempt: plans the model on a fresh session and stages its rows, writing the key
    /// index as they go.
    async fn once(&self, index_path: &Path, progress: &mut Progress) -> Result<Extract, Error> {
        let source = Arc::clone(&self.source);
        let session =
            ModelSession::new(source.as_ref(), self.memory_bytes, Some(self.spill_dir)).await?;
        let plan = session.plan(&self.model.sql).await?;
        let stream = session.execute(plan).await?;
        let schema = staging::staged_schema(&stream.schema());
        let mapping_plan = self.compile_plan(&schema)?;
        let fingerprinted = fingerprinted(&schema, &self.model.unique_id, &mapping_plan)?;
        let mut index = KeyIndexWriter::create(
            index_path,
            &schema,
            fingerprinted.key_column,
            fingerprinted.columns,
            fingerprinted.fingerprinter,
        )?;
        progress.run.staging_path = Some(self.staging_dir.display().to_string());
        let sender = progress.sender();
        let classify = |e: &datafusion::error::DataFusionError| {
            source.classify_read_error(e as &(dyn std::error::Error + 'static))
        };
        let staged = staging::stage(
            stream,
            &self.staging_dir,
            self.cancel,
            &classify,
            &mut |batch| index.append(batch),
            |rows| {
                sender.send_modify(|r| r.counts.extracted = rows);
            },
        )
        .await?;
        Ok(Extract {
            staged,
            index: index.finish()?,
            plan: mapping_plan,
        })
    }
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
