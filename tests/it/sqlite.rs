//! End-to-end syncs from a SQLite database file (real files in temp dirs) to the webhook
//! emulator and the file destination, through the gRPC API; and bad SQLite input through the
//! API.

use std::collections::BTreeSet;
use std::path::Path;

use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, keys_of};
use serde_json::{Value, json};
use tonic::Code;

/// Runs `sql` against the database file (as the application that owns it would).
fn sqlite(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[tokio::test]
async fn sqlite_inserts_updates_and_deletes_reach_the_destination() {
    let h = Harness::start().await;
    let db = h.path("app.db");
    sqlite(
        &db,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL, plan TEXT, \
         ltv DECIMAL(12,2), last_login DATETIME); \
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200) \
         INSERT INTO customers SELECT i, 'user' || i || '@example.com', \
           CASE i % 3 WHEN 0 THEN 'free' WHEN 1 THEN 'pro' ELSE 'enterprise' END, \
           i * 10.5, '2026-01-01 10:00:00' FROM c;",
    );
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    h.create_sqlite_source("lite", &db, json!({}))
        .await
        .unwrap();
    // `plan` is in the model but not mapped; `last_login` is not in the model.
    h.create_model(
        "paying",
        "lite",
        "SELECT id, email, plan, ltv FROM customers WHERE plan <> 'free'",
        "id",
    )
    .await
    .unwrap();
    h.webhook_mappings("paying", &hook.url(), &[("email", "email"), ("ltv", "ltv")])
        .await;

    // Run 1: every paying customer is added.
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let paying: BTreeSet<i64> = (1..=200).filter(|i| i % 3 != 0).collect();
    assert_eq!(keys_of(&hook, 0, "added"), paying);
    assert_eq!(run.counts.unwrap().extracted, paying.len() as u64);
    // Decimals arrive with their exact digits.
    let seven = hook
        .records()
        .into_iter()
        .find(|r| r.key == json!(7))
        .unwrap();
    let fields = seven.fields.unwrap();
    assert_eq!(fields["ltv"], Value::from("73.50"));
    assert_eq!(fields["email"], Value::from("user7@example.com"));
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");

    // Run 2: 3 mapped updates, an unmapped one (plan) and one outside the model
    // (last_login), 2 inserts (one not paying), 4 deletes, and one customer leaving the model.
    sqlite(
        &db,
        "UPDATE customers SET email = 'new' || id || '@example.com' WHERE id IN (1, 2, 4); \
         UPDATE customers SET plan = 'enterprise' WHERE id = 5; \
         UPDATE customers SET last_login = '2026-02-02 08:00:00' WHERE id = 8; \
         INSERT INTO customers VALUES (201, 'a@x.com', 'pro', 1, NULL), (202, 'b@x.com', 'free', 2, NULL); \
         DELETE FROM customers WHERE id IN (7, 8, 10, 11); \
         UPDATE customers SET plan = 'free' WHERE id = 13;",
    );
    let before = hook.records().len();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(keys_of(&hook, before, "added"), BTreeSet::from([201]));
    assert_eq!(keys_of(&hook, before, "updated"), BTreeSet::from([1, 2, 4]));
    assert_eq!(hook.records().len() - before, 4, "nothing for id 5");
    let before = hook.records().len();
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        keys_of(&hook, before, "deleted"),
        BTreeSet::from([7, 8, 10, 11, 13])
    );

    // Run 3: a decimal change, a delete, and an unmapped-only change.
    sqlite(
        &db,
        "UPDATE customers SET ltv = 999.99 WHERE id = 16; \
         DELETE FROM customers WHERE id = 14; \
         UPDATE customers SET plan = 'pro' WHERE id = 17;",
    );
    let before = hook.records().len();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(keys_of(&hook, before, "updated"), BTreeSet::from([16]));
    assert_eq!(hook.records().len() - before, 1, "nothing for id 17");
    let sixteen = hook.records().pop().unwrap();
    assert_eq!(sixteen.fields.unwrap()["ltv"], Value::from("999.99"));
    let before = hook.records().len();
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(keys_of(&hook, before, "deleted"), BTreeSet::from([14]));
    // And nothing more once everything is in sync.
    let before = hook.records().len();
    for mapping in ["up", "del"] {
        let run = h.sync(mapping).await;
        assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    }
    assert_eq!(hook.records().len(), before);
}

#[tokio::test]
async fn two_mappings_on_one_sqlite_source_queue_behind_a_limit_of_one() {
    const ROWS: u64 = 150_000;
    let h = Harness::start().await;
    let db = h.path("events.db");
    // Big enough that an extraction takes a noticeable time.
    sqlite(
        &db,
        &format!(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL); \
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {ROWS}) \
             INSERT INTO events SELECT i, 'k' || (i % 7) FROM c;"
        ),
    );
    h.create_sqlite_source("lite", &db, json!({"max_concurrent_extractions": 1}))
        .await
        .unwrap();
    h.create_model("ev", "lite", "SELECT id, kind FROM events", "id")
        .await
        .unwrap();
    h.create_destination(
        "files",
        "file",
        json!({"directory": h.path("out").display().to_string()}),
    )
    .await
    .unwrap();
    for m in ["a", "b"] {
        h.create_mapping(
            m,
            "ev",
            "files",
            "append_changes",
            &[("kind", "kind")],
            None,
        )
        .await
        .unwrap();
    }
    let (ra, rb) = tokio::join!(h.trigger("a", false), h.trigger("b", false));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let (a, b) = tokio::join!(h.wait(&ra.id), h.wait(&rb.id));
    for run in [&a, &b] {
        assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
        assert_eq!(run.counts.unwrap().delivered, ROWS);
    }
    // With one slot the extraction windows [start, start + extract] do not overlap, and the
    // second run's record shows the time it spent queued.
    let window = |r: &v1::SyncRun| {
        let start = r.start_time.unwrap();
        let start_ms = start.seconds * 1000 + i64::from(start.nanos) / 1_000_000;
        (start_ms, start_ms + r.timings.unwrap().extract_ms as i64)
    };
    let (mut first, mut second) = (window(&a), window(&b));
    let queued = if first.0 > second.0 {
        std::mem::swap(&mut first, &mut second);
        a.timings.unwrap().queued_ms
    } else {
        b.timings.unwrap().queued_ms
    };
    println!("extract windows {first:?} {second:?}; second run queued {queued} ms");
    assert!(
        second.0 + 5 >= first.1,
        "extractions overlapped: {first:?} {second:?}"
    );
    assert!(queued > 0, "the second run waited in the queue");
    assert!(
        queued as i64 + 5 >= first.1 - first.0,
        "the second run waited for the first extraction ({queued} ms)"
    );
}

#[tokio::test]
async fn bad_sqlite_input_is_a_clear_error_through_the_api() {
    let h = Harness::start().await;

    // A relative path is refused when the source is created.
    let err = h
        .create_sqlite_source("rel", Path::new("app.db"), json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("path") && err.message().contains("absolute"),
        "{}",
        err.message()
    );

    // A missing file: the source is created (building touches no file), testing it and
    // creating a model over it name the path; the file is not created.
    let missing = h.path("missing.db");
    h.create_sqlite_source("missing", &missing, json!({}))
        .await
        .unwrap();
    let err = h.test_source("missing").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("path") && err.message().contains("missing.db"),
        "{}",
        err.message()
    );
    let err = h
        .create_model("m0", "missing", "SELECT 1 AS id", "id")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("no file"), "{}", err.message());
    assert!(!missing.exists());

    // Not a database.
    let text = h.path("notes.txt");
    std::fs::write(&text, "not a database at all\n".repeat(50)).unwrap();
    h.create_sqlite_source("text", &text, json!({}))
        .await
        .unwrap();
    let err = h.test_source("text").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("not a SQLite database"),
        "{}",
        err.message()
    );

    // A good database: testing succeeds and says read-only.
    let db = h.path("app.db");
    sqlite(
        &db,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, balance MONEY, n INTEGER); \
         INSERT INTO users VALUES (1, 'a@x.com', 1, 1), (2, 'b@x.com', 2, 'many');",
    );
    h.create_sqlite_source("lite", &db, json!({}))
        .await
        .unwrap();
    let report = h.test_source("lite").await.unwrap();
    assert!(
        report.message.contains("read-only") && report.message.contains("1 table and 0 views"),
        "{report:?}"
    );

    // A syntax error in the model SQL.
    let err = h
        .create_model("m1", "lite", "SELEC id FROM users", "id")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("syntax"), "{}", err.message());
    // An unknown table.
    let err = h
        .create_model("m2", "lite", "SELECT id FROM nope", "id")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("nope") && err.message().contains("not found"),
        "{}",
        err.message()
    );
    // An unsupported column type: the table, the column, the type and the fix.
    let err = h
        .create_model("m3", "lite", "SELECT id, email FROM users", "id")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("table users")
            && err.message().contains("'balance'")
            && err.message().contains("MONEY")
            && err.message().contains("CREATE VIEW"),
        "{}",
        err.message()
    );

    // A value that does not fit its declared type: the run fails naming the column, and
    // nothing is deleted.
    sqlite(
        &db,
        "CREATE VIEW readable AS SELECT id, email, n FROM users;",
    );
    h.create_model("m4", "lite", "SELECT id, email, n FROM readable", "id")
        .await
        .unwrap();
    h.create_destination(
        "files",
        "file",
        json!({"directory": h.path("out").display().to_string()}),
    )
    .await
    .unwrap();
    h.create_mapping("a", "m4", "files", "append_changes", &[("n", "n")], None)
        .await
        .unwrap();
    let run = h.sync("a").await;
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    assert!(
        run.error.contains("column 'n'") && run.error.contains("'many'"),
        "{}",
        run.error
    );
    assert_eq!(run.counts.unwrap().deleted, 0);
}

#[tokio::test]
async fn a_database_locked_by_a_writer_is_retried_and_never_read_short() {
    let h = Harness::start().await;
    let db = h.path("app.db");
    sqlite(
        &db,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); \
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 10) \
         INSERT INTO t SELECT i, 'v' || i FROM c;",
    );
    h.create_sqlite_source(
        "lite",
        &db,
        json!({"busy_timeout_ms": 100, "connection_retries": 1}),
    )
    .await
    .unwrap();
    h.create_model("m", "lite", "SELECT id, v FROM t", "id")
        .await
        .unwrap();
    h.create_destination(
        "files",
        "file",
        json!({"directory": h.path("out").display().to_string()}),
    )
    .await
    .unwrap();
    h.create_mapping("a", "m", "files", "append_changes", &[("v", "v")], None)
        .await
        .unwrap();
    let run = h.sync("a").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    sqlite(&db, "DELETE FROM t WHERE id IN (3, 4);");

    // A writer holds the lock for longer than every attempt: the run fails with the reason,
    // and nothing is deleted.
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let run = h.sync("a").await;
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    assert!(
        run.error.contains("locked")
            && run.error.contains("busy_timeout_ms = 100")
            && run.error.contains("gave up after 2 attempts"),
        "{}",
        run.error
    );
    assert_eq!(run.counts.unwrap().deleted, 0);

    // The writer commits during the retry's backoff (once the first attempt has failed):
    // the retried extract is whole.
    let pending = h.trigger("a", false).await.unwrap();
    let mut first_attempt_failed = false;
    for _ in 0..1000 {
        let live = h
            .client
            .syncs()
            .get_sync_run(v1::GetSyncRunRequest {
                run_id: pending.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if !live.warnings.is_empty() {
            first_attempt_failed = true;
            break;
        }
        assert!(
            !retl::grpc::convert::is_terminal(live.status()),
            "the run ended while the database was locked: {live:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(first_attempt_failed, "the first attempt never failed");
    writer.execute_batch("COMMIT").unwrap();
    let run = h.wait(&pending.id).await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("extract attempt 1 of 2 failed") && w.contains("locked")),
        "{:?}",
        run.warnings
    );
    let c = run.counts.unwrap();
    assert_eq!((c.extracted, c.deleted), (8, 2), "{c:?}");
}
