//! When each alert condition holds, judged from a finished run's record.

use crate::alert::{AlertCondition, AlertPolicy};
use crate::sync::run::{RunStatus, SyncRun};

/// A condition's verdict for one run: `Some((firing, message))`, or `None` when the run says
/// nothing about it (e.g. a failed extract says nothing about failed records).
pub type Verdict = Option<(bool, String)>;

/// The verdict of `condition` for the finished `run`; `given_up_left` says whether the
/// mapping still has given-up records.
pub fn judge(
    condition: AlertCondition,
    run: &SyncRun,
    policy: &AlertPolicy,
    given_up_left: bool,
) -> Verdict {
    let c = &run.counts;
    // A cancelled run proves nothing either way.
    if run.status == RunStatus::Cancelled {
        return None;
    }
    let reached_delivery = run.status != RunStatus::Failed || c.selected > 0;
    match condition {
        AlertCondition::RunFailed => Some(match run.status {
            RunStatus::Failed => (
                true,
                format!(
                    "run {} failed: {}",
                    run.id,
                    run.error.as_deref().unwrap_or("see the run's record")
                ),
            ),
            _ => (
                false,
                format!("run {} ended {}", run.id, run.status.as_str()),
            ),
        }),
        AlertCondition::FailedRecords if reached_delivery && c.selected > 0 => {
            let share = c.failed as f64 / c.selected as f64;
            let text = format!(
                "{} of {} selected records failed ({:.1} %, threshold {:.1} %); see `retl sync failures {}`",
                c.failed,
                c.selected,
                share * 100.0,
                policy.failed_record_share * 100.0,
                run.mapping_id
            );
            Some((share > policy.failed_record_share, text))
        }
        AlertCondition::FailedRecords if reached_delivery => {
            Some((false, "no record was selected".to_string()))
        }
        AlertCondition::FailedRecords => None,
        AlertCondition::MassDeleteHeld if reached_delivery => Some(if c.deletes_held_back > 0 {
            (
                true,
                format!(
                    "{} deletes were held back by the mass-delete safety stop; check the model, then run `retl sync run {} --confirm-mass-delete`",
                    c.deletes_held_back, run.mapping_id
                ),
            )
        } else {
            (false, "no delete was held back".to_string())
        }),
        AlertCondition::MassDeleteHeld => None,
        AlertCondition::RecordsGivenUp => Some(if given_up_left {
            (
                true,
                format!(
                    "records were given up after the mapping's retry policy ({} in this run); see `retl sync failures {} --given-up`",
                    c.newly_given_up, run.mapping_id
                ),
            )
        } else {
            (false, "no record is given up any more".to_string())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::MappingId;

    fn run(status: RunStatus, selected: u64, failed: u64, held: u64) -> SyncRun {
        let mut r = SyncRun::queued(MappingId::new("m"), "manual");
        r.status = status;
        r.counts.selected = selected;
        r.counts.failed = failed;
        r.counts.delivered = selected - failed;
        r.counts.deletes_held_back = held;
        r
    }

    #[test]
    fn conditions_follow_the_counts_and_a_cancelled_run_says_nothing() {
        let p = AlertPolicy::default();
        let firing = |c, r: &SyncRun, left| judge(c, r, &p, left).map(|v| v.0);
        let failed = run(RunStatus::Failed, 0, 0, 0);
        assert_eq!(
            firing(AlertCondition::RunFailed, &failed, false),
            Some(true)
        );
        assert_eq!(firing(AlertCondition::FailedRecords, &failed, false), None);
        let ok = run(RunStatus::PartiallyFailed, 100, 11, 5);
        assert_eq!(firing(AlertCondition::RunFailed, &ok, false), Some(false));
        let (fires, text) = judge(AlertCondition::FailedRecords, &ok, &p, false).unwrap();
        assert!(fires && text.contains("11 of 100"), "{text}");
        let few = run(RunStatus::PartiallyFailed, 100, 10, 0);
        assert_eq!(
            firing(AlertCondition::FailedRecords, &few, false),
            Some(false)
        );
        assert_eq!(
            firing(AlertCondition::MassDeleteHeld, &ok, false),
            Some(true)
        );
        assert_eq!(
            firing(AlertCondition::RecordsGivenUp, &ok, true),
            Some(true)
        );
        let cancelled = run(RunStatus::Cancelled, 10, 10, 0);
        for c in AlertCondition::ALL {
            assert!(judge(c, &cancelled, &p, true).is_none());
        }
    }
}
