//! The identities every finished run's counts keep.

use retl_proto::v1;

/// Checks the identities of a finished run's counts (README, "SQL over staging"): every
/// extracted row is added, updated, unchanged or rejected; every selected record is delivered,
/// failed or skipped as given up. Runs that stopped early (failed, cancelled) are not checked.
pub fn assert_counts_add_up(run: &v1::SyncRun) {
    if !matches!(
        run.status(),
        v1::RunStatus::Succeeded | v1::RunStatus::PartiallyFailed
    ) {
        return;
    }
    let c = run.counts.unwrap_or_default();
    assert_eq!(
        c.extracted,
        c.added + c.updated + c.unchanged + c.rejected,
        "extracted = added + updated + unchanged + rejected: {run:?}"
    );
    assert_eq!(
        c.selected,
        c.delivered + c.failed + c.given_up,
        "selected = delivered + failed + given_up: {run:?}"
    );
}
