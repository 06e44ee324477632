//! The progress watchdog of a run: when the run's live record (its stage and counts) has not
//! moved for the stall timeout, the run is stopped with a message naming the stage and what it
//! was waiting on. Progress is what the record shows (rows staged, rows compared, records sent
//! and committed), so every stage is covered without beats sprinkled through the code.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::sync::run::SyncRun;
use crate::sync::stop::RunStop;

/// What the run is waiting on now, set by the runner as it moves between steps.
#[derive(Debug, Clone, Default)]
pub struct WaitingOn(Arc<Mutex<String>>);

impl WaitingOn {
    /// Records what the run waits on from now.
    pub fn set(&self, what: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = what.into();
    }

    /// What the run waits on.
    pub fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Watches `record` until the run ends or stops; stops it (`RunStop::stall`) after `timeout`
/// without progress. Queued runs are not watched: waiting for a slot is not a stall.
pub fn spawn(
    mut record: watch::Receiver<SyncRun>,
    timeout: Duration,
    waiting_on: WaitingOn,
    stop: RunStop,
) -> JoinHandle<()> {
    let tick = (timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    tokio::spawn(async move {
        let mut seen = {
            let r = record.borrow();
            (r.stage, r.counts)
        };
        let mut last_move = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.stopping().cancelled() => return,
            }
            // A closed channel: the run has ended.
            if record.has_changed().is_err() {
                return;
            }
            let (stage, counts, status) = {
                let r = record.borrow_and_update();
                (r.stage, r.counts, r.status)
            };
            if status.is_terminal() {
                return;
            }
            if (stage, counts) != seen || stage == crate::sync::run::RunStage::Queued {
                seen = (stage, counts);
                last_move = Instant::now();
                continue;
            }
            if last_move.elapsed() >= timeout {
                tracing::warn!(stage = stage.as_str(), waiting_on = %waiting_on.get(), "sync run made no progress; stopping it");
                stop.stall(stage.as_str(), waiting_on.get(), timeout);
                return;
            }
        }
    })
}
