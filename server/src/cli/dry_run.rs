//! `retl sync run <mapping> --dry-run`: what a run would do, printed for people or as JSON.

use retl_proto::v1;

use crate::cli::output::duration_ms;
use crate::cli::progress::{diff_counts, n};

fn change_name(change: i32) -> &'static str {
    match v1::ChangeKind::try_from(change) {
        Ok(v1::ChangeKind::Added) => "added",
        Ok(v1::ChangeKind::Updated) => "updated",
        Ok(v1::ChangeKind::Deleted) => "deleted",
        _ => "unknown",
    }
}

/// The report for people.
pub fn summary(run: &v1::SyncRun) -> String {
    let c = run.counts.unwrap_or_default();
    let t = run.timings.unwrap_or_default();
    let report = run.dry_run.clone().unwrap_or_default();
    let mut out = format!(
        "dry run of mapping {}: nothing sent, no state changed ({})\n",
        run.mapping_id,
        duration_ms(t.total_ms)
    );
    let extract = if t.extract_ms > 0 {
        format!("staged now in {}", duration_ms(t.extract_ms))
    } else {
        "the latest staged extract".to_string()
    };
    out.push_str(&format!("  extract: {extract} ({})\n", run.staging_path));
    out.push_str(&diff_counts(&c));
    out.push_str(&format!(
        "  would send {}  not selected {}  unmappable {}  skipped (given up) {}",
        n(c.selected
            .saturating_sub(c.given_up)
            .saturating_sub(c.failed)),
        n(c.not_selected),
        n(c.failed),
        n(c.given_up)
    ));
    if c.deletes_held_back > 0 {
        out.push_str(&format!("  deletes held back {}", n(c.deletes_held_back)));
    }
    out.push('\n');
    out.push_str(&format!(
        "  requests {}  ETA {}\n    ({})\n",
        n(report.requests),
        duration_ms((report.eta_seconds * 1000.0).round() as u64),
        report.eta_basis
    ));
    match report.daily_request_budget {
        Some(budget) => out.push_str(&format!(
            "  daily request budget {}: {} used in the last 24 hours, {} with this run{}\n",
            n(budget),
            n(report.requests_last_24h),
            n(report.requests_last_24h.saturating_add(report.requests)),
            if report.over_budget {
                " (OVER BUDGET)"
            } else {
                ""
            }
        )),
        None => out.push_str(&format!(
            "  requests to this destination in the last 24 hours: {} (no daily budget set)\n",
            n(report.requests_last_24h)
        )),
    }
    if !report.samples.is_empty() {
        out.push_str("  sample payloads:\n");
        for s in &report.samples {
            out.push_str(&format!(
                "    {:<8} {}  {}\n",
                change_name(s.change),
                s.key,
                s.fields_json
            ));
        }
    }
    for w in &run.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    out
}
