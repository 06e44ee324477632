//! Sync runs: status, stage, counts, timings, record errors.

use chrono::{DateTime, Utc};
use retl_engine::destination::spec::ChangeKind;
use retl_engine::sync::dry_run::DryRun;
use retl_engine::sync::run::{RecordError, RunCounts, RunStage, RunStatus, StageTimings, SyncRun};
use retl_proto::v1;

use super::timestamp;

/// A run status as proto.
pub fn run_status(s: RunStatus) -> v1::RunStatus {
    match s {
        RunStatus::Queued => v1::RunStatus::Queued,
        RunStatus::Running => v1::RunStatus::Running,
        RunStatus::Succeeded => v1::RunStatus::Succeeded,
        RunStatus::PartiallyFailed => v1::RunStatus::PartiallyFailed,
        RunStatus::Failed => v1::RunStatus::Failed,
        RunStatus::Cancelled => v1::RunStatus::Cancelled,
    }
}

/// A run stage as proto.
pub fn run_stage(s: RunStage) -> v1::RunStage {
    match s {
        RunStage::Queued => v1::RunStage::Queued,
        RunStage::Extracting => v1::RunStage::Extracting,
        RunStage::Delivering => v1::RunStage::Delivering,
        RunStage::DeliveringDeletes => v1::RunStage::DeliveringDeletes,
        RunStage::Done => v1::RunStage::Done,
    }
}

fn change_kind(c: Option<ChangeKind>) -> v1::ChangeKind {
    match c {
        None => v1::ChangeKind::Unspecified,
        Some(ChangeKind::Added) => v1::ChangeKind::Added,
        Some(ChangeKind::Updated) => v1::ChangeKind::Updated,
        Some(ChangeKind::Deleted) => v1::ChangeKind::Deleted,
    }
}

fn counts(c: RunCounts) -> v1::RunCounts {
    v1::RunCounts {
        extracted: c.extracted,
        added: c.added,
        updated: c.updated,
        unchanged: c.unchanged,
        rejected: c.rejected,
        deleted: c.deleted,
        deletes_held_back: c.deletes_held_back,
        selected: c.selected,
        not_selected: c.not_selected,
        delivered: c.delivered,
        failed: c.failed,
        given_up: c.given_up,
        newly_given_up: c.newly_given_up,
        requests: c.requests,
        request_errors: c.request_errors,
        throttled: c.throttled,
        retries: c.retries,
    }
}

/// A failed record as proto.
pub fn failed_record(r: retl_engine::sync::failures::FailedRecord) -> v1::FailedRecord {
    v1::FailedRecord {
        key: retl_engine::diff::key::key_text(&r.key),
        change: change_kind(Some(r.change)) as i32,
        attempts: r.attempts,
        first_failure_time: Some(super::timestamp(r.first_failure)),
        last_failure_time: Some(super::timestamp(r.last_failure)),
        last_run_id: r.last_run,
        last_error: r.last_error,
        given_up: r.given_up,
    }
}

fn timings(t: StageTimings) -> v1::StageTimings {
    v1::StageTimings {
        queued_ms: t.queued_ms,
        extract_ms: t.extract_ms,
        diff_ms: t.diff_ms,
        deliver_ms: t.deliver_ms,
        commit_ms: t.commit_ms,
        total_ms: t.total_ms,
        request_ms: t.request_ms,
    }
}

fn record_error(e: RecordError) -> v1::RecordError {
    v1::RecordError {
        key: e.key,
        change: change_kind(e.change) as i32,
        stage: e.stage,
        reason: e.reason,
    }
}

/// A sync run as proto.
pub fn sync_run(run: SyncRun) -> v1::SyncRun {
    v1::SyncRun {
        id: run.id.to_string(),
        mapping_id: run.mapping_id.to_string(),
        status: run_status(run.status) as i32,
        stage: run_stage(run.stage) as i32,
        trigger: run.trigger,
        create_time: Some(timestamp(run.create_time)),
        start_time: run.start_time.map(timestamp),
        end_time: run.end_time.map(timestamp),
        counts: Some(counts(run.counts)),
        timings: Some(timings(run.timings)),
        record_errors: run.record_errors.into_iter().map(record_error).collect(),
        record_errors_omitted: run.record_errors_omitted,
        error: run.error.unwrap_or_default(),
        warnings: run.warnings,
        staging_path: run.staging_path.unwrap_or_default(),
        dry_run: None,
    }
}

/// The answer to a dry run: a run that is not recorded (empty id, trigger `dry_run`) with the
/// counts a run would report and the report.
pub fn dry_run(report: DryRun, start: DateTime<Utc>, end: DateTime<Utc>) -> v1::SyncRun {
    let samples = report
        .samples
        .into_iter()
        .map(|p| v1::DryRunSample {
            change: change_kind(Some(p.change)) as i32,
            key: match p.key {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
            fields_json: serde_json::to_string(&p.fields)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
        })
        .collect();
    let total_ms = u64::try_from((end - start).num_milliseconds()).unwrap_or(0);
    v1::SyncRun {
        id: String::new(),
        mapping_id: report.mapping_id.to_string(),
        status: v1::RunStatus::Succeeded as i32,
        stage: v1::RunStage::Done as i32,
        trigger: "dry_run".to_string(),
        create_time: Some(timestamp(start)),
        start_time: Some(timestamp(start)),
        end_time: Some(timestamp(end)),
        counts: Some(counts(report.counts)),
        timings: Some(v1::StageTimings {
            extract_ms: report.extract_ms,
            diff_ms: report.diff_ms,
            total_ms,
            ..v1::StageTimings::default()
        }),
        record_errors: Vec::new(),
        record_errors_omitted: 0,
        error: String::new(),
        warnings: report.warnings,
        staging_path: report.staging_path,
        dry_run: Some(v1::DryRunReport {
            samples,
            requests: report.requests,
            eta_seconds: report.eta.seconds,
            eta_basis: report.eta.basis,
            rate_limited_seconds: report.eta.rate_limited_seconds,
            latency_bound_seconds: report.eta.latency_bound_seconds,
            mean_latency_ms: report.eta.mean_latency_ms,
            daily_request_budget: report.budget.map(|b| b.daily),
            requests_last_24h: report.requests_last_24h,
            over_budget: report
                .budget
                .is_some_and(|b| b.exceeded_by(report.requests)),
        }),
    }
}

/// Whether a proto run status has ended.
pub fn is_terminal(status: v1::RunStatus) -> bool {
    !matches!(
        status,
        v1::RunStatus::Unspecified | v1::RunStatus::Queued | v1::RunStatus::Running
    )
}

/// An explanation of one record as proto.
pub fn explanation(e: retl_engine::sync::explain::Explanation) -> v1::RecordExplanation {
    let hex = |f: retl_engine::state::Fingerprint| format!("{:032x}", f.0);
    v1::RecordExplanation {
        mapping_id: e.mapping_id.to_string(),
        key: e.key,
        verdict: e.verdict.as_str().to_string(),
        reason: e.reason,
        extract_run_id: e.extract.run_id,
        extract_time: e.extract.time.map(timestamp),
        rows_in_extract: e.rows_in_extract,
        last_seen_run_id: e
            .last_seen_in
            .as_ref()
            .map(|k| k.run_id.clone())
            .unwrap_or_default(),
        last_seen_time: e.last_seen_in.and_then(|k| k.time).map(timestamp),
        left_run_id: e
            .left_with
            .as_ref()
            .map(|k| k.run_id.clone())
            .unwrap_or_default(),
        left_time: e.left_with.and_then(|k| k.time).map(timestamp),
        extract_fingerprint: e.extract_fingerprint.map(hex).unwrap_or_default(),
        state: e.state.map(|s| v1::RecordState {
            fingerprint: hex(s.fingerprint),
            run_id: s.run_id.unwrap_or_default(),
            synced_time: s.synced_at.map(timestamp),
            sent: s.sent,
        }),
        failure: e.failure.map(failed_record),
        next_change: change_kind(e.next_change) as i32,
        next_outcome: e.next_outcome.unwrap_or_default().to_string(),
        payload_fields_json: e
            .payload
            .map(|p| serde_json::to_string(&p.fields).unwrap_or_default())
            .unwrap_or_default(),
        errors: e
            .errors
            .into_iter()
            .map(|k| v1::RunRecordError {
                run_id: k.run_id,
                stage: k.stage,
                reason: k.reason,
            })
            .collect(),
        blockers: e.blockers,
        detail: e.detail.unwrap_or_default(),
    }
}
