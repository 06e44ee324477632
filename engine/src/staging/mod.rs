//! Staging: each extract is written as Parquet under `staging/<model>/<run>/`, so the diff reads
//! a complete, stable snapshot and users can query it with SQL.

use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, StorageError};
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

/// The staging directory of a model's run.
pub fn run_dir(data_dir: &Path, model_id: &str, run_id: &str) -> PathBuf {
    data_dir.join("staging").join(model_id).join(run_id)
}

/// Writes `stream` to `dir/part-0.parquet`. Calls `progress(rows so far)` after each batch.
///
/// # Errors
/// A failing stream is a `SourceError::Read` (the extract is incomplete; the caller must not
/// derive deletes from it); a local write failure is a `StorageError`.
pub async fn stage(
    mut stream: SendableRecordBatchStream,
    dir: &Path,
    cancel: &CancellationToken,
    mut progress: impl FnMut(u64),
) -> Result<StagedExtract, Error> {
    std::fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
    let path = dir.join("part-0.parquet");
    let file = File::create(&path).map_err(StorageError::io(&path))?;
    let schema = stream.schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(file, std::sync::Arc::clone(&schema), Some(props))
        .map_err(|e| Error::internal(format!("opening the staging writer: {e}")))?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled {
                reason: "run cancelled while extracting".to_string(),
            });
        }
        let batch = batch.map_err(|e| SourceError::Read {
            message: format!("the extract failed after {rows} rows: {e}"),
        })?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(|e| StorageError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        progress(rows);
    }
    writer.close().map_err(|e| StorageError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(StagedExtract {
        dir: dir.to_path_buf(),
        rows,
        schema,
    })
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
