//! MySQL source tests: config and type-mapping unit tests, then tests against a real MariaDB
//! started by the testkit (one throwaway server per test).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use futures::StreamExt;
use retl_engine::model::ModelSession;
use retl_engine::source::{Source, SourceError};
use retl_testkit::MariaDbServer;
use serde_json::{Value, json};

use super::config::{MySqlConfig, SslMode};
use super::source_type;
use super::types::{MySqlType, arrow_type};
use crate::sources::test_support::{
    self, MEMORY, column_shapes, explain, json_rows, run, run_error, table_labels, with,
};

fn build(config: Value) -> Arc<dyn Source> {
    test_support::build(&source_type(), config)
}

fn build_error(config: Value) -> (String, String) {
    test_support::build_error(&source_type(), config)
}

fn minimal() -> Value {
    json!({"host": "127.0.0.1", "database": "analytics", "user": "retl"})
}

// ---- config -------------------------------------------------------------------------------

#[test]
fn config_defaults() {
    let config: MySqlConfig = serde_json::from_value(minimal()).unwrap();
    let valid = config.validate().unwrap();
    assert_eq!(valid.port, 3306);
    assert_eq!(valid.sslmode, SslMode::Preferred);
    assert_eq!(valid.connect_timeout.as_millis(), 10_000);
    assert_eq!(valid.query_timeout.map(|t| t.as_millis()), Some(3_600_000));
    assert!(valid.password.is_none());
    assert!(valid.sslrootcert.is_none());

    let full: MySqlConfig = serde_json::from_value(with(
        minimal(),
        json!({"port": 3307, "password": 1234, "sslmode": "verify_identity",
               "sslrootcert": "/etc/ssl/ca.pem", "connect_timeout_ms": 500,
               "query_timeout_ms": 0}),
    ))
    .unwrap();
    let valid = full.validate().unwrap();
    assert_eq!(valid.port, 3307);
    assert_eq!(valid.password.as_ref().map(|p| p.expose()), Some("1234"));
    assert_eq!(valid.sslmode, SslMode::VerifyIdentity);
    assert_eq!(valid.sslrootcert.as_deref(), Some("/etc/ssl/ca.pem"));
    assert_eq!(valid.query_timeout, None);
    assert_eq!(valid.address(), "127.0.0.1:3307");
    assert!(!format!("{valid:?}").contains("1234"), "password redacted");
    for mode in ["disabled", "preferred", "required", "verify_identity"] {
        let config: MySqlConfig =
            serde_json::from_value(with(minimal(), json!({ "sslmode": mode }))).unwrap();
        assert_eq!(config.validate().unwrap().sslmode.as_str(), mode);
    }
}

#[test]
fn config_errors_name_the_field() {
    assert_eq!(
        build_error(json!({"host": "h", "database": "d"})).0,
        "config"
    );
    assert!(
        build_error(with(minimal(), json!({"hots": "x"})))
            .1
            .contains("hots")
    );
    assert!(
        build_error(with(minimal(), json!({"sslmode": "verify-full"})))
            .1
            .contains("verify-full")
    );
    assert_eq!(build_error(with(minimal(), json!({"host": ""}))).0, "host");
    assert_eq!(
        build_error(with(minimal(), json!({"host": "db.example.com/analytics"}))).0,
        "host"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"host": "a b"}))).0,
        "host"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"database": " "}))).0,
        "database"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"database": "x".repeat(65)}))).0,
        "database"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"user": "a\nb"}))).0,
        "user"
    );
    assert_eq!(build_error(with(minimal(), json!({"port": 0}))).0, "port");
    assert_eq!(
        build_error(with(minimal(), json!({"sslrootcert": "/ca.pem"}))).0,
        "sslrootcert"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"connect_timeout_ms": 0}))).0,
        "connect_timeout_ms"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"query_timeout_ms": 5}))).0,
        "query_timeout_ms"
    );
    // User, database and password may hold characters a URL would need escaped.
    build(with(
        minimal(),
        json!({"user": "o'brien@x", "database": "my-db", "password": "a b'c\"d=e\\f@/:?#%"}),
    ));
}

#[test]
fn building_touches_no_network() {
    // Nothing listens on port 1; build must still succeed.
    let source = build(with(minimal(), json!({"port": 1})));
    assert!(format!("{source:?}").contains("MySqlSource"));
}

#[test]
fn catalog_entry() {
    let ty = source_type();
    assert_eq!(ty.name, "mysql");
    let names: Vec<_> = ty.config.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "host",
            "port",
            "database",
            "user",
            "password",
            "sslmode",
            "sslrootcert",
            "connect_timeout_ms",
            "query_timeout_ms"
        ]
    );
    let secrets: Vec<_> = ty
        .config
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.name)
        .collect();
    assert_eq!(secrets, ["password"]);
}

// ---- type mapping -------------------------------------------------------------------------

fn my(data_type: &str, column_type: &str) -> MySqlType {
    MySqlType {
        data_type: data_type.to_string(),
        column_type: column_type.to_string(),
        precision: None,
        scale: None,
    }
}

#[test]
fn type_mapping_table() {
    let ok = |t: MySqlType| arrow_type(&t).unwrap();
    assert_eq!(ok(my("tinyint", "tinyint(1)")), DataType::Int8);
    assert_eq!(ok(my("int", "int(10) unsigned")), DataType::UInt32);
    assert_eq!(
        ok(my("bigint", "bigint(20) unsigned zerofill")),
        DataType::UInt64
    );
    assert_eq!(ok(my("mediumint", "mediumint(9)")), DataType::Int32);
    let decimal = |p, s| MySqlType {
        precision: Some(p),
        scale: Some(s),
        ..my("decimal", &format!("decimal({p},{s})"))
    };
    assert_eq!(ok(decimal(12, 2)), DataType::Decimal128(12, 2));
    assert_eq!(ok(decimal(38, 0)), DataType::Decimal128(38, 0));
    assert_eq!(ok(decimal(65, 30)), DataType::Decimal256(65, 30));
    assert_eq!(ok(my("longtext", "longtext")), DataType::LargeUtf8);
    assert_eq!(ok(my("json", "json")), DataType::LargeUtf8);
    assert_eq!(ok(my("uuid", "uuid")), DataType::Utf8);
    assert_eq!(ok(my("set", "set('a','b')")), DataType::Utf8);
    assert_eq!(
        ok(my("enum", "enum('a','b')")),
        DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8))
    );
    assert_eq!(
        ok(my("timestamp", "timestamp(6)")),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        ok(my("datetime", "datetime")),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(ok(my("year", "year(4)")), DataType::Int16);
    assert_eq!(ok(my("longblob", "longblob")), DataType::LargeBinary);
    for (data_type, column_type) in [
        ("geometry", "geometry"),
        ("point", "point"),
        ("vector", "vector(3)"),
        ("whatever", "whatever(1)"),
    ] {
        let error = arrow_type(&my(data_type, column_type)).unwrap_err();
        assert!(error.to_string().contains(column_type), "{error}");
        assert!(error.hint.contains("CREATE VIEW"), "{error}");
    }
}

// ---- against a real MariaDB ---------------------------------------------------------------

async fn server() -> MariaDbServer {
    MariaDbServer::start().await.unwrap()
}

fn config_for(db: &MariaDbServer, user: &str, password: &str) -> Value {
    json!({
        "host": db.host(),
        "port": db.port(),
        "database": db.database(),
        "user": user,
        "password": password,
        "sslmode": "disabled",
    })
}

fn root_config(db: &MariaDbServer) -> Value {
    json!({
        "host": db.host(),
        "port": db.port(),
        "database": db.database(),
        "user": db.root_user(),
    })
}

const SAMPLE: &str = "
CREATE TABLE users (id bigint PRIMARY KEY, email varchar(100) NOT NULL, plan text, active boolean);
INSERT INTO users VALUES (1, 'a@example.com', 'pro', true), (2, 'b@example.com', 'free \"x\"', true),
                         (3, 'c@example.com', NULL, false);
CREATE DATABASE sales;
CREATE TABLE sales.orders (id int PRIMARY KEY, user_id bigint, amount decimal(12,2));
INSERT INTO sales.orders VALUES (10, 1, 19.99), (11, 1, 5.01), (12, 2, 100.00);
CREATE VIEW active_users AS SELECT id, email FROM users WHERE active;
";

#[tokio::test]
async fn registers_and_queries_tables() {
    let db = server().await;
    db.sql(SAMPLE).await.unwrap();
    let source = build(root_config(&db));

    let rows = json_rows(
        &run(
            &source,
            "SELECT id, email FROM users WHERE id >= 2 ORDER BY id",
        )
        .await,
    );
    assert_eq!(
        rows,
        [
            json!({"id": 2, "email": "b@example.com"}),
            json!({"id": 3, "email": "c@example.com"})
        ]
    );
    // A table of another database, a view, a join and an aggregate.
    let sql = "SELECT u.id, u.email, sum(o.amount) AS total, count(*) AS orders \
               FROM active_users u JOIN sales.orders o ON o.user_id = u.id \
               GROUP BY u.id, u.email ORDER BY u.id";
    let rows = json_rows(&run(&source, sql).await);
    assert_eq!(
        rows,
        [
            json!({"id": 1, "email": "a@example.com", "total": "25.00", "orders": 2}),
            json!({"id": 2, "email": "b@example.com", "total": "100.00", "orders": 1})
        ]
    );
    // Computed columns keep the model's names and types; string literals keep their quotes.
    let rows = json_rows(
        &run(
            &source,
            "SELECT id, upper(email) AS shout, id * 2 AS twice, plan = 'free \"x\"' AS quoted \
             FROM users WHERE id = 2",
        )
        .await,
    );
    assert_eq!(
        rows,
        [json!({"id": 2, "shout": "B@EXAMPLE.COM", "twice": 4, "quoted": true})]
    );
    // Unknown tables are the planner's usual error.
    let error = run_error(&source, "SELECT * FROM nope").await;
    assert!(
        error.contains("nope") && error.contains("not found"),
        "{error}"
    );
    let error = run_error(&source, "SELECT * FROM nodb.users").await;
    assert!(error.contains("not found"), "{error}");
    // An empty result.
    assert!(json_rows(&run(&source, "SELECT id FROM users WHERE id > 100").await).is_empty());
}

#[tokio::test]
async fn a_model_over_one_database_is_pushed_down_whole() {
    let db = server().await;
    db.sql(SAMPLE).await.unwrap();
    let source = build(root_config(&db));
    let sql = "SELECT u.id, count(*) AS orders FROM users u JOIN sales.orders o \
               ON o.user_id = u.id WHERE u.active = 1 GROUP BY u.id ORDER BY u.id LIMIT 5";
    let plan = explain(&source, sql).await;
    println!("{plan}");
    // One federated scan that carries the whole statement; no DataFusion join or aggregate.
    assert!(plan.contains("VirtualExecutionPlan"), "{plan}");
    assert!(
        plan.contains("JOIN") && plan.contains("GROUP BY") && plan.contains("LIMIT"),
        "{plan}"
    );
    assert!(!plan.contains("HashJoinExec"), "{plan}");
    assert!(!plan.contains("AggregateExec"), "{plan}");
    let rows = json_rows(&run(&source, sql).await);
    assert_eq!(
        rows,
        [json!({"id": 1, "orders": 2}), json!({"id": 2, "orders": 1})]
    );
}

const TYPES: &str = "
CREATE TABLE types (
  id int PRIMARY KEY,
  ti tinyint, tu tinyint unsigned, si smallint, su smallint unsigned,
  mi mediumint, mu mediumint unsigned, i int, iu int unsigned, bi bigint, bu bigint unsigned,
  d decimal(12,2), dl decimal(38,10), dh decimal(65,30), f float, db double, bt bit(10),
  bo boolean, c char(5), vc varchar(20), tt tinytext, t text, mt mediumtext, lt longtext,
  e enum('sad','ok','happy'), st set('a','b','c'), j json, dt date, tm time(6),
  dtm datetime(6), ts timestamp(6) NULL DEFAULT NULL, y year, bn binary(3), vb varbinary(10),
  bl blob, lb longblob, u uuid
);
INSERT INTO types VALUES (
  1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615,
  1234567890.12, 1234567890123456789012345678.1234567890,
  12345678901234567890123456789012345.123456789012345678901234567891,
  1.5, 2.25, b'1010000001', true, 'ab', 'var', 'tiny', 'héllo', 'medium', 'long',
  'happy', 'a,c', '{\"a\": [1, 2]}', '2024-02-29', '13:14:15.123456',
  '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456', 2024,
  'ab', x'00ff10', x'0102', x'03', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'
);
INSERT INTO types (id) VALUES (2);
";

#[tokio::test]
async fn types_round_trip() {
    let db = server().await;
    db.sql(TYPES).await.unwrap();
    let source = build(root_config(&db));
    let batches = run(&source, "SELECT * FROM types ORDER BY id").await;
    let schema = batches[0].schema();
    let types: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();

    // What the source produced agrees with types.rs as list_tables reports it.
    let tables = source.list_tables().await.unwrap();
    let listed = tables.iter().find(|t| t.name == "types").unwrap();
    let listed: Vec<(String, String)> = listed
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect();
    assert_eq!(types, listed);

    let utc = Some("UTC".into());
    let expected: Vec<(&str, DataType)> = vec![
        ("id", DataType::Int32),
        ("ti", DataType::Int8),
        ("tu", DataType::UInt8),
        ("si", DataType::Int16),
        ("su", DataType::UInt16),
        ("mi", DataType::Int32),
        ("mu", DataType::UInt32),
        ("i", DataType::Int32),
        ("iu", DataType::UInt32),
        ("bi", DataType::Int64),
        ("bu", DataType::UInt64),
        ("d", DataType::Decimal128(12, 2)),
        ("dl", DataType::Decimal128(38, 10)),
        ("dh", DataType::Decimal256(65, 30)),
        ("f", DataType::Float32),
        ("db", DataType::Float64),
        ("bt", DataType::UInt64),
        ("bo", DataType::Int8),
        ("c", DataType::Utf8),
        ("vc", DataType::Utf8),
        ("tt", DataType::Utf8),
        ("t", DataType::Utf8),
        ("mt", DataType::Utf8),
        ("lt", DataType::LargeUtf8),
        (
            "e",
            DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
        ),
        ("st", DataType::Utf8),
        ("j", DataType::LargeUtf8),
        ("dt", DataType::Date32),
        ("tm", DataType::Time64(TimeUnit::Nanosecond)),
        ("dtm", DataType::Timestamp(TimeUnit::Microsecond, None)),
        ("ts", DataType::Timestamp(TimeUnit::Microsecond, utc)),
        ("y", DataType::Int16),
        ("bn", DataType::Binary),
        ("vb", DataType::Binary),
        ("bl", DataType::Binary),
        ("lb", DataType::LargeBinary),
        ("u", DataType::Utf8),
    ];
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    assert_eq!(types, expected);

    let rows = json_rows(&batches);
    assert_eq!(rows.len(), 2);
    let row = &rows[0];
    let expect = |column: &str, value: Value| {
        assert_eq!(row[column], value, "column {column}");
    };
    expect("ti", json!(-128));
    expect("tu", json!(255));
    expect("si", json!(-32768));
    expect("su", json!(65535));
    expect("mi", json!(-8388608));
    expect("mu", json!(16777215));
    expect("i", json!(-2147483648_i64));
    expect("iu", json!(4294967295_u64));
    expect("bi", json!(i64::MIN));
    expect("bu", json!(u64::MAX));
    // Decimals keep every digit, also past 38 (Decimal256).
    expect("d", json!("1234567890.12"));
    expect("dl", json!("1234567890123456789012345678.1234567890"));
    expect(
        "dh",
        json!("12345678901234567890123456789012345.123456789012345678901234567891"),
    );
    expect("f", json!(1.5));
    expect("db", json!(2.25));
    expect("bt", json!(641));
    expect("bo", json!(1));
    expect("c", json!("ab"));
    expect("vc", json!("var"));
    expect("tt", json!("tiny"));
    expect("t", json!("héllo"));
    expect("mt", json!("medium"));
    expect("lt", json!("long"));
    expect("e", json!("happy"));
    expect("st", json!("a,c"));
    expect("j", json!("{\"a\": [1, 2]}"));
    expect("dt", json!("2024-02-29"));
    expect("tm", json!("13:14:15.123456"));
    expect("dtm", json!("2024-02-29T13:14:15.123456"));
    expect("ts", json!("2024-02-29T13:14:15.123456+00:00"));
    expect("y", json!(2024));
    expect("bn", json!("616200"));
    expect("vb", json!("00ff10"));
    expect("bl", json!("0102"));
    expect("lb", json!("03"));
    expect("u", json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    // The all-NULL row: every column null.
    for (column, value) in rows[1].as_object().unwrap() {
        if column != "id" {
            assert_eq!(value, &Value::Null, "column {column}");
        }
    }
    // A uuid is usable as a unique id, and computed expressions over these types run in the
    // server.
    let rows = json_rows(
        &run(
            &source,
            "SELECT u, d * 2 AS d2, dh, length(lt) AS n FROM types WHERE id = 1",
        )
        .await,
    );
    assert_eq!(rows[0]["u"], json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(rows[0]["d2"], json!("2469135780.24"));
}

#[tokio::test]
async fn unsupported_types_name_the_table_the_column_and_the_fix() {
    let db = server().await;
    db.sql(
        "CREATE TABLE places (id int, location point); INSERT INTO places VALUES (1, POINT(1, 2))",
    )
    .await
    .unwrap();
    let source = build(root_config(&db));
    let error = run_error(&source, "SELECT id FROM places").await;
    assert!(
        error.contains("retl_test.places")
            && error.contains("'location'")
            && error.contains("point")
            && error.contains("CREATE VIEW"),
        "{error}"
    );
    let tables = source.list_tables().await.unwrap();
    let column = &tables[0].columns[1];
    assert!(column.data_type.contains("unsupported"), "{column:?}");
    // The documented fix works.
    db.sql("CREATE VIEW places_text AS SELECT id, ST_AsText(location) AS location FROM places")
        .await
        .unwrap();
    let rows = json_rows(&run(&source, "SELECT id, location FROM places_text").await);
    assert_eq!(rows, [json!({"id": 1, "location": "POINT(1 2)"})]);
}

fn expect_error(result: Result<impl std::fmt::Debug, SourceError>) -> SourceError {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn test_reports_each_failure_distinctly() {
    let db = server().await;
    db.sql(SAMPLE).await.unwrap();

    // Wrong password.
    db.create_user("reader", "pw2").await.unwrap();
    db.grant_select("reader", db.database()).await.unwrap();
    let source = build(config_for(&db, "reader", "wrong"));
    match expect_error(source.test().await) {
        SourceError::Authentication { message } => {
            assert!(
                message.contains("access denied for user 'reader'") && message.contains("1045"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Missing database.
    let source = build(with(root_config(&db), json!({"database": "nosuchdb"})));
    match expect_error(source.test().await) {
        SourceError::InvalidConfig { field, message } => {
            assert_eq!(field, "database");
            assert!(
                message.contains("nosuchdb") && message.contains("does not exist"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Nothing listens on the port.
    let port = retl_testkit::free_port().unwrap();
    let source = build(with(root_config(&db), json!({"port": port})));
    match expect_error(source.test().await) {
        SourceError::Unavailable { message } => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.contains("cannot connect"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A host that does not resolve.
    let source = build(with(
        root_config(&db),
        json!({"host": "no-such-host.invalid", "connect_timeout_ms": 3000}),
    ));
    match expect_error(source.test().await) {
        SourceError::Unavailable { message } => {
            assert!(message.contains("no-such-host.invalid"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // TLS required, but the server offers none.
    let source = build(with(root_config(&db), json!({"sslmode": "required"})));
    match expect_error(source.test().await) {
        SourceError::Unavailable { message } => {
            assert!(message.contains("does not offer TLS"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // A user without any privilege on the database.
    db.create_user("outsider", "pw1").await.unwrap();
    let source = build(config_for(&db, "outsider", "pw1"));
    match expect_error(source.test().await) {
        SourceError::PermissionDenied { message } => {
            assert!(
                message.contains("GRANT SELECT ON `retl_test`.* TO 'outsider'@'%'"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A user that may insert into a table but read nothing.
    db.sql("GRANT INSERT ON retl_test.users TO 'outsider'@'%'")
        .await
        .unwrap();
    match expect_error(source.test().await) {
        SourceError::PermissionDenied { message } => {
            assert!(
                message.contains("users") && message.contains("GRANT SELECT"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A user that may read one table: another one is denied at query time, naming the grant.
    db.create_user("partial", "pw4").await.unwrap();
    db.sql("GRANT SELECT ON retl_test.users TO 'partial'@'%'")
        .await
        .unwrap();
    let source = build(config_for(&db, "partial", "pw4"));
    let report = source.test().await.unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let error = run_error(&source, "SELECT * FROM active_users").await;
    assert!(
        error.contains("may not read table retl_test.active_users")
            && error.contains("GRANT SELECT ON `retl_test`.`active_users` TO 'partial'@'%'"),
        "{error}"
    );
    let session = ModelSession::new(source.as_ref(), MEMORY, None)
        .await
        .unwrap();
    match session.plan("SELECT * FROM sales.orders").await {
        Err(retl_engine::error::Error::Source(SourceError::PermissionDenied { message })) => {
            assert!(message.contains("`sales`.`orders`"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    // A read-only user: passes with no warnings.
    let report = build(config_for(&db, "reader", "pw2"))
        .test()
        .await
        .unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(
        report.message.contains("MariaDB") && report.message.contains("'reader@%'"),
        "{}",
        report.message
    );
    // A user that can write: a warning naming the privileges and the table.
    db.create_user("writer", "pw3").await.unwrap();
    db.sql(
        "GRANT SELECT ON retl_test.* TO 'writer'@'%'; \
         GRANT INSERT, DELETE ON retl_test.users TO 'writer'@'%'",
    )
    .await
    .unwrap();
    let report = build(config_for(&db, "writer", "pw3"))
        .test()
        .await
        .unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let warning = &report.warnings[0];
    assert!(
        warning.contains("retl_test.users")
            && warning.contains("INSERT")
            && warning.contains("DELETE"),
        "{warning}"
    );
    // Root: a warning too.
    let report = build(root_config(&db)).test().await.unwrap();
    assert!(
        report.warnings.iter().any(|w| w.contains("SUPER")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn list_tables_shows_what_the_user_can_read() {
    let db = server().await;
    db.sql(SAMPLE).await.unwrap();
    let all = build(root_config(&db)).list_tables().await.unwrap();
    let names = table_labels(&all);
    assert_eq!(
        names,
        [
            "retl_test.active_users view",
            "retl_test.users table",
            "sales.orders table"
        ]
    );
    let users = &all[1];
    let columns = column_shapes(users);
    assert_eq!(
        columns,
        [
            ("id", "Int64", false),
            ("email", "Utf8", false),
            ("plan", "Utf8", true),
            ("active", "Int8", true)
        ]
    );
    assert_eq!(all[2].columns[2].data_type, "Decimal128(12, 2)");

    db.create_user("reader", "pw").await.unwrap();
    db.sql("GRANT SELECT ON retl_test.users TO 'reader'@'%'; GRANT INSERT ON sales.orders TO 'reader'@'%'")
        .await
        .unwrap();
    let some = build(config_for(&db, "reader", "pw"))
        .list_tables()
        .await
        .unwrap();
    let names: Vec<&str> = some.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["users"]);
}

#[tokio::test]
async fn query_timeout_interrupts_slow_queries() {
    let db = server().await;
    db.sql("CREATE VIEW slow AS SELECT 1 AS id, SLEEP(3) AS nap")
        .await
        .unwrap();
    let source = build(with(root_config(&db), json!({"query_timeout_ms": 300})));
    let started = std::time::Instant::now();
    let error = run_error(&source, "SELECT id, nap FROM slow").await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        error.contains("query_timeout_ms (300 ms)") && error.contains("1969"),
        "{error}"
    );
}

#[tokio::test]
async fn a_connection_killed_mid_read_fails_the_read() {
    let db = Arc::new(server().await);
    db.sql("CREATE VIEW big AS SELECT seq AS id, REPEAT('x', 200) AS pad FROM seq_1_to_300000")
        .await
        .unwrap();
    let source = build(root_config(&db));
    let session = ModelSession::new(source.as_ref(), MEMORY, None)
        .await
        .unwrap();
    let plan = session.plan("SELECT id, pad FROM big").await.unwrap();
    let mut stream = session.execute(plan).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    let mut rows = first.num_rows();
    assert!(db.kill_connections().await.unwrap() >= 1);
    let error = loop {
        match stream.next().await {
            Some(Ok(batch)) => rows += batch.num_rows(),
            Some(Err(e)) => break e,
            None => panic!("the read ended without an error after {rows} of 300000 rows"),
        }
    };
    assert!(rows < 300_000, "{rows}");
    let text = error.to_string();
    assert!(
        text.contains("127.0.0.1") && (text.contains("lost") || text.contains("ended")),
        "{text}"
    );
    // The next read works on fresh connections.
    let rows = json_rows(&run(&source, "SELECT count(*) AS n FROM big").await);
    assert_eq!(rows, [json!({"n": 300000})]);
}

/// The TLS cipher of the connection a model runs on, read through the source (empty over
/// plain TCP).
async fn model_cipher(source: &Arc<dyn Source>) -> String {
    let rows = json_rows(
        &run(
            source,
            "SELECT \"VARIABLE_VALUE\" AS cipher FROM information_schema.SESSION_STATUS \
             WHERE \"VARIABLE_NAME\" = 'SSL_CIPHER'",
        )
        .await,
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0]["cipher"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn tls_modes_against_a_server_with_a_private_certificate_authority() {
    let mut db = server().await;
    db.sql(SAMPLE).await.unwrap();
    // Without TLS on the server: preferred falls back to plain TCP.
    let plain = build(with(root_config(&db), json!({"sslmode": "preferred"})));
    plain.test().await.unwrap();
    assert_eq!(model_cipher(&plain).await, "");
    drop(plain);

    let ca = db.enable_tls().await.unwrap();
    let ca = ca.display().to_string();
    // A user the server lets in over TLS only.
    db.sql("CREATE USER 'tls_only'@'%' IDENTIFIED BY 'pw' REQUIRE SSL; GRANT SELECT ON retl_test.* TO 'tls_only'@'%'")
        .await
        .unwrap();
    match expect_error(build(config_for(&db, "tls_only", "pw")).test().await) {
        SourceError::Authentication { message } => assert!(message.contains("1045"), "{message}"),
        other => panic!("{other:?}"),
    }
    // The certificate is not checked: TLS with any certificate.
    for mode in ["preferred", "required"] {
        let source = build(with(
            config_for(&db, "tls_only", "pw"),
            json!({ "sslmode": mode }),
        ));
        source.test().await.unwrap();
        let cipher = model_cipher(&source).await;
        assert!(!cipher.is_empty(), "{mode}: no TLS cipher");
    }
    // Checked against the system roots only: the private authority is unknown.
    let source = build(with(
        root_config(&db),
        json!({"sslmode": "verify_identity"}),
    ));
    match expect_error(source.test().await) {
        SourceError::Unavailable { message } => {
            eprintln!("{message}");
            assert!(
                message.contains("certificate") && message.contains("sslrootcert"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // With the authority: verified (the certificate names 127.0.0.1), end to end.
    let source = build(with(
        config_for(&db, "tls_only", "pw"),
        json!({"sslmode": "verify_identity", "sslrootcert": ca}),
    ));
    source.test().await.unwrap();
    let rows = json_rows(&run(&source, "SELECT count(*) AS n FROM users").await);
    assert_eq!(rows[0]["n"].as_i64(), Some(3), "{rows:?}");
    assert!(!model_cipher(&source).await.is_empty());
    // A missing authority file is the config's fault.
    let source = build(with(
        root_config(&db),
        json!({"sslmode": "verify_identity", "sslrootcert": "/nonexistent/ca.pem"}),
    ));
    match expect_error(source.test().await) {
        SourceError::InvalidConfig { field, message } => {
            eprintln!("{message}");
            assert_eq!(field, "sslrootcert");
            assert!(message.contains("/nonexistent/ca.pem"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    // A file that is not a PEM certificate, and a directory: the config's fault too.
    let garbage = std::env::temp_dir().join(format!("retl-not-a-ca-{}.pem", std::process::id()));
    std::fs::write(&garbage, "not a certificate").unwrap();
    for (path, words) in [
        (garbage.display().to_string(), "holds no PEM certificate"),
        (std::env::temp_dir().display().to_string(), "cannot read"),
    ] {
        let source = build(with(
            root_config(&db),
            json!({"sslmode": "verify_identity", "sslrootcert": path}),
        ));
        match expect_error(source.test().await) {
            SourceError::InvalidConfig { field, message } => {
                assert_eq!(field, "sslrootcert");
                assert!(
                    message.contains(&path) && message.contains(words),
                    "{message}"
                );
            }
            other => panic!("{path}: expected InvalidConfig, got {other:?}"),
        }
    }
    let _ = std::fs::remove_file(&garbage);
}
