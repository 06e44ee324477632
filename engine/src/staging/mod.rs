//! Staging: each extract is written as Parquet under `staging/<model>/<run>/`, so the diff reads
//! a complete, stable snapshot and users can query it with SQL. [`read`] reads marked rows
//! back from a staged extract.

pub mod read;

use std::fs::File;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, StorageError};
use crate::model::plan::source_error;
use crate::source::SourceError;

/// A complete extract on disk.
#[derive(Debug, Clone)]
pub struct StagedExtract {
    /// The run's staging directory.
    pub dir: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// Schema of the rows.
    pub schema: SchemaRef,
}

/// Whether Parquet cannot store this type, so staging keeps it as text.
fn staged_as_text(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Interval(_) | DataType::Duration(_))
}

/// The schema rows are staged with: intervals and durations become their text (ISO 8601 or
/// PostgreSQL-style display), because Parquet has no lossless type for them.
fn staging_schema(schema: &Schema) -> Option<SchemaRef> {
    if !schema
        .fields()
        .iter()
        .any(|f| staged_as_text(f.data_type()))
    {
        return None;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if staged_as_text(f.data_type()) {
                Field::new(f.name(), DataType::Utf8, f.is_nullable())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Some(Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

fn to_staging(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, Error> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(col, field)| {
            if col.data_type() == field.data_type() {
                Ok(Arc::clone(col))
            } else {
                cast(col, field.data_type())
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()
        .map_err(|e| Error::internal(format!("converting a column for staging: {e}")))?;
    RecordBatch::try_new(Arc::clone(schema), columns)
        .map_err(|e| Error::internal(format!("building a staging batch: {e}")))
}

/// The staging directory of a model's run.
pub fn run_dir(data_dir: &Path, model_id: &str, run_id: &str) -> PathBuf {
    data_dir.join("staging").join(model_id).join(run_id)
}

/// Words a failed read for the user: a [`SourceError`] raised by the source keeps its
/// category, anything else goes through the source's `classify` (see
/// [`Source::classify_read_error`](crate::source::Source::classify_read_error)) and is a
/// [`SourceError::Read`] when that does not know it.
pub type ReadErrorClassifier<'a> =
    &'a (dyn Fn(&DataFusionError) -> Option<SourceError> + Send + Sync);

fn read_failure(error: DataFusionError, rows: u64, classify: ReadErrorClassifier<'_>) -> Error {
    let source_error = match source_error(error) {
        Ok(source) => source,
        Err(other) => classify(&other).unwrap_or_else(|| SourceError::Read {
            message: other.to_string(),
        }),
    };
    Error::Source(source_error.with_prefix(&format!("the extract failed after {rows} rows: ")))
}

/// The file that marks a staged extract complete (written after the Parquet file is closed).
pub const COMPLETE_MARKER: &str = "_complete";

/// Whether `dir` holds a complete staged extract.
pub fn is_complete(dir: &Path) -> bool {
    dir.join(COMPLETE_MARKER).is_file() && staged_file(dir).is_file()
}

/// The complete staged extracts of a model, `(run id, directory)`, oldest first (run ids sort
/// by time).
pub fn complete_runs(data_dir: &Path, model_id: &str) -> Vec<(String, PathBuf)> {
    let Ok(runs) = std::fs::read_dir(data_dir.join("staging").join(model_id)) else {
        return Vec::new();
    };
    let mut complete: Vec<(String, PathBuf)> = runs
        .flatten()
        .filter(|r| is_complete(&r.path()))
        .filter_map(|r| r.file_name().into_string().ok().map(|n| (n, r.path())))
        .collect();
    complete.sort();
    complete
}

/// The staged file of a run's staging directory.
pub fn staged_file(dir: &Path) -> PathBuf {
    dir.join("part-0.parquet")
}

/// The schema rows of `schema` are staged with (see [`staging_schema`]).
pub fn staged_schema(schema: &SchemaRef) -> SchemaRef {
    staging_schema(schema).unwrap_or_else(|| Arc::clone(schema))
}

/// Rows per row group of a staged file: the writer holds one row group's encoded pages in
/// memory, and the diff reads changed rows back a row group at a time.
const STAGED_ROW_GROUP: usize = 128 * 1024;

/// Something that sees every staged batch, in order, as it is written (the key index).
pub type BatchObserver<'a> = &'a mut (dyn FnMut(&RecordBatch) -> Result<(), Error> + Send);

/// Writes `stream` to [`staged_file`]`(dir)`, handing each batch (as staged, see
/// [`staged_schema`]) to `observe`. Calls `progress(rows so far)` after each batch.
///
/// # Errors
/// A failing stream is a [`SourceError`] (the extract is incomplete; the caller must not
/// derive deletes from it), worded by [`read_failure`]; a local write failure is a
/// `StorageError`.
pub async fn stage(
    mut stream: SendableRecordBatchStream,
    dir: &Path,
    cancel: &CancellationToken,
    classify: ReadErrorClassifier<'_>,
    observe: BatchObserver<'_>,
    mut progress: impl FnMut(u64),
) -> Result<StagedExtract, Error> {
    std::fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
    let path = staged_file(dir);
    let file = File::create(&path).map_err(StorageError::io(&path))?;
    let source_schema = stream.schema();
    let converted = staging_schema(&source_schema);
    let schema = converted.clone().unwrap_or(source_schema);
    let (batches, writer) = spawn_writer(file, &path, Arc::clone(&schema))?;
    let mut rows = 0u64;
    let read = async {
        while let Some(batch) = stream.next().await {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled {
                    reason: "run cancelled while extracting".to_string(),
                });
            }
            let batch = batch.map_err(|e| read_failure(e, rows, classify))?;
            let batch = match &converted {
                Some(schema) => to_staging(&batch, schema)?,
                None => batch,
            };
            observe(&batch)?;
            rows += batch.num_rows() as u64;
            if batches.send(batch).await.is_err() {
                // The writer stopped early; its own error says why.
                break;
            }
            progress(rows);
        }
        Ok(())
    };
    let read = read.await;
    drop(batches);
    // Always wait for the writer, also after a failed read: a retry truncates the same file.
    let written = writer
        .await
        .map_err(|e| Error::internal(format!("the staging writer stopped: {e}")))
        .and_then(|r| r);
    read?;
    written?;
    // Only now may SQL read it as a complete extract.
    let marker = dir.join(COMPLETE_MARKER);
    File::create(&marker).map_err(StorageError::io(&marker))?;
    Ok(StagedExtract {
        dir: dir.to_path_buf(),
        rows,
        schema,
    })
}

/// Batches waiting for the writer thread: enough to keep both sides busy, few enough to keep
/// memory flat.
const WRITE_QUEUE: usize = 4;

/// The queue into the writer thread and the thread's outcome.
type WriterThread = (
    tokio::sync::mpsc::Sender<RecordBatch>,
    tokio::task::JoinHandle<Result<(), Error>>,
);

/// Starts the Parquet writer on a blocking thread, so that encoding and compressing the staged
/// file runs beside the source's decoding and the key index instead of after them. The writer
/// closes the file when the sender is dropped.
fn spawn_writer(file: File, path: &Path, schema: SchemaRef) -> Result<WriterThread, Error> {
    // No dictionaries: building them (hashing every value) was 17% of an incremental sync's
    // profile, and extracts are mostly high-cardinality columns; the compression catches the
    // repeated values of the others. LZ4 (raw) compresses and decompresses faster than ZSTD,
    // for somewhat larger files (every current Parquet reader supports it).
    let props = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(STAGED_ROW_GROUP))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props))
        .map_err(|e| Error::internal(format!("opening the staging writer: {e}")))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(WRITE_QUEUE);
    let path = path.to_path_buf();
    let io_error = move |e: datafusion::parquet::errors::ParquetError| {
        Error::Storage(StorageError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
    };
    let handle = tokio::task::spawn_blocking(move || {
        while let Some(batch) = rx.blocking_recv() {
            writer.write(&batch).map_err(&io_error)?;
        }
        writer.close().map_err(&io_error)?;
        Ok(())
    });
    Ok((tx, handle))
}

/// Removes all but the newest `keep` run directories of a model (run ids sort by time).
pub fn prune(data_dir: &Path, model_id: &str, keep: usize) -> Result<(), StorageError> {
    let model_dir = data_dir.join("staging").join(model_id);
    let Ok(entries) = std::fs::read_dir(&model_dir) else {
        return Ok(());
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let remove = dirs.len().saturating_sub(keep);
    for dir in dirs.into_iter().take(remove) {
        std::fs::remove_dir_all(&dir).map_err(StorageError::io(&dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, IntervalMonthDayNanoArray};
    use datafusion::arrow::datatypes::IntervalMonthDayNano;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    use super::*;

    #[tokio::test]
    async fn intervals_are_staged_as_text() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "age",
                DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(IntervalMonthDayNanoArray::from(vec![
                    Some(IntervalMonthDayNano::new(1, 2, 3_000_000_000)),
                    None,
                ])),
            ],
        )
        .unwrap();
        let stream = RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            futures::stream::iter(vec![Ok(batch)]),
        );
        let dir = tempfile::tempdir().unwrap();
        let staged = stage(
            Box::pin(stream),
            dir.path(),
            &CancellationToken::new(),
            &|_| None,
            &mut |_| Ok(()),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(staged.rows, 2);
        assert_eq!(staged.schema.field(1).data_type(), &DataType::Utf8);
        let file = File::open(dir.path().join("part-0.parquet")).unwrap();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024)
                .unwrap();
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        let text = crate::mapping::value::json_value(batches[0].column(1).as_ref(), 0).unwrap();
        assert!(
            text.as_str()
                .is_some_and(|t| t.contains("1 mons") || t.contains("P1M")),
            "{text}"
        );
        assert!(batches[0].column(1).is_null(1));
    }

    fn failing_stream(error: DataFusionError) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(vec![Ok(batch), Err(error)]),
        ))
    }

    #[tokio::test]
    async fn a_failed_read_is_worded_by_the_source_and_keeps_its_category() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let lost = |_: &DataFusionError| {
            Some(SourceError::Unavailable {
                message: "connection closed".to_string(),
            })
        };
        let error = stage(
            failing_stream(DataFusionError::Execution("socket".to_string())),
            dir.path(),
            &cancel,
            &lost,
            &mut |_| Ok(()),
            |_| {},
        )
        .await
        .unwrap_err();
        match error {
            Error::Source(e @ SourceError::Unavailable { .. }) => {
                assert!(e.is_transient());
                assert!(
                    e.to_string()
                        .contains("the extract failed after 3 rows: connection closed"),
                    "{e}"
                );
            }
            other => panic!("expected an unavailable source, got {other:?}"),
        }

        // Unknown to the source: a Read error with DataFusion's words, not retried.
        let error = stage(
            failing_stream(DataFusionError::Execution("bad value".to_string())),
            dir.path(),
            &cancel,
            &|_| None,
            &mut |_| Ok(()),
            |_| {},
        )
        .await
        .unwrap_err();
        match error {
            Error::Source(e @ SourceError::Read { .. }) => {
                assert!(!e.is_transient());
                assert!(e.to_string().contains("after 3 rows"), "{e}");
                assert!(e.to_string().contains("bad value"), "{e}");
            }
            other => panic!("expected a read error, got {other:?}"),
        }

        // A SourceError raised inside DataFusion keeps its own category.
        let denied = DataFusionError::External(Box::new(SourceError::PermissionDenied {
            message: "no SELECT on t".to_string(),
        }));
        let error = stage(
            failing_stream(denied),
            dir.path(),
            &cancel,
            &lost,
            &mut |_| Ok(()),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, Error::Source(SourceError::PermissionDenied { .. })),
            "{error:?}"
        );
    }
}
