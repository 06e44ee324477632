//! Live progress of a sync run (`WatchSyncRun` -> indicatif spinner) and the run summary.

use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use retl_proto::v1;

use crate::cli::output::duration_ms;
use crate::cli::{CliError, Client};
use crate::grpc::convert::is_terminal;

/// A count with thousands separators: `1,234,567`.
pub fn n(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The diff's line of a run's counts: extracted, added, updated, deleted, unchanged, rejected.
pub fn diff_counts(c: &v1::RunCounts) -> String {
    format!(
        "  extracted {}  added {}  updated {}  deleted {}  unchanged {}  rejected {}\n",
        n(c.extracted),
        n(c.added),
        n(c.updated),
        n(c.deleted),
        n(c.unchanged),
        n(c.rejected)
    )
}

/// The lower-case name of a run status, e.g. `partially_failed`.
pub fn status_name(status: i32) -> &'static str {
    match v1::RunStatus::try_from(status) {
        Ok(v1::RunStatus::Queued) => "queued",
        Ok(v1::RunStatus::Running) => "running",
        Ok(v1::RunStatus::Succeeded) => "succeeded",
        Ok(v1::RunStatus::PartiallyFailed) => "partially_failed",
        Ok(v1::RunStatus::Failed) => "failed",
        Ok(v1::RunStatus::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

/// The lower-case name of a run stage, e.g. `delivering`.
pub fn stage_name(stage: i32) -> &'static str {
    match v1::RunStage::try_from(stage) {
        Ok(v1::RunStage::Queued) => "queued",
        Ok(v1::RunStage::Extracting) => "extracting",
        Ok(v1::RunStage::Delivering) => "delivering",
        Ok(v1::RunStage::DeliveringDeletes) => "delivering deletes",
        Ok(v1::RunStage::Done) => "done",
        _ => "unknown",
    }
}

fn progress_message(run: &v1::SyncRun) -> String {
    let c = run.counts.unwrap_or_default();
    match v1::RunStage::try_from(run.stage) {
        Ok(v1::RunStage::Queued) | Err(_) => "queued".to_string(),
        Ok(v1::RunStage::Extracting) => format!("extracting: {} rows", n(c.extracted)),
        _ => format!(
            "{}: extracted {} | added {} updated {} deleted {} | delivered {}/{} failed {}",
            stage_name(run.stage),
            n(c.extracted),
            n(c.added),
            n(c.updated),
            n(c.deleted),
            n(c.delivered),
            n(c.selected),
            n(c.failed),
        ),
    }
}

/// Watches a run until it ends; shows a spinner with its stage and counts when `show` is set
/// (indicatif hides it when stderr is not a terminal). Returns the final snapshot.
///
/// # Errors
/// The daemon's answer, or an error when the stream ends before the run did.
pub async fn watch(client: &Client, run_id: &str, show: bool) -> Result<v1::SyncRun, CliError> {
    let bar = if show {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed}] {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut stream = client
        .syncs()
        .watch_sync_run(v1::WatchSyncRunRequest {
            run_id: run_id.to_string(),
        })
        .await?
        .into_inner();
    let mut last: Option<v1::SyncRun> = None;
    while let Some(message) = stream.next().await {
        let Some(run) = message?.run else {
            continue;
        };
        bar.set_message(progress_message(&run));
        let done = is_terminal(run.status());
        last = Some(run);
        if done {
            break;
        }
    }
    bar.finish_and_clear();
    match last {
        Some(run) if is_terminal(run.status()) => Ok(run),
        _ => Err(CliError::Api(tonic::Status::unavailable(format!(
            "the daemon stopped streaming run {run_id} before it ended; check it with `retl sync get {run_id}`"
        )))),
    }
}

/// A multi-line summary of a run: status, counts, timings, warnings, the first errors.
pub fn summary(run: &v1::SyncRun) -> String {
    let c = run.counts.unwrap_or_default();
    let t = run.timings.unwrap_or_default();
    let mut out = format!(
        "run {} of mapping {}: {} ({})\n",
        run.id,
        run.mapping_id,
        status_name(run.status),
        duration_ms(t.total_ms)
    );
    out.push_str(&diff_counts(&c));
    out.push_str(&format!(
        "  selected {}  delivered {}  failed {}  not selected {}",
        n(c.selected),
        n(c.delivered),
        n(c.failed),
        n(c.not_selected)
    ));
    if c.deletes_held_back > 0 {
        out.push_str(&format!("  deletes held back {}", n(c.deletes_held_back)));
    }
    if c.given_up > 0 {
        out.push_str(&format!("  skipped (given up) {}", n(c.given_up)));
    }
    if c.newly_given_up > 0 {
        out.push_str(&format!(
            "  given up now {} (retl sync failures {})",
            n(c.newly_given_up),
            run.mapping_id
        ));
    }
    out.push('\n');
    if c.requests > 0 {
        out.push_str(&format!(
            "  requests {}  errors {}  throttled {}  retries {}\n",
            n(c.requests),
            n(c.request_errors),
            n(c.throttled),
            n(c.retries)
        ));
    }
    out.push_str(&format!(
        "  timings: extract {}  diff {}  deliver {}  commit {}  total {}\n",
        duration_ms(t.extract_ms),
        duration_ms(t.diff_ms),
        duration_ms(t.deliver_ms),
        duration_ms(t.commit_ms),
        duration_ms(t.total_ms)
    ));
    if !run.error.is_empty() {
        out.push_str(&format!("  error: {}\n", run.error));
    }
    for w in &run.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    const SHOWN: usize = 10;
    for e in run.record_errors.iter().take(SHOWN) {
        out.push_str(&format!("  record {} ({}): {}\n", e.key, e.stage, e.reason));
    }
    let more = (run.record_errors.len().saturating_sub(SHOWN) as u64) + run.record_errors_omitted;
    if more > 0 {
        out.push_str(&format!(
            "  ... and {} more record errors (retl sync get {} --output json)\n",
            n(more),
            run.id
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands() {
        assert_eq!(n(0), "0");
        assert_eq!(n(999), "999");
        assert_eq!(n(1000), "1,000");
        assert_eq!(n(1_234_567), "1,234,567");
    }

    #[test]
    fn summary_mentions_counts() {
        let run = v1::SyncRun {
            id: "r".into(),
            mapping_id: "m".into(),
            status: v1::RunStatus::Succeeded as i32,
            counts: Some(v1::RunCounts {
                added: 1500,
                delivered: 1500,
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = summary(&run);
        assert!(s.contains("succeeded"));
        assert!(s.contains("added 1,500"));
    }
}
