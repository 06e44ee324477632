//! PostgreSQL destination tests: statements and config, then deliveries into a real PostgreSQL
//! started by the testkit (types, sync modes, the per-record fallback, deletes of missing
//! rows, privileges, created tables).

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, FieldType, Payload,
    RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::postgres::PostgresServer;
use serde_json::{Value, json};

use super::actions::statement;
use super::{PostgresDestination, destination_type};
use crate::destinations::table::{Operation, Table};

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn ctx(mode: Option<SyncMode>) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("app_db"),
        mapping_id: MappingId::new("accounts"),
        run_id: RunId::new("run-1"),
        sync_mode: mode,
        trace: None,
    }
}

fn upsert(key: Value, fields: Value) -> Payload {
    Payload {
        key,
        change: ChangeKind::Added,
        fields: fields.as_object().cloned().unwrap().into(),
        fingerprint: None,
    }
}

fn destination(config: Value) -> Result<PostgresDestination, DestinationError> {
    let limits = DeliveryLimits {
        timeout_ms: 10_000,
        ..(destination_type().default_limits)()
    };
    PostgresDestination::new(&config, &limits)
}

fn config(pg: &PostgresServer, table: &str) -> Value {
    json!({"host": pg.host(), "port": pg.port(), "database": pg.database(), "user": pg.user(),
           "password": pg.superuser_password(), "sslmode": "disable", "table": table})
}

fn accepted(outcomes: &[RecordOutcome]) -> Vec<bool> {
    outcomes
        .iter()
        .map(|o| *o == RecordOutcome::Accepted)
        .collect()
}

fn table(key: &str) -> Table {
    Table {
        qualified: "\"public\".\"accounts\"".into(),
        display: "public.accounts".into(),
        key: key.into(),
        key_unique: true,
        columns: Vec::new(),
        missing_privileges: Vec::new(),
        dialect: &super::client::DIALECT,
    }
}

#[test]
fn statements_quote_every_name_and_update_only_the_mapped_columns() {
    let columns = ["id".to_string(), "e\"mail".to_string(), "plan".to_string()];
    let upsert = statement(Operation::Upsert, &table("id"), &columns);
    assert!(
        upsert.contains(
            "INSERT INTO \"public\".\"accounts\" (\"id\", \"e\"\"mail\", \"plan\") SELECT"
        ),
        "{upsert}"
    );
    assert!(
        upsert.ends_with(
            "ON CONFLICT (\"id\") DO UPDATE SET \"e\"\"mail\" = EXCLUDED.\"e\"\"mail\", \"plan\" = EXCLUDED.\"plan\""
        ),
        "{upsert}"
    );
    let key_only = statement(Operation::Upsert, &table("id"), &columns[..1]);
    assert!(key_only.ends_with("DO NOTHING"), "{key_only}");
    let delete = statement(Operation::Delete, &table("id"), &columns[..1]);
    assert!(
        delete.contains(
            "DELETE FROM \"public\".\"accounts\" AS d USING src s WHERE d.\"id\" = s.\"id\""
        ),
        "{delete}"
    );
}

#[test]
fn config_errors_name_the_field() {
    let base = json!({"host": "127.0.0.1", "database": "app", "user": "retl", "table": "accounts"});
    assert!(destination(base.clone()).is_ok());
    let mut empty_table = base.clone();
    empty_table["table"] = json!(" ");
    let error = destination(empty_table).unwrap_err().to_string();
    assert!(
        error.contains("'table'") && error.contains("must not be empty"),
        "{error}"
    );
    let mut long_key = base.clone();
    long_key["key_column"] = json!("k".repeat(64));
    let error = destination(long_key).unwrap_err().to_string();
    assert!(error.contains("'key_column'"), "{error}");
    let mut unknown = base;
    unknown["tabel"] = json!("x");
    let error = destination(unknown).unwrap_err().to_string();
    assert!(error.contains("tabel"), "{error}");
}

const ACCOUNTS: &str = "CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    plan text DEFAULT 'free',
    seats integer CHECK (seats >= 0),
    signed_up timestamptz,
    tags text[],
    attributes jsonb,
    ltv numeric(12,2),
    email_upper text GENERATED ALWAYS AS (upper(email)) STORED
)";

#[tokio::test]
async fn upserts_convert_values_by_column_type_and_reject_only_the_bad_rows() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql(ACCOUNTS).await.unwrap();
    pg.psql(
        "INSERT INTO accounts (id, email, plan, seats) VALUES (1, 'old@example.com', 'pro', 3)",
    )
    .await
    .unwrap();
    let dest = destination(config(&pg, "accounts")).unwrap();
    assert!(dest.test().await.unwrap().contains("keyed by 'id'"));

    let fields = dest.fields(spec("upsert")).await.unwrap();
    let names: Vec<(&str, FieldType, bool)> = fields
        .iter()
        .map(|f| (f.name.as_ref(), f.field_type, f.required))
        .collect();
    assert_eq!(
        names,
        [
            ("email", FieldType::String, true),
            ("plan", FieldType::String, false),
            ("seats", FieldType::Integer, false),
            ("signed_up", FieldType::Datetime, false),
            ("tags", FieldType::Array, false),
            ("attributes", FieldType::Object, false),
            ("ltv", FieldType::Number, false),
        ],
        "the key and the generated column are not fields"
    );

    let action = dest.action(spec("upsert")).unwrap();
    let batch = [
        upsert(
            json!(1),
            json!({"email": "a@example.com", "seats": 5, "signed_up": "2026-03-01T10:00:00Z",
                                "tags": ["x", "y"], "attributes": {"tier": 2}, "ltv": "1234.5"}),
        ),
        upsert(
            json!(2),
            json!({"email": "b@example.com", "seats": -1, "signed_up": null,
                                "tags": [], "attributes": null, "ltv": 0}),
        ),
        upsert(
            json!("3"),
            json!({"email": "c@example.com", "seats": 0, "signed_up": "2026-03-02",
                                  "tags": null, "attributes": [1, 2], "ltv": 7}),
        ),
        upsert(
            json!(4),
            json!({"email": null, "seats": 1, "signed_up": null,
                                "tags": null, "attributes": null, "ltv": null}),
        ),
    ];
    let outcome = action.send(&ctx(None), &batch).await.unwrap();
    assert_eq!(accepted(&outcome.records), [true, false, true, false]);
    let RecordOutcome::Rejected { reason } = &outcome.records[1] else {
        unreachable!()
    };
    assert!(reason.contains("accounts_seats_check"), "{reason}");
    let RecordOutcome::Rejected { reason } = &outcome.records[3] else {
        unreachable!()
    };
    assert!(
        reason.contains("null value in column \"email\""),
        "{reason}"
    );
    let rows = pg
        .psql("SELECT id, email, plan, seats, signed_up AT TIME ZONE 'UTC', tags, attributes, ltv, email_upper FROM accounts ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        rows,
        "1|a@example.com|pro|5|2026-03-01 10:00:00|{x,y}|{\"tier\": 2}|1234.50|A@EXAMPLE.COM\n\
         3|c@example.com|free|0|2026-03-02 00:00:00|||[1, 2]|7.00|C@EXAMPLE.COM"
            .replace("|||", "||"),
        "row 1 updated (plan kept: not mapped), row 3 inserted with the default plan"
    );
}

#[tokio::test]
async fn update_and_create_modes_reject_what_they_may_not_touch() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql("CREATE TABLE accounts (id bigint PRIMARY KEY, plan text)")
        .await
        .unwrap();
    pg.psql("INSERT INTO accounts VALUES (1, 'free')")
        .await
        .unwrap();
    let dest = destination(config(&pg, "accounts")).unwrap();
    let action = dest.action(spec("upsert")).unwrap();
    let batch = [
        upsert(json!(1), json!({"plan": "pro"})),
        upsert(json!(2), json!({"plan": "team"})),
    ];
    let outcome = action
        .send(&ctx(Some(SyncMode::Update)), &batch)
        .await
        .unwrap();
    assert_eq!(accepted(&outcome.records), [true, false]);
    let RecordOutcome::Rejected { reason } = &outcome.records[1] else {
        unreachable!()
    };
    assert!(
        reason.contains("no row of public.accounts has key 2"),
        "{reason}"
    );
    assert_eq!(
        pg.psql("SELECT id, plan FROM accounts ORDER BY id")
            .await
            .unwrap(),
        "1|pro"
    );

    let outcome = action
        .send(&ctx(Some(SyncMode::Create)), &batch)
        .await
        .unwrap();
    assert_eq!(accepted(&outcome.records), [false, true]);
    assert_eq!(
        pg.psql("SELECT id, plan FROM accounts ORDER BY id")
            .await
            .unwrap(),
        "1|pro\n2|team",
        "create never changes row 1"
    );

    let delete = dest.action(spec("delete")).unwrap();
    let gone = [Payload::delete(json!(2)), Payload::delete(json!(99))];
    let outcome = delete.send(&ctx(None), &gone).await.unwrap();
    assert_eq!(
        accepted(&outcome.records),
        [true, true],
        "a missing row is already gone"
    );
    assert_eq!(pg.psql("SELECT id FROM accounts").await.unwrap(), "1");
}

#[tokio::test]
async fn omitted_null_fields_keep_the_stored_values() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql("CREATE TABLE accounts (id text PRIMARY KEY, plan text, seats int)")
        .await
        .unwrap();
    pg.psql("INSERT INTO accounts VALUES ('a', 'free', 1), ('b', 'free', 1)")
        .await
        .unwrap();
    let dest = destination(config(&pg, "accounts")).unwrap();
    let action = dest.action(spec("upsert")).unwrap();
    // As `null_values: omit` makes them: record a has no seats, record b no plan.
    let batch = [
        upsert(json!("a"), json!({"plan": "pro"})),
        upsert(json!("b"), json!({"seats": 9})),
    ];
    let outcome = action.send(&ctx(None), &batch).await.unwrap();
    assert_eq!(accepted(&outcome.records), [true, true]);
    assert_eq!(
        pg.psql("SELECT id, plan, seats FROM accounts ORDER BY id")
            .await
            .unwrap(),
        "a|pro|1\nb|free|9"
    );
}

#[tokio::test]
async fn missing_tables_columns_and_grants_are_named_with_the_fix() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql("CREATE TABLE accounts (id bigint PRIMARY KEY, plan text)")
        .await
        .unwrap();
    let error = destination(config(&pg, "acounts"))
        .unwrap()
        .test()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DestinationError::InvalidConfig { field, message } if field == "table" && message.contains("public.acounts does not exist")),
        "{error}"
    );

    let dest = destination(config(&pg, "accounts")).unwrap();
    let action = dest.action(spec("upsert")).unwrap();
    let error = action
        .send(&ctx(None), &[upsert(json!(1), json!({"plann": "pro"}))])
        .await
        .unwrap_err();
    assert!(
        error.stops_run()
            && error.to_string().contains("has no column 'plann'")
            && error.to_string().contains("id, plan"),
        "{error}"
    );

    pg.create_user("writer", "w-secret").await.unwrap();
    pg.psql("GRANT SELECT, INSERT ON accounts TO writer")
        .await
        .unwrap();
    let mut limited = config(&pg, "accounts");
    limited["user"] = json!("writer");
    limited["password"] = json!("w-secret");
    let error = destination(limited.clone())
        .unwrap()
        .test()
        .await
        .unwrap_err();
    assert!(
        matches!(error, DestinationError::Authentication { .. })
            && error
                .to_string()
                .contains("may not UPDATE, DELETE table public.accounts")
            && error
                .to_string()
                .contains("GRANT SELECT, INSERT, UPDATE, DELETE ON public.accounts"),
        "{error}"
    );
    limited["password"] = json!("wrong");
    let error = destination(limited).unwrap().test().await.unwrap_err();
    assert!(
        matches!(error, DestinationError::Authentication { .. })
            && error.to_string().contains("password authentication failed"),
        "{error}"
    );
}

#[tokio::test]
async fn create_table_makes_the_table_from_the_first_batch() {
    let pg = PostgresServer::start().await.unwrap();
    let mut cfg = config(&pg, "synced_users");
    cfg["create_table"] = json!(true);
    cfg["key_column"] = json!("user_id");
    let dest = destination(cfg).unwrap();
    assert!(dest.test().await.unwrap().contains("will be created"));
    let action = dest.action(spec("upsert")).unwrap();
    let batch = [
        upsert(
            json!(7),
            json!({"email": "a@example.com", "active": true, "ltv": 1.5, "tags": ["x"], "n": null}),
        ),
        upsert(
            json!(8),
            json!({"email": "b@example.com", "active": false, "ltv": 2, "tags": null, "n": 3}),
        ),
    ];
    let outcome = action.send(&ctx(None), &batch).await.unwrap();
    assert_eq!(accepted(&outcome.records), [true, true]);
    let columns = pg
        .psql("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'synced_users'")
        .await
        .unwrap();
    // In the payloads' field order (these test payloads come from a sorted map).
    assert_eq!(
        columns,
        "user_id bigint, active boolean, email text, ltv double precision, n bigint, tags jsonb"
    );
    assert_eq!(
        pg.psql("SELECT user_id, email, active, ltv, tags, n FROM synced_users ORDER BY 1")
            .await
            .unwrap(),
        "7|a@example.com|t|1.5|[\"x\"]|\n8|b@example.com|f|2||3"
    );
}
