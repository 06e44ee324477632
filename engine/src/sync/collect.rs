//! [`ChangeCollector`]: where the differ's findings go during a run — the select step. Rows to
//! send are marked (and read back from the staged extract afterwards), changes the mapping does
//! not send go to the state, deleted keys to the spill file, rejections to the run record.

use tokio_util::sync::CancellationToken;

use crate::destination::spec::ChangeKind;
use crate::diff::DiffSink;
use crate::diff::changed::ChangedRows;
use crate::diff::deletes::DeleteSpillWriter;
use crate::error::Error;
use crate::mapping::select::Selector;
use crate::state::{Fingerprint, StateWrite};
use crate::sync::commit::Committer;
use crate::sync::progress::Progress;
use crate::sync::run::RecordError;

/// The diff sink of one run.
pub struct ChangeCollector<'a> {
    /// The run's record.
    pub progress: &'a mut Progress,
    /// The state writer (for changes not sent).
    pub committer: &'a mut Committer,
    /// Which changes are sent.
    pub selector: Selector,
    /// The rows to send, by extract row number.
    pub changed: ChangedRows,
    /// The deleted keys.
    pub deletes: DeleteSpillWriter,
    /// The run's cancellation.
    pub cancel: &'a CancellationToken,
}

impl DiffSink for ChangeCollector<'_> {
    fn changed(
        &mut self,
        change: ChangeKind,
        key: &[u8],
        row: u64,
        fingerprint: Fingerprint,
    ) -> Result<(), Error> {
        let counts = &mut self.progress.run.counts;
        match change {
            ChangeKind::Added => counts.added += 1,
            _ => counts.updated += 1,
        }
        if self.selector.sends(change) {
            counts.selected += 1;
            self.changed.mark(row, change);
            Ok(())
        } else {
            counts.not_selected += 1;
            let synced_by = self.committer.synced_by(false);
            self.committer.not_sent(StateWrite::Put {
                key: key.to_vec(),
                fingerprint,
                synced_by,
            })
        }
    }

    fn deleted(&mut self, key: &[u8]) -> Result<(), Error> {
        self.progress.run.counts.deleted += 1;
        self.deletes.push(key)
    }

    fn rejected(&mut self, key: String, reason: String) {
        let run = &mut self.progress.run;
        run.counts.rejected += 1;
        run.push_record_error(RecordError {
            key,
            change: None,
            stage: "validate".to_string(),
            reason,
        });
    }

    fn checkpoint(&mut self, unchanged: u64) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled {
                reason: "CancelSyncRun was called".to_string(),
            });
        }
        self.progress.run.counts.unchanged = unchanged;
        self.progress.publish();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::id::MappingId;
    use crate::mapping::select::RecordSelection;
    use crate::state::StateStore;
    use crate::state::rocks::RocksStateStore;
    use crate::store::Store;
    use crate::sync::history::RunHistory;
    use crate::sync::run::SyncRun;

    #[test]
    fn selected_rows_are_marked_and_the_rest_advance_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let state = Arc::new(RocksStateStore::new(store.clone()));
        let m = MappingId::new("m");
        let run = SyncRun::queued(m.clone(), "manual");
        let (tx, _rx) = tokio::sync::watch::channel(run.clone());
        let mut progress = Progress::new(run, tx, RunHistory::new(store));
        let mut committer = Committer::new(
            Arc::clone(&state) as Arc<dyn StateStore>,
            m.clone(),
            progress.run.id.as_str(),
        );
        let cancel = CancellationToken::new();
        let only_added = RecordSelection {
            added: true,
            updated: false,
            deleted: false,
        };
        let mut c = ChangeCollector {
            progress: &mut progress,
            committer: &mut committer,
            selector: Selector::new(only_added, false),
            changed: ChangedRows::new(4),
            deletes: DeleteSpillWriter::create(&dir.path().join("d")).unwrap(),
            cancel: &cancel,
        };
        c.changed(ChangeKind::Added, b"a", 0, Fingerprint(1))
            .unwrap();
        c.changed(ChangeKind::Updated, b"b", 2, Fingerprint(2))
            .unwrap();
        c.deleted(b"z").unwrap();
        c.rejected("<null>".into(), "null".into());
        c.checkpoint(7).unwrap();
        assert_eq!(c.changed.marked(), 1);
        assert_eq!(c.changed.get(0), Some(ChangeKind::Added));
        assert_eq!(c.deletes.count(), 1);
        cancel.cancel();
        assert!(c.checkpoint(7).is_err(), "a cancelled run stops the diff");
        let counts = progress.run.counts;
        assert_eq!(
            (
                counts.added,
                counts.updated,
                counts.selected,
                counts.not_selected
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(
            (counts.deleted, counts.rejected, counts.unchanged),
            (1, 1, 7)
        );
        committer.flush_not_sent().unwrap();
        assert_eq!(state.fingerprint(&m, b"b").unwrap(), Some(Fingerprint(2)));
        assert_eq!(
            state.fingerprint(&m, b"a").unwrap(),
            None,
            "sent, not yet acknowledged"
        );
    }
}
