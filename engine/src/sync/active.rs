//! [`ActiveRuns`]: the runs in progress, with their live progress and cancel handle. Shared by
//! the sync manager (which adds and removes them) and the catalog's mapping service (which
//! refuses to delete a mapping while it runs).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::Error;
use crate::sync::run::SyncRun;
use crate::sync::stop::RunStop;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One run in progress.
struct ActiveRun {
    mapping_id: String,
    stop: RunStop,
    progress: watch::Receiver<SyncRun>,
    handle: Option<JoinHandle<()>>,
}

/// The runs in progress, by run id.
#[derive(Default)]
pub struct ActiveRuns {
    runs: Mutex<HashMap<String, ActiveRun>>,
}

impl std::fmt::Debug for ActiveRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveRuns").finish_non_exhaustive()
    }
}

fn lock_poisoned() -> Error {
    Error::internal("the active-runs lock was poisoned by a panicking thread")
}

impl ActiveRuns {
    /// The id of the run in progress of a mapping, if any.
    pub fn of_mapping(&self, mapping_id: &str) -> Result<Option<String>, Error> {
        let runs = self.runs.lock().map_err(|_| lock_poisoned())?;
        Ok(runs
            .iter()
            .find(|(_, a)| a.mapping_id == mapping_id)
            .map(|(id, _)| id.clone()))
    }

    /// Registers a new run unless its mapping already has one in progress.
    ///
    /// # Errors
    /// `FailedPrecondition` naming the run in progress.
    pub fn insert(
        &self,
        run_id: &str,
        mapping_id: &str,
        stop: RunStop,
        progress: watch::Receiver<SyncRun>,
    ) -> Result<(), Error> {
        let mut runs = self.runs.lock().map_err(|_| lock_poisoned())?;
        if let Some((id, _)) = runs.iter().find(|(_, a)| a.mapping_id == mapping_id) {
            return Err(Error::precondition(format!(
                "mapping '{mapping_id}' already has run {id} in progress; watch it (retl sync watch {id}) or cancel it"
            )));
        }
        runs.insert(
            run_id.to_string(),
            ActiveRun {
                mapping_id: mapping_id.to_string(),
                stop,
                progress,
                handle: None,
            },
        );
        Ok(())
    }

    /// Keeps the task of a run, so that shutdown can wait for it.
    pub fn set_handle(&self, run_id: &str, handle: JoinHandle<()>) {
        if let Ok(mut runs) = self.runs.lock()
            && let Some(a) = runs.get_mut(run_id)
        {
            a.handle = Some(handle);
        }
    }

    /// Forgets a run (it ended).
    pub fn remove(&self, run_id: &str) {
        if let Ok(mut runs) = self.runs.lock() {
            runs.remove(run_id);
        }
    }

    /// The live record of a run in progress.
    pub fn snapshot(&self, run_id: &str) -> Result<Option<SyncRun>, Error> {
        let runs = self.runs.lock().map_err(|_| lock_poisoned())?;
        Ok(runs.get(run_id).map(|a| a.progress.borrow().clone()))
    }

    /// The live records of every run in progress.
    pub fn snapshots(&self) -> Vec<SyncRun> {
        match self.runs.lock() {
            Ok(runs) => runs.values().map(|a| a.progress.borrow().clone()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// A receiver of a run's live records.
    pub fn watch(&self, run_id: &str) -> Result<Option<watch::Receiver<SyncRun>>, Error> {
        let runs = self.runs.lock().map_err(|_| lock_poisoned())?;
        Ok(runs.get(run_id).map(|a| a.progress.clone()))
    }

    /// Asks a run in progress to stop; its live record, or `None` when it is not running.
    pub fn cancel(&self, run_id: &str) -> Result<Option<SyncRun>, Error> {
        let runs = self.runs.lock().map_err(|_| lock_poisoned())?;
        Ok(runs.get(run_id).map(|a| {
            a.stop.cancel();
            a.progress.borrow().clone()
        }))
    }

    /// Tells every run the daemon is shutting down (they send nothing new and let their
    /// requests in flight finish); returns their stop handles and tasks to wait for.
    pub fn shut_down_all(&self) -> Vec<(RunStop, JoinHandle<()>)> {
        match self.runs.lock() {
            Ok(mut runs) => runs
                .values_mut()
                .filter_map(|a| {
                    a.stop.shut_down();
                    Some((a.stop.clone(), a.handle.take()?))
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::MappingId;

    #[test]
    fn one_run_per_mapping_and_cancel_reaches_the_run() {
        let runs = ActiveRuns::default();
        let run = SyncRun::queued(MappingId::new("m"), "manual");
        let (_tx, rx) = watch::channel(run.clone());
        let stop = RunStop::new();
        runs.insert(run.id.as_str(), "m", stop.clone(), rx.clone())
            .unwrap();
        let err = runs.insert("other", "m", RunStop::new(), rx).unwrap_err();
        assert!(err.to_string().contains("already has run"), "{err}");
        assert_eq!(
            runs.of_mapping("m").unwrap().as_deref(),
            Some(run.id.as_str())
        );
        assert!(runs.cancel(run.id.as_str()).unwrap().is_some());
        assert!(stop.aborting().is_cancelled());
        runs.remove(run.id.as_str());
        assert!(runs.of_mapping("m").unwrap().is_none());
        assert!(runs.cancel(run.id.as_str()).unwrap().is_none());
    }
}
