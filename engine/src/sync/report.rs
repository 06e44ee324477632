//! The report step: a run's final status and error from how it ended and what its counts say.
//!
//! - `Succeeded`: every selected record was delivered and nothing was rejected or held back.
//! - `PartiallyFailed`: the run completed, but some rows were rejected (null or duplicate
//!   keys), records failed, or deletes were held back by the safety stop.
//! - `Failed`: the run stopped on an error, or completed without delivering any of the records
//!   it selected (the error then says why the destination took none).
//! - `Cancelled`: `CancelSyncRun`.

use chrono::Utc;

use crate::error::Error;
use crate::sync::run::{RunStage, RunStatus, SyncRun};

/// Settles a run's status, error and counts from its result, and marks it done.
pub fn finish(run: &mut SyncRun, result: Result<(), Error>) {
    // Anything selected but never settled (cancelled or aborted mid-way) counts as failed.
    let settled = run.counts.delivered + run.counts.failed + run.counts.given_up;
    if run.counts.selected > settled {
        run.counts.failed += run.counts.selected - settled;
    }
    let c = run.counts;
    if c.given_up > 0 {
        run.warnings.push(format!(
            "{} records given up by earlier runs were not sent (unchanged since); list them with `retl sync failures {} --given-up`, send them again with `retl sync retry {}`",
            c.given_up, run.mapping_id, run.mapping_id
        ));
    }
    if c.newly_given_up > 0 {
        run.warnings.push(format!(
            "{} records failed in as many runs or for as long as the mapping's retry policy allows and are given up: later runs skip them until they change; see `retl sync failures {} --given-up`",
            c.newly_given_up, run.mapping_id
        ));
    }
    run.status = match &result {
        Ok(()) if c.selected > 0 && c.delivered == 0 && c.failed > 0 => RunStatus::Failed,
        Ok(()) if c.failed > 0 || c.deletes_held_back > 0 || c.rejected > 0 => {
            RunStatus::PartiallyFailed
        }
        Ok(()) => RunStatus::Succeeded,
        Err(Error::Cancelled { .. }) => RunStatus::Cancelled,
        Err(_) => RunStatus::Failed,
    };
    match result {
        Err(e) => {
            tracing::warn!(run_id = %run.id, error = %e, "sync run did not complete");
            run.error = Some(e.to_string());
        }
        Ok(()) if run.status == RunStatus::Failed => {
            let last = run
                .record_errors
                .iter()
                .rev()
                .find(|e| e.stage == "deliver")
                .or(run.record_errors.last())
                .map(|e| format!("; the last error (record {}): {}", e.key, e.reason))
                .unwrap_or_default();
            run.error = Some(format!(
                "none of the {} selected records was delivered{last}",
                c.selected
            ));
        }
        Ok(()) => {}
    }
    run.stage = RunStage::Done;
    run.end_time = Some(Utc::now());
    // Logged before the final snapshot is published, so a watcher that saw the end can rely
    // on the log line being there.
    tracing::info!(
        status = run.status.as_str(),
        extracted = run.counts.extracted,
        delivered = run.counts.delivered,
        failed = run.counts.failed,
        "sync run ended"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::MappingId;
    use crate::sync::run::RecordError;

    fn run() -> SyncRun {
        SyncRun::queued(MappingId::new("m"), "manual")
    }

    #[test]
    fn all_delivered_is_success_and_rejected_rows_are_partial() {
        let mut r = run();
        r.counts.selected = 3;
        r.counts.delivered = 3;
        finish(&mut r, Ok(()));
        assert_eq!(r.status, RunStatus::Succeeded);
        let mut r = run();
        r.counts.selected = 3;
        r.counts.delivered = 3;
        r.counts.rejected = 1;
        finish(&mut r, Ok(()));
        assert_eq!(r.status, RunStatus::PartiallyFailed);
        assert_eq!(r.stage, RunStage::Done);
    }

    #[test]
    fn nothing_delivered_fails_with_the_reason() {
        let mut r = run();
        r.counts.selected = 50;
        r.counts.failed = 50;
        r.push_record_error(RecordError {
            key: "1".into(),
            change: None,
            stage: "deliver".into(),
            reason: "could not connect to 127.0.0.1:9: connection refused".into(),
        });
        finish(&mut r, Ok(()));
        assert_eq!(r.status, RunStatus::Failed);
        let error = r.error.unwrap();
        assert!(
            error.contains("none of the 50") && error.contains("127.0.0.1:9"),
            "{error}"
        );
    }

    #[test]
    fn unsettled_records_count_as_failed_and_errors_are_kept() {
        let mut r = run();
        r.counts.selected = 10;
        r.counts.delivered = 4;
        finish(
            &mut r,
            Err(Error::Cancelled {
                reason: "asked".into(),
            }),
        );
        assert_eq!(r.status, RunStatus::Cancelled);
        assert_eq!(r.counts.failed, 6);
        assert!(r.error.unwrap().contains("asked"));
    }
}
