//! The `s3` destination through `object_store`'s local filesystem backend (`url: file://...`;
//! no S3-compatible server runs here), once per format (`jsonl`, `csv`, `parquet`): each batch
//! is one object, so the objects are the requests, read back in the order they were written
//! (CSV with Arrow's CSV reader, Parquet with the Parquet reader). Checks about credentials,
//! per-record answers and throttling do not apply to local files, and say why.
//!
//! Plus a sync through the daemon per format, checking the values and types that arrive.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use retl_proto::v1;
use retl_tests::{Harness, column, customers};
use serde_json::{Value, json};

use super::{Capability, NotApplicable, Observed, Subject};
#[allow(unused_imports)]
use super::{
    a_per_record_rejection_leaves_only_the_rejected_pending,
    a_resent_delete_of_a_missing_record_succeeds, batches_split_at_the_byte_limit,
    batches_split_at_the_documented_count_limit, nothing_is_acknowledged_that_was_not_accepted,
    refused_credentials_stop_the_run_with_the_reason, throttling_is_obeyed,
};

/// A bucket directory under a temporary directory, written in one format.
pub(crate) struct S3Subject {
    root: tempfile::TempDir,
    /// `jsonl`, `csv` or `parquet`.
    format: &'static str,
}

impl S3Subject {
    async fn start(format: &'static str) -> Self {
        S3Subject {
            root: tempfile::tempdir().unwrap(),
            format,
        }
    }

    fn bucket(&self) -> PathBuf {
        self.root.path().join("bucket")
    }

    /// Every object (file of the format's extension) with its write time, oldest first; its
    /// records as JSON lines (`{"op","change","key","fields"}`), whatever the format.
    fn objects(&self) -> Vec<(SystemTime, Vec<Value>)> {
        let mut objects = Vec::new();
        collect(&self.bucket(), self.format, &mut objects);
        objects.sort_by_key(|(at, _)| *at);
        objects
    }
}

fn collect(dir: &Path, format: &str, out: &mut Vec<(SystemTime, Vec<Value>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, format, out);
        } else if path.extension().is_some_and(|e| e == format) {
            let at = entry.metadata().and_then(|m| m.modified()).unwrap();
            out.push((at, read_object(&path, format)));
        }
    }
}

/// An object's records as JSON lines: `jsonl` as written; a CSV or Parquet row as
/// `{"op","change","key","fields"}` (no `fields` for a delete), CSV's text key as a number.
fn read_object(path: &Path, format: &str) -> Vec<Value> {
    match format {
        "jsonl" => std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        "csv" => {
            let text = std::fs::read_to_string(path).unwrap();
            let header = text.split("\r\n").next().unwrap();
            let schema = Schema::new(
                header
                    .split(',')
                    .map(|c| Field::new(c, DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            );
            let reader = ReaderBuilder::new(Arc::new(schema))
                .with_header(true)
                .build(std::io::Cursor::new(text.into_bytes()))
                .unwrap();
            reader.flat_map(|b| rows(&b.unwrap())).collect()
        }
        "parquet" => {
            let file = std::fs::File::open(path).unwrap();
            ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .flat_map(|b| rows(&b.unwrap()))
                .collect()
        }
        other => panic!("no reader for {other}"),
    }
}

/// The JSON value of one cell (the column types retl writes).
fn cell(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => json!(array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => json!(array.as_boolean().value(row)),
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        other => panic!("retl writes no {other} column"),
    }
}

/// A table's rows as JSON lines.
fn rows(batch: &RecordBatch) -> Vec<Value> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|row| {
            let get = |name: &str| cell(batch.column_by_name(name).unwrap().as_ref(), row);
            let key = match get("key") {
                Value::String(s) => json!(s.parse::<i64>().expect("integer key")),
                key => key,
            };
            let mut line = json!({"op": get("op"), "change": get("change"), "key": key});
            if line["op"] == "upsert" {
                let fields: serde_json::Map<String, Value> = schema.fields()[3..]
                    .iter()
                    .map(|f| (f.name().clone(), get(f.name())))
                    .collect();
                line["fields"] = Value::Object(fields);
            }
            line
        })
        .collect()
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
        json!({"url": format!("file://{}/", self.bucket().display()), "format": self.format})
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

mod jsonl {
    conformance_suite!(super::S3Subject::start("jsonl").await);
}

mod csv {
    conformance_suite!(super::S3Subject::start("csv").await);
}

mod parquet {
    conformance_suite!(super::S3Subject::start("parquet").await);
}

/// Syncs 5 customers (`email`, `plan`, `active`) in batches of 2 through the daemon to an
/// `s3` destination writing `format`; the run's objects, which are all under `<mapping>/<run
/// id>/` and end in `.<format>`.
async fn sync_customers(bucket: &Path, format: &str) -> Vec<PathBuf> {
    let h = Harness::start().await;
    h.warehouse(&customers(5)).await;
    h.model("SELECT id, email, plan, active FROM customers")
        .await;
    let url = format!("file://{}/", bucket.display());
    h.create_destination(
        "lake",
        "s3",
        json!({"url": url, "format": format, "limits": {"batch_size": 2}}),
    )
    .await
    .unwrap();
    h.create_mapping_with(
        "up",
        "m",
        "lake",
        "write_changes",
        vec![
            column("email", "email"),
            column("plan", "plan"),
            column("active", "active"),
        ],
        Some((true, true, true)),
    )
    .await
    .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let runs: Vec<_> = std::fs::read_dir(bucket.join("up"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1, "one folder per run");
    let objects: Vec<PathBuf> = std::fs::read_dir(runs[0].path())
        .unwrap()
        .flatten()
        .map(|o| o.path())
        .collect();
    assert_eq!(objects.len(), 3, "5 records in batches of 2");
    for object in &objects {
        assert!(
            object.extension().is_some_and(|e| e == format),
            "{object:?}"
        );
    }
    objects
}

/// Every record of the objects, by key.
fn by_key(objects: &[PathBuf], format: &str) -> Vec<Value> {
    let mut lines: Vec<Value> = objects
        .iter()
        .flat_map(|o| read_object(o, format))
        .collect();
    lines.sort_by_key(|l| l["key"].as_i64().unwrap());
    assert_eq!(
        lines
            .iter()
            .map(|l| l["key"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    lines
}

/// A sync through the daemon: the run's changes are JSON lines in objects under
/// `<mapping>/<run id>/`, the fields with their JSON types.
#[tokio::test]
async fn a_sync_writes_the_runs_changes_as_objects() {
    let dir = tempfile::tempdir().unwrap();
    let objects = sync_customers(&dir.path().join("lake"), "jsonl").await;
    let lines = by_key(&objects, "jsonl");
    assert_eq!(
        lines[0]["fields"],
        json!({"email": "user1@example.com", "plan": "pro", "active": true})
    );
    assert_eq!(lines[0]["op"], "upsert");
    assert_eq!(lines[0]["change"], "added");
}

/// A sync to CSV objects: a header row, CRLF line ends, the fields' text.
#[tokio::test]
async fn a_sync_writes_csv_objects() {
    let dir = tempfile::tempdir().unwrap();
    let objects = sync_customers(&dir.path().join("lake"), "csv").await;
    for object in &objects {
        let text = std::fs::read_to_string(object).unwrap();
        assert!(
            text.starts_with("op,change,key,email,plan,active\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n"), "{text}");
    }
    let lines = by_key(&objects, "csv");
    assert_eq!(
        lines[0],
        json!({"op": "upsert", "change": "added", "key": 1,
               "fields": {"email": "user1@example.com", "plan": "pro", "active": "true"}})
    );
    assert_eq!(lines[2]["fields"]["plan"], "free");
}

/// A sync to Parquet objects: typed columns (integer key, text, boolean), one row group each.
#[tokio::test]
async fn a_sync_writes_parquet_objects() {
    let dir = tempfile::tempdir().unwrap();
    let objects = sync_customers(&dir.path().join("lake"), "parquet").await;
    for object in &objects {
        let file = std::fs::File::open(object).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert_eq!(builder.metadata().num_row_groups(), 1);
        let types: Vec<(String, DataType)> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            types,
            [
                ("op", DataType::Utf8),
                ("change", DataType::Utf8),
                ("key", DataType::Int64),
                ("email", DataType::Utf8),
                ("plan", DataType::Utf8),
                ("active", DataType::Boolean),
            ]
            .map(|(n, t)| (n.to_string(), t))
        );
    }
    let lines = by_key(&objects, "parquet");
    assert_eq!(
        lines[0],
        json!({"op": "upsert", "change": "added", "key": 1,
               "fields": {"email": "user1@example.com", "plan": "pro", "active": true}})
    );
    assert_eq!(lines[4]["fields"]["email"], "user5@example.com");
}
