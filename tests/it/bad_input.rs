//! Inputs that once slipped through or took the daemon down: page tokens it did not issue, and
//! model SQL whose expressions nest deep enough to overflow a thread's stack.

use retl_engine::model::MAX_EXPRESSION_DEPTH;
use retl_proto::v1;
use retl_tests::{Harness, customers};
use serde_json::json;
use tonic::Code;

fn assert_bad_page_token(result: Result<impl std::fmt::Debug, tonic::Status>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err}");
    assert!(
        err.message().starts_with("page_token ") && err.message().contains("next_page_token"),
        "{what}: {}",
        err.message()
    );
}

#[tokio::test]
async fn page_tokens_the_server_did_not_issue_are_refused() {
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    let path = h.path("customers.parquet").display().to_string();
    for id in ["wh2", "wh3"] {
        h.create_source(id, json!({ "path": path })).await.unwrap();
    }
    let sources = |page_token: String| {
        let client = h.client.clone();
        async move {
            client
                .sources()
                .list_sources(v1::ListSourcesRequest {
                    page_size: 2,
                    page_token,
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let first = sources(String::new()).await.unwrap();
    assert_eq!(first.sources.len(), 2);
    let token = first.next_page_token;
    let second = sources(token.clone()).await.unwrap();
    assert_eq!(second.sources.len(), 1, "the issued token pages on");

    // Garbage, an id (what a token once was), an edited token: refused, not the first page.
    let mut edited = token.clone();
    edited.replace_range(0..2, "zz");
    for bad in ["garbage", "wh", "%%%", edited.as_str()] {
        assert_bad_page_token(sources(bad.to_string()).await, bad);
    }
    // A token of one list is refused by the others.
    let c = &h.client;
    let other = token.clone();
    assert_bad_page_token(
        c.models()
            .list_models(v1::ListModelsRequest {
                page_size: 2,
                page_token: other.clone(),
            })
            .await,
        "ListModels",
    );
    assert_bad_page_token(
        c.destinations()
            .list_destinations(v1::ListDestinationsRequest {
                page_size: 2,
                page_token: other.clone(),
            })
            .await,
        "ListDestinations",
    );
    assert_bad_page_token(
        c.mappings()
            .list_mappings(v1::ListMappingsRequest {
                page_size: 2,
                page_token: other.clone(),
            })
            .await,
        "ListMappings",
    );
    for bad in [other.as_str(), "garbage", "01ARZ3NDEKTSV4RRFFQ69G5FAV"] {
        assert_bad_page_token(
            c.syncs()
                .list_sync_runs(v1::ListSyncRunsRequest {
                    mapping_id: "a".into(),
                    page_size: 2,
                    page_token: bad.to_string(),
                })
                .await,
            "ListSyncRuns",
        );
    }
}

/// `terms` terms joined by `op`: a left-deep expression about `terms` levels deep.
fn chain(op: &str, terms: usize) -> String {
    match op {
        "+" => vec!["1"; terms].join(" + "),
        "||" => vec!["'a'"; terms].join(" || "),
        "AND" => vec!["id > 0"; terms].join(" AND "),
        _ => (0..terms)
            .map(|i| format!("id = {i}"))
            .collect::<Vec<_>>()
            .join(" OR "),
    }
}

fn model_sql(op: &str, terms: usize) -> String {
    match op {
        "+" | "||" => format!("SELECT id, {} AS s FROM customers", chain(op, terms)),
        _ => format!("SELECT id, email FROM customers WHERE {}", chain(op, terms)),
    }
}

async fn preview_sql(h: &Harness, sql: &str) -> Result<v1::PreviewModelResponse, tonic::Status> {
    h.client
        .models()
        .preview_model(v1::PreviewModelRequest {
            target: Some(v1::preview_model_request::Target::Query(v1::ModelQuery {
                source_id: "wh".into(),
                sql: sql.to_string(),
            })),
            limit: 10,
            refresh: true,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Deep expressions (the chains that once overflowed the stack of a debug daemon at 243, 500 and
/// 1,200 terms, and far longer ones) get a clear INVALID_ARGUMENT, and the daemon stays up;
/// chains just under the limit are planned, previewed and synced.
#[tokio::test]
async fn deep_expressions_are_refused_clearly_and_the_daemon_stays_up() {
    let h = Harness::start().await;
    h.warehouse(&customers(5)).await;
    let cases = [("+", 243), ("||", 243), ("AND", 500), ("OR", 1_200)];
    let longer = ["+", "||", "AND", "OR"].map(|op| (op, 5_000));
    for (i, (op, terms)) in cases.into_iter().chain(longer).enumerate() {
        let sql = model_sql(op, terms);
        let what = format!("{terms} terms of {op}");
        let err = preview_sql(&h, &sql).await.expect_err(&what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err}");
        let err = h
            .create_model(&format!("deep{i}"), "wh", &sql, "id")
            .await
            .expect_err(&what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err}");
        for needle in ["model.sql", "nests more than", " IN (", "concat("] {
            assert!(err.message().contains(needle), "{what}: {}", err.message());
        }
        // The daemon is still up, and nothing was stored.
        let models = h
            .client
            .models()
            .list_models(v1::ListModelsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(models.models.is_empty(), "{what}: {models:?}");
    }

    // Just under the limit: previewed, created and synced.
    let terms = MAX_EXPRESSION_DEPTH - 2;
    for op in ["+", "||", "AND", "OR"] {
        let preview = preview_sql(&h, &model_sql(op, terms)).await.unwrap();
        assert!(!preview.rows.is_empty(), "{op}: {preview:?}");
    }
    let preview = preview_sql(&h, &model_sql("+", terms)).await.unwrap();
    let s = &preview.rows[0].fields["s"];
    assert_eq!(
        s.kind,
        Some(prost_types::value::Kind::NumberValue(terms as f64)),
        "{s:?}"
    );
    h.create_model("m", "wh", &model_sql("OR", terms), "id")
        .await
        .unwrap();
    let out = h.path("out");
    h.create_destination(
        "files",
        "file",
        json!({"directory": out.display().to_string()}),
    )
    .await
    .unwrap();
    h.create_mapping(
        "a",
        "m",
        "files",
        "append_changes",
        &[("email", "email")],
        None,
    )
    .await
    .unwrap();
    let run = h.sync("a").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.counts.unwrap().delivered, 5);
}
