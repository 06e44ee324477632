//! Errors: missing and unreadable paths, corrupt files and broken rows (permanent, not UNAVAILABLE), unsupported types.

use super::*;

#[tokio::test]
async fn missing_path_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.parquet");
    crate::sources::conformance::unreachable_is_unavailable(
        &source_type(),
        json!({"path": missing.to_str().unwrap()}),
        &["does not exist", "nope.parquet"],
    )
    .await;
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
    let ctx = SessionContext::new();
    for error in [
        source.test().await.unwrap_err(),
        source.list_tables().await.unwrap_err(),
        source.register(&ctx).await.unwrap_err(),
    ] {
        // Permanent: clients must not retry it as UNAVAILABLE, nor the engine as transient.
        assert_eq!(
            error.category(),
            ErrorCategory::FailedPrecondition,
            "{error}"
        );
        assert!(!error.is_transient(), "{error}");
        match error {
            SourceError::Read { message } => assert!(
                message.contains("broken.parquet")
                    && message.contains("valid parquet file")
                    && message.contains("replace or remove"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_broken_row_after_the_sampled_rows_is_a_permanent_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    // The types are inferred from the first 1,000 rows; row 1,501 does not fit them.
    let ids: Vec<i64> = (1..=1_500).collect();
    write_csv(&path, &ids, ',');
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("not-a-number,x@example.com\n");
    std::fs::write(&path, text).unwrap();
    let source = build(json!({"path": path.to_str().unwrap()}));
    let ctx = SessionContext::new();
    source.register(&ctx).await.unwrap();
    let error = ctx
        .sql("SELECT id, email FROM people")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    let classified = source
        .classify_read_error(&error)
        .unwrap_or_else(|| panic!("not classified: {error}"));
    assert_eq!(classified.category(), ErrorCategory::FailedPrecondition);
    assert!(!classified.is_transient());
    let message = classified.to_string();
    assert!(
        message.contains("people.csv")
            && message.contains("not-a-number")
            && message.contains("fix or remove the broken row"),
        "{message}"
    );
    // What the files source does not know stays with the engine.
    let other = datafusion::error::DataFusionError::ResourcesExhausted("memory".to_string());
    assert!(source.classify_read_error(&other).is_none());
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
