//! Files source tests, on real temporary files.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryArray, Int64Array, ListArray, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, UnionFields};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use retl_engine::source::{Source, SourceError};
use serde_json::{Value, json};

use super::config::{FileFormat, FilesConfig, default_table_name};
use super::source_type;
use super::types::{check_supported, normalize};
use crate::sources::test_support::{self};

fn build(config: Value) -> Arc<dyn Source> {
    test_support::build(&source_type(), config)
}

fn build_error(config: Value) -> (String, String) {
    test_support::build_error(&source_type(), config)
}

fn users_batch(ids: &[i64]) -> RecordBatch {
    let emails: Vec<String> = ids.iter().map(|i| format!("u{i}@example.com")).collect();
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        ("email", Arc::new(StringArray::from(emails)) as ArrayRef),
    ])
    .unwrap()
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

fn write_csv(path: &Path, ids: &[i64], delimiter: char) {
    let mut text = format!("id{delimiter}email\n");
    for id in ids {
        text.push_str(&format!("{id}{delimiter}u{id}@example.com\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn write_ndjson(path: &Path, ids: &[i64]) {
    let text: String = ids
        .iter()
        .map(|id| {
            format!(
                "{}\n",
                json!({"id": id, "email": format!("u{id}@example.com")})
            )
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

async fn query(source: &Arc<dyn Source>, sql: &str) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    source.register(&ctx).await.unwrap();
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

// ---- config -------------------------------------------------------------------------------

#[test]
fn default_table_names() {
    let name = |p: &str| default_table_name(Path::new(p));
    assert_eq!(name("/data/users.parquet"), "users");
    assert_eq!(name("/data/Users 2024.csv"), "users_2024");
    assert_eq!(name("/data/exports/"), "exports");
    assert_eq!(name("/data/2024-events.jsonl"), "t_2024_events");
    assert_eq!(name("/data/archive.v2"), "archive_v2");
    assert_eq!(name("/"), "data");
}

#[test]
fn config_validation() {
    assert_eq!(build_error(json!({})).0, "config");
    assert_eq!(build_error(json!({"path": ""})).0, "path");
    assert_eq!(
        build_error(json!({"path": "/x", "format": "xml"})).0,
        "config"
    );
    assert_eq!(build_error(json!({"path": "/x", "unknown": 1})).0, "config");
    assert_eq!(
        build_error(json!({"path": "/x", "table": "Users"})).0,
        "table"
    );
    assert_eq!(build_error(json!({"path": "/x", "table": "1x"})).0, "table");
    assert_eq!(
        build_error(json!({"path": "/x.csv", "delimiter": ",,"})).0,
        "delimiter"
    );
    assert_eq!(
        build_error(json!({"path": "/x", "format": "parquet", "has_header": false})).0,
        "has_header"
    );
    // Building touches no file.
    build(json!({"path": "/does/not/exist.csv"}));
    let config: FilesConfig =
        serde_json::from_value(json!({"path": "/x", "format": "jsonl", "delimiter": "tab"}))
            .unwrap();
    assert_eq!(config.format, Some(FileFormat::Ndjson));
    assert!(config.validate().is_err(), "delimiter with ndjson");
    let config: FilesConfig =
        serde_json::from_value(json!({"path": "/x", "delimiter": "tab"})).unwrap();
    assert_eq!(config.validate().unwrap().delimiter, Some(b'\t'));
}

#[test]
fn catalog_entry() {
    let ty = source_type();
    assert_eq!(ty.name, "files");
    let names: Vec<_> = ty.config.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        ["path", "format", "table", "has_header", "delimiter"]
    );
    assert!(ty.config.iter().all(|f| !f.secret));
}

// ---- types --------------------------------------------------------------------------------

#[test]
fn unsupported_types_name_the_column() {
    let union = DataType::Union(
        UnionFields::try_new(vec![0], vec![Field::new("a", DataType::Int32, true)]).unwrap(),
        datafusion::arrow::datatypes::UnionMode::Dense,
    );
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("u", union, true),
    ]);
    match check_supported(&schema) {
        Err(SourceError::UnsupportedType { column, .. }) => assert_eq!(column, "u"),
        other => panic!("{other:?}"),
    }
    let nested_binary = Schema::new(vec![Field::new(
        "blobs",
        DataType::List(Arc::new(Field::new("item", DataType::Binary, true))),
        true,
    )]);
    assert!(check_supported(&nested_binary).is_err());
    let fine = Schema::new(vec![
        Field::new("raw", DataType::Binary, true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
    ]);
    assert!(check_supported(&fine).is_ok());
}

#[test]
fn null_columns_become_text_for_csv_only() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("empty", DataType::Null, true),
    ]));
    let csv = normalize(FileFormat::Csv, Arc::clone(&schema));
    assert_eq!(csv.field(1).data_type(), &DataType::Utf8);
    let parquet = normalize(FileFormat::Parquet, schema);
    assert_eq!(parquet.field(1).data_type(), &DataType::Null);
}

// ---- each format --------------------------------------------------------------------------

#[tokio::test]
async fn parquet_file_registers_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.parquet");
    write_parquet(&path, &users_batch(&[1, 2, 3]));
    let source = build(json!({"path": path.to_str().unwrap()}));
    let batches = query(
        &source,
        "SELECT id, email FROM users WHERE id >= 2 ORDER BY id",
    )
    .await;
    let text = pretty_format_batches(&batches).unwrap().to_string();
    assert!(
        text.contains("u2@example.com") && text.contains("u3@example.com"),
        "{text}"
    );
    assert_eq!(rows(&batches), 2);

    let tables = source.list_tables().await.unwrap();
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0].name, "users");
    assert_eq!(tables[0].kind, "file");
    let columns: Vec<_> = tables[0]
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str()))
        .collect();
    assert_eq!(columns[0], ("id", "Int64"));
    assert_eq!(columns[1].0, "email");

    let report = source.test().await.unwrap();
    assert!(
        report.message.contains("1 parquet file"),
        "{}",
        report.message
    );
}

#[tokio::test]
async fn csv_file_with_options() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.txt");
    write_csv(&path, &[1, 2], ';');
    let source = build(json!({
        "path": path.to_str().unwrap(),
        "format": "csv",
        "delimiter": ";",
        "table": "people_v1",
    }));
    let batches = query(&source, "SELECT email FROM people_v1 WHERE id = 2").await;
    let text = pretty_format_batches(&batches).unwrap().to_string();
    assert!(text.contains("u2@example.com"), "{text}");

    let tsv = dir.path().join("rows.tsv");
    write_csv(&tsv, &[5], '\t');
    let source = build(json!({"path": tsv.to_str().unwrap()}));
    let batches = query(&source, "SELECT id FROM rows").await;
    assert_eq!(rows(&batches), 1);

    let headerless = dir.path().join("plain.csv");
    std::fs::write(&headerless, "1,a\n2,b\n").unwrap();
    let source = build(json!({"path": headerless.to_str().unwrap(), "has_header": false}));
    let columns = &source.list_tables().await.unwrap()[0].columns;
    assert_eq!(columns.len(), 2);
    let batches = query(&source, "SELECT * FROM plain").await;
    assert_eq!(rows(&batches), 2);
}

#[tokio::test]
async fn ndjson_file_registers_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    write_ndjson(&path, &[10, 20, 30]);
    let source = build(json!({"path": path.to_str().unwrap()}));
    let batches = query(&source, "SELECT count(*) AS n FROM events WHERE id > 10").await;
    let text = pretty_format_batches(&batches).unwrap().to_string();
    assert!(text.contains("| 2 "), "{text}");
}

#[tokio::test]
async fn directory_of_files_is_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("Exports");
    std::fs::create_dir(&exports).unwrap();
    write_parquet(&exports.join("part-0.parquet"), &users_batch(&[1, 2]));
    write_parquet(&exports.join("part-1.parquet"), &users_batch(&[3]));
    std::fs::write(exports.join("_SUCCESS.txt"), "").unwrap();
    std::fs::create_dir(exports.join("old")).unwrap();
    write_parquet(
        &exports.join("old").join("part-9.parquet"),
        &users_batch(&[9]),
    );

    let source = build(json!({"path": exports.to_str().unwrap()}));
    let batches = query(&source, "SELECT id FROM exports ORDER BY id").await;
    assert_eq!(rows(&batches), 3, "subdirectories are not read");

    let report = source.test().await.unwrap();
    assert!(
        report.message.contains("2 parquet file"),
        "{}",
        report.message
    );
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);

    // A file added later is read by the next registration.
    write_parquet(&exports.join("part-2.parquet"), &users_batch(&[4]));
    let batches = query(&source, "SELECT id FROM exports").await;
    assert_eq!(rows(&batches), 4);
}

#[tokio::test]
async fn directory_formats_must_be_unambiguous() {
    let dir = tempfile::tempdir().unwrap();
    write_csv(&dir.path().join("a.csv"), &[1], ',');
    write_ndjson(&dir.path().join("b.ndjson"), &[2]);
    let path = dir.path().to_str().unwrap();

    match build(json!({"path": path})).test().await {
        Err(SourceError::InvalidConfig { field, message }) => {
            assert_eq!(field, "format");
            assert!(
                message.contains("csv") && message.contains("ndjson"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let csv = build(json!({"path": path, "format": "csv", "table": "t"}));
    assert_eq!(rows(&query(&csv, "SELECT * FROM t").await), 1);
    match build(json!({"path": path, "format": "parquet"}))
        .test()
        .await
    {
        Err(SourceError::Unavailable { message }) => {
            assert!(message.contains("no parquet files"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    let empty = tempfile::tempdir().unwrap();
    match build(json!({"path": empty.path().to_str().unwrap()}))
        .test()
        .await
    {
        Err(SourceError::Unavailable { message }) => {
            assert!(message.contains("contains no"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

// ---- errors -------------------------------------------------------------------------------

#[tokio::test]
async fn missing_path_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.parquet");
    let source = build(json!({"path": missing.to_str().unwrap()}));
    for error in [
        source.test().await.unwrap_err(),
        source.list_tables().await.unwrap_err(),
        source.register(&SessionContext::new()).await.unwrap_err(),
    ] {
        match error {
            SourceError::Unavailable { message } => {
                assert!(message.contains("does not exist"), "{message}");
                assert!(message.contains("nope.parquet"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn unknown_extension_needs_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    std::fs::write(&path, "id\n1\n").unwrap();
    match build(json!({"path": path.to_str().unwrap()})).test().await {
        Err(SourceError::InvalidConfig { field, .. }) => assert_eq!(field, "format"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn corrupt_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.parquet");
    std::fs::write(&path, "this is not parquet").unwrap();
    let source = build(json!({"path": path.to_str().unwrap()}));
    match source.test().await {
        Err(SourceError::Read { message }) => {
            assert!(message.contains("broken.parquet"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unsupported_column_type_is_rejected_on_register() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blobs.parquet");
    // A list of binary values: rejected (see types.rs).
    let values = BinaryArray::from_vec(vec![b"ab".as_ref()]);
    let list = ListArray::new(
        Arc::new(Field::new("item", DataType::Binary, true)),
        datafusion::arrow::buffer::OffsetBuffer::from_lengths([1]),
        Arc::new(values),
        None,
    );
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("blobs", Arc::new(list) as ArrayRef),
    ])
    .unwrap();
    write_parquet(&path, &batch);
    let source = build(json!({"path": path.to_str().unwrap()}));
    match source.register(&SessionContext::new()).await {
        Err(SourceError::UnsupportedType { column, .. }) => assert_eq!(column, "blobs"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unreadable_file_is_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.csv");
    write_csv(&path, &[1], ',');
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&path).is_ok() {
        // Running as root: permissions are not enforced, nothing to check.
        return;
    }
    match build(json!({"path": path.to_str().unwrap()})).test().await {
        Err(SourceError::PermissionDenied { message }) => {
            assert!(message.contains("secret.csv"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
