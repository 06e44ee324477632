//! The key index of a staged extract: one `(encoded key, fingerprint, row number)` entry per
//! row with a non-null key, written while the extract is staged.
//!
//! The diff merges the index, in key order, with the mapping's state. It is about 40 bytes a
//! row whatever the model's width, so ordering it costs a fraction of ordering the extract, and
//! no ordering at all when the extract arrived in key order (checked while writing, for free).
//! The mapped columns are read back from the staged Parquet only for the rows that changed.
//!
//! File format: Arrow IPC (uncompressed), columns `key` (Binary), `fingerprint`
//! (FixedSizeBinary(16), big-endian) and `row` (UInt64, the row's position in the staged file).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BinaryArray, BinaryBuilder, FixedSizeBinaryArray,
    FixedSizeBinaryBuilder, RecordBatch, UInt64Array, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::datasource::file_format::options::ArrowReadOptions;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{SessionContext, col};
use futures::StreamExt;

use crate::diff::fingerprint::{Fingerprint, Fingerprinter};
use crate::diff::key::encode_key_into;
use crate::error::{Error, StorageError};

const KEY: &str = "key";
const FINGERPRINT: &str = "fingerprint";
const ROW: &str = "row";

fn index_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(KEY, DataType::Binary, false),
        Field::new(FINGERPRINT, DataType::FixedSizeBinary(16), false),
        Field::new(ROW, DataType::UInt64, false),
    ]))
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Storage(StorageError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Writes the key index of an extract as its batches are staged.
pub struct KeyIndexWriter {
    path: PathBuf,
    writer: FileWriter<BufWriter<File>>,
    schema: SchemaRef,
    key_column: usize,
    fingerprinted: Vec<usize>,
    fingerprinter: Fingerprinter,
    rows: u64,
    entries: u64,
    null_keys: u64,
    sorted: bool,
    previous_key: Option<Vec<u8>>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for KeyIndexWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndexWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl KeyIndexWriter {
    /// A writer at `path` (created or truncated) for batches of `schema`: the key is column
    /// `key_column`, the fingerprint covers columns `fingerprinted` (in that order).
    ///
    /// # Errors
    /// The file cannot be created, or a fingerprinted type has no row encoding.
    pub fn create(
        path: &Path,
        schema: &Schema,
        key_column: usize,
        fingerprinted: Vec<usize>,
        fingerprinter: Fingerprinter,
    ) -> Result<Self, Error> {
        if key_column >= schema.fields().len()
            || fingerprinted.iter().any(|&i| i >= schema.fields().len())
        {
            return Err(Error::internal("key index: column out of range"));
        }
        let file = File::create(path).map_err(|e| io_error(path, e))?;
        let index = index_schema();
        let writer = FileWriter::try_new(BufWriter::with_capacity(1 << 20, file), &index)
            .map_err(|e| io_error(path, e))?;
        Ok(KeyIndexWriter {
            path: path.to_path_buf(),
            writer,
            schema: index,
            key_column,
            fingerprinted,
            fingerprinter,
            rows: 0,
            entries: 0,
            null_keys: 0,
            sorted: true,
            previous_key: None,
            scratch: Vec::with_capacity(32),
        })
    }

    /// Indexes the next staged batch (its rows follow the previous batch's).
    ///
    /// # Errors
    /// Fingerprinting or writing failed.
    pub fn append(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self
            .fingerprinted
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let fingerprints = self
            .fingerprinter
            .fingerprints(&columns, n)
            .map_err(|e| Error::internal(format!("fingerprinting: {e}")))?;
        let key_column = batch.column(self.key_column);
        let mut keys = BinaryBuilder::with_capacity(n, n * 16);
        let mut fps = FixedSizeBinaryBuilder::with_capacity(n, 16);
        let mut rows = UInt64Builder::with_capacity(n);
        for (i, fingerprint) in fingerprints.iter().enumerate() {
            if !encode_key_into(key_column.as_ref(), i, &mut self.scratch) {
                self.null_keys += 1;
                continue;
            }
            if self.sorted {
                match &mut self.previous_key {
                    Some(previous) if *previous > self.scratch => self.sorted = false,
                    Some(previous) => {
                        previous.clear();
                        previous.extend_from_slice(&self.scratch);
                    }
                    None => self.previous_key = Some(self.scratch.clone()),
                }
            }
            keys.append_value(&self.scratch);
            fps.append_value(fingerprint.0.to_be_bytes())
                .map_err(|e| Error::internal(format!("key index: {e}")))?;
            rows.append_value(self.rows + i as u64);
        }
        self.rows += n as u64;
        let written = rows.len();
        if written == 0 {
            return Ok(());
        }
        self.entries += written as u64;
        let index_batch = RecordBatch::try_new(
            Arc::clone(&self.schema),
            vec![
                Arc::new(keys.finish()),
                Arc::new(fps.finish()),
                Arc::new(rows.finish()),
            ],
        )
        .map_err(|e| Error::internal(format!("key index: {e}")))?;
        self.writer
            .write(&index_batch)
            .map_err(|e| io_error(&self.path, e))
    }

    /// Closes the file.
    ///
    /// # Errors
    /// Writing the file's footer failed.
    pub fn finish(mut self) -> Result<KeyIndex, Error> {
        self.writer.finish().map_err(|e| io_error(&self.path, e))?;
        Ok(KeyIndex {
            path: self.path,
            rows: self.rows,
            entries: self.entries,
            null_keys: self.null_keys,
            sorted: self.sorted,
        })
    }
}

/// A complete key index.
#[derive(Debug, Clone)]
pub struct KeyIndex {
    /// The index file.
    pub path: PathBuf,
    /// Rows of the extract (indexed or not).
    pub rows: u64,
    /// Rows indexed (those with a non-null key).
    pub entries: u64,
    /// Rows whose key was null (not indexed).
    pub null_keys: u64,
    /// Whether the extract arrived in key order (equal keys adjacent), so the index needs no
    /// sort.
    pub sorted: bool,
}

impl KeyIndex {
    /// Reads the index in key order: as written when the extract came sorted, otherwise
    /// through a sort in `ctx` (which bounds its memory and spills).
    ///
    /// # Errors
    /// The file cannot be opened or the sort cannot be planned.
    pub async fn read_in_key_order(&self, ctx: &SessionContext) -> Result<KeyOrder, Error> {
        if self.sorted {
            let file = File::open(&self.path).map_err(|e| io_error(&self.path, e))?;
            let reader = FileReader::try_new(BufReader::with_capacity(1 << 20, file), None)
                .map_err(|e| io_error(&self.path, e))?;
            return Ok(KeyOrder::AsWritten(Box::new(reader)));
        }
        let options = ArrowReadOptions {
            file_extension: "",
            ..Default::default()
        };
        let stream = ctx
            .read_arrow(self.path.display().to_string(), options)
            .await
            .and_then(|df| df.sort(vec![col(KEY).sort(true, false)]))
            .map_err(|e| Error::internal(format!("planning the key index sort: {e}")))?
            .execute_stream()
            .await
            .map_err(|e| Error::internal(format!("sorting the key index: {e}")))?;
        Ok(KeyOrder::Sorted(stream))
    }
}

/// The index's entries in key order, batch by batch.
pub enum KeyOrder {
    /// The file itself (the extract was in key order).
    AsWritten(Box<FileReader<BufReader<File>>>),
    /// A sort of it.
    Sorted(SendableRecordBatchStream),
}

impl std::fmt::Debug for KeyOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOrder::AsWritten(_) => f.write_str("KeyOrder::AsWritten"),
            KeyOrder::Sorted(_) => f.write_str("KeyOrder::Sorted"),
        }
    }
}

/// One batch of index entries, in key order.
#[derive(Debug)]
pub struct IndexBatch {
    keys: BinaryArray,
    fingerprints: FixedSizeBinaryArray,
    rows: UInt64Array,
}

impl IndexBatch {
    fn try_new(batch: &RecordBatch) -> Option<IndexBatch> {
        if batch.num_columns() != 3 || batch.columns().iter().any(|c| c.null_count() > 0) {
            return None;
        }
        let fingerprints = batch.column(1).as_fixed_size_binary_opt()?;
        if fingerprints.value_length() != 16 {
            return None;
        }
        Some(IndexBatch {
            keys: batch.column(0).as_binary_opt::<i32>()?.clone(),
            fingerprints: fingerprints.clone(),
            rows: batch.column(2).as_primitive_opt::<UInt64Type>()?.clone(),
        })
    }

    /// Entries in the batch.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the batch has no entries.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Entry `i`: encoded key, fingerprint and row number.
    pub fn entry(&self, i: usize) -> (&[u8], Fingerprint, u64) {
        let mut fp = [0u8; 16];
        fp.copy_from_slice(self.fingerprints.value(i));
        (
            self.keys.value(i),
            Fingerprint(u128::from_be_bytes(fp)),
            self.rows.value(i),
        )
    }
}

impl KeyOrder {
    /// The next batch, `None` at the end.
    ///
    /// # Errors
    /// Reading or sorting failed.
    pub async fn next(&mut self) -> Option<Result<IndexBatch, Error>> {
        let batch = match self {
            KeyOrder::AsWritten(reader) => reader
                .next()?
                .map_err(|e| Error::internal(format!("reading the key index: {e}"))),
            KeyOrder::Sorted(stream) => stream
                .next()
                .await?
                .map_err(|e| Error::internal(format!("sorting the key index: {e}"))),
        };
        Some(batch.and_then(|batch| {
            IndexBatch::try_new(&batch)
                .ok_or_else(|| Error::internal("the key index has an unexpected layout"))
        }))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};

    use super::*;
    use crate::model::plan::session_context;

    fn batch(ids: Vec<Option<i64>>, names: Vec<&str>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    async fn entries(index: &KeyIndex) -> Vec<(Vec<u8>, u64)> {
        let ctx = session_context(16 << 20, None).unwrap();
        let mut order = index.read_in_key_order(&ctx).await.unwrap();
        let mut out = Vec::new();
        while let Some(b) = order.next().await {
            let b = b.unwrap();
            for i in 0..b.len() {
                let (k, _, r) = b.entry(i);
                out.push((k.to_vec(), r));
            }
        }
        out
    }

    fn writer(dir: &Path) -> KeyIndexWriter {
        let b = batch(vec![], vec![]);
        let fp = Fingerprinter::new(&[DataType::Utf8], b"m").unwrap();
        KeyIndexWriter::create(&dir.join("keys"), &b.schema(), 0, vec![1], fp).unwrap()
    }

    #[tokio::test]
    async fn sorted_extract_needs_no_sort_and_nulls_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        w.append(&batch(vec![Some(1), None, Some(3)], vec!["a", "b", "c"]))
            .unwrap();
        w.append(&batch(vec![Some(3), Some(7)], vec!["d", "e"]))
            .unwrap();
        let index = w.finish().unwrap();
        assert!(index.sorted);
        assert_eq!((index.rows, index.entries, index.null_keys), (5, 4, 1));
        let rows: Vec<u64> = entries(&index).await.into_iter().map(|e| e.1).collect();
        assert_eq!(rows, vec![0, 2, 3, 4]);
    }

    #[tokio::test]
    async fn unsorted_extract_is_read_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        w.append(&batch(vec![Some(5), Some(-2)], vec!["a", "b"]))
            .unwrap();
        w.append(&batch(
            vec![Some(9), Some(0), Some(-7)],
            vec!["c", "d", "e"],
        ))
        .unwrap();
        let index = w.finish().unwrap();
        assert!(!index.sorted);
        let got = entries(&index).await;
        let rows: Vec<u64> = got.iter().map(|e| e.1).collect();
        assert_eq!(rows, vec![4, 1, 3, 0, 2]);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[tokio::test]
    async fn fingerprints_match_the_fingerprinter() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        let b = batch(vec![Some(1), Some(2)], vec!["x", "y"]);
        w.append(&b).unwrap();
        let index = w.finish().unwrap();
        let fp = Fingerprinter::new(&[DataType::Utf8], b"m").unwrap();
        let expected = fp.fingerprints(&[Arc::clone(b.column(1))], 2).unwrap();
        let ctx = session_context(16 << 20, None).unwrap();
        let mut order = index.read_in_key_order(&ctx).await.unwrap();
        let got = order.next().await.unwrap().unwrap();
        assert_eq!(got.entry(0).1, expected[0]);
        assert_eq!(got.entry(1).1, expected[1]);
    }
}
