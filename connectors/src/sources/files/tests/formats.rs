//! Each format and directories of files, and the Arrow types they produce.

use super::*;

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
