//! SQL over staging and the system tables through `QueryService.ExecuteQuery` (Arrow IPC) and
//! `retl sql`: model tables and kept extracts, retention, read-only enforcement, unknown names,
//! every system table, row limits and timeouts, and the `retl.diff` table function.

use std::time::Duration;

use retl_engine::EngineOptions;
use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Customer, Harness, customers, query, text_rows as rows, write_parquet};
use serde_json::json;
use tonic::Code;

async fn one(h: &Harness, sql: &str) -> String {
    let result = rows(&query(h, sql, 0).await.unwrap());
    assert_eq!(result.len(), 1, "{sql}: {result:?}");
    result[0][0].clone()
}

async fn refused(h: &Harness, sql: &str) -> String {
    let err = query(h, sql, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{sql}: {err:?}");
    err.message().to_string()
}

/// A warehouse of `rows`, model `m`, webhook `hook` (with a signing secret) and mapping `up`.
async fn setup(h: &Harness, hook: &WebhookEmulator, rows: &[Customer]) {
    h.warehouse(rows).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination(
        "hook",
        "webhook",
        json!({"url": hook.url(), "signing_secret": "planted-signing-secret-93ab"}),
    )
    .await
    .unwrap();
    h.create_mapping("up", "m", "hook", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
}

#[tokio::test]
async fn staged_extracts_are_tables_and_only_the_kept_ones_remain() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    setup(&h, &hook, &customers(30)).await;
    let mut run_ids = Vec::new();
    for n in [30, 31, 32] {
        write_parquet(&h.path("customers.parquet"), &customers(n));
        let run = h.sync("up").await;
        assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
        run_ids.push(run.id);
    }
    // `m` is the newest extract.
    assert_eq!(one(&h, "SELECT count(*) FROM m").await, "32");
    assert_eq!(one(&h, "SELECT count(*) FROM staging.m").await, "32");
    assert_eq!(
        one(&h, "SELECT email FROM m WHERE id = 31").await,
        "user31@example.com"
    );
    // Two extracts are kept (the engine's default): the newest two runs, not the first.
    let kept = format!("SELECT count(*) FROM \"m@{}\"", run_ids[1]);
    assert_eq!(one(&h, &kept).await, "31");
    let gone = refused(&h, &format!("SELECT * FROM \"m@{}\"", run_ids[0])).await;
    assert!(
        gone.contains("not found") && gone.contains("staging.m"),
        "{gone}"
    );
    let tables = rows(
        &query(
            &h,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging' ORDER BY 1",
            0,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        tables,
        vec![
            vec!["m".to_string()],
            vec![format!("m@{}", run_ids[1])],
            vec![format!("m@{}", run_ids[2])],
        ]
    );
    // SHOW TABLES and EXPLAIN are read-only too.
    let shown = rows(&query(&h, "SHOW TABLES", 0).await.unwrap());
    assert!(
        shown.iter().any(|r| r.contains(&"sync_runs".to_string())),
        "{shown:?}"
    );
    assert!(
        !query(&h, "EXPLAIN SELECT count(*) FROM m", 0)
            .await
            .unwrap()
            .is_empty()
    );
    // A row limit per query.
    let limited = query(&h, "SELECT * FROM m", 5).await.unwrap();
    assert_eq!(rows(&limited).len(), 5);
}

#[tokio::test]
async fn anything_but_one_read_only_query_is_refused_before_it_runs() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    setup(&h, &hook, &customers(5)).await;
    assert_eq!(h.sync("up").await.status(), v1::RunStatus::Succeeded);
    let out = h.path("copied.csv");
    for sql in [
        "DROP TABLE m".to_string(),
        "INSERT INTO m VALUES (1, 'a', 'b')".to_string(),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "CREATE VIEW v AS SELECT 1".to_string(),
        format!("COPY (SELECT * FROM m) TO '{}'", out.display()),
        format!(
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{}'",
            out.display()
        ),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "DELETE FROM m".to_string(),
    ] {
        let message = refused(&h, &sql).await;
        assert!(message.contains("read-only"), "{sql}: {message}");
    }
    assert!(!out.exists(), "COPY wrote nothing");
    let two = refused(&h, "SELECT 1; SELECT 2").await;
    assert!(two.contains("one statement"), "{two}");
    let empty = refused(&h, "  ").await;
    assert!(empty.contains("empty"), "{empty}");
    let syntax = refused(&h, "SELEC 1").await;
    assert!(syntax.contains("syntax"), "{syntax}");
    // Unknown names: the message lists what exists.
    let table = refused(&h, "SELECT * FROM nope").await;
    assert!(
        table.contains("nope") && table.contains("staging.m") && table.contains("retl.sync_runs"),
        "{table}"
    );
    let column = refused(&h, "SELECT nope FROM m").await;
    assert!(
        column.contains("nope") && column.contains("email"),
        "{column}"
    );
    // The tables are still there.
    assert_eq!(one(&h, "SELECT count(*) FROM m").await, "5");
}

#[tokio::test]
async fn a_query_past_its_timeout_ends_with_deadline_exceeded() {
    let h = Harness::start_with(|c| {
        c.engine_options = EngineOptions {
            query_timeout: Duration::from_millis(300),
            ..EngineOptions::default()
        }
    })
    .await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    setup(&h, &hook, &customers(3000)).await;
    assert_eq!(h.sync("up").await.status(), v1::RunStatus::Succeeded);
    let started = std::time::Instant::now();
    let err = query(
        &h,
        "SELECT count(*) FROM m a, m b, m c WHERE a.id + b.id + c.id > 0",
        0,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("timeout"), "{}", err.message());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The daemon still answers: the stopped query ends at DataFusion's next yield point (a
    // debug build took about 1.5 s for this three-way join).
    let t = std::time::Instant::now();
    loop {
        match query(&h, "SELECT count(*) FROM m", 0).await {
            Ok(batches) => {
                assert_eq!(rows(&batches), vec![vec!["3000".to_string()]]);
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "the stopped query kept the SQL runtime busy"
                );
            }
        }
    }
}

#[tokio::test]
async fn system_tables_show_runs_errors_pending_records_state_and_the_catalog_without_secrets() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let mut data = customers(10);
    data[9].id = None; // a null key: rejected
    setup(&h, &hook, &data).await;
    hook.reject_keys([json!(3)]);
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::PartiallyFailed, "{run:?}");

    let runs = rows(
        &query(
            &h,
            "SELECT run_id, mapping_id, status, trigger, extracted, delivered, failed, rejected FROM retl.sync_runs",
            0,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        runs,
        vec![vec![
            run.id.clone(),
            "up".into(),
            "partially_failed".into(),
            "manual".into(),
            "10".into(),
            "8".into(),
            "1".into(),
            "1".into()
        ]]
    );
    // The counts add up on every row.
    assert_eq!(
        one(
            &h,
            "SELECT count(*) FROM retl.sync_runs WHERE extracted <> added + updated + unchanged + rejected OR selected <> delivered + failed + given_up"
        )
        .await,
        "0"
    );
    let errors = rows(
        &query(
            &h,
            "SELECT key, stage FROM retl.run_errors ORDER BY stage",
            0,
        )
        .await
        .unwrap(),
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().any(|r| r[0] == "3" && r[1] == "deliver"),
        "{errors:?}"
    );
    assert!(errors.iter().any(|r| r[0] == "<null>"), "{errors:?}");
    let pending = rows(
        &query(
            &h,
            "SELECT mapping_id, key, attempts, given_up, last_run FROM retl.pending",
            0,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        pending,
        vec![vec![
            "up".to_string(),
            "3".into(),
            "1".into(),
            "false".into(),
            run.id.clone()
        ]]
    );
    assert_eq!(
        one(
            &h,
            "SELECT count(*) FROM retl.state WHERE mapping_id = 'up'"
        )
        .await,
        "8"
    );
    let keys = rows(
        &query(
            &h,
            "SELECT key FROM retl.state ORDER BY CAST(key AS INT)",
            0,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        keys.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["1", "2", "4", "5", "6", "7", "8", "9"]
    );
    assert_eq!(
        one(&h, "SELECT length(fingerprint) FROM retl.state LIMIT 1").await,
        "32"
    );
    // Every entry names the run that sent it, and when.
    let by = rows(
        &query(
            &h,
            "SELECT run_id, sent, count(*), bool_and(synced_at >= now() - INTERVAL '1 hour') FROM retl.state GROUP BY 1, 2",
            0,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        by,
        vec![vec![
            run.id.clone(),
            "true".into(),
            "8".into(),
            "true".into()
        ]]
    );
    assert_eq!(
        one(
            &h,
            "SELECT source_type FROM retl.sources WHERE source_id = 'wh'"
        )
        .await,
        "files"
    );
    assert_eq!(one(&h, "SELECT unique_id FROM retl.models").await, "id");
    assert_eq!(
        one(
            &h,
            "SELECT action || ':' || model_id || ':' || destination_id FROM retl.mappings"
        )
        .await,
        "upsert:m:hook"
    );
    let destination = rows(
        &query(
            &h,
            "SELECT destination_type, secret_fields, config FROM retl.destinations",
            0,
        )
        .await
        .unwrap(),
    );
    assert_eq!(destination[0][0], "webhook");
    assert_eq!(destination[0][1], "signing_secret");
    // No secret value anywhere in any system table.
    for table in [
        "sync_runs",
        "run_errors",
        "pending",
        "state",
        "sources",
        "models",
        "destinations",
        "mappings",
    ] {
        let all = rows(
            &query(&h, &format!("SELECT * FROM retl.{table}"), 0)
                .await
                .unwrap(),
        );
        assert!(
            !format!("{all:?}").contains("planted-signing-secret"),
            "{table}: {all:?}"
        );
    }
}

#[tokio::test]
async fn retl_sql_prints_a_table_csv_and_json() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    setup(&h, &hook, &customers(12)).await;
    assert_eq!(h.sync("up").await.status(), v1::RunStatus::Succeeded);
    const SQL: &str = "SELECT plan, count(*) AS n FROM m GROUP BY plan ORDER BY plan";
    let out = h.cli(&["--output", "table", "sql", SQL]).await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("| plan") && text.contains("| enterprise |") && text.contains("(3 rows)"),
        "{text}"
    );
    let csv = String::from_utf8(h.cli(&["--output", "csv", "sql", SQL]).await.stdout).unwrap();
    assert_eq!(csv, "plan,n\nenterprise,4\nfree,4\npro,4\n");
    let json = String::from_utf8(h.cli(&["--output", "json", "sql", SQL]).await.stdout).unwrap();
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first, json!({"plan": "enterprise", "n": 4}));
    // A refused query: the CLI names the code and exits non-zero.
    let bad = h.cli(&["sql", "DROP TABLE m"]).await;
    assert!(!bad.status.success());
    let stderr = String::from_utf8(bad.stderr).unwrap();
    assert!(
        stderr.contains("INVALID_ARGUMENT") && stderr.contains("read-only"),
        "{stderr}"
    );
}

/// `retl.diff('<mapping>')` shows what the next run would do — from the latest extract, or a
/// fresh one on request — sending nothing and changing no state; the run that follows does
/// exactly that.
#[tokio::test]
async fn the_diff_table_shows_the_next_run_without_sending_or_changing_anything() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    setup(&h, &hook, &customers(20)).await;
    // No extract yet: the latest one cannot be compared, a fresh one can.
    let err = query(&h, "SELECT * FROM retl.diff('up')", 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("fresh"), "{}", err.message());
    let fresh = rows(
        &query(
            &h,
            "SELECT operation, outcome, count(*) FROM retl.diff('up', 'fresh') GROUP BY 1, 2",
            0,
        )
        .await
        .unwrap(),
    );
    assert_eq!(fresh, vec![vec!["added", "send", "20"]]);
    let payload = one(&h, "SELECT payload FROM retl.diff('up') WHERE key = '7'").await;
    assert!(payload.contains("user7@example.com"), "{payload}");
    assert_eq!(hook.request_count(), 0, "a diff sends nothing");
    assert_eq!(one(&h, "SELECT count(*) FROM retl.state").await, "0");

    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let requests = hook.request_count();
    // After the run the latest extract matches the state.
    assert_eq!(one(&h, "SELECT count(*) FROM retl.diff('up')").await, "0");

    // One changed, one gone, one new.
    let mut next = customers(21);
    next.retain(|c| c.id != Some(20));
    next[2].email = "changed3@example.com".to_string();
    write_parquet(&h.path("customers.parquet"), &next);
    assert_eq!(
        one(&h, "SELECT count(*) FROM retl.diff('up')").await,
        "0",
        "the latest extract has not changed"
    );
    let changes = rows(
        &query(
            &h,
            "SELECT key, operation, outcome FROM retl.diff('up', 'fresh') ORDER BY key",
            0,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        changes,
        vec![
            vec!["20", "deleted", "not_selected"],
            vec!["21", "added", "send"],
            vec!["3", "updated", "send"],
        ]
    );
    assert_eq!(hook.request_count(), requests, "a diff sends nothing");
    assert_eq!(one(&h, "SELECT count(*) FROM retl.state").await, "20");
    let unknown = query(&h, "SELECT * FROM retl.diff('nope')", 0)
        .await
        .unwrap_err();
    assert!(unknown.message().contains("nope"), "{unknown:?}");
    let bad = refused(&h, "SELECT * FROM retl.diff(1)").await;
    assert!(bad.contains("retl.diff('<mapping id>')"), "{bad}");

    // The run does what the diff said.
    let run = h.sync("up").await;
    let counts = run.counts.unwrap();
    assert_eq!((counts.added, counts.updated, counts.deleted), (1, 1, 1));
    assert_eq!(counts.delivered, 2);
}
