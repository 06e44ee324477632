//! [`MarkedRecords`]: the map step's input — the rows the diff marked, read back from the
//! staged extract, each with its key, change, fingerprint and payload (or why it cannot be
//! mapped). A run sends them; a dry run and `retl.diff` only look at them.

use std::sync::Arc;

use crate::destination::spec::{ChangeKind, Payload};
use crate::diff::changed::ChangedRows;
use crate::diff::key::{decode_key, encode_key_into};
use crate::error::Error;
use crate::staging::read::StagedRows;
use crate::state::Fingerprint;
use crate::sync::extract::{Extract, Fingerprinted, fingerprinted};

/// One marked row, mapped.
#[derive(Debug)]
pub struct MarkedRecord {
    /// The encoded key.
    pub key: Vec<u8>,
    /// Added or updated.
    pub change: ChangeKind,
    /// The fingerprint of its mapped values.
    pub fingerprint: Fingerprint,
    /// The payload (its `fingerprint` set), or why the row cannot be mapped.
    pub payload: Result<Payload, String>,
}

/// The marked rows of an extract, a staged batch at a time.
pub struct MarkedRecords<'a> {
    extract: &'a Extract,
    rows: Option<StagedRows>,
    kinds: Box<dyn Iterator<Item = ChangeKind> + Send + 'a>,
    fp: Fingerprinted,
}

impl std::fmt::Debug for MarkedRecords<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarkedRecords").finish_non_exhaustive()
    }
}

impl<'a> MarkedRecords<'a> {
    /// Opens the rows of `extract` marked in `changed`; `unique_id` is the model's key column.
    ///
    /// # Errors
    /// The staged file cannot be opened, or lacks a column the plan reads.
    pub async fn open(
        extract: &'a Extract,
        changed: &'a ChangedRows,
        unique_id: &str,
    ) -> Result<MarkedRecords<'a>, Error> {
        let schema = Arc::clone(&extract.staged.schema);
        let fp = fingerprinted(&schema, unique_id, &extract.plan)?;
        let rows = if changed.marked() == 0 {
            None
        } else {
            let mut wanted = fp.columns.clone();
            wanted.push(fp.key_column);
            Some(StagedRows::open(&extract.staged, wanted, changed.selection()).await?)
        };
        Ok(MarkedRecords {
            extract,
            rows,
            kinds: Box::new(changed.changes()),
            fp,
        })
    }

    /// The next staged batch's marked rows, mapped; `None` after the last.
    ///
    /// # Errors
    /// A read failure, or a staged file that changed under the diff.
    pub async fn next_batch(&mut self) -> Option<Result<Vec<MarkedRecord>, Error>> {
        let columns = self.rows.as_mut()?.next().await?;
        Some(match columns {
            Ok(columns) => self.map(columns),
            Err(e) => Err(e),
        })
    }

    fn map(
        &mut self,
        mut columns: Vec<datafusion::arrow::array::ArrayRef>,
    ) -> Result<Vec<MarkedRecord>, Error> {
        let Some(key_column) = columns.pop() else {
            return Err(Error::internal(
                "the staged rows came back without their key",
            ));
        };
        let n = key_column.len();
        let fingerprints = self
            .fp
            .fingerprinter
            .fingerprints(&columns, n)
            .map_err(|e| Error::internal(format!("fingerprinting: {e}")))?;
        let plan = &self.extract.plan;
        let columns = plan.evaluate(columns)?;
        let mut out = Vec::with_capacity(n);
        for (row, fingerprint) in fingerprints.into_iter().enumerate() {
            let mut key = Vec::with_capacity(32);
            let (Some(change), true) = (
                self.kinds.next(),
                encode_key_into(key_column.as_ref(), row, &mut key),
            ) else {
                return Err(Error::internal(
                    "the staged extract changed under the diff (a marked row is missing or lost its key)",
                ));
            };
            let payload =
                plan.payload(&columns, row, decode_key(&key), change)
                    .map(|mut payload| {
                        payload.fingerprint = Some(fingerprint.0);
                        payload
                    });
            out.push(MarkedRecord {
                key,
                change,
                fingerprint,
                payload,
            });
        }
        Ok(out)
    }
}
