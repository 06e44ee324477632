//! End-to-end syncs from a real MariaDB (a throwaway server on 127.0.0.1) through the daemon's
//! gRPC API to the webhook emulator and the file destination, checked key by key; and bad
//! MySQL input, each a clear gRPC error.

use std::collections::BTreeSet;

use retl_proto::v1;
use retl_testkit::MariaDbServer;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, keys_of};
use serde_json::{Value, json};

#[tokio::test]
async fn mysql_inserts_updates_and_deletes_reach_the_destination() {
    let db = MariaDbServer::start().await.unwrap();
    db.sql(
        "CREATE TABLE customers (id bigint PRIMARY KEY, email varchar(100) NOT NULL, \
         plan varchar(20), ltv decimal(12,2), status enum('new','active') DEFAULT 'new', \
         ref uuid, signed_up timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP); \
         INSERT INTO customers (id, email, plan, ltv, ref) \
         SELECT seq, CONCAT('user', seq, '@example.com'), ELT(seq % 3 + 1, 'free', 'pro', 'enterprise'), \
                seq * 10.5, CONCAT('00000000-0000-0000-0000-', LPAD(seq, 12, '0')) \
         FROM seq_1_to_200;",
    )
    .await
    .unwrap();
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    h.create_mysql_source("my", &db, db.root_user(), "", json!({}))
        .await
        .unwrap();
    h.create_model(
        "paying",
        "my",
        "SELECT id, email, plan, ltv, status, ref FROM customers WHERE plan <> 'free'",
        "id",
    )
    .await
    .unwrap();
    h.webhook_mappings(
        "paying",
        &hook.url(),
        &[
            ("email", "email"),
            ("ltv", "ltv"),
            ("status", "status"),
            ("ref", "ref"),
        ],
    )
    .await;

    // Run 1: every paying customer is added.
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let paying: BTreeSet<i64> = (1..=200).filter(|i| i % 3 != 0).collect();
    assert_eq!(keys_of(&hook, 0, "added"), paying);
    let seven = hook
        .records()
        .into_iter()
        .find(|r| r.key == json!(7))
        .unwrap();
    let fields = seven.fields.unwrap();
    // Decimals arrive with their exact digits; enums as their label; uuids as text.
    assert_eq!(fields["ltv"], Value::from("73.50"));
    assert_eq!(fields["status"], Value::from("new"));
    assert_eq!(
        fields["ref"],
        Value::from("00000000-0000-0000-0000-000000000007")
    );
    assert_eq!(fields["email"], Value::from("user7@example.com"));
    h.sync("del").await;

    // The server changes: 3 updates of mapped columns, 1 of an unmapped one, 2 inserts (one of
    // them outside the model), 4 deletes, and one customer leaves the model.
    db.sql(
        "UPDATE customers SET email = CONCAT('new', id, '@example.com') WHERE id IN (1, 2); \
         UPDATE customers SET status = 'active' WHERE id = 4; \
         UPDATE customers SET signed_up = '2020-01-01 00:00:00' WHERE id = 5; \
         INSERT INTO customers (id, email, plan, ltv) VALUES (201, 'a@x.com', 'pro', 1), (202, 'b@x.com', 'free', 2); \
         DELETE FROM customers WHERE id IN (7, 8, 10, 11); \
         UPDATE customers SET plan = 'free' WHERE id = 13;",
    )
    .await
    .unwrap();
    // Run 2: exactly the mapped changes, key by key; nothing for the unmapped update (5).
    let before = hook.records().len();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(keys_of(&hook, before, "added"), BTreeSet::from([201]));
    assert_eq!(keys_of(&hook, before, "updated"), BTreeSet::from([1, 2, 4]));
    assert_eq!(hook.records().len() - before, 4, "nothing else was sent");
    let four = hook
        .records()
        .into_iter()
        .skip(before)
        .find(|r| r.key == json!(4))
        .unwrap();
    assert_eq!(four.fields.unwrap()["status"], Value::from("active"));
    let before = hook.records().len();
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        keys_of(&hook, before, "deleted"),
        BTreeSet::from([7, 8, 10, 11, 13])
    );

    // Run 3: only an unmapped column changes, and one more row goes: the upsert mapping sends
    // nothing, the delete mapping exactly that key.
    db.sql(
        "UPDATE customers SET signed_up = '2021-01-01 00:00:00' WHERE id < 100; \
         DELETE FROM customers WHERE id = 14;",
    )
    .await
    .unwrap();
    let before = hook.records().len();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        hook.records().len(),
        before,
        "an unmapped change costs no call"
    );
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(keys_of(&hook, before, "deleted"), BTreeSet::from([14]));
}

/// A 300,000-row `events` table synced once to a `file` destination (mapping `all`), then
/// three rows updated and one deleted: the next run has 4 pending changes.
async fn events_synced_then_changed(db: &MariaDbServer, extra: Value) -> Harness {
    db.sql(
        "CREATE TABLE events (id bigint PRIMARY KEY, kind varchar(20) NOT NULL); \
         INSERT INTO events SELECT seq, CONCAT('k', seq % 7) FROM seq_1_to_300000;",
    )
    .await
    .unwrap();
    let h = Harness::start().await;
    h.create_mysql_source("my", db, db.root_user(), "", extra)
        .await
        .unwrap();
    h.create_model("ev", "my", "SELECT id, kind FROM events", "id")
        .await
        .unwrap();
    h.create_destination(
        "files",
        "file",
        json!({"directory": h.path("out").display().to_string()}),
    )
    .await
    .unwrap();
    h.create_mapping(
        "all",
        "ev",
        "files",
        "append_changes",
        &[("kind", "kind")],
        None,
    )
    .await
    .unwrap();
    let first = h.sync("all").await;
    assert_eq!(first.status(), v1::RunStatus::Succeeded, "{first:?}");
    assert_eq!(first.counts.unwrap().delivered, 300_000);
    db.sql("UPDATE events SET kind = 'changed' WHERE id IN (10, 20, 30); DELETE FROM events WHERE id = 40;")
        .await
        .unwrap();
    h
}

/// Triggers mapping `all`, kills every MariaDB connection once the extract is streaming, and
/// returns the run id.
async fn kill_mid_extract(h: &Harness, db: &MariaDbServer) -> String {
    let run = h.trigger("all", false).await.unwrap();
    for _ in 0..4000 {
        let live = h
            .client
            .syncs()
            .get_sync_run(v1::GetSyncRunRequest {
                run_id: run.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let extracted = live.counts.unwrap_or_default().extracted;
        if extracted > 0 {
            assert!(db.kill_connections().await.unwrap() > 0);
            assert!(
                extracted < 299_999,
                "killed mid-extract ({extracted} rows read)"
            );
            return run.id;
        }
        assert!(
            !retl::grpc::convert::is_terminal(live.status()),
            "the run ended before its extract streamed: {live:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    panic!("the extract never started streaming");
}

#[tokio::test]
async fn a_connection_killed_mid_extract_fails_the_run_and_the_next_run_delivers_the_pending_changes()
 {
    let db = MariaDbServer::start().await.unwrap();
    let h = events_synced_then_changed(&db, json!({"connection_retries": 0})).await;
    let run_id = kill_mid_extract(&h, &db).await;
    let failed = h.wait(&run_id).await;
    assert_eq!(failed.status(), v1::RunStatus::Failed, "{failed:?}");
    assert!(
        failed.error.contains("the extract failed after")
            && failed.error.contains("127.0.0.1")
            && (failed.error.contains("ended the connection") || failed.error.contains("was lost")),
        "{}",
        failed.error
    );
    let c = failed.counts.unwrap();
    assert_eq!(
        (c.deleted, c.delivered),
        (0, 0),
        "nothing derived from a partial extract"
    );
    // The next run reads everything again and delivers exactly the pending changes.
    let next = h.sync("all").await;
    assert_eq!(next.status(), v1::RunStatus::Succeeded, "{next:?}");
    let c = next.counts.unwrap();
    assert_eq!(c.extracted, 299_999, "{c:?}");
    assert_eq!(
        (c.added, c.updated, c.deleted, c.delivered),
        (0, 3, 1, 4),
        "{c:?}"
    );
}

#[tokio::test]
async fn a_mysql_connection_killed_mid_extract_is_retried_and_the_run_succeeds() {
    let db = MariaDbServer::start().await.unwrap();
    let h = events_synced_then_changed(&db, json!({})).await;
    let run_id = kill_mid_extract(&h, &db).await;
    let run = h.wait(&run_id).await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("extract attempt 1 of 3 failed") && w.contains("MySQL")),
        "{:?}",
        run.warnings
    );
    let c = run.counts.unwrap();
    assert_eq!(c.extracted, 299_999, "{c:?}");
    assert_eq!(
        (c.added, c.updated, c.deleted, c.delivered),
        (0, 3, 1, 4),
        "{c:?}"
    );
}

#[tokio::test]
async fn bad_mysql_input_is_a_clear_api_error() {
    let db = MariaDbServer::start().await.unwrap();
    db.sql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v varchar(10)); INSERT INTO t VALUES (1, 'a'); \
         CREATE TABLE secret_table (id bigint PRIMARY KEY, salary decimal(10,2)); \
         CREATE TABLE places (id bigint PRIMARY KEY, location point);",
    )
    .await
    .unwrap();
    db.create_user("reader", "reader-pw-1").await.unwrap();
    db.sql("GRANT SELECT ON retl_test.t TO 'reader'@'%'; GRANT SELECT ON retl_test.places TO 'reader'@'%'")
        .await
        .unwrap();
    let h = Harness::start().await;

    // Wrong password.
    h.create_mysql_source("badpw", &db, "reader", "wrong-pw-9", json!({}))
        .await
        .unwrap();
    let err = h.test_source("badpw").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
    assert!(
        err.message().contains("access denied for user 'reader'")
            && err.message().contains("check the user and password"),
        "{}",
        err.message()
    );
    assert!(!err.message().contains("wrong-pw-9"));
    // Unknown host.
    h.create_mysql_source(
        "nohost",
        &db,
        "reader",
        "reader-pw-1",
        json!({"host": "no-such-host.invalid", "connect_timeout_ms": 3000}),
    )
    .await
    .unwrap();
    let err = h.test_source("nohost").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    assert!(
        err.message().contains("no-such-host.invalid"),
        "{}",
        err.message()
    );
    // Missing database.
    h.create_mysql_source(
        "nodb",
        &db,
        db.root_user(),
        "",
        json!({"database": "nosuchdb"}),
    )
    .await
    .unwrap();
    let err = h.test_source("nodb").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("database 'nosuchdb' does not exist"),
        "{}",
        err.message()
    );

    // The reader works, with no warnings.
    h.create_mysql_source("my", &db, "reader", "reader-pw-1", json!({}))
        .await
        .unwrap();
    let report = h.test_source("my").await.unwrap();
    assert!(report.warnings.is_empty(), "{report:?}");
    // Permission denied on a table.
    let err = h
        .create_model("m1", "my", "SELECT id, salary FROM secret_table", "id")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert!(
        err.message()
            .contains("GRANT SELECT ON `retl_test`.`secret_table` TO 'reader'@'%'"),
        "{}",
        err.message()
    );
    // A syntax error in the model.
    let err = h
        .create_model("m2", "my", "SELEC id FROM t", "id")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("syntax"), "{}", err.message());
    // An unsupported column type.
    let err = h
        .create_model("m3", "my", "SELECT id, location FROM places", "id")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("'location'")
            && err.message().contains("point")
            && err.message().contains("CREATE VIEW"),
        "{}",
        err.message()
    );
    // And a good model over the same source still works.
    h.create_model("m4", "my", "SELECT id, v FROM t", "id")
        .await
        .unwrap();
}

/// Previews the model `m` through the API (default limit).
async fn preview(h: &Harness, refresh: bool) -> v1::PreviewModelResponse {
    h.client
        .models()
        .preview_model(v1::PreviewModelRequest {
            target: Some(v1::preview_model_request::Target::ModelId("m".into())),
            refresh,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// The `email` of each preview row.
fn emails(preview: &v1::PreviewModelResponse) -> Vec<String> {
    preview
        .rows
        .iter()
        .map(
            |row| match row.fields.get("email").and_then(|v| v.kind.as_ref()) {
                Some(prost_types::value::Kind::StringValue(email)) => email.clone(),
                other => panic!("email: {other:?}"),
            },
        )
        .collect()
}

#[tokio::test]
async fn a_mysql_model_preview_shows_the_first_rows_from_the_cache_until_refreshed() {
    let db = MariaDbServer::start().await.unwrap();
    db.sql(
        "CREATE TABLE customers (id bigint PRIMARY KEY, email varchar(100) NOT NULL); \
         INSERT INTO customers SELECT seq, CONCAT('user', seq, '@example.com') FROM seq_1_to_25;",
    )
    .await
    .unwrap();
    let h = Harness::start().await;
    h.create_mysql_source("my", &db, db.root_user(), "", json!({}))
        .await
        .unwrap();
    h.create_model(
        "m",
        "my",
        "SELECT id, email FROM customers ORDER BY id",
        "id",
    )
    .await
    .unwrap();

    let first = preview(&h, false).await;
    assert!(!first.cached);
    assert_eq!(
        first
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["id", "email"]
    );
    let expected: Vec<String> = (1..=10).map(|i| format!("user{i}@example.com")).collect();
    assert_eq!(emails(&first), expected, "the first 10 rows, in order");
    // The table changes; an identical preview still answers from the cache.
    db.sql("UPDATE customers SET email = 'fresh@example.com' WHERE id = 1")
        .await
        .unwrap();
    let second = preview(&h, false).await;
    assert!(second.cached);
    assert_eq!(second.rows, first.rows, "identical cached results");
    // Refresh reads MySQL again.
    let refreshed = preview(&h, true).await;
    assert!(!refreshed.cached);
    assert_eq!(emails(&refreshed)[0], "fresh@example.com");
    assert_eq!(emails(&refreshed)[1..], expected[1..]);
}
