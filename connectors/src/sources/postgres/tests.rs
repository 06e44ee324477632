//! PostgreSQL source tests: config and type-mapping unit tests, then tests against a real
//! PostgreSQL started by the testkit (one throwaway server per test).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use retl_engine::source::{Source, SourceError};
use retl_testkit::PostgresServer;
use serde_json::{Value, json};

use super::config::{Flavor, PostgresConfig, SslMode};
use super::source_type;
use super::types::{PgType, arrow_type};
use crate::sources::test_support::{
    self, column_shapes, explain, json_rows, run, run_error, table_labels, with,
};

fn build(config: Value) -> Arc<dyn Source> {
    test_support::build(&source_type(), config)
}

fn build_error(config: Value) -> (String, String) {
    test_support::build_error(&source_type(), config)
}

fn minimal() -> Value {
    json!({"host": "127.0.0.1", "database": "postgres", "user": "retl"})
}

// ---- read errors ----------------------------------------------------------------------------

#[test]
fn a_lost_connection_is_told_from_a_failing_statement_by_its_words() {
    use super::source::lost_connection;
    // As the table providers' row stream words them (the driver error is text only).
    assert!(lost_connection(
        "Execution error: Failed to fetch batch: Query execution failed.\nconnection closed\nFor details, refer to the PostgreSQL manual: https://www.postgresql.org/docs/17/index.html"
    ));
    assert!(lost_connection(
        "db error: FATAL: terminating connection due to administrator command"
    ));
    assert!(!lost_connection(
        "db error: ERROR: canceling statement due to statement timeout"
    ));
    assert!(!lost_connection("db error: ERROR: division by zero"));
}

#[test]
fn a_read_error_of_the_stream_is_classified_as_unavailable_only_when_the_connection_went_away() {
    let source = build(minimal());
    let lost = datafusion::error::DataFusionError::Execution(
        "Failed to fetch batch: Query execution failed.\nconnection closed\nFor details, refer to the PostgreSQL manual: https://www.postgresql.org/docs/17/index.html".to_string(),
    );
    match source.classify_read_error(&lost) {
        Some(SourceError::Unavailable { message }) => {
            assert!(message.contains("127.0.0.1:5432"), "{message}");
            assert!(
                message.contains("while reading (connection closed)"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let failing = datafusion::error::DataFusionError::Execution(
        "Failed to fetch batch: Query execution failed.\ndb error: ERROR: division by zero"
            .to_string(),
    );
    assert!(source.classify_read_error(&failing).is_none());
}

// ---- config -------------------------------------------------------------------------------

#[test]
fn config_defaults() {
    let config: PostgresConfig = serde_json::from_value(minimal()).unwrap();
    let valid = config.validate().unwrap();
    assert_eq!(valid.port, 5432);
    assert_eq!(valid.sslmode, SslMode::Prefer);
    assert_eq!(valid.schema, "public");
    assert_eq!(valid.connect_timeout.as_millis(), 10_000);
    assert_eq!(valid.query_timeout.map(|t| t.as_millis()), Some(3_600_000));
    assert_eq!(valid.flavor, Flavor::Postgres);
    assert!(valid.password.is_none());

    let redshift: PostgresConfig =
        serde_json::from_value(with(minimal(), json!({"flavor": "redshift"}))).unwrap();
    let valid = redshift.validate().unwrap();
    assert_eq!(valid.port, 5439);
    assert_eq!(valid.sslmode, SslMode::Require);

    let full: PostgresConfig = serde_json::from_value(with(
        minimal(),
        json!({"port": 6543, "password": 1234, "sslmode": "verify-full", "schema": "Sales",
               "connect_timeout_ms": 500, "query_timeout_ms": 0}),
    ))
    .unwrap();
    let valid = full.validate().unwrap();
    assert_eq!(valid.port, 6543);
    assert_eq!(valid.password.as_ref().map(|p| p.expose()), Some("1234"));
    assert_eq!(valid.sslmode, SslMode::VerifyFull);
    assert_eq!(valid.schema, "Sales");
    assert_eq!(valid.query_timeout, None);
    assert!(!format!("{valid:?}").contains("1234"), "password redacted");
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
        build_error(with(minimal(), json!({"sslmode": "allow"})))
            .1
            .contains("allow")
    );
    assert_eq!(build_error(with(minimal(), json!({"host": ""}))).0, "host");
    assert_eq!(
        build_error(with(minimal(), json!({"host": "a b"}))).0,
        "host"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"database": "x=y"}))).0,
        "database"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"user": "it's"}))).0,
        "user"
    );
    assert_eq!(build_error(with(minimal(), json!({"port": 0}))).0, "port");
    assert_eq!(
        build_error(with(minimal(), json!({"schema": " "}))).0,
        "schema"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"connect_timeout_ms": 0}))).0,
        "connect_timeout_ms"
    );
    assert_eq!(
        build_error(with(minimal(), json!({"query_timeout_ms": 5}))).0,
        "query_timeout_ms"
    );
    // A password may hold anything.
    build(with(minimal(), json!({"password": "a b'c\"d=e\\f"})));
}

#[test]
fn building_touches_no_network() {
    // Nothing listens on port 1; build must still succeed.
    let source = build(with(minimal(), json!({"port": 1})));
    assert!(format!("{source:?}").contains("PostgresSource"));
}

#[test]
fn sslrootcert_needs_a_verifying_mode_and_an_absolute_path() {
    let (field, message) = build_error(with(
        minimal(),
        json!({"sslmode": "require", "sslrootcert": "/etc/ca.pem"}),
    ));
    assert_eq!(field, "sslrootcert");
    assert!(message.contains("verify-ca or verify-full"), "{message}");
    let (field, message) = build_error(with(
        minimal(),
        json!({"sslmode": "verify-full", "sslrootcert": "ca.pem"}),
    ));
    assert_eq!(field, "sslrootcert");
    assert!(message.contains("absolute path"), "{message}");
    let valid: PostgresConfig = serde_json::from_value(with(
        minimal(),
        json!({"sslmode": "verify-ca", "sslrootcert": "/etc/ca.pem"}),
    ))
    .unwrap();
    let valid = valid.validate().unwrap();
    assert_eq!(valid.sslmode, SslMode::VerifyCa);
    assert_eq!(valid.sslrootcert.as_deref(), Some("/etc/ca.pem"));
}

#[test]
fn catalog_entry() {
    let ty = source_type();
    assert_eq!(ty.name, "postgres");
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
            "schema",
            "connect_timeout_ms",
            "query_timeout_ms",
            "flavor"
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

fn pg(formatted: &str) -> PgType {
    PgType {
        formatted: formatted.to_string(),
        typtype: "b".to_string(),
        element: None,
    }
}

#[test]
fn type_mapping_table() {
    let ok = |formatted: &str| arrow_type(&pg(formatted)).unwrap();
    assert_eq!(ok("numeric(12,2)"), DataType::Decimal128(12, 2));
    assert_eq!(ok("numeric(10)"), DataType::Decimal128(10, 0));
    assert_eq!(ok("numeric"), DataType::Decimal128(38, 20));
    assert_eq!(ok("character varying(20)"), DataType::Utf8);
    assert_eq!(ok("character(3)"), DataType::Utf8);
    assert_eq!(ok("jsonb"), DataType::Utf8);
    assert_eq!(ok("uuid"), DataType::Utf8);
    assert_eq!(
        ok("timestamp(3) without time zone"),
        DataType::Timestamp(TimeUnit::Nanosecond, None)
    );
    assert_eq!(
        ok("timestamp with time zone"),
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
    );
    assert_eq!(
        ok("interval"),
        DataType::Interval(IntervalUnit::MonthDayNano)
    );
    for unsupported in [
        "numeric(50,2)",
        "time with time zone",
        "tsrange",
        "hstore",
        "xid8",
    ] {
        let error = arrow_type(&pg(unsupported)).unwrap_err();
        assert!(error.to_string().contains(unsupported), "{error}");
    }
    let array = PgType {
        formatted: "integer[]".to_string(),
        typtype: "b".to_string(),
        element: Some(("integer".to_string(), "b".to_string())),
    };
    assert_eq!(
        arrow_type(&array).unwrap(),
        DataType::List(Arc::new(Field::new("item", DataType::Int32, true)))
    );
    let enum_type = PgType {
        formatted: "mood".to_string(),
        typtype: "e".to_string(),
        element: None,
    };
    assert_eq!(
        arrow_type(&enum_type).unwrap(),
        DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8))
    );
}

// ---- against a real PostgreSQL ------------------------------------------------------------

async fn server() -> PostgresServer {
    PostgresServer::start().await.unwrap()
}

fn config_for(pg: &PostgresServer, user: &str, password: &str) -> Value {
    json!({
        "host": pg.host(),
        "port": pg.port(),
        "database": pg.database(),
        "user": user,
        "password": password,
        "sslmode": "disable",
    })
}

fn superuser_config(pg: &PostgresServer) -> Value {
    config_for(pg, pg.user(), pg.superuser_password())
}

const SAMPLE: &str = "
CREATE SCHEMA sales;
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, plan text, active boolean);
INSERT INTO users VALUES (1, 'a@example.com', 'pro', true), (2, 'b@example.com', 'free', true),
                         (3, 'c@example.com', NULL, false);
CREATE TABLE sales.orders (id int PRIMARY KEY, user_id bigint, amount numeric(12,2));
INSERT INTO sales.orders VALUES (10, 1, 19.99), (11, 1, 5.01), (12, 2, 100.00);
CREATE VIEW active_users AS SELECT id, email FROM users WHERE active;
";

#[tokio::test]
async fn registers_and_queries_tables() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let source = build(superuser_config(&pg));

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
    // A schema-qualified table, a view, a join and an aggregate.
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
    // Unknown tables are the planner's usual error.
    let error = run_error(&source, "SELECT * FROM nope").await;
    assert!(
        error.contains("nope") && error.contains("not found"),
        "{error}"
    );
    let error = run_error(&source, "SELECT * FROM nope.users").await;
    assert!(error.contains("not found"), "{error}");
    // An empty result.
    assert!(json_rows(&run(&source, "SELECT id FROM users WHERE id > 100").await).is_empty());
}

#[tokio::test]
async fn a_model_over_one_database_is_pushed_down_whole() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let source = build(superuser_config(&pg));
    let sql = "SELECT u.id, count(*) AS orders FROM users u JOIN sales.orders o \
               ON o.user_id = u.id WHERE u.active GROUP BY u.id ORDER BY u.id LIMIT 5";
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

#[tokio::test]
async fn bare_names_resolve_in_the_configured_schema() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let source = build(with(superuser_config(&pg), json!({"schema": "sales"})));
    let rows = json_rows(&run(&source, "SELECT id FROM orders ORDER BY id").await);
    assert_eq!(rows.len(), 3);
    let rows = json_rows(&run(&source, "SELECT id FROM public.users ORDER BY id").await);
    assert_eq!(rows.len(), 3);
}

const TYPES: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE types (
  id int PRIMARY KEY,
  i2 int2, i4 int4, i8 int8, n numeric(12,2), nb numeric, f4 float4, f8 float8, b bool,
  t text, vc varchar(20), u uuid, d date, tm time, ts timestamp, tstz timestamptz,
  iv interval, j json, jb jsonb, ta text[], ia int4[], by bytea, m mood
);
INSERT INTO types VALUES (
  1, -32768, 2147483647, 9223372036854775807, 1234567890.12, 1234567890123456.123456789012,
  1.5, 2.25, true, 'héllo', 'var', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29',
  '13:14:15.123456', '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456+02',
  '1 year 2 months 3 days 04:05:06.5', '{\"a\": [1, 2]}', '{\"b\": {\"c\": null}}',
  '{x,\"y z\"}', '{1,3}', '\\x00ff10', 'happy'
);
INSERT INTO types (id) VALUES (2);
";

#[tokio::test]
async fn types_round_trip() {
    let pg = server().await;
    pg.psql(TYPES).await.unwrap();
    let source = build(superuser_config(&pg));
    let batches = run(&source, "SELECT * FROM types ORDER BY id").await;
    let schema = batches[0].schema();
    let types: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();

    // What the provider produced agrees with types.rs as list_tables reports it.
    let tables = source.list_tables().await.unwrap();
    let listed = tables.iter().find(|t| t.name == "types").unwrap();
    let listed: Vec<(String, String)> = listed
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect();
    assert_eq!(types, listed);

    let expected: Vec<(&str, DataType)> = vec![
        ("id", DataType::Int32),
        ("i2", DataType::Int16),
        ("i4", DataType::Int32),
        ("i8", DataType::Int64),
        ("n", DataType::Decimal128(12, 2)),
        ("nb", DataType::Decimal128(38, 20)),
        ("f4", DataType::Float32),
        ("f8", DataType::Float64),
        ("b", DataType::Boolean),
        ("t", DataType::Utf8),
        ("vc", DataType::Utf8),
        ("u", DataType::Utf8),
        ("d", DataType::Date32),
        ("tm", DataType::Time64(TimeUnit::Nanosecond)),
        ("ts", DataType::Timestamp(TimeUnit::Nanosecond, None)),
        (
            "tstz",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        ),
        ("iv", DataType::Interval(IntervalUnit::MonthDayNano)),
        ("j", DataType::Utf8),
        ("jb", DataType::Utf8),
        (
            "ta",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        ),
        (
            "ia",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
        ),
        ("by", DataType::Binary),
        (
            "m",
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
        ),
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
    expect("i2", json!(-32768));
    expect("i4", json!(2147483647));
    expect("i8", json!(9223372036854775807_i64));
    expect("n", json!("1234567890.12"));
    // 28 significant digits: the most the decoder keeps exactly (see types.rs).
    expect("nb", json!("1234567890123456.12345678901200000000"));
    expect("f4", json!(1.5));
    expect("f8", json!(2.25));
    expect("b", json!(true));
    expect("t", json!("héllo"));
    expect("vc", json!("var"));
    expect("u", json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    expect("d", json!("2024-02-29"));
    expect("tm", json!("13:14:15.123456"));
    expect("ts", json!("2024-02-29T13:14:15.123456"));
    expect("tstz", json!("2024-02-29T11:14:15.123456+00:00"));
    expect("j", json!("{\"a\": [1, 2]}"));
    expect("jb", json!("{\"b\": {\"c\": null}}"));
    expect("ta", json!(["x", "y z"]));
    expect("ia", json!([1, 3]));
    expect("by", json!("00ff10"));
    expect("m", json!("happy"));
    let interval = row["iv"].as_str().unwrap_or_default().to_string();
    assert!(
        interval.contains("14 mons") && interval.contains("3 days"),
        "{interval}"
    );
    // The all-NULL row: every column null.
    for (column, value) in rows[1].as_object().unwrap() {
        if column != "id" {
            assert_eq!(value, &Value::Null, "column {column}");
        }
    }
}

#[tokio::test]
async fn unsupported_types_name_the_column() {
    let pg = server().await;
    pg.psql("CREATE TABLE spans (id int, during tsrange)")
        .await
        .unwrap();
    let source = build(superuser_config(&pg));
    let error = run_error(&source, "SELECT id FROM spans").await;
    assert!(
        error.contains("during") && error.contains("tsrange") && error.contains("view"),
        "{error}"
    );
    let tables = source.list_tables().await.unwrap();
    let column = &tables[0].columns[1];
    assert!(column.data_type.contains("unsupported"), "{column:?}");
}

#[tokio::test]
async fn test_reports_each_failure_distinctly() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();

    // Wrong password.
    let source = build(config_for(&pg, pg.user(), "wrong"));
    match source.test().await {
        Err(SourceError::Authentication { message }) => {
            assert!(
                message.contains("password authentication failed"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Missing database.
    let source = build(with(superuser_config(&pg), json!({"database": "nosuchdb"})));
    match source.test().await {
        Err(SourceError::InvalidConfig { field, message }) => {
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
    let source = build(with(superuser_config(&pg), json!({"port": port})));
    match source.test().await {
        Err(SourceError::Unavailable { message }) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.contains("cannot connect"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Missing schema.
    let source = build(with(superuser_config(&pg), json!({"schema": "nope"})));
    match source.test().await {
        Err(SourceError::InvalidConfig { field, .. }) => assert_eq!(field, "schema"),
        other => panic!("{other:?}"),
    }

    // A role without USAGE on the schema.
    pg.create_user("outsider", "pw1").await.unwrap();
    let source = build(with(
        config_for(&pg, "outsider", "pw1"),
        json!({"schema": "sales"}),
    ));
    match source.test().await {
        Err(SourceError::PermissionDenied { message }) => {
            assert!(
                message.contains("GRANT USAGE ON SCHEMA \"sales\""),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Usage but no SELECT on any table of the schema.
    pg.psql("GRANT USAGE ON SCHEMA sales TO outsider")
        .await
        .unwrap();
    match source.test().await {
        Err(SourceError::PermissionDenied { message }) => {
            assert!(
                message.contains("orders") && message.contains("GRANT SELECT"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // And the same at query time.
    let error = run_error(&source, "SELECT * FROM orders").await;
    assert!(
        error.contains("may not read table sales.orders") && error.contains("GRANT SELECT"),
        "{error}"
    );

    // A read-only role: passes with no warnings.
    pg.create_user("reader", "pw2").await.unwrap();
    pg.psql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
        .await
        .unwrap();
    let report = build(config_for(&pg, "reader", "pw2"))
        .test()
        .await
        .unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(
        report.message.contains("PostgreSQL") && report.message.contains("'reader'"),
        "{}",
        report.message
    );
    // A role that can write: a warning naming the tables.
    pg.create_user("writer", "pw3").await.unwrap();
    pg.psql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO writer; GRANT INSERT, DELETE ON users TO writer")
        .await
        .unwrap();
    let report = build(config_for(&pg, "writer", "pw3"))
        .test()
        .await
        .unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("public.users"),
        "{:?}",
        report.warnings
    );
    // The superuser: a warning too.
    let report = build(superuser_config(&pg)).test().await.unwrap();
    assert!(
        report.warnings.iter().any(|w| w.contains("superuser")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn list_tables_shows_what_the_user_can_read() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let all = build(superuser_config(&pg)).list_tables().await.unwrap();
    let names = table_labels(&all);
    assert_eq!(
        names,
        [
            "public.active_users view",
            "public.users table",
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
            ("active", "Boolean", true)
        ]
    );
    assert_eq!(all[2].columns[2].data_type, "Decimal128(12, 2)");

    pg.create_user("reader", "pw").await.unwrap();
    pg.psql("GRANT SELECT ON users TO reader").await.unwrap();
    let some = build(config_for(&pg, "reader", "pw"))
        .list_tables()
        .await
        .unwrap();
    let names: Vec<&str> = some.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["users"]);
}

#[tokio::test]
async fn query_timeout_cancels_slow_queries() {
    let pg = server().await;
    pg.psql("CREATE VIEW slow AS SELECT 1 AS id, pg_sleep(2)::text AS nap")
        .await
        .unwrap();
    let source = build(with(
        superuser_config(&pg),
        json!({"query_timeout_ms": 200}),
    ));
    let started = std::time::Instant::now();
    let error = run_error(&source, "SELECT id FROM slow").await;
    assert!(started.elapsed() < std::time::Duration::from_millis(1_800));
    assert!(error.contains("statement timeout"), "{error}");
}

#[tokio::test]
async fn tls_modes_against_a_server_without_tls() {
    // The testkit's server has no certificate: `prefer` falls back to plain TCP, `require`
    // and `verify-full` must refuse to go on without TLS, and say why.
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let prefer = build(with(superuser_config(&pg), json!({"sslmode": "prefer"})));
    prefer.test().await.unwrap();
    for mode in ["require", "verify-full"] {
        let source = build(with(superuser_config(&pg), json!({"sslmode": mode})));
        match source.test().await {
            Err(SourceError::Unavailable { message }) => {
                assert!(
                    message.contains(&format!("sslmode={mode}")) && message.contains("TLS"),
                    "{mode}: {message}"
                );
            }
            other => panic!("{mode}: expected Unavailable, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn tls_modes_against_a_server_with_a_private_certificate_authority() {
    let pg = server().await;
    pg.psql(SAMPLE).await.unwrap();
    let ca = pg.enable_tls().await.unwrap();
    let ca = ca.display().to_string();
    // The certificate is not checked: TLS with any certificate.
    for mode in ["prefer", "require"] {
        let source = build(with(superuser_config(&pg), json!({"sslmode": mode})));
        source.test().await.unwrap();
    }
    // Checked against the system roots only: the private authority is unknown.
    let source = build(with(
        superuser_config(&pg),
        json!({"sslmode": "verify-full"}),
    ));
    match source.test().await {
        Err(SourceError::Unavailable { message }) => {
            assert!(
                message.contains("certificate") && message.contains("sslrootcert"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // With the authority: verified (the certificate names 127.0.0.1).
    for mode in ["verify-ca", "verify-full"] {
        let config = with(
            superuser_config(&pg),
            json!({"sslmode": mode, "sslrootcert": ca}),
        );
        let source = build(config);
        source.test().await.unwrap();
        let rows = json_rows(&run(&source, "SELECT count(*) AS n FROM users").await);
        assert!(rows[0]["n"].as_i64().unwrap_or_default() > 0, "{rows:?}");
    }
    // A missing authority file is the config's fault.
    let source = build(with(
        superuser_config(&pg),
        json!({"sslmode": "verify-full", "sslrootcert": "/nonexistent/ca.pem"}),
    ));
    match source.test().await {
        Err(SourceError::InvalidConfig { field, message }) => {
            assert_eq!(field, "sslrootcert");
            assert!(message.contains("/nonexistent/ca.pem"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}
