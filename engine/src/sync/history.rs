//! [`RunHistory`]: run records and per-mapping run markers, in the data directory's RocksDB.
//!
//! Run ids are time-ordered (UUIDv7), so the `runs` column family lists runs by time.

use rocksdb::WriteBatch;

use crate::error::StorageError;
use crate::id::MappingId;
use crate::state::RunStamp;
use crate::store::{CF_META, CF_RUNS, Store};
use crate::sync::run::SyncRun;

/// Stored run records.
#[derive(Debug, Clone)]
pub struct RunHistory {
    store: Store,
}

impl RunHistory {
    /// Run history over an open store.
    pub fn new(store: Store) -> Self {
        RunHistory { store }
    }

    /// Saves a run record.
    pub fn put(&self, run: &SyncRun) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.store
            .put_json(&mut batch, CF_RUNS, run.id.as_str(), run)?;
        self.store.write(batch)
    }

    /// A run by id.
    pub fn get(&self, id: &str) -> Result<Option<SyncRun>, StorageError> {
        self.store.get_json(CF_RUNS, id, "sync run")
    }

    /// The id of `mapping`'s run with this stamp (the state records runs by stamp), while
    /// its record is kept.
    pub fn run_id_of(
        &self,
        mapping: &MappingId,
        stamp: RunStamp,
    ) -> Result<Option<String>, StorageError> {
        let runs: Vec<SyncRun> =
            self.store
                .scan_json(CF_RUNS, &stamp.run_id_prefix(), "sync run")?;
        Ok(runs
            .into_iter()
            .find(|r| &r.mapping_id == mapping)
            .map(|r| r.id.to_string()))
    }

    /// Runs, newest first, older than run `before` when given, optionally of one mapping, at
    /// most `limit`.
    pub fn list(
        &self,
        mapping: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StorageError> {
        self.store.scan_json_reverse(
            CF_RUNS,
            "sync run",
            before,
            |r: &SyncRun| mapping.is_none_or(|m| r.mapping_id.as_str() == m),
            limit,
        )
    }

    /// Deletes finished runs beyond the newest `keep` of each mapping and those that ended
    /// before `cutoff`; runs that have not ended are kept. Returns how many were deleted.
    pub fn prune(
        &self,
        keep: usize,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StorageError> {
        let mut per_mapping: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        let mut doomed = Vec::new();
        // Newest first: a mapping's first `keep` finished runs stay.
        for run in self.store.scan_json_reverse(
            CF_RUNS,
            "sync run",
            None,
            |_: &SyncRun| true,
            usize::MAX,
        )? {
            if !run.status.is_terminal() {
                continue;
            }
            let seen = per_mapping.entry(run.mapping_id.to_string()).or_insert(0);
            *seen += 1;
            let ended = run.end_time.unwrap_or(run.create_time);
            if *seen > keep || ended < cutoff {
                doomed.push(run.id.to_string());
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        let mut batch = WriteBatch::default();
        let db = self.store.handle()?;
        let cf = db.cf(CF_RUNS)?;
        for id in &doomed {
            batch.delete_cf(cf, id.as_bytes());
        }
        // A write may reopen the database: no handle is held across it.
        drop(db);
        self.store.write(batch)?;
        Ok(doomed.len() as u64)
    }

    /// All runs that had not ended (used at startup to close runs a stopped daemon left open).
    pub fn unfinished(&self) -> Result<Vec<SyncRun>, StorageError> {
        self.store.scan_json_reverse(
            CF_RUNS,
            "sync run",
            None,
            |r: &SyncRun| !r.status.is_terminal(),
            usize::MAX,
        )
    }

    fn initialized_key(mapping: &MappingId) -> String {
        format!("mapping/{mapping}/initialized")
    }

    /// Records that a mapping completed a run (its first-run behaviour no longer applies).
    pub fn mark_initialized(&self, mapping: &MappingId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.store
            .put_json(&mut batch, CF_META, &Self::initialized_key(mapping), &true)?;
        self.store.write(batch)
    }

    /// Whether a mapping completed a run.
    pub fn is_initialized(&self, mapping: &MappingId) -> Result<bool, StorageError> {
        Ok(self
            .store
            .get_json::<bool>(CF_META, &Self::initialized_key(mapping), "marker")?
            .unwrap_or(false))
    }

    /// Forgets that a mapping completed a run.
    pub fn clear_initialized(&self, mapping: &MappingId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(
            self.store.handle()?.cf(CF_META)?,
            Self::initialized_key(mapping).as_bytes(),
        );
        self.store.write(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::run::RunStatus;

    #[test]
    fn runs_list_newest_first_by_mapping_and_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let history = RunHistory::new(Store::open(dir.path()).unwrap());
        let mut ids = Vec::new();
        for mapping in ["a", "b", "a"] {
            let mut run = SyncRun::queued(MappingId::new(mapping), "manual");
            if mapping == "b" {
                run.status = RunStatus::Succeeded;
            }
            history.put(&run).unwrap();
            ids.push(run.id.to_string());
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let of_a: Vec<String> = history
            .list(Some("a"), None, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.id.to_string())
            .collect();
        assert_eq!(of_a, vec![ids[2].clone(), ids[0].clone()]);
        let page = history.list(None, Some(&ids[2]), 1).unwrap();
        assert_eq!(page[0].id.to_string(), ids[1]);
        assert_eq!(history.unfinished().unwrap().len(), 2);
        assert_eq!(
            history.get(&ids[1]).unwrap().unwrap().status,
            RunStatus::Succeeded
        );
    }

    #[test]
    fn prune_keeps_the_newest_runs_of_each_mapping_and_recent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let history = RunHistory::new(Store::open(dir.path()).unwrap());
        let now = chrono::Utc::now();
        let mut ids = Vec::new();
        for (i, mapping) in ["a", "a", "a", "a", "b", "b"].into_iter().enumerate() {
            let mut run = SyncRun::queued(MappingId::new(mapping), "manual");
            // The first run of `a` never ended; run 4 (of `b`) ended 100 days ago.
            if i != 0 {
                run.status = RunStatus::Succeeded;
                let ago = if i == 4 { 100 * 24 } else { 1 };
                run.end_time = Some(now - chrono::Duration::hours(ago));
            }
            history.put(&run).unwrap();
            ids.push(run.id.to_string());
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let deleted = history.prune(2, now - chrono::Duration::days(90)).unwrap();
        // `a`: finished runs 1, 2, 3 -> keep the newest two (3, 2), delete 1; the open run
        // stays. `b`: run 4 is too old, run 5 stays.
        assert_eq!(deleted, 2);
        let left: Vec<String> = history
            .list(None, None, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.id.to_string())
            .collect();
        assert_eq!(
            left,
            [&ids[5], &ids[3], &ids[2], &ids[0]].map(|s| s.to_string())
        );
    }

    #[test]
    fn initialized_marker_is_set_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let history = RunHistory::new(Store::open(dir.path()).unwrap());
        let m = MappingId::new("m");
        assert!(!history.is_initialized(&m).unwrap());
        history.mark_initialized(&m).unwrap();
        assert!(history.is_initialized(&m).unwrap());
        history.clear_initialized(&m).unwrap();
        assert!(!history.is_initialized(&m).unwrap());
    }
}
