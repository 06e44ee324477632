//! End-to-end syncs from a real warehouse (a throwaway PostgreSQL on 127.0.0.1) to the webhook
//! emulator, checked key by key.

use std::collections::BTreeSet;

use retl_proto::v1;
use retl_testkit::PostgresServer;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, counts, keys_of};
use serde_json::{Value, json};

#[tokio::test]
async fn postgres_inserts_updates_and_deletes_reach_the_destination() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql(
        "CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, plan text, \
         ltv numeric(12,2), signed_up timestamptz NOT NULL DEFAULT now(), \
         tenure interval DEFAULT '1 mon 2 days'); \
         INSERT INTO customers (id, email, plan, ltv) \
         SELECT i, 'user' || i || '@example.com', (ARRAY['free','pro','enterprise'])[i % 3 + 1], i * 10.5 \
         FROM generate_series(1, 200) AS i;",
    )
    .await
    .unwrap();
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    h.create_postgres_source("pg", &pg, pg.user(), pg.superuser_password(), json!({}))
        .await
        .unwrap();
    h.create_model(
        "paying",
        "pg",
        "SELECT id, email, plan, ltv, tenure FROM customers WHERE plan <> 'free'",
        "id",
    )
    .await
    .unwrap();
    h.webhook_mappings(
        "paying",
        &hook.url(),
        &[("email", "email"), ("ltv", "ltv"), ("tenure", "tenure")],
    )
    .await;

    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let paying: BTreeSet<i64> = (1..=200).filter(|i| i % 3 != 0).collect();
    assert_eq!(keys_of(&hook, 0, "added"), paying);
    // Decimals arrive with their exact digits.
    let seven = hook
        .records()
        .into_iter()
        .find(|r| r.key == json!(7))
        .unwrap();
    let fields = seven.fields.unwrap();
    assert_eq!(fields["ltv"], Value::from("73.50"));
    // Intervals are carried as text (Parquet staging has no interval type).
    assert!(
        fields["tenure"]
            .as_str()
            .is_some_and(|t| t.contains("1 mons")),
        "{fields:?}"
    );
    h.sync("del").await;

    // The warehouse changes: 3 updates of a mapped column, 1 of an unmapped one, 2 inserts,
    // 4 deletes, and one customer moves to the free plan (leaves the model: a delete).
    pg.psql(
        "UPDATE customers SET email = 'new' || id || '@example.com' WHERE id IN (1, 2, 4); \
         UPDATE customers SET signed_up = now() - interval '1 day' WHERE id = 5; \
         INSERT INTO customers (id, email, plan, ltv) VALUES (201, 'a@x.com', 'pro', 1), (202, 'b@x.com', 'free', 2); \
         DELETE FROM customers WHERE id IN (7, 8, 10, 11); \
         UPDATE customers SET plan = 'free' WHERE id = 13;",
    )
    .await
    .unwrap();
    let before = hook.records().len();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(keys_of(&hook, before, "added"), BTreeSet::from([201]));
    assert_eq!(keys_of(&hook, before, "updated"), BTreeSet::from([1, 2, 4]));
    let before = hook.records().len();
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        keys_of(&hook, before, "deleted"),
        BTreeSet::from([7, 8, 10, 11, 13])
    );
}

#[tokio::test]
async fn a_model_the_warehouse_user_may_not_read_is_permission_denied() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql("CREATE TABLE secret_table (id bigint PRIMARY KEY, salary numeric);")
        .await
        .unwrap();
    pg.create_user("reader", "reader-pw-1").await.unwrap();
    let h = Harness::start().await;
    h.create_postgres_source("pg", &pg, "reader", "reader-pw-1", json!({}))
        .await
        .unwrap();
    let err = h
        .create_model("m", "pg", "SELECT id, salary FROM secret_table", "id")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert!(err.message().contains("GRANT SELECT"), "{}", err.message());
    assert!(!err.message().contains("reader-pw-1"));
}

/// A 300,000-row `events` table synced once to a `file` destination (mapping `all`), then
/// three rows updated and one deleted in the warehouse: the next run has 4 pending changes.
async fn events_synced_then_changed(pg: &PostgresServer) -> Harness {
    pg.psql(
        "CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL); \
         INSERT INTO events SELECT i, 'k' || (i % 7) FROM generate_series(1, 300000) AS i;",
    )
    .await
    .unwrap();
    let h = Harness::start().await;
    let out = h.path("out");
    h.create_postgres_source("pg", pg, pg.user(), pg.superuser_password(), json!({}))
        .await
        .unwrap();
    h.create_model("ev", "pg", "SELECT id, kind FROM events", "id")
        .await
        .unwrap();
    h.create_destination(
        "files",
        "file",
        json!({"directory": out.display().to_string()}),
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
    pg.psql("UPDATE events SET kind = 'changed' WHERE id IN (10, 20, 30); DELETE FROM events WHERE id = 40;")
        .await
        .unwrap();
    h
}

/// Triggers mapping `all` and, once the extract is streaming, calls `interrupt`; returns the
/// run id and how many rows had been read then.
async fn interrupt_mid_extract<F, Fut>(h: &Harness, interrupt: F) -> (String, u64)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let run = h.trigger("all", false).await.unwrap();
    for _ in 0..2000 {
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
            interrupt().await;
            assert!(
                extracted < 299_999,
                "interrupted mid-extract ({extracted} rows read)"
            );
            return (run.id, extracted);
        }
        assert!(
            !retl::grpc::convert::is_terminal(live.status()),
            "the run ended before its extract streamed: {live:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the extract never started streaming");
}

#[tokio::test]
async fn losing_the_warehouse_mid_extract_fails_the_run_and_deletes_nothing() {
    let mut pg = PostgresServer::start().await.unwrap();
    let h = events_synced_then_changed(&pg).await;
    let pg_ref = &mut pg;
    let (run_id, _) = interrupt_mid_extract(&h, || async move {
        pg_ref.stop().await.unwrap();
    })
    .await;
    let failed = h.wait(&run_id).await;
    assert_eq!(failed.status(), v1::RunStatus::Failed, "{failed:?}");
    // The lost connection was retried (twice by default), each retry refused at once, then
    // the run gave up with the last attempt's words.
    assert!(
        failed.error.contains("gave up after 3 attempts")
            && failed.error.contains("connection_retries")
            && failed.error.contains("cannot connect to PostgreSQL"),
        "{}",
        failed.error
    );
    assert!(
        failed
            .warnings
            .iter()
            .any(|w| w.contains("extract attempt 1 of 3 failed")
                && w.contains("the extract failed after")),
        "{:?}",
        failed.warnings
    );
    // The time spent trying (two backoffs: 1 s, then 2 s) is reported as extract time.
    let extract_ms = failed.timings.unwrap_or_default().extract_ms;
    assert!(extract_ms >= 3_000, "{extract_ms}");
    let c = failed.counts.unwrap();
    assert_eq!(
        (c.deleted, c.delivered),
        (0, 0),
        "nothing derived from a partial extract"
    );

    // The warehouse is back: the next run delivers exactly the pending changes.
    pg.start_again().await.unwrap();
    let next = h.sync("all").await;
    assert_eq!(next.status(), v1::RunStatus::Succeeded, "{next:?}");
    let c = next.counts.unwrap();
    assert_eq!(
        (c.added, c.updated, c.deleted, c.delivered),
        (0, 3, 1, 4),
        "{c:?}"
    );
}

#[tokio::test]
async fn a_connection_killed_mid_extract_is_retried_and_the_run_succeeds() {
    let pg = PostgresServer::start().await.unwrap();
    let h = events_synced_then_changed(&pg).await;
    let pg_ref = &pg;
    let (run_id, _) = interrupt_mid_extract(&h, || async move {
        assert!(pg_ref.kill_connections().await.unwrap() > 0);
    })
    .await;
    let run = h.wait(&run_id).await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("extract attempt 1 of 3 failed") && w.contains("PostgreSQL")),
        "{:?}",
        run.warnings
    );
    // The retried extract is whole: exactly the pending changes, no false deletes.
    let c = run.counts.unwrap();
    assert_eq!(c.extracted, 299_999, "{c:?}");
    assert_eq!(
        (c.added, c.updated, c.deleted, c.delivered),
        (0, 3, 1, 4),
        "{c:?}"
    );
}

#[tokio::test]
async fn a_sync_while_the_warehouse_is_down_fails_with_a_clear_error() {
    let mut pg = PostgresServer::start().await.unwrap();
    pg.psql("CREATE TABLE t (id bigint PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');")
        .await
        .unwrap();
    let h = Harness::start().await;
    h.create_postgres_source(
        "pg",
        &pg,
        pg.user(),
        pg.superuser_password(),
        json!({"connect_timeout_ms": 2000}),
    )
    .await
    .unwrap();
    h.create_model("m", "pg", "SELECT id, v FROM t", "id")
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
    pg.stop().await.unwrap();
    let run = h.sync("a").await;
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    assert!(
        run.error.contains("cannot connect to PostgreSQL")
            && run.error.contains("server is running"),
        "{}",
        run.error
    );
    assert_eq!(run.counts.unwrap().deleted, 0);
}

/// Every common PostgreSQL type, from the table through staging, diff and mapping to the
/// JSON a destination receives; and an update seen in each kind of column.
#[tokio::test]
async fn every_postgres_type_reaches_the_destination_as_documented() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); \
         CREATE TABLE types ( \
           id int PRIMARY KEY, \
           i2 int2, i4 int4, i8 int8, n numeric(12,2), nb numeric, f4 float4, f8 float8, b bool, \
           t text, vc varchar(20), u uuid, d date, tm time, ts timestamp, tstz timestamptz, \
           iv interval, j json, jb jsonb, ta text[], ia int4[], by bytea, m mood); \
         INSERT INTO types VALUES ( \
           1, -32768, 2147483647, 9223372036854775807, 1234567890.12, 1234567890123456.123456789012, \
           1.5, 2.25, true, 'héllo', 'var', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', \
           '13:14:15.123456', '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456+02', \
           '1 year 2 months 3 days 04:05:06.5', '{\"a\": [1, 2]}', '{\"b\": {\"c\": null}}', \
           '{x,\"y z\"}', '{1,3}', '\\x00ff10', 'happy'); \
         INSERT INTO types (id) VALUES (2);",
    )
    .await
    .unwrap();
    let columns = [
        "i2", "i4", "i8", "n", "nb", "f4", "f8", "b", "t", "vc", "u", "d", "tm", "ts", "tstz",
        "iv", "j", "jb", "ta", "ia", "by", "m",
    ];
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    h.create_postgres_source("pg", &pg, pg.user(), pg.superuser_password(), json!({}))
        .await
        .unwrap();
    h.create_model("types", "pg", "SELECT * FROM types", "id")
        .await
        .unwrap();
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    let fields: Vec<(&str, &str)> = columns.iter().map(|c| (*c, *c)).collect();
    h.create_mapping("all", "types", "hook", "upsert", &fields, None)
        .await
        .unwrap();

    let run = h.sync("all").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let records = hook.records();
    let full = records.iter().find(|r| r.key == json!(1)).unwrap();
    let full = full.fields.clone().unwrap();
    let expected = json!({
        "i2": -32768, "i4": 2147483647, "i8": 9223372036854775807_i64,
        "n": "1234567890.12",
        // 28 significant digits, the decoder's limit (connectors/src/sources/postgres/types.rs).
        "nb": "1234567890123456.12345678901200000000",
        "f4": 1.5, "f8": 2.25, "b": true, "t": "héllo", "vc": "var",
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "d": "2024-02-29",
        "tm": "13:14:15.123456", "ts": "2024-02-29T13:14:15.123456",
        "tstz": "2024-02-29T11:14:15.123456+00:00",
        "j": "{\"a\": [1, 2]}", "jb": "{\"b\": {\"c\": null}}",
        "ta": ["x", "y z"], "ia": [1, 3], "by": "00ff10", "m": "happy",
    });
    for (column, value) in expected.as_object().unwrap() {
        assert_eq!(&full[column], value, "column {column}: {full:?}");
    }
    // Intervals are staged and sent as text (Parquet has no interval type).
    let interval = full["iv"].as_str().unwrap_or_default();
    assert!(
        interval.contains("14 mons") && interval.contains("3 days"),
        "{interval}"
    );
    // The row of NULLs: every mapped field present and null.
    let nulls = records.iter().find(|r| r.key == json!(2)).unwrap();
    let nulls = nulls.fields.clone().unwrap();
    for column in columns {
        assert_eq!(nulls.get(column), Some(&Value::Null), "column {column}");
    }

    // A change in any column of any type is an update; an unchanged run sends nothing.
    let unchanged = h.sync("all").await;
    assert_eq!(counts(&unchanged), (0, 0, 0, 0, 0), "{unchanged:?}");
    pg.psql(
        "UPDATE types SET nb = nb + 0.000000000001, tstz = tstz + interval '1 microsecond', \
         ia = '{1,4}', by = '\\x00ff11' WHERE id = 1; \
         UPDATE types SET m = 'sad', iv = '1 day' WHERE id = 2;",
    )
    .await
    .unwrap();
    let before = hook.records().len();
    let run = h.sync("all").await;
    assert_eq!(counts(&run), (0, 2, 0, 2, 0), "{run:?}");
    assert_eq!(keys_of(&hook, before, "updated"), BTreeSet::from([1, 2]));
    let after = hook.records();
    let one = after[before..].iter().find(|r| r.key == json!(1)).unwrap();
    let one = one.fields.clone().unwrap();
    assert_eq!(one["nb"], json!("1234567890123456.12345678901300000000"));
    assert_eq!(one["ia"], json!([1, 4]));
    assert_eq!(one["by"], json!("00ff11"));
}

#[tokio::test]
async fn bad_postgres_input_is_a_clear_error_through_the_api() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'); \
         CREATE TABLE spans (id int PRIMARY KEY, during tsrange);",
    )
    .await
    .unwrap();
    let h = Harness::start().await;
    let expect = |result: Result<v1::TestSourceResponse, tonic::Status>,
                  code: tonic::Code,
                  words: &[&str]| {
        let status = result.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        for word in words {
            assert!(
                status.message().contains(word),
                "{word}: {}",
                status.message()
            );
        }
        assert!(!status.message().contains("pw-"), "{}", status.message());
    };

    // Wrong password (FAILED_PRECONDITION: UNAUTHENTICATED is kept for retl's own token).
    h.create_postgres_source("wrong-pw", &pg, pg.user(), "pw-wrong", json!({}))
        .await
        .unwrap();
    expect(
        h.test_source("wrong-pw").await,
        tonic::Code::FailedPrecondition,
        &["password authentication failed", pg.user()],
    );
    // Unknown host.
    h.create_postgres_source(
        "no-host",
        &pg,
        pg.user(),
        pg.superuser_password(),
        json!({"host": "no-such-host.invalid", "connect_timeout_ms": 2000}),
    )
    .await
    .unwrap();
    expect(
        h.test_source("no-host").await,
        tonic::Code::Unavailable,
        &["no-such-host.invalid", "check the host name"],
    );
    // Nothing listens on the port.
    let closed = retl_testkit::launch::free_port().unwrap();
    h.create_postgres_source(
        "no-server",
        &pg,
        pg.user(),
        pg.superuser_password(),
        json!({"port": closed}),
    )
    .await
    .unwrap();
    expect(
        h.test_source("no-server").await,
        tonic::Code::Unavailable,
        &["cannot connect to PostgreSQL", "server is running"],
    );
    // Missing database.
    h.create_postgres_source(
        "no-db",
        &pg,
        pg.user(),
        pg.superuser_password(),
        json!({"database": "nosuchdb"}),
    )
    .await
    .unwrap();
    expect(
        h.test_source("no-db").await,
        tonic::Code::InvalidArgument,
        &["nosuchdb", "does not exist"],
    );

    // A model with a syntax error, and one over a column retl cannot read: refused at
    // creation, naming the problem; nothing is stored.
    h.create_postgres_source("pg", &pg, pg.user(), pg.superuser_password(), json!({}))
        .await
        .unwrap();
    let status = h
        .create_model("bad-sql", "pg", "SELEC id FROM t", "id")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("syntax"), "{}", status.message());
    let status = h
        .create_model("ranges", "pg", "SELECT id, during FROM spans", "id")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("during") && status.message().contains("tsrange"),
        "{}",
        status.message()
    );
    let models = h
        .client
        .models()
        .list_models(v1::ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(models.models.is_empty(), "{models:?}");
}
