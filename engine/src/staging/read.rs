//! Reading rows back from a staged extract: the rows the diff marked, only the columns asked
//! for, each cast to the type the key index saw (the staged schema's).

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::arrow_reader::RowSelection;
use datafusion::parquet::arrow::async_reader::ParquetRecordBatchStream;
use datafusion::parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use futures::StreamExt;

use crate::error::{Error, StorageError};
use crate::source::SourceError;
use crate::staging::{StagedExtract, staged_file};

/// Batches of selected rows of a staged extract, as columns in the order asked for.
pub struct StagedRows {
    stream: ParquetRecordBatchStream<tokio::fs::File>,
    schema: SchemaRef,
    columns: Vec<usize>,
    path: String,
}

impl std::fmt::Debug for StagedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedRows")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn read_error(path: &str, e: &dyn std::fmt::Display) -> Error {
    Error::from(SourceError::Read {
        message: format!("reading the staged extract {path}: {e}"),
    })
}

impl StagedRows {
    /// Opens the rows `selection` picks, reading `columns` (indexes into the staged schema).
    ///
    /// # Errors
    /// The file cannot be opened or lacks a column (it changed under the run).
    pub async fn open(
        staged: &StagedExtract,
        columns: Vec<usize>,
        selection: RowSelection,
    ) -> Result<StagedRows, Error> {
        let path = staged_file(&staged.dir);
        let shown = path.display().to_string();
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Error::Storage(StorageError::io(&path)(e)))?;
        let builder = ParquetRecordBatchStreamBuilder::new(file)
            .await
            .map_err(|e| read_error(&shown, &e))?;
        // Columns by name: the file may hold them in another order than the staged schema.
        let schema = Arc::clone(&staged.schema);
        let file_schema = Arc::clone(builder.schema());
        let roots = columns
            .iter()
            .map(|&i| {
                let name = schema.field(i).name();
                file_schema
                    .index_of(name)
                    .map_err(|_| read_error(&shown, &format!("column '{name}' is missing")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let stream = builder
            .with_projection(mask)
            .with_row_selection(selection)
            .with_batch_size(8192)
            .build()
            .map_err(|e| read_error(&shown, &e))?;
        Ok(StagedRows {
            stream,
            schema,
            columns,
            path: shown,
        })
    }

    /// The next batch: the asked-for columns in order, each of the staged schema's type.
    ///
    /// # Errors
    /// A read failure or a missing column.
    pub async fn next(&mut self) -> Option<Result<Vec<ArrayRef>, Error>> {
        let batch = match self.stream.next().await? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(read_error(&self.path, &e))),
        };
        let columns = self.columns.iter().map(|&i| {
            let field = self.schema.field(i);
            let array = batch.column_by_name(field.name()).ok_or_else(|| {
                read_error(&self.path, &format!("column '{}' is missing", field.name()))
            })?;
            if array.data_type() == field.data_type() {
                Ok(Arc::clone(array))
            } else {
                cast(array, field.data_type()).map_err(|e| read_error(&self.path, &e))
            }
        });
        Some(columns.collect())
    }
}
