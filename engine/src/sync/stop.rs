//! [`RunStop`]: how a run is told to stop, and why.
//!
//! Two levels: *stopping* (read and send nothing new; let the requests in flight finish and
//! commit what they acknowledge) and *aborting* (also give up the requests in flight). A
//! `CancelSyncRun` and a stalled run abort at once; a daemon shutting down stops, and aborts
//! only when its grace period is over. The first reason given is the one the run reports.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::Error;

/// Why a run was told to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// `CancelSyncRun` was called.
    Cancelled,
    /// The daemon is shutting down.
    ShuttingDown,
    /// The watchdog saw no progress: the stage, what it waited on, and for how long.
    Stalled {
        /// The stage, e.g. `extracting`.
        stage: &'static str,
        /// What the run was waiting on.
        waiting_on: String,
        /// The configured stall timeout.
        after: Duration,
    },
}

/// The stop handle of one run; clones share it.
#[derive(Debug, Clone)]
pub struct RunStop {
    stopping: CancellationToken,
    aborting: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl Default for RunStop {
    fn default() -> Self {
        RunStop::new()
    }
}

impl RunStop {
    /// A handle nobody has stopped yet.
    pub fn new() -> Self {
        let aborting = CancellationToken::new();
        RunStop {
            // Aborting implies stopping.
            stopping: aborting.child_token(),
            aborting,
            reason: Arc::new(Mutex::new(None)),
        }
    }

    fn give(&self, reason: StopReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(reason);
    }

    /// `CancelSyncRun`: stop now, giving up the requests in flight.
    pub fn cancel(&self) {
        self.give(StopReason::Cancelled);
        self.aborting.cancel();
    }

    /// Shutdown: send nothing new, let the requests in flight finish.
    pub fn shut_down(&self) {
        self.give(StopReason::ShuttingDown);
        self.stopping.cancel();
    }

    /// The shutdown grace period is over: give up the requests in flight too.
    pub fn abort(&self) {
        self.give(StopReason::ShuttingDown);
        self.aborting.cancel();
    }

    /// The watchdog saw no progress.
    pub fn stall(&self, stage: &'static str, waiting_on: String, after: Duration) {
        self.give(StopReason::Stalled {
            stage,
            waiting_on,
            after,
        });
        self.aborting.cancel();
    }

    /// Cancelled when the run must read and send nothing new.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    /// Cancelled when the run must also give up its requests in flight.
    pub fn aborting(&self) -> &CancellationToken {
        &self.aborting
    }

    /// Whether the run was told to stop.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Why the run was told to stop, if it was.
    pub fn reason(&self) -> Option<StopReason> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The error a stopped run ends with (`None` while nobody stopped it).
    pub fn error(&self) -> Option<Error> {
        Some(match self.reason()? {
            StopReason::Cancelled => Error::Cancelled {
                reason: "CancelSyncRun was called".to_string(),
            },
            StopReason::ShuttingDown => Error::Cancelled {
                reason: "the daemon is shutting down; acknowledged records were committed and the rest will be sent by the next run".to_string(),
            },
            StopReason::Stalled {
                stage,
                waiting_on,
                after,
            } => Error::Stalled {
                message: format!(
                    "the run made no progress for {} while {stage}: it was waiting on {waiting_on}; acknowledged records were committed and the rest will be sent by the next run (the limit is `retl serve --stall-timeout`)",
                    humantime_secs(after)
                ),
            },
        })
    }
}

/// `90 s`, `10 min`, `1.5 s`.
fn humantime_secs(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 60.0 && d.as_secs().is_multiple_of(60) {
        format!("{} min", d.as_secs() / 60)
    } else if secs.fract() == 0.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{secs:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_stops_without_aborting_and_abort_implies_stop() {
        let stop = RunStop::new();
        stop.shut_down();
        assert!(stop.is_stopping());
        assert!(!stop.aborting().is_cancelled());
        stop.abort();
        assert!(stop.aborting().is_cancelled());
        assert_eq!(stop.reason(), Some(StopReason::ShuttingDown));
        assert!(matches!(stop.error(), Some(Error::Cancelled { .. })));
    }

    #[test]
    fn the_first_reason_wins_and_a_stall_names_stage_and_wait() {
        let stop = RunStop::new();
        assert!(stop.error().is_none());
        stop.stall(
            "extracting",
            "the source 'wh'".into(),
            Duration::from_secs(600),
        );
        stop.cancel();
        assert!(stop.stopping().is_cancelled());
        let text = stop.error().unwrap().to_string();
        assert!(
            text.contains("no progress for 10 min while extracting")
                && text.contains("waiting on the source 'wh'"),
            "{text}"
        );
        let cancelled = RunStop::new();
        cancelled.cancel();
        assert!(cancelled.stopping().is_cancelled());
        assert_eq!(cancelled.reason(), Some(StopReason::Cancelled));
    }
}
