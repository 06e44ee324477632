//! The `s3` destination through `object_store`'s local filesystem backend (`url: file://...`;
//! no S3-compatible server runs here): each batch is one object, so the objects are the
//! requests, read back in the order they were written. Checks about credentials, per-record
//! answers and throttling do not apply to local files, and say why.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use retl_proto::v1;
use retl_tests::{Harness, column, customers};
use serde_json::{Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

/// A bucket directory under a temporary directory.
pub(crate) struct S3Subject {
    root: tempfile::TempDir,
}

impl S3Subject {
    async fn start() -> Self {
        S3Subject {
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn bucket(&self) -> PathBuf {
        self.root.path().join("bucket")
    }

    /// Every object (`.jsonl` file) with its write time, oldest first.
    fn objects(&self) -> Vec<(SystemTime, Vec<Value>)> {
        let mut objects = Vec::new();
        collect(&self.bucket(), &mut objects);
        objects.sort_by_key(|(at, _)| *at);
        objects
    }
}

fn collect(dir: &Path, out: &mut Vec<(SystemTime, Vec<Value>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            let at = entry.metadata().and_then(|m| m.modified()).unwrap();
            let lines = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            out.push((at, lines));
        }
    }
}

/// A line as the suite's record.
fn record(line: &Value) -> Value {
    if line["change"] == "deleted" {
        json!({"key": line["key"], "change": "deleted"})
    } else {
        json!({"key": line["key"], "change": line["change"], "fields": line["fields"]})
    }
}

impl Subject for S3Subject {
    fn destination_type(&self) -> &'static str {
        "s3"
    }

    fn config(&self) -> Value {
        json!({"url": format!("file://{}/", self.bucket().display())})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("write_changes", Some((true, true, false)))
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("write_changes", Some((false, false, true)))
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        self.objects()
            .iter()
            .flat_map(|(_, lines)| lines)
            .filter(|l| l["change"] == change)
            .map(|l| l["key"].as_i64().expect("integer key"))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Err(NotApplicable(
            "tested through the local filesystem backend, which has no credentials (S3's are object_store's, untested here)",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .objects()
            .into_iter()
            .map(|(at, lines)| Observed {
                status: 200,
                records: lines.iter().map(record).collect(),
                at,
            })
            .collect())
    }

    fn observes_unchanged(&self) -> Capability<()> {
        Err(NotApplicable(
            "a failed PUT leaves no object: the run's counts are checked instead",
        ))
    }

    fn reject_keys(&self, _keys: &[i64]) -> Capability<()> {
        Err(NotApplicable(
            "a PutObject stores the whole batch or fails: there is no per-record answer",
        ))
    }

    fn throttle_next(&self, _seconds: u64) -> Capability<()> {
        Err(NotApplicable(
            "local files are never throttled (S3's 503 SlowDown carries no Retry-After)",
        ))
    }

    fn fail_everything(&self) -> Capability<()> {
        // A regular file where the bucket directory should be: every PUT fails, even as root.
        let bucket = self.bucket();
        if bucket.is_dir() {
            std::fs::remove_dir_all(&bucket).unwrap();
        }
        std::fs::write(&bucket, b"not a directory").unwrap();
        Ok(())
    }

    fn recover(&self) {
        let bucket = self.bucket();
        if bucket.is_file() {
            std::fs::remove_file(&bucket).unwrap();
        }
        // Forget what was received: the objects so far are not requests of the next run.
        if bucket.is_dir() {
            std::fs::remove_dir_all(&bucket).unwrap();
        }
    }

    fn forget(&self, _keys: &[i64]) -> Capability<()> {
        // The output is a log of changes: a delete line never depends on the record being
        // there, so nothing needs removing for the delete to be "re-sent".
        Ok(())
    }
}

conformance_suite!(S3Subject::start().await);

/// A sync through the daemon: the run's changes are JSON lines in objects under
/// `<mapping>/<run id>/`.
#[tokio::test]
async fn a_sync_writes_the_runs_changes_as_objects() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start().await;
    h.warehouse(&customers(5)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let url = format!("file://{}/", dir.path().join("lake").display());
    h.create_destination(
        "lake",
        "s3",
        json!({"url": url, "limits": {"batch_size": 2}}),
    )
    .await
    .unwrap();
    h.create_mapping_with(
        "up",
        "m",
        "lake",
        "write_changes",
        vec![column("email", "email")],
        Some((true, true, true)),
    )
    .await
    .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("lake").join("up"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1, "one folder per run");
    let objects: Vec<_> = std::fs::read_dir(runs[0].path())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(objects.len(), 3, "5 records in batches of 2");
    let mut keys: Vec<i64> = objects
        .iter()
        .flat_map(|o| {
            std::fs::read_to_string(o.path())
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<Value>(l).unwrap()["key"]
                        .as_i64()
                        .unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, [1, 2, 3, 4, 5]);
}
