//! [`SortMergeDiffer`]: merges a key-ordered index of the extract with a mapping's
//! [`StateStore`].
//!
//! Rules (DESIGN.md, "Change detection"):
//! - a null key is rejected per row (the key index does not hold them; see
//!   [`null_key_reason`]);
//! - a key occurring more than once is rejected for every row that has it, and its state entry
//!   is left untouched (neither updated nor deleted);
//! - a state key absent from the extract is reported deleted; the caller must act on deletes
//!   only once the extract is known complete.

use std::collections::VecDeque;

use crate::destination::spec::ChangeKind;
use crate::diff::fingerprint::Fingerprint;
use crate::diff::key::key_text;
use crate::error::Error;
use crate::id::MappingId;
use crate::state::{StateError, StateStore};

/// State entries read per page: each page opens an iterator and seeks, so pages are large
/// (about 2 MB of keys and fingerprints).
const STATE_PAGE: usize = 32 * 1024;

/// What the differ found, handed over as it is found.
pub trait DiffSink {
    /// Row `row` (of the extract) is new (`Added`) or differs from the state (`Updated`).
    ///
    /// # Errors
    /// The sink's own failure; it stops the diff.
    fn changed(
        &mut self,
        change: ChangeKind,
        key: &[u8],
        row: u64,
        fingerprint: Fingerprint,
    ) -> Result<(), Error>;
    /// A state key is missing from the extract.
    ///
    /// # Errors
    /// The sink's own failure; it stops the diff.
    fn deleted(&mut self, key: &[u8]) -> Result<(), Error>;
    /// A row will not be sent: `key` is its key's text, `reason` why.
    fn rejected(&mut self, key: String, reason: String);
}

/// Why a row with a null unique id is rejected.
pub fn null_key_reason(unique_id: &str) -> String {
    format!(
        "unique id column '{unique_id}' is null; rows without an id cannot be synced (filter them out in the model or fix the data)"
    )
}

/// The rows of one key seen so far.
struct Group {
    key: Vec<u8>,
    count: usize,
    row: u64,
    fingerprint: Fingerprint,
}

/// The differ for one mapping and one run.
pub struct SortMergeDiffer<'a> {
    state: &'a dyn StateStore,
    mapping: MappingId,
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
    /// A differ over `mapping`'s state.
    pub fn new(state: &'a dyn StateStore, mapping: MappingId) -> Self {
        SortMergeDiffer {
            state,
            mapping,
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

    /// Feeds the next row in key order: its encoded key, extract row number and fingerprint.
    ///
    /// # Errors
    /// A state read failure, a sink failure, or keys out of order (a bug: the index must be
    /// read in key order).
    pub fn push(
        &mut self,
        key: &[u8],
        row: u64,
        fingerprint: Fingerprint,
        sink: &mut dyn DiffSink,
    ) -> Result<(), Error> {
        match &mut self.group {
            Some(g) if g.key == key => {
                g.count += 1;
                return Ok(());
            }
            Some(g) if g.key.as_slice() > key => {
                return Err(Error::internal(format!(
                    "extract not sorted by key: '{}' after '{}'",
                    key_text(key),
                    key_text(&g.key)
                )));
            }
            _ => {}
        }
        let next = Group {
            key: key.to_vec(),
            count: 1,
            row,
            fingerprint,
        };
        if let Some(done) = self.group.replace(next) {
            self.finish_group(done, sink)?;
        }
        Ok(())
    }

    fn finish_group(&mut self, group: Group, sink: &mut dyn DiffSink) -> Result<(), Error> {
        let mut stored = None;
        while let Some((skey, sfp)) = self.peek_state()? {
            if *skey < group.key {
                if let Some((key, _)) = self.page.pop_front() {
                    sink.deleted(&key)?;
                }
            } else {
                if *skey == group.key {
                    stored = Some(*sfp);
                    self.page.pop_front();
                }
                break;
            }
        }
        if group.count > 1 {
            let n = group.count;
            let text = key_text(&group.key);
            for _ in 0..n {
                sink.rejected(
                    text.clone(),
                    format!(
                        "unique id '{text}' occurs {n} times in the extract; ids must be unique (deduplicate in the model); this key's sync state is left untouched"
                    ),
                );
            }
            return Ok(());
        }
        match stored {
            None => sink.changed(ChangeKind::Added, &group.key, group.row, group.fingerprint)?,
            Some(fp) if fp == group.fingerprint => self.unchanged += 1,
            Some(_) => sink.changed(
                ChangeKind::Updated,
                &group.key,
                group.row,
                group.fingerprint,
            )?,
        }
        Ok(())
    }

    /// Ends the extract: settles the last key group and reports every remaining state key as
    /// deleted. Call only after the whole extract was pushed.
    ///
    /// # Errors
    /// A state read failure or a sink failure.
    pub fn finish(&mut self, sink: &mut dyn DiffSink) -> Result<(), Error> {
        if let Some(g) = self.group.take() {
            self.finish_group(g, sink)?;
        }
        while self.peek_state()?.is_some() {
            if let Some((key, _)) = self.page.pop_front() {
                sink.deleted(&key)?;
            }
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

    /// An encoded string key (tag 0x03 + UTF-8).
    fn k(s: &str) -> Vec<u8> {
        let mut v = vec![0x03];
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[derive(Default)]
    struct Events(Vec<String>);

    impl DiffSink for Events {
        fn changed(
            &mut self,
            change: ChangeKind,
            key: &[u8],
            row: u64,
            _fingerprint: Fingerprint,
        ) -> Result<(), Error> {
            self.0
                .push(format!("{}:{}@{row}", change.as_str(), key_text(key)));
            Ok(())
        }
        fn deleted(&mut self, key: &[u8]) -> Result<(), Error> {
            self.0.push(format!("deleted:{}", key_text(key)));
            Ok(())
        }
        fn rejected(&mut self, key: String, _reason: String) {
            self.0.push(format!("rejected:{key}"));
        }
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
        let mut d = SortMergeDiffer::new(&state, m);
        let mut out = Events::default();
        // a unchanged, b updated, c missing (deleted), d duplicated (untouched), e added.
        for (key, row, fp) in [
            ("a", 0, 1),
            ("b", 1, 20),
            ("d", 5, 4),
            ("d", 2, 4),
            ("e", 3, 5),
        ] {
            d.push(&k(key), row, Fingerprint(fp), &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        assert_eq!(
            out.0,
            vec![
                "updated:b@1",
                "deleted:c",
                "rejected:d",
                "rejected:d",
                "added:e@3",
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
        let mut d = SortMergeDiffer::new(&state, MappingId::new("m"));
        let mut out = Events::default();
        d.push(&k("b"), 0, Fingerprint(1), &mut out).unwrap();
        let err = d.push(&k("a"), 1, Fingerprint(2), &mut out);
        assert!(err.is_err());
    }
}
