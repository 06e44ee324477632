//! The sources conformance suite (`sources/conformance.rs`) against real files.

use datafusion::parquet::file::properties::WriterProperties;

use super::*;
use crate::sources::conformance;

#[test]
fn conformance_config_errors_name_the_field() {
    conformance::config_errors_name_the_field(&source_type(), &json!({"path": "/data/x.csv"}));
}

#[tokio::test]
async fn conformance_connect_errors_are_classified() {
    // A missing path: `missing_path_is_unavailable`. Files have no credentials.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.parquet");
    write_parquet(&path, &users_batch(&[1, 2]));
    conformance::a_missing_table_is_a_user_error(&build(json!({"path": path.to_str().unwrap()})))
        .await;
}

#[tokio::test]
async fn conformance_sessions_are_read_only() {
    // A directory of files, which DataFusion's own listing table would write a new file into.
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    std::fs::create_dir(&exports).unwrap();
    write_parquet(&exports.join("part-0.parquet"), &users_batch(&[1, 2, 3]));
    let source = build(json!({"path": exports.to_str().unwrap()}));
    conformance::sessions_are_read_only(&source, "exports", None).await;
    let files = std::fs::read_dir(&exports).unwrap().count();
    assert_eq!(files, 1, "a file was written into {}", exports.display());
}

#[tokio::test]
async fn conformance_a_read_cut_short_is_an_error() {
    const ROWS: usize = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.parquet");
    let ids: Vec<i64> = (1..=ROWS as i64).collect();
    let batch = users_batch(&ids);
    let file = std::fs::File::create(&path).unwrap();
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(10_000))
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let source = build(json!({"path": path.to_str().unwrap()}));
    let length = std::fs::metadata(&path).unwrap().len();
    let error = conformance::a_read_cut_short_is_an_error(
        &source,
        "SELECT id, email FROM events",
        ROWS,
        async {
            // Truncated in place, as an export being rewritten is.
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(length / 4).unwrap();
        },
    )
    .await;
    assert!(error.to_string().contains("events.parquet"), "{error}");
}
