//! [`SortMergeDiffer`]: merges a key-sorted extract with a mapping's [`StateStore`].
//!
//! Rules (DESIGN.md, "Change detection"):
//! - a null key is rejected per row;
//! - a key occurring more than once is rejected for every row that has it, and its state entry
//!   is left untouched (neither updated nor deleted);
//! - a state key absent from the extract is reported deleted; the caller must act on deletes
//!   only once the extract is known complete.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;

use crate::destination::spec::ChangeKind;
use crate::diff::fingerprint::Fingerprint;
use crate::diff::key::key_text;
use crate::error::Error;
use crate::id::MappingId;
use crate::state::{StateError, StateStore};

const STATE_PAGE: usize = 4096;

/// The columns of one extract batch that payloads are built from.
#[derive(Debug)]
pub struct BatchColumns {
    /// The mapping plan's columns, in plan order.
    pub columns: Vec<ArrayRef>,
}

/// A row of an extract batch.
#[derive(Debug, Clone)]
pub struct RowRef {
    /// The batch.
    pub batch: Arc<BatchColumns>,
    /// Row index within it.
    pub row: usize,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
}

/// What the differ found.
#[derive(Debug)]
pub enum DiffEvent {
    /// A row to send (or to record as synced when not selected).
    Changed {
        /// `Added` or `Updated`.
        change: ChangeKind,
        /// Encoded key.
        key: Vec<u8>,
        /// The row.
        row: RowRef,
    },
    /// A row that will not be sent.
    Rejected {
        /// Key text (`<null>` for a null key).
        key: String,
        /// Why.
        reason: String,
    },
    /// A state key missing from the extract.
    Deleted {
        /// Encoded key.
        key: Vec<u8>,
    },
}

struct Group {
    key: Vec<u8>,
    rows: Vec<RowRef>,
}

/// The differ for one mapping and one run.
pub struct SortMergeDiffer<'a> {
    state: &'a dyn StateStore,
    mapping: MappingId,
    unique_id: String,
    page: VecDeque<(Vec<u8>, Fingerprint)>,
    after: Option<Vec<u8>>,
    state_done: bool,
    group: Option<Group>,
    /// Keys read from the state so far (all of them once `finish` returned).
    pub state_keys: u64,
    /// Rows whose fingerprint matched the state.
    pub unchanged: u64,
}

impl std::fmt::Debug for SortMergeDiffer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SortMergeDiffer")
            .field("mapping", &self.mapping)
            .finish_non_exhaustive()
    }
}

impl<'a> SortMergeDiffer<'a> {
    /// A differ over `mapping`'s state; `unique_id` names the key column in messages.
    pub fn new(state: &'a dyn StateStore, mapping: MappingId, unique_id: &str) -> Self {
        SortMergeDiffer {
            state,
            mapping,
            unique_id: unique_id.to_string(),
            page: VecDeque::new(),
            after: None,
            state_done: false,
            group: None,
            state_keys: 0,
            unchanged: 0,
        }
    }

    fn peek_state(&mut self) -> Result<Option<&(Vec<u8>, Fingerprint)>, StateError> {
        if self.page.is_empty() && !self.state_done {
            let page = self
                .state
                .scan_page(&self.mapping, self.after.as_deref(), STATE_PAGE)?;
            if page.len() < STATE_PAGE {
                self.state_done = true;
            }
            if let Some((last, _)) = page.last() {
                self.after = Some(last.clone());
            }
            self.state_keys += page.len() as u64;
            self.page.extend(page);
        }
        Ok(self.page.front())
    }

    /// Feeds the rows of one batch, in key order: `keys[i]` (None = null) and `rows[i]`.
    ///
    /// # Errors
    /// A state read failure, or keys out of order (a bug: the extract must be sorted).
    pub fn push(
        &mut self,
        keys: Vec<Option<Vec<u8>>>,
        rows: Vec<RowRef>,
        out: &mut Vec<DiffEvent>,
    ) -> Result<(), Error> {
        for (key, row) in keys.into_iter().zip(rows) {
            let Some(key) = key else {
                out.push(DiffEvent::Rejected {
                    key: "<null>".to_string(),
                    reason: format!(
                        "unique id column '{}' is null; rows without an id cannot be synced (filter them out in the model or fix the data)",
                        self.unique_id
                    ),
                });
                continue;
            };
            match &mut self.group {
                Some(g) if g.key == key => g.rows.push(row),
                Some(g) if g.key > key => {
                    return Err(Error::internal(format!(
                        "extract not sorted by key: '{}' after '{}'",
                        key_text(&key),
                        key_text(&g.key)
                    )));
                }
                _ => {
                    if let Some(done) = self.group.replace(Group {
                        key,
                        rows: vec![row],
                    }) {
                        self.finish_group(done, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish_group(&mut self, group: Group, out: &mut Vec<DiffEvent>) -> Result<(), Error> {
        let mut stored = None;
        while let Some((skey, sfp)) = self.peek_state()? {
            if *skey < group.key {
                let key = skey.clone();
                self.page.pop_front();
                out.push(DiffEvent::Deleted { key });
            } else {
                if *skey == group.key {
                    stored = Some(*sfp);
                    self.page.pop_front();
                }
                break;
            }
        }
        if group.rows.len() > 1 {
            let n = group.rows.len();
            let text = key_text(&group.key);
            for _ in 0..n {
                out.push(DiffEvent::Rejected {
                    key: text.clone(),
                    reason: format!(
                        "unique id '{text}' occurs {n} times in the extract; ids must be unique (deduplicate in the model); this key's sync state is left untouched"
                    ),
                });
            }
            return Ok(());
        }
        let Some(row) = group.rows.into_iter().next() else {
            return Ok(());
        };
        match stored {
            None => out.push(DiffEvent::Changed {
                change: ChangeKind::Added,
                key: group.key,
                row,
            }),
            Some(fp) if fp == row.fingerprint => self.unchanged += 1,
            Some(_) => out.push(DiffEvent::Changed {
                change: ChangeKind::Updated,
                key: group.key,
                row,
            }),
        }
        Ok(())
    }

    /// Ends the extract: settles the last key group and reports every remaining state key as
    /// deleted. Call only after the whole extract was pushed.
    pub fn finish(&mut self, out: &mut Vec<DiffEvent>) -> Result<(), Error> {
        if let Some(g) = self.group.take() {
            self.finish_group(g, out)?;
        }
        while let Some((key, _)) = self.peek_state()? {
            let key = key.clone();
            self.page.pop_front();
            out.push(DiffEvent::Deleted { key });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateWrite;
    use crate::state::rocks::RocksStateStore;
    use crate::store::Store;

    fn row(fp: u128) -> RowRef {
        RowRef {
            batch: Arc::new(BatchColumns { columns: vec![] }),
            row: 0,
            fingerprint: Fingerprint(fp),
        }
    }

    /// An encoded string key (tag 0x03 + UTF-8).
    fn k(s: &str) -> Vec<u8> {
        let mut v = vec![0x03];
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn classifies_added_updated_unchanged_deleted_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let state = RocksStateStore::new(Store::open(dir.path()).unwrap());
        let m = MappingId::new("m");
        let put = |key: &str, fp| StateWrite::Put {
            key: k(key),
            fingerprint: Fingerprint(fp),
        };
        state
            .commit(
                &m,
                &[
                    put("a", 1),
                    put("b", 2),
                    put("c", 3),
                    put("d", 4),
                    put("z", 9),
                ],
            )
            .unwrap();
        let mut d = SortMergeDiffer::new(&state, m, "id");
        let mut out = Vec::new();
        // a unchanged, b updated, c missing (deleted), d duplicated (untouched), e added, null rejected.
        d.push(
            vec![None, Some(k("a")), Some(k("b")), Some(k("d"))],
            vec![row(0), row(1), row(20), row(4)],
            &mut out,
        )
        .unwrap();
        d.push(
            vec![Some(k("d")), Some(k("e"))],
            vec![row(4), row(5)],
            &mut out,
        )
        .unwrap();
        d.finish(&mut out).unwrap();
        let summary: Vec<String> = out
            .iter()
            .map(|e| match e {
                DiffEvent::Changed { change, key, .. } => {
                    format!("{}:{}", change.as_str(), key_text(key))
                }
                DiffEvent::Rejected { key, .. } => format!("rejected:{key}"),
                DiffEvent::Deleted { key } => format!("deleted:{}", key_text(key)),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                "rejected:<null>",
                "updated:b",
                "deleted:c",
                "rejected:d",
                "rejected:d",
                "added:e",
                "deleted:z"
            ]
        );
        assert_eq!(d.unchanged, 1);
        assert_eq!(d.state_keys, 5);
    }

    #[test]
    fn unsorted_input_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let state = RocksStateStore::new(Store::open(dir.path()).unwrap());
        let mut d = SortMergeDiffer::new(&state, MappingId::new("m"), "id");
        let mut out = Vec::new();
        let err = d.push(
            vec![Some(k("b")), Some(k("a"))],
            vec![row(1), row(2)],
            &mut out,
        );
        assert!(err.is_err());
    }
}
