//! MySQL destination tests: statements, the split under the packet limit, parameters and config,
//! then deliveries into a real MariaDB started by the testkit (types, sync modes, the
//! per-record fallback, deletes of missing rows, privileges, created tables, small packets).

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, ExchangeLog,
    FieldType, Payload, RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::MariaDbServer;
use serde_json::{Value, json};

use super::actions::{chunks, delete, existing, insert, param, update};
use super::client::DIALECT;
use super::{MySqlDestination, destination_type};
use crate::destinations::table::{Column, Operation, Table};

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

fn destination(config: Value) -> Result<MySqlDestination, DestinationError> {
    let limits = DeliveryLimits {
        timeout_ms: 10_000,
        ..(destination_type().default_limits)()
    };
    MySqlDestination::new(&config, &limits)
}

fn config(db: &MariaDbServer, table: &str) -> Value {
    json!({"host": db.host(), "port": db.port(), "database": db.database(),
           "user": db.root_user(), "sslmode": "disabled", "table": table})
}

fn accepted(outcomes: &[RecordOutcome]) -> Vec<bool> {
    outcomes
        .iter()
        .map(|o| *o == RecordOutcome::Accepted)
        .collect()
}

fn reason(outcome: &RecordOutcome) -> &str {
    match outcome {
        RecordOutcome::Rejected { reason } => reason,
        other => panic!("not rejected: {other:?}"),
    }
}

fn column(name: &str, type_name: &str) -> Column {
    Column {
        name: name.into(),
        type_name: type_name.into(),
        field_type: FieldType::String,
        required: false,
        generated: false,
    }
}

fn table() -> Table {
    Table {
        qualified: "`app`.`accounts`".into(),
        display: "app.accounts".into(),
        key: "id".into(),
        key_unique: true,
        columns: vec![
            column("id", "bigint(20)"),
            column("e`mail", "varchar(100)"),
            column("seen", "datetime(6)"),
            column("day", "date"),
            column("doc", "json"),
        ],
        missing_privileges: Vec::new(),
        dialect: &DIALECT,
    }
}

#[test]
fn statements_quote_every_name_and_update_only_the_mapped_columns() {
    let columns = ["id".to_string(), "e`mail".to_string(), "seen".to_string()];
    assert_eq!(
        insert(&table(), &columns, 2, true),
        "INSERT INTO `app`.`accounts` (`id`, `e``mail`, `seen`) VALUES (?, ?, ?), (?, ?, ?) \
         ON DUPLICATE KEY UPDATE `e``mail` = VALUES(`e``mail`), `seen` = VALUES(`seen`)"
    );
    assert!(insert(&table(), &columns[..1], 1, true).ends_with("UPDATE `id` = `id`"));
    assert!(!insert(&table(), &columns, 1, false).contains("DUPLICATE"));
    assert_eq!(
        update(&table(), &columns[..2], 2).unwrap(),
        "UPDATE `app`.`accounts` AS d JOIN (SELECT ? AS `id`, ? AS `e``mail` UNION ALL SELECT ?, ?) AS s \
         ON d.`id` = s.`id` SET d.`e``mail` = s.`e``mail`"
    );
    assert!(update(&table(), &columns[..1], 2).is_none());
    assert_eq!(
        existing(&table(), 2),
        "SELECT s.`retl ordinal` FROM (SELECT ? AS `retl ordinal`, ? AS `id` UNION ALL SELECT ?, ?) AS s \
         JOIN `app`.`accounts` AS d ON d.`id` = s.`id` FOR UPDATE"
    );
    assert_eq!(
        delete(&table(), 3),
        "DELETE FROM `app`.`accounts` WHERE `id` IN (?, ?, ?)"
    );
}

#[test]
fn params_convert_times_and_json_for_their_columns() {
    let t = table();
    let time = json!("2026-03-01T10:00:00+02:00");
    assert_eq!(
        param(&time, t.column("seen")),
        mysql_async::Value::Bytes(b"2026-03-01 08:00:00.000000".to_vec())
    );
    assert_eq!(
        param(&time, t.column("day")),
        mysql_async::Value::Bytes(b"2026-03-01".to_vec())
    );
    assert_eq!(
        param(&time, t.column("e`mail")),
        mysql_async::Value::Bytes(time.as_str().unwrap().as_bytes().to_vec())
    );
    assert_eq!(
        param(&json!("x"), t.column("doc")),
        mysql_async::Value::Bytes(b"\"x\"".to_vec())
    );
    assert_eq!(param(&json!(true), None), mysql_async::Value::Int(1));
    assert_eq!(
        param(&json!(u64::MAX), None),
        mysql_async::Value::UInt(u64::MAX)
    );
    assert_eq!(
        param(&Value::Null, t.column("doc")),
        mysql_async::Value::NULL
    );
}

#[test]
fn batches_split_under_the_packet_and_oversized_records_stand_apart() {
    let t = table();
    let batch: Vec<Payload> = (0..10)
        .map(|i| {
            upsert(
                json!(i),
                json!({"e`mail": "x".repeat(if i == 4 { 5000 } else { 300 })}),
            )
        })
        .collect();
    // Budget 2048 - 1024 headroom = 1024 bytes: three records of ~332 bytes each.
    let (chunks, oversized) = chunks(&t, Operation::Upsert, &batch, 2048);
    let sizes: Vec<usize> = chunks.iter().map(|c| c.members.len()).collect();
    assert_eq!(sizes, [3, 3, 3]);
    assert_eq!(oversized.len(), 1);
    assert_eq!(oversized[0].index, 4);
    let (chunks, oversized) = chunks_of(&batch, 64 * 1024 * 1024);
    assert_eq!((chunks, oversized), (1, 0));
}

fn chunks_of(batch: &[Payload], packet: usize) -> (usize, usize) {
    let (c, o) = chunks(&table(), Operation::Upsert, batch, packet);
    (c.len(), o.len())
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
    long_key["key_column"] = json!("k".repeat(65));
    let error = destination(long_key).unwrap_err().to_string();
    assert!(error.contains("'key_column'"), "{error}");
    let mut unknown = base;
    unknown["tabel"] = json!("x");
    let error = destination(unknown).unwrap_err().to_string();
    assert!(error.contains("tabel"), "{error}");
}

const ACCOUNTS: &str = "CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    email varchar(100) NOT NULL,
    plan varchar(20) DEFAULT 'free',
    seats int CHECK (seats >= 0),
    signed_up datetime,
    active boolean,
    attributes json,
    ltv decimal(12,2),
    email_upper varchar(100) AS (upper(email)) VIRTUAL
)";

#[tokio::test]
async fn upserts_convert_values_by_column_type_and_reject_only_the_bad_rows() {
    let db = MariaDbServer::start().await.unwrap();
    db.sql(ACCOUNTS).await.unwrap();
    db.sql("INSERT INTO accounts (id, email, plan, seats) VALUES (1, 'old@example.com', 'pro', 3)")
        .await
        .unwrap();
    let dest = destination(config(&db, "accounts")).unwrap();
    let message = dest.test().await.unwrap();
    assert!(message.contains("keyed by 'id'"), "{message}");

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
            ("active", FieldType::Boolean, false),
            ("attributes", FieldType::String, false),
            ("ltv", FieldType::Number, false),
        ],
        "the key and the generated column are not fields (MariaDB's json is longtext)"
    );

    let action = dest.action(spec("upsert")).unwrap();
    let batch = [
        upsert(
            json!(1),
            json!({"email": "a@example.com", "seats": 5, "signed_up": "2026-03-01T10:00:00Z",
                   "active": true, "attributes": {"tier": 2}, "ltv": "1234.5"}),
        ),
        upsert(
            json!(2),
            json!({"email": "b@example.com", "seats": -1, "signed_up": null,
                   "active": false, "attributes": null, "ltv": 0}),
        ),
        upsert(
            json!("3"),
            json!({"email": "c@example.com", "seats": 0, "signed_up": "2026-03-02T01:02:03+01:00",
                   "active": null, "attributes": [1, 2], "ltv": 7}),
        ),
        upsert(
            json!(4),
            json!({"email": null, "seats": 1, "signed_up": null,
                   "active": null, "attributes": null, "ltv": null}),
        ),
        upsert(
            json!(5),
            json!({"email": "e@example.com", "seats": "many", "signed_up": null,
                   "active": null, "attributes": null, "ltv": null}),
        ),
    ];
    let outcome = action.send(&ctx(None), &batch).await.unwrap();
    assert_eq!(
        accepted(&outcome.records),
        [true, false, true, false, false]
    );
    assert!(
        reason(&outcome.records[1]).contains("CONSTRAINT"),
        "{:?}",
        outcome.records[1]
    );
    assert!(
        reason(&outcome.records[3]).contains("cannot be null"),
        "{:?}",
        outcome.records[3]
    );
    assert!(
        reason(&outcome.records[4]).contains("seats"),
        "{:?}",
        outcome.records[4]
    );
    let rows = db
        .sql("SELECT id, email, plan, seats, signed_up, active, attributes, ltv, email_upper FROM accounts ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        rows,
        "1\ta@example.com\tpro\t5\t2026-03-01 10:00:00\t1\t{\"tier\":2}\t1234.50\tA@EXAMPLE.COM\n\
         3\tc@example.com\tfree\t0\t2026-03-02 00:02:03\tNULL\t[1,2]\t7.00\tC@EXAMPLE.COM",
        "row 1 updated (plan kept: not mapped), row 3 inserted with the default plan, its time in UTC"
    );
}

#[tokio::test]
async fn update_and_create_modes_reject_what_they_may_not_touch() {
    let db = MariaDbServer::start().await.unwrap();
    db.sql("CREATE TABLE accounts (id varchar(20) PRIMARY KEY, plan text NOT NULL)")
        .await
        .unwrap();
    db.sql("INSERT INTO accounts VALUES ('a', 'free')")
        .await
        .unwrap();
    let dest = destination(config(&db, "accounts")).unwrap();
    let action = dest.action(spec("upsert")).unwrap();
    // Keys compare by the column's collation: 'A' is row 'a'.
    let batch = [
        upsert(json!("A"), json!({"plan": "pro"})),
        upsert(json!("b"), json!({"plan": "team"})),
    ];
    let outcome = action
        .send(&ctx(Some(SyncMode::Update)), &batch)
        .await
        .unwrap();
    assert_eq!(accepted(&outcome.records), [true, false]);
    assert!(
        reason(&outcome.records[1]).contains("no row of retl_test.accounts has key \"b\""),
        "{:?}",
        outcome.records[1]
    );
    assert_eq!(
        db.sql("SELECT id, plan FROM accounts ORDER BY id")
            .await
            .unwrap(),
        "a\tpro"
    );

    let outcome = action
        .send(&ctx(Some(SyncMode::Create)), &batch)
        .await
        .unwrap();
    assert_eq!(accepted(&outcome.records), [false, true]);
    assert_eq!(
        db.sql("SELECT id, plan FROM accounts ORDER BY id")
            .await
            .unwrap(),
        "a\tpro\nb\tteam",
        "create never changes row a"
    );

    let delete = dest.action(spec("delete")).unwrap();
    let gone = [Payload::delete(json!("b")), Payload::delete(json!("zz"))];
    let outcome = delete.send(&ctx(None), &gone).await.unwrap();
    assert_eq!(
        accepted(&outcome.records),
        [true, true],
        "a missing row is already gone"
    );
    assert_eq!(db.sql("SELECT id FROM accounts").await.unwrap(), "a");
}

#[tokio::test]
async fn statements_are_split_under_the_servers_packet_limit() {
    let db = MariaDbServer::start().await.unwrap();
    db.sql("CREATE TABLE notes (id int PRIMARY KEY, body longtext)")
        .await
        .unwrap();
    db.sql("SET GLOBAL max_allowed_packet = 32768")
        .await
        .unwrap();
    let dest = destination(config(&db, "notes")).unwrap();
    let action = dest.action(spec("upsert")).unwrap();
    let mut batch: Vec<Payload> = (1..=20)
        .map(|i| upsert(json!(i), json!({"body": "n".repeat(2000)})))
        .collect();
    batch.push(upsert(json!(21), json!({"body": "x".repeat(40_000)})));
    let mut traced = ctx(None);
    let log = ExchangeLog::new();
    traced.trace = Some(log.clone());
    let outcome = action.send(&traced, &batch).await.unwrap();
    let mut expected = vec![true; 20];
    expected.push(false);
    assert_eq!(accepted(&outcome.records), expected);
    assert!(
        reason(&outcome.records[20]).contains("max_allowed_packet (32768 bytes)"),
        "{:?}",
        outcome.records[20]
    );
    let statements = log.exchanges().len();
    assert!(
        statements >= 2,
        "20 rows of 2 KB in packets of 32 KB: {statements} statements"
    );
    assert_eq!(
        db.sql("SELECT count(*), sum(length(body)) FROM notes")
            .await
            .unwrap(),
        "20\t40000"
    );
}

#[tokio::test]
async fn missing_tables_columns_and_grants_are_named_with_the_fix() {
    let db = MariaDbServer::start().await.unwrap();
    db.sql("CREATE TABLE accounts (id bigint PRIMARY KEY, plan text)")
        .await
        .unwrap();
    let error = destination(config(&db, "acounts"))
        .unwrap()
        .test()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DestinationError::InvalidConfig { field, message } if field == "table" && message.contains("retl_test.acounts does not exist")),
        "{error}"
    );

    let dest = destination(config(&db, "accounts")).unwrap();
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

    db.create_user("writer", "w-secret").await.unwrap();
    db.sql("GRANT SELECT, INSERT ON retl_test.accounts TO 'writer'@'%'")
        .await
        .unwrap();
    let mut limited = config(&db, "accounts");
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
                .contains("may not UPDATE, DELETE table retl_test.accounts")
            && error
                .to_string()
                .contains("GRANT SELECT, INSERT, UPDATE, DELETE ON `retl_test`.`accounts`"),
        "{error}"
    );
    limited["password"] = json!("wrong");
    let error = destination(limited).unwrap().test().await.unwrap_err();
    assert!(
        matches!(error, DestinationError::Authentication { .. })
            && error.to_string().contains("access denied")
            && !error.to_string().contains("wrong"),
        "{error}"
    );
}

#[tokio::test]
async fn create_table_makes_the_table_from_the_first_batch() {
    let db = MariaDbServer::start().await.unwrap();
    let mut cfg = config(&db, "synced_users");
    cfg["create_table"] = json!(true);
    cfg["key_column"] = json!("user_id");
    let dest = destination(cfg).unwrap();
    let message = dest.test().await.unwrap();
    assert!(message.contains("will be created"), "{message}");
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
    let columns = db
        .sql("SELECT GROUP_CONCAT(CONCAT(COLUMN_NAME, ' ', DATA_TYPE) ORDER BY ORDINAL_POSITION SEPARATOR ', ') FROM information_schema.COLUMNS WHERE TABLE_NAME = 'synced_users'")
        .await
        .unwrap();
    // In the payloads' field order (these test payloads come from a sorted map).
    assert_eq!(
        columns,
        "user_id bigint, active tinyint, email longtext, ltv double, n bigint, tags longtext"
    );
    assert_eq!(
        db.sql("SELECT user_id, email, active, ltv, tags, n FROM synced_users ORDER BY 1")
            .await
            .unwrap(),
        "7\ta@example.com\t1\t1.5\t[\"x\"]\tNULL\n8\tb@example.com\t0\t2\tNULL\t3"
    );
}
