//! Sources over the API: what a bad config or bad data in the user's files answers. Codes
//! matter: clients retry UNAVAILABLE, so a problem only the user can fix must not be one.

use retl_proto::v1;
use retl_tests::{Harness, customers, write_csv};
use serde_json::json;
use tonic::Code;

/// Previews `sql` over source `wh` without a stored model.
async fn preview(h: &Harness, sql: &str) -> Result<v1::PreviewModelResponse, tonic::Status> {
    h.client
        .models()
        .preview_model(v1::PreviewModelRequest {
            target: Some(v1::preview_model_request::Target::Query(v1::ModelQuery {
                source_id: "wh".into(),
                sql: sql.into(),
            })),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_corrupt_parquet_file_is_failed_precondition_not_unavailable() {
    let h = Harness::start().await;
    let path = h.path("customers.parquet");
    std::fs::write(&path, "this is not a Parquet file").unwrap();
    h.create_source("wh", json!({"path": path.display().to_string()}))
        .await
        .unwrap();
    let expect = |status: tonic::Status| {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        let message = status.message();
        assert!(
            message.contains("customers.parquet")
                && message.contains("valid parquet file")
                && message.contains("replace or remove"),
            "{message}"
        );
    };
    expect(h.test_source("wh").await.unwrap_err());
    expect(preview(&h, "SELECT * FROM customers").await.unwrap_err());
    expect(
        h.create_model("m", "wh", "SELECT * FROM customers", "id")
            .await
            .unwrap_err(),
    );
}

#[tokio::test]
async fn a_broken_csv_row_is_failed_precondition_not_unavailable() {
    let h = Harness::start().await;
    let path = h.path("customers.csv");
    // The types are inferred from the first rows; the broken one comes after them.
    write_csv(&path, &customers(3000), Some(2000));
    h.create_source("wh", json!({"path": path.display().to_string()}))
        .await
        .unwrap();
    let status = preview(&h, "SELECT count(*) AS n FROM customers")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("incorrect number of fields"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_mistyped_config_field_is_named_with_the_form_it_must_have() {
    let h = Harness::start().await;
    let status = h
        .create_source("wh", json!({"path": 42}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let message = status.message();
    assert!(
        message.contains("'path'")
            && message.contains("must be a text value (absolute path of a")
            && message.contains("not the number 42"),
        "{message}"
    );
    let path = h.path("customers.csv").display().to_string();
    let status = h
        .create_source("wh", json!({"path": path, "has_header": "yes"}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("'has_header'")
            && status.message().contains("must be true or false"),
        "{}",
        status.message()
    );
    // Nothing was stored.
    let listed = h
        .client
        .sources()
        .list_sources(v1::ListSourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.sources.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn a_relative_files_path_is_refused_like_a_relative_sqlite_path() {
    let h = Harness::start().await;
    for (source_type, path) in [("files", "data/customers.csv"), ("sqlite", "data/app.db")] {
        let status = h
            .create_typed_source("rel", source_type, json!({"path": path}))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let message = status.message();
        assert!(
            message.contains("'path'")
                && message.contains(path)
                && message.contains("relative")
                && message.contains("absolute path"),
            "{source_type}: {message}"
        );
    }
}
