//! S3 destination tests: object keys, config, each format read back (Arrow's CSV reader, the
//! Parquet reader), writes through `object_store`'s local filesystem backend, and content types
//! through its in-memory backend.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Compression;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::{Attribute, ObjectStore, ObjectStoreExt};
use retl_engine::destination::spec::{ChangeKind, Fields};
use retl_engine::destination::{
    Action, ActionSpec, DeliveryContext, Destination, DestinationError, Payload, RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use serde_json::{Value, json};

use super::actions::{BoundAction, S3Action, object_key};
use super::client::S3Client;
use super::config::S3Config;
use super::{S3Destination, destination_type};
use crate::destinations::change_files::ChangeFormat;

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("lake"),
        mapping_id: MappingId::new("users"),
        run_id: RunId::new("run-1"),
        sync_mode: None,
        trace: None,
    }
}

fn upsert(key: Value, fields: Value) -> Payload {
    Payload {
        key,
        change: ChangeKind::Added,
        fields: fields.as_object().cloned().unwrap().into(),
        fingerprint: None,
    }
}

fn destination(config: Value) -> Result<S3Destination, DestinationError> {
    S3Destination::new(&config, &(destination_type().default_limits)())
}

#[test]
fn object_keys_are_per_run_and_stable_for_a_batch() {
    let batch = [upsert(json!(1), json!({"a": 1})), Payload::delete(json!(2))];
    let key = object_key("exports/", &ctx(), &batch, ChangeFormat::Jsonl);
    assert!(
        key.starts_with("exports/users/run-1/part-") && key.ends_with(".jsonl"),
        "{key}"
    );
    assert_eq!(
        key,
        object_key("exports/", &ctx(), &batch, ChangeFormat::Jsonl),
        "a re-sent batch overwrites its object"
    );
    assert_ne!(
        key,
        object_key("exports/", &ctx(), &batch[..1], ChangeFormat::Jsonl)
    );
    // The same batch in another format: the same hash, the format's extension.
    let stem = key.trim_end_matches(".jsonl");
    assert_eq!(
        object_key("exports/", &ctx(), &batch, ChangeFormat::Csv),
        format!("{stem}.csv")
    );
    assert_eq!(
        object_key("exports/", &ctx(), &batch, ChangeFormat::Parquet),
        format!("{stem}.parquet")
    );
}

#[test]
fn config_errors_name_the_field() {
    assert!(destination(json!({"url": "s3://bucket/exports"})).is_ok());
    for format in ["jsonl", "csv", "parquet"] {
        assert!(destination(json!({"url": "s3://bucket/exports", "format": format})).is_ok());
    }
    for (config, field) in [
        (json!({"url": "gs://bucket/x"}), "url"),
        (json!({"url": "s3:///x"}), "url"),
        (
            json!({"url": "s3://b/x", "access_key_id": "AKIA"}),
            "secret_access_key",
        ),
        (
            json!({"url": "s3://b/x", "endpoint": "http://127.0.0.1:9000"}),
            "allow_http",
        ),
        (
            json!({"url": "file:///tmp/x", "access_key_id": "AKIA", "secret_access_key": "s"}),
            "url",
        ),
        (json!({"url": "s3://b/x", "format": "xml"}), "format"),
        (json!({"url": "s3://b/x", "format": "CSV"}), "format"),
    ] {
        match destination(config.clone()) {
            Err(DestinationError::InvalidConfig { field: f, .. }) => {
                assert_eq!(f, field, "{config}")
            }
            other => panic!("{config}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn each_batch_is_one_object_of_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let dest = destination(json!({"url": format!("file://{}/", root.display())})).unwrap();
    let message = dest.test().await.unwrap();
    assert!(message.contains("0 objects"), "{message}");
    let action = dest.action(spec("write_changes")).unwrap();
    let batch = [
        upsert(json!(1), json!({"email": "a@example.com"})),
        Payload::delete(json!(2)),
    ];
    let outcome = action.send(&ctx(), &batch).await.unwrap();
    assert_eq!(
        outcome.records,
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    // Sent again (a lost answer): the same object, not a second one.
    action.send(&ctx(), &batch).await.unwrap();
    let run = root.join("users").join("run-1");
    let objects: Vec<_> = std::fs::read_dir(&run).unwrap().flatten().collect();
    assert_eq!(objects.len(), 1);
    let text = std::fs::read_to_string(objects[0].path()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            json!({"op": "upsert", "change": "added", "key": 1, "fields": {"email": "a@example.com"}, "mapping": "users", "run": "run-1"}),
            json!({"op": "delete", "change": "deleted", "key": 2, "mapping": "users", "run": "run-1"}),
        ]
    );

    // A store that cannot be written fails the batch (retried), nothing acknowledged.
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    let error = action.send(&ctx(), &batch[..1]).await.unwrap_err();
    assert!(
        matches!(error, DestinationError::Transient { .. }),
        "{error}"
    );
}

// ----- CSV and Parquet: what was written, read back -----

/// Fields in this order (a mapping's order, whatever the JSON map's).
fn fields(pairs: &[(&str, Value)]) -> Fields {
    let names: Arc<[String]> = pairs.iter().map(|(n, _)| n.to_string()).collect();
    Fields::new(names, pairs.iter().map(|(_, v)| v.clone()).collect()).unwrap()
}

fn record(key: Value, change: ChangeKind, pairs: &[(&str, Value)]) -> Payload {
    Payload {
        key,
        change,
        fields: fields(pairs),
        fingerprint: None,
    }
}

/// Nested values, nulls, unicode, CSV's special characters, an integer in a float column, a
/// delete.
fn rich_batch() -> Vec<Payload> {
    vec![
        record(
            json!(1),
            ChangeKind::Added,
            &[
                ("email", json!("a@example.com")),
                ("name", json!("Zoë \"Z\", Jr.\nsecond line")),
                ("age", json!(42)),
                ("score", json!(1.5)),
                ("vip", json!(true)),
                ("address", json!({"city": "Paris", "zip": "75001"})),
                ("tags", json!(["a", "b"])),
                ("note", Value::Null),
            ],
        ),
        record(
            json!(2),
            ChangeKind::Updated,
            &[
                ("email", json!("b@example.com")),
                ("name", json!("日本語, ok")),
                ("age", json!(-7)),
                ("score", json!(2)),
                ("vip", json!(false)),
                ("address", Value::Null),
                ("tags", json!([])),
                ("note", Value::Null),
            ],
        ),
        Payload::delete(json!(3)),
    ]
}

const COLUMNS: [&str; 11] = [
    "op", "change", "key", "email", "name", "age", "score", "vip", "address", "tags", "note",
];

fn text(batch: &RecordBatch, column: &str, row: usize) -> Option<String> {
    let array = batch.column_by_name(column).unwrap();
    (!array.is_null(row)).then(|| array.as_string::<i32>().value(row).to_string())
}

#[test]
fn csv_is_rfc_4180_with_a_header_and_reads_back() {
    let bytes = ChangeFormat::Csv.encode(&ctx(), &rich_batch()).unwrap();
    let csv = String::from_utf8(bytes.clone()).unwrap();
    let rows: Vec<&str> = csv.split_inclusive("\r\n").collect();
    assert_eq!(rows[0], format!("{}\r\n", COLUMNS.join(",")));
    // Quotes doubled, fields with commas, quotes or line breaks quoted, nested values as JSON
    // text, a null as an empty field.
    assert_eq!(
        rows[1],
        "upsert,added,1,a@example.com,\"Zoë \"\"Z\"\", Jr.\nsecond line\",42,1.5,true,\"{\"\"city\"\":\"\"Paris\"\",\"\"zip\"\":\"\"75001\"\"}\",\"[\"\"a\"\",\"\"b\"\"]\",\r\n"
    );
    // A deleted record: its field columns are empty.
    assert_eq!(rows[3], "delete,deleted,3,,,,,,,,\r\n");
    assert_eq!(rows.len(), 4);

    // Read back with Arrow's CSV reader (every column as text).
    let schema = Schema::new(
        COLUMNS
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let batch = ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .build(std::io::Cursor::new(bytes))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(batch.num_rows(), 3);
    let t = |c, r| text(&batch, c, r);
    assert_eq!(t("name", 0).as_deref(), Some("Zoë \"Z\", Jr.\nsecond line"));
    assert_eq!(t("name", 1).as_deref(), Some("日本語, ok"));
    assert_eq!(t("change", 1).as_deref(), Some("updated"));
    assert_eq!(t("age", 1).as_deref(), Some("-7"));
    let address: Value = serde_json::from_str(&t("address", 0).unwrap()).unwrap();
    assert_eq!(address, json!({"city": "Paris", "zip": "75001"}));
    assert_eq!(t("tags", 1).as_deref(), Some("[]"));
    assert_eq!(t("score", 1).unwrap().parse::<f64>().unwrap(), 2.0);
    assert_eq!(t("note", 0), None);
    assert_eq!(t("op", 2).as_deref(), Some("delete"));
    assert_eq!(t("key", 2).as_deref(), Some("3"));
    for column in &COLUMNS[3..] {
        assert_eq!(t(column, 2), None, "{column} of a deleted record");
    }
}

#[test]
fn parquet_columns_are_typed_from_the_values_and_read_back() {
    let bytes = ChangeFormat::Parquet.encode(&ctx(), &rich_batch()).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
    let metadata = Arc::clone(builder.metadata());
    assert_eq!(metadata.num_row_groups(), 1);
    assert!(matches!(
        metadata.row_group(0).column(0).compression(),
        Compression::ZSTD(_)
    ));
    let kv: Vec<(String, Option<String>)> = metadata
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    assert!(kv.contains(&("retl.mapping".to_string(), Some("users".to_string()))));
    assert!(kv.contains(&("retl.run".to_string(), Some("run-1".to_string()))));
    let types: Vec<(String, DataType)> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let expected = [
        ("op", DataType::Utf8),
        ("change", DataType::Utf8),
        ("key", DataType::Int64),
        ("email", DataType::Utf8),
        ("name", DataType::Utf8),
        ("age", DataType::Int64),
        ("score", DataType::Float64),
        ("vip", DataType::Boolean),
        ("address", DataType::Utf8),
        ("tags", DataType::Utf8),
        ("note", DataType::Utf8),
    ]
    .map(|(n, t)| (n.to_string(), t));
    assert_eq!(types, expected);
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), 3);
    let int = |c: &str| {
        batch
            .column_by_name(c)
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone()
    };
    assert_eq!(int("key").values().to_vec(), [1, 2, 3]);
    assert_eq!((int("age").value(0), int("age").value(1)), (42, -7));
    let score = batch.column_by_name("score").unwrap();
    let score = score.as_primitive::<Float64Type>();
    assert_eq!((score.value(0), score.value(1)), (1.5, 2.0));
    let vip = batch.column_by_name("vip").unwrap().as_boolean().clone();
    assert!(vip.value(0) && !vip.value(1));
    let t = |c, r| text(batch, c, r);
    assert_eq!(t("name", 0).as_deref(), Some("Zoë \"Z\", Jr.\nsecond line"));
    assert_eq!(t("name", 1).as_deref(), Some("日本語, ok"));
    assert_eq!(
        serde_json::from_str::<Value>(&t("address", 0).unwrap()).unwrap(),
        json!({"city": "Paris", "zip": "75001"})
    );
    assert_eq!(t("address", 1), None, "null stays null");
    assert_eq!(t("tags", 0).as_deref(), Some(r#"["a","b"]"#));
    assert_eq!(t("op", 2).as_deref(), Some("delete"));
    assert_eq!(t("change", 2).as_deref(), Some("deleted"));
    for column in &COLUMNS[3..] {
        assert!(
            batch.column_by_name(column).unwrap().is_null(2),
            "{column} of a deleted record"
        );
    }
}

#[test]
fn mixed_and_all_null_columns_are_text() {
    let batch = [
        record(
            json!("a"),
            ChangeKind::Added,
            &[
                ("mixed", json!(1)),
                ("empty", Value::Null),
                ("flag", json!(true)),
            ],
        ),
        record(
            json!("b"),
            ChangeKind::Added,
            &[
                ("mixed", json!("x")),
                ("empty", Value::Null),
                ("flag", json!(0)),
            ],
        ),
    ];
    let bytes = ChangeFormat::Parquet.encode(&ctx(), &batch).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
        .unwrap()
        .build()
        .unwrap();
    let table = reader.map(Result::unwrap).next().unwrap();
    for column in ["key", "mixed", "empty", "flag"] {
        assert_eq!(
            table.column_by_name(column).unwrap().data_type(),
            &DataType::Utf8,
            "{column}"
        );
    }
    let t = |c, r| text(&table, c, r);
    assert_eq!(t("key", 1).as_deref(), Some("b"));
    assert_eq!(
        (t("mixed", 0), t("mixed", 1)),
        (Some("1".into()), Some("x".into()))
    );
    assert_eq!(
        (t("flag", 0), t("flag", 1)),
        (Some("true".into()), Some("0".into()))
    );
    assert_eq!(t("empty", 0), None);
}

#[test]
fn a_field_named_like_a_leading_column_is_refused_in_csv_and_parquet() {
    let batch = [record(json!(1), ChangeKind::Added, &[("key", json!("x"))])];
    for format in [ChangeFormat::Csv, ChangeFormat::Parquet] {
        match format.encode(&ctx(), &batch) {
            Err(DestinationError::Rejected { message }) => {
                assert!(message.contains("'key'"), "{message}")
            }
            other => panic!("{format:?}: {other:?}"),
        }
    }
    // JSON lines keep the fields apart: no clash.
    assert!(ChangeFormat::Jsonl.encode(&ctx(), &batch).is_ok());
}

#[tokio::test]
async fn csv_and_parquet_objects_through_the_local_backend() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["csv", "parquet"] {
        let root = dir.path().join(format);
        let dest = destination(json!({
            "url": format!("file://{}/", root.display()),
            "format": format,
        }))
        .unwrap();
        let action = dest.action(spec("write_changes")).unwrap();
        let batch = rich_batch();
        let outcome = action.send(&ctx(), &batch).await.unwrap();
        assert_eq!(outcome.records.len(), 3);
        // Sent again (a lost answer): the same object.
        action.send(&ctx(), &batch).await.unwrap();
        let objects: Vec<_> = std::fs::read_dir(root.join("users").join("run-1"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(objects.len(), 1, "{format}");
        assert_eq!(
            objects[0].extension().unwrap().to_str(),
            Some(format),
            "{objects:?}"
        );
        let bytes = std::fs::read(&objects[0]).unwrap();
        let expected = ChangeFormat::parse(format)
            .unwrap()
            .encode(&ctx(), &batch)
            .unwrap();
        if format == "csv" {
            assert_eq!(bytes, expected);
        } else {
            let rows: usize = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap().num_rows())
                .sum();
            assert_eq!(rows, 3);
        }
    }
}

/// Through `object_store`'s in-memory backend, which keeps an object's attributes as S3 does:
/// each format's object has its content type.
#[tokio::test]
async fn objects_have_their_formats_content_type() {
    for (format, content_type, extension) in [
        (None, "application/x-ndjson", ".jsonl"),
        (
            Some("csv"),
            "text/csv; charset=utf-8; header=present",
            ".csv",
        ),
        (
            Some("parquet"),
            "application/vnd.apache.parquet",
            ".parquet",
        ),
    ] {
        let mut config = json!({"url": "s3://bucket/exports/"});
        if let Some(format) = format {
            config["format"] = json!(format);
        }
        let config: S3Config = serde_json::from_value(config).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let client = S3Client::with_store(config.validate().unwrap(), Arc::clone(&store));
        let action = BoundAction {
            spec: spec("write_changes"),
            action: S3Action::WriteChanges,
            client: Arc::new(client),
        };
        action.send(&ctx(), &rich_batch()).await.unwrap();
        let objects: Vec<_> = store.list(None).try_collect().await.unwrap();
        assert_eq!(objects.len(), 1);
        let location = objects[0].location.to_string();
        assert!(
            location.starts_with("exports/users/run-1/part-") && location.ends_with(extension),
            "{location}"
        );
        let got = store.get(&objects[0].location).await.unwrap();
        assert_eq!(
            got.attributes
                .get(&Attribute::ContentType)
                .map(|v| v.as_ref()),
            Some(content_type),
            "{format:?}"
        );
    }
}
