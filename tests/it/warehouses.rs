//! End-to-end syncs from a real warehouse (a throwaway PostgreSQL on 127.0.0.1) to the webhook
//! emulator, checked key by key.

use std::collections::BTreeSet;

use retl_proto::v1;
use retl_testkit::PostgresServer;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::Harness;
use serde_json::{Value, json};

fn keys_of(hook: &WebhookEmulator, from: usize, change: &str) -> BTreeSet<i64> {
    hook.records()
        .into_iter()
        .skip(from)
        .filter(|r| r.change.as_deref() == Some(change))
        .map(|r| r.key.as_i64().expect("integer key"))
        .collect()
}

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
    h.client
        .sources()
        .create_source(v1::CreateSourceRequest {
            source_id: "pg".into(),
            source: Some(v1::Source {
                r#type: "postgres".into(),
                config: Some(retl_tests::to_struct(json!({
                    "host": "127.0.0.1",
                    "port": pg.port(),
                    "database": pg.database(),
                    "user": pg.user(),
                    "password": pg.superuser_password(),
                    "sslmode": "disable",
                }))),
                ..Default::default()
            }),
        })
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
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    h.create_mapping(
        "up",
        "paying",
        "hook",
        "upsert",
        &[("email", "email"), ("ltv", "ltv"), ("tenure", "tenure")],
        None,
    )
    .await
    .unwrap();
    h.create_mapping("del", "paying", "hook", "delete", &[], None)
        .await
        .unwrap();

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
    h.client
        .sources()
        .create_source(v1::CreateSourceRequest {
            source_id: "pg".into(),
            source: Some(v1::Source {
                r#type: "postgres".into(),
                config: Some(retl_tests::to_struct(json!({
                    "host": "127.0.0.1", "port": pg.port(), "database": pg.database(),
                    "user": "reader", "password": "reader-pw-1", "sslmode": "disable",
                }))),
                ..Default::default()
            }),
        })
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
