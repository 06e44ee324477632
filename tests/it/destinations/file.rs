//! The `file` destination, whose "API" is the local filesystem: its output is read back from
//! the JSON-lines files. Checks about requests, credentials, per-record answers and throttling
//! do not apply, and say why.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

/// An output directory under a temporary directory.
pub(crate) struct FileSubject {
    root: tempfile::TempDir,
}

impl FileSubject {
    async fn start() -> Self {
        FileSubject {
            root: tempfile::tempdir().unwrap(),
        }
    }

    /// The configured output directory.
    fn directory(&self) -> PathBuf {
        self.root.path().join("out")
    }

    /// Every line written so far, across mappings and runs.
    fn lines(&self) -> Vec<Value> {
        let mut files = Vec::new();
        let Ok(mappings) = std::fs::read_dir(self.directory()) else {
            return Vec::new();
        };
        for mapping in mappings.flatten() {
            if let Ok(runs) = std::fs::read_dir(mapping.path()) {
                files.extend(runs.flatten().map(|r| r.path()));
            }
        }
        // Run ids sort by time (UUIDv7): read the runs in order.
        files.sort_by_key(|p| p.file_name().map(std::ffi::OsStr::to_owned));
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<Value>>()
            })
            .collect()
    }
}

impl Subject for FileSubject {
    fn destination_type(&self) -> &'static str {
        "file"
    }

    fn config(&self) -> Value {
        json!({"directory": self.directory().display().to_string()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("append_changes", Some((true, true, false)))
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("append_changes", Some((false, false, true)))
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        self.lines()
            .iter()
            .filter(|l| l["change"] == change)
            .map(|l| l["key"].as_i64().expect("integer key"))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Err(NotApplicable(
            "a local directory has no credentials (an unwritable one is covered by 'nothing is acknowledged that was not accepted')",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Err(NotApplicable(
            "there are no requests to observe: every batch is appended to the run's one file, so batch boundaries are not visible",
        ))
    }

    fn reject_keys(&self, _keys: &[i64]) -> Capability<()> {
        Err(NotApplicable(
            "a local append accepts every record of a batch or fails the whole batch",
        ))
    }

    fn throttle_next(&self, _seconds: u64) -> Capability<()> {
        Err(NotApplicable("local writes are never throttled"))
    }

    fn fail_everything(&self) -> Capability<()> {
        // A regular file where the directory should be: every write fails, even as root.
        let directory = self.directory();
        if directory.is_dir() {
            std::fs::remove_dir_all(&directory).unwrap();
        }
        std::fs::write(&directory, b"not a directory").unwrap();
        Ok(())
    }

    fn recover(&self) {
        let directory = self.directory();
        if directory.is_file() {
            std::fs::remove_file(&directory).unwrap();
        }
    }

    fn forget(&self, _keys: &[i64]) -> Capability<()> {
        // The output is an append-only log: a delete line never depends on the record being
        // there, so nothing needs removing for the delete to be "re-sent".
        Ok(())
    }
}

conformance_suite!(FileSubject::start().await);
