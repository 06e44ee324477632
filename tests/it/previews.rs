//! Model previews over the API: the first rows, and the cache per source and SQL.

use retl_proto::v1;
use retl_tests::{Harness, customers};

#[tokio::test]
async fn preview_returns_the_first_rows() {
    let h = Harness::start().await;
    h.warehouse(&customers(25)).await;
    h.create_model(
        "m",
        "wh",
        "SELECT id, email FROM customers ORDER BY id",
        "id",
    )
    .await
    .unwrap();
    let preview = h
        .client
        .models()
        .preview_model(v1::PreviewModelRequest {
            target: Some(v1::preview_model_request::Target::ModelId("m".into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preview.rows.len(), 10);
    assert_eq!(preview.columns.len(), 2);
    let tables = h
        .client
        .sources()
        .list_tables(v1::ListTablesRequest {
            source_id: "wh".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tables.tables[0].name, "customers");
    assert_eq!(tables.tables[0].columns.len(), 5);
}

async fn preview(h: &Harness, refresh: bool) -> v1::PreviewModelResponse {
    h.client
        .models()
        .preview_model(v1::PreviewModelRequest {
            target: Some(v1::preview_model_request::Target::ModelId("m".into())),
            limit: 5,
            refresh,
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn previews_are_cached_per_source_and_sql_until_refreshed_or_edited() {
    let h = Harness::start().await;
    let mut rows = customers(8);
    h.warehouse(&rows).await;
    h.model("SELECT id, email FROM customers ORDER BY id").await;
    let first = preview(&h, false).await;
    assert!(!first.cached);
    // The warehouse changes; an identical preview still answers from the cache.
    rows[0].email = "fresh@example.com".into();
    retl_tests::write_parquet(&h.path("customers.parquet"), &rows);
    let second = preview(&h, false).await;
    assert!(second.cached);
    assert_eq!(second.rows, first.rows, "identical cached results");
    let refreshed = preview(&h, true).await;
    assert!(!refreshed.cached);
    assert_ne!(refreshed.rows, first.rows, "refresh reads the warehouse");
    // A model edit shows fresh rows too.
    rows[0].email = "edited@example.com".into();
    retl_tests::write_parquet(&h.path("customers.parquet"), &rows);
    h.client
        .models()
        .update_model(v1::UpdateModelRequest {
            model: Some(v1::Model {
                id: "m".into(),
                sql: "SELECT id, email FROM customers ORDER BY id DESC".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["sql".into()],
            }),
        })
        .await
        .unwrap();
    let after_edit = preview(&h, false).await;
    assert!(!after_edit.cached);
}
