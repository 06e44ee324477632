//! Housekeeping of the sync manager: emptying `<data-dir>/tmp` at start and applying the
//! run-history retention.

use std::sync::Mutex;

use chrono::Utc;

use crate::options::EngineOptions;
use crate::sync::history::RunHistory;

/// Empties `<data-dir>/tmp` at start: no run is live yet, so whatever is there (key indexes,
/// delete spill files, DataFusion spill directories) belongs to runs a crash or a kill
/// interrupted (about 37 bytes a row: 370 MB for a 10M-row run). A failure is logged only.
pub(crate) fn clean_tmp(tmp: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let mut removed = 0_u64;
    for entry in entries.flatten() {
        let path = entry.path();
        let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a file an interrupted run left in tmp");
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %tmp.display(), "removed what interrupted runs left in tmp");
    }
}

/// Least time between two prunes of the run history (a prune reads every run record).
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Applies the run-history retention (count per mapping and age): at start, then after a run
/// ends when the last prune is older than [`PRUNE_EVERY`].
pub(crate) struct HistoryPruner {
    pub(crate) history: RunHistory,
    pub(crate) options: EngineOptions,
    pub(crate) last: Mutex<Option<std::time::Instant>>,
}

impl HistoryPruner {
    /// Prunes unless it did recently; a failure is logged only.
    pub(crate) fn maybe_prune(&self) {
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let max_age = chrono::Duration::from_std(self.options.run_history_max_age)
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now()
            .checked_sub_signed(max_age)
            .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        match self
            .history
            .prune(self.options.run_history_runs_kept.max(1), cutoff)
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "pruned the run history"),
            Err(e) => tracing::warn!(error = %e, "could not prune the run history"),
        }
    }
}
