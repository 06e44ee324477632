//! [`Committer`]: the single writer of a mapping's sync state during a run.
//!
//! Commit after acknowledgement: a record's new fingerprint (or its removal) is written only
//! once the destination accepted it. Changes the mapping does not send advance the state too,
//! in chunks. A rejected or failed record leaves its state as it was, so the next run finds it
//! changed again and sends it again; the [`FailureLedger`] counts those runs and gives a record
//! up by the mapping's retry policy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::delivery::{BatchDelivery, Delivered};
use crate::destination::DestinationError;
use crate::destination::spec::ChangeKind;
use crate::diff::key::key_text;
use crate::error::Error;
use crate::id::MappingId;
use crate::state::{Fingerprint, RunStamp, StateStore, StateWrite, SyncedBy};
use crate::sync::failures::{FailedRecord, Failure, FailureLedger, RetryPolicy, is_given_up};
use crate::sync::run::{RecordError, SyncRun};

/// Not-sent state writes are committed in chunks of this size.
const NOT_SENT_CHUNK: usize = 4096;

/// A record sent to the destination, waiting for its outcome.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its encoded key.
    pub key: Vec<u8>,
    /// The fingerprint to store once accepted; `None` for a delete.
    pub fingerprint: Option<Fingerprint>,
    /// What changed.
    pub change: ChangeKind,
}

/// The failure ledger of a run: where failures are counted, what it held at the start, and
/// when to give up.
#[derive(Debug)]
pub struct Ledger {
    /// The ledger.
    pub ledger: FailureLedger,
    /// The mapping's failed records, by encoded key (loaded at the start, kept up to date).
    pub known: HashMap<Vec<u8>, FailedRecord>,
    /// When records are given up.
    pub policy: RetryPolicy,
}

/// Writes a mapping's state for one run.
pub struct Committer {
    state: Arc<dyn StateStore>,
    mapping: MappingId,
    /// The run, recorded with every entry it writes.
    run: Option<RunStamp>,
    not_sent: Vec<StateWrite>,
    ledger: Option<Ledger>,
    /// Failures waiting to be recorded in the ledger (written in chunks).
    failures: Vec<Failure>,
    /// Time spent writing the state.
    pub time: Duration,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("mapping", &self.mapping)
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// The committer of `mapping`'s state for the run `run_id` (recorded with every entry
    /// it writes).
    pub fn new(state: Arc<dyn StateStore>, mapping: MappingId, run_id: &str) -> Self {
        Committer {
            state,
            mapping,
            run: RunStamp::of(run_id),
            not_sent: Vec::new(),
            ledger: None,
            failures: Vec::new(),
            time: Duration::ZERO,
        }
    }

    /// What an entry this run writes records about it: `sent` when the destination
    /// acknowledged the record, not when the run advanced the state without sending it.
    pub fn synced_by(&self, sent: bool) -> Option<SyncedBy> {
        self.run.map(|run| SyncedBy { run, sent })
    }

    /// Counts failures across runs in `ledger` (and skips what it gave up).
    pub fn set_ledger(&mut self, ledger: Ledger) {
        self.ledger = Some(ledger);
    }

    /// Whether `key` was given up with these values (`None` = a delete): the run skips it.
    pub fn given_up(&self, key: &[u8], fingerprint: Option<u128>) -> bool {
        self.ledger
            .as_ref()
            .is_some_and(|l| is_given_up(&l.known, key, fingerprint))
    }

    /// Records failed records in the ledger, in chunks (the rest at [`Committer::sync`]).
    pub fn failed(&mut self, failures: Vec<Failure>, run: &mut SyncRun) {
        if self.ledger.is_none() {
            return;
        }
        self.failures.extend(failures);
        if self.failures.len() >= NOT_SENT_CHUNK {
            self.flush_failures(run);
        }
    }

    /// Writes the buffered failures to the ledger (a warning on `run` when it cannot be
    /// written; records given up now are counted).
    fn flush_failures(&mut self, run: &mut SyncRun) {
        let Some(l) = self.ledger.as_mut() else {
            return;
        };
        if self.failures.is_empty() {
            return;
        }
        let failures = std::mem::take(&mut self.failures);
        let run_id = run.id.to_string();
        match l.ledger.record(
            &self.mapping,
            &run_id,
            failures,
            &mut l.known,
            l.policy,
            chrono::Utc::now(),
        ) {
            Ok(0) => {}
            Ok(n) => run.counts.newly_given_up += n,
            Err(e) => run.warnings.push(format!(
                "could not record failed records for retry accounting: {e}"
            )),
        }
    }

    /// Records a change the mapping does not send (committed in chunks).
    ///
    /// # Errors
    /// Committing a full chunk failed.
    pub fn not_sent(&mut self, write: StateWrite) -> Result<(), Error> {
        self.not_sent.push(write);
        if self.not_sent.len() >= NOT_SENT_CHUNK {
            self.flush_not_sent()?;
        }
        Ok(())
    }

    /// Commits the not-sent changes gathered so far.
    ///
    /// # Errors
    /// The state store failed.
    pub fn flush_not_sent(&mut self) -> Result<(), Error> {
        if self.not_sent.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        let writes = std::mem::take(&mut self.not_sent);
        self.state.commit(&self.mapping, &writes)?;
        self.time += t.elapsed();
        Ok(())
    }

    /// Applies one settled request: counts and record errors go to `run`, accepted records to
    /// the state. Returns the failure that must stop the run, if the request had one.
    pub fn settle(
        &mut self,
        items: Vec<Pending>,
        delivery: BatchDelivery,
        run: &mut SyncRun,
    ) -> Option<DestinationError> {
        let requests = delivery.requests;
        run.counts.requests += requests.sent;
        run.counts.request_errors += requests.errors;
        run.counts.throttled += requests.throttled;
        run.counts.retries += requests.retries;
        run.timings.request_ms += requests.elapsed_ms;
        let mut writes = Vec::new();
        let mut failures = Vec::new();
        let synced_by = self.synced_by(true);
        for (item, outcome) in items.into_iter().zip(delivery.outcomes) {
            match outcome {
                Delivered::Accepted => {
                    run.counts.delivered += 1;
                    writes.push(match item.fingerprint {
                        Some(fingerprint) => StateWrite::Put {
                            key: item.key,
                            fingerprint,
                            synced_by,
                        },
                        None => StateWrite::Delete { key: item.key },
                    });
                }
                Delivered::Rejected(reason) | Delivered::Failed(reason) => {
                    run.counts.failed += 1;
                    run.push_record_error(RecordError {
                        key: key_text(&item.key),
                        change: Some(item.change),
                        stage: "deliver".to_string(),
                        reason: reason.clone(),
                    });
                    failures.push(Failure {
                        key: item.key,
                        change: item.change,
                        fingerprint: item.fingerprint.map(|f| f.0),
                        reason,
                    });
                }
            }
        }
        self.failed(failures, run);
        self.flush_failures(run);
        if let Some(l) = self.ledger.as_mut() {
            let keys = writes.iter().map(|w| match w {
                StateWrite::Put { key, .. } | StateWrite::Delete { key } => key.as_slice(),
            });
            if let Err(e) = l.ledger.delivered(&self.mapping, keys, &mut l.known) {
                run.warnings.push(format!(
                    "could not clear delivered records from the failure list: {e}"
                ));
            }
        }
        let t = Instant::now();
        if let Err(e) = self.state.commit(&self.mapping, &writes) {
            tracing::error!(run_id = %run.id, error = %e, "could not commit acknowledged records; they will be sent again");
            run.counts.delivered -= writes.len() as u64;
            run.counts.failed += writes.len() as u64;
            run.warnings
                .push(format!("committing acknowledged records failed: {e}"));
        }
        self.time += t.elapsed();
        delivery.fatal
    }

    /// Makes every commit of the run durable against a power loss; a failure is a warning
    /// (the records would only be sent again).
    pub fn sync(&mut self, run: &mut SyncRun) {
        self.flush_failures(run);
        let t = Instant::now();
        if let Err(e) = self.state.sync() {
            tracing::error!(run_id = %run.id, error = %e, "could not sync the state to disk");
            run.warnings.push(format!(
                "syncing the state to disk failed ({e}); after a power loss some records may be sent again"
            ));
        }
        self.time += t.elapsed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::rocks::RocksStateStore;
    use crate::store::Store;

    const RUN_ID: &str = "01a22fa7-7b67-70d3-8ec8-6c6cf55959e4";

    fn pending(key: &[u8], fp: Option<u128>, change: ChangeKind) -> Pending {
        Pending {
            key: key.to_vec(),
            fingerprint: fp.map(Fingerprint),
            change,
        }
    }

    #[test]
    fn only_accepted_records_advance_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(RocksStateStore::new(Store::open(dir.path()).unwrap()));
        let m = MappingId::new("m");
        state
            .commit(
                &m,
                &[StateWrite::Put {
                    key: b"gone".to_vec(),
                    fingerprint: Fingerprint(9),
                    synced_by: None,
                }],
            )
            .unwrap();
        let mut committer =
            Committer::new(Arc::clone(&state) as Arc<dyn StateStore>, m.clone(), RUN_ID);
        let mut run = SyncRun::queued(m.clone(), "manual");
        let items = vec![
            pending(b"a", Some(1), ChangeKind::Added),
            pending(b"b", Some(2), ChangeKind::Updated),
            pending(b"c", Some(3), ChangeKind::Added),
            pending(b"gone", None, ChangeKind::Deleted),
        ];
        let delivery = BatchDelivery {
            outcomes: vec![
                Delivered::Accepted,
                Delivered::Rejected("bad email".into()),
                Delivered::Failed("timed out".into()),
                Delivered::Accepted,
            ],
            fatal: None,
            requests: Default::default(),
        };
        assert!(committer.settle(items, delivery, &mut run).is_none());
        assert_eq!((run.counts.delivered, run.counts.failed), (2, 2));
        assert_eq!(run.record_errors.len(), 2);
        assert_eq!(state.fingerprint(&m, b"a").unwrap(), Some(Fingerprint(1)));
        assert_eq!(state.fingerprint(&m, b"b").unwrap(), None);
        assert_eq!(state.fingerprint(&m, b"c").unwrap(), None);
        assert_eq!(state.fingerprint(&m, b"gone").unwrap(), None);
    }

    #[test]
    fn not_sent_changes_are_committed_on_flush() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(RocksStateStore::new(Store::open(dir.path()).unwrap()));
        let m = MappingId::new("m");
        let mut committer =
            Committer::new(Arc::clone(&state) as Arc<dyn StateStore>, m.clone(), RUN_ID);
        committer
            .not_sent(StateWrite::Put {
                key: b"x".to_vec(),
                fingerprint: Fingerprint(7),
                synced_by: None,
            })
            .unwrap();
        assert_eq!(state.fingerprint(&m, b"x").unwrap(), None);
        committer.flush_not_sent().unwrap();
        assert_eq!(state.fingerprint(&m, b"x").unwrap(), Some(Fingerprint(7)));
    }
}
