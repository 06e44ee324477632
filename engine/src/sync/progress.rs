//! [`Progress`]: a run's record as it goes — saved to the run history at every stage change and
//! published to watchers (throttled to ten snapshots a second). The hook metrics will use.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::sync::history::RunHistory;
use crate::sync::run::{RunStage, SyncRun};

/// Shortest interval between two published snapshots, except forced ones.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// The live record of one run.
#[derive(Debug)]
pub struct Progress {
    /// The record; steps update its counts, timings, warnings and errors directly.
    pub run: SyncRun,
    tx: watch::Sender<SyncRun>,
    history: RunHistory,
    last_publish: Instant,
}

impl Progress {
    /// Progress of `run`, published on `tx` and saved to `history`.
    pub fn new(run: SyncRun, tx: watch::Sender<SyncRun>, history: RunHistory) -> Self {
        Progress {
            run,
            tx,
            history,
            last_publish: Instant::now(),
        }
    }

    /// Publishes a snapshot unless one went out less than 100 ms ago.
    pub fn publish(&mut self) {
        if self.last_publish.elapsed() >= PUBLISH_INTERVAL {
            self.publish_now();
        }
    }

    /// Publishes a snapshot now.
    pub fn publish_now(&mut self) {
        self.tx.send_replace(self.run.clone());
        self.last_publish = Instant::now();
    }

    /// Saves the record to the run history and publishes it.
    pub fn save(&mut self) {
        if let Err(e) = self.history.put(&self.run) {
            tracing::error!(run_id = %self.run.id, error = %e, "could not save the run record");
        }
        self.publish_now();
    }

    /// Enters a stage (saved and published).
    pub fn set_stage(&mut self, stage: RunStage) {
        self.run.stage = stage;
        self.save();
    }

    /// A sender for counts updated from elsewhere (the extract's row count while staging).
    pub fn sender(&self) -> watch::Sender<SyncRun> {
        self.tx.clone()
    }

    /// The run history (for per-mapping markers).
    pub fn history(&self) -> &RunHistory {
        &self.history
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::MappingId;
    use crate::store::Store;
    use crate::sync::run::RunStatus;

    #[test]
    fn stage_changes_are_saved_and_published_and_counts_are_throttled() {
        let dir = tempfile::tempdir().unwrap();
        let history = RunHistory::new(Store::open(dir.path()).unwrap());
        let run = SyncRun::queued(MappingId::new("m"), "manual");
        let (tx, rx) = watch::channel(run.clone());
        let mut p = Progress::new(run, tx, history.clone());
        p.run.status = RunStatus::Running;
        p.set_stage(RunStage::Extracting);
        assert_eq!(rx.borrow().stage, RunStage::Extracting);
        let id = p.run.id.to_string();
        assert_eq!(
            history.get(&id).unwrap().unwrap().stage,
            RunStage::Extracting
        );
        p.run.counts.extracted = 5;
        p.publish();
        assert_eq!(rx.borrow().counts.extracted, 0, "throttled within 100 ms");
        p.publish_now();
        assert_eq!(rx.borrow().counts.extracted, 5);
    }
}
