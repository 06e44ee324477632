//! [`LocalDiffer`]: the [`Differ`] over the local [`StateStore`]: the extract's key index, sorted
//! by key unless it arrived in key order, merged with the state ([`SortMergeDiffer`]).
//!
//! Rules (DESIGN.md, "Change detection"):
//! - a null key is rejected per row (the key index does not hold them, only their count);
//! - a key occurring more than once is rejected for every row that has it, and its state entry
//!   is left untouched (neither updated nor deleted);
//! - a state key absent from the extract is reported deleted; the caller must act on deletes
//!   only once the extract is known complete.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::destination::spec::ChangeKind;
use crate::diff::key::key_text;
use crate::diff::validate::{NULL_KEY_TEXT, duplicate_key_reason, null_key_reason};
use crate::diff::{DiffInput, DiffSink, DiffSummary, Differ};
use crate::error::Error;
use crate::id::MappingId;
use crate::model::plan::session_context;
use crate::state::{Fingerprint, StateError, StateStore};

/// State entries read per page: each page opens an iterator and seeks, so pages are large
/// (about 2 MB of keys and fingerprints).
const STATE_PAGE: usize = 32 * 1024;

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
                sink.rejected(text.clone(), duplicate_key_reason(&text, n));
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

/// The differ over the local state store.
pub struct LocalDiffer {
    state: Arc<dyn StateStore>,
    sort_memory_bytes: usize,
    spill_dir: PathBuf,
}

impl std::fmt::Debug for LocalDiffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDiffer")
            .field("spill_dir", &self.spill_dir)
            .finish_non_exhaustive()
    }
}

impl LocalDiffer {
    /// A differ over `state`; sorting a key index that did not arrive in key order may use
    /// `sort_memory_bytes` before it spills to `spill_dir`.
    pub fn new(state: Arc<dyn StateStore>, sort_memory_bytes: usize, spill_dir: PathBuf) -> Self {
        LocalDiffer {
            state,
            sort_memory_bytes,
            spill_dir,
        }
    }
}

#[async_trait]
impl Differ for LocalDiffer {
    async fn diff(
        &self,
        input: DiffInput<'_>,
        sink: &mut dyn DiffSink,
    ) -> Result<DiffSummary, Error> {
        let index = input.index;
        let reason = null_key_reason(input.unique_id);
        for _ in 0..index.null_keys {
            sink.rejected(NULL_KEY_TEXT.to_string(), reason.clone());
        }
        let ctx = session_context(self.sort_memory_bytes, Some(&self.spill_dir))?;
        tracing::debug!(
            rows = index.rows,
            in_key_order = index.sorted,
            "merging the key index with the state (sorted first unless the extract came in key order)"
        );
        let mut order = index.read_in_key_order(&ctx).await?;
        let mut differ = SortMergeDiffer::new(self.state.as_ref(), input.mapping.clone());
        while let Some(batch) = order.next().await {
            sink.checkpoint(differ.unchanged)?;
            let batch = batch?;
            for i in 0..batch.len() {
                let (key, fingerprint, row) = batch.entry(i);
                differ.push(key, row, fingerprint, sink)?;
            }
        }
        differ.finish(sink)?;
        sink.checkpoint(differ.unchanged)?;
        Ok(DiffSummary {
            unchanged: differ.unchanged,
            state_keys: differ.state_keys,
        })
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
        fn checkpoint(&mut self, _unchanged: u64) -> Result<(), Error> {
            Ok(())
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
            synced_by: None,
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

    struct LocalUnderTest {
        dir: tempfile::TempDir,
        state: Arc<RocksStateStore>,
        differ: LocalDiffer,
    }

    impl LocalUnderTest {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let state = Arc::new(RocksStateStore::new(
                Store::open(&dir.path().join("db")).unwrap(),
            ));
            let differ = LocalDiffer::new(
                Arc::clone(&state) as Arc<dyn StateStore>,
                16 * 1024 * 1024,
                dir.path().to_path_buf(),
            );
            LocalUnderTest { dir, state, differ }
        }
    }

    #[async_trait]
    impl crate::diff::conformance::DifferUnderTest for LocalUnderTest {
        fn state(&self) -> &dyn StateStore {
            self.state.as_ref()
        }
        async fn run(
            &self,
            mapping: &MappingId,
            rows: &[crate::diff::conformance::Row<'_>],
            sink: &mut crate::diff::conformance::Found,
        ) -> Result<DiffSummary, Error> {
            use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
            use datafusion::arrow::datatypes::{DataType, Field, Schema};
            let schema = Arc::new(Schema::new(vec![
                Field::new("id", DataType::Utf8, true),
                Field::new("v", DataType::Int64, false),
            ]));
            let path = self.dir.path().join(format!("{mapping}.keys"));
            let fingerprinter =
                crate::diff::fingerprint::Fingerprinter::new(&[DataType::Int64], b"v").unwrap();
            let mut writer = crate::diff::index::KeyIndexWriter::create(
                &path,
                &schema,
                0,
                vec![1],
                fingerprinter,
            )?;
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(rows.iter().map(|(k, _)| *k).collect::<StringArray>()),
                    Arc::new(rows.iter().map(|(_, v)| *v).collect::<Int64Array>()),
                ],
            )
            .unwrap();
            writer.append(&batch)?;
            let index = writer.finish()?;
            let input = DiffInput {
                mapping,
                unique_id: "id",
                index: &index,
            };
            self.differ.diff(input, sink).await
        }
    }

    #[tokio::test]
    async fn local_differ_passes_the_differ_conformance_suite() {
        crate::diff::conformance::run_all(&LocalUnderTest::new())
            .await
            .unwrap();
    }
}
