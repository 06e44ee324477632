//! SQLite source tests: config and type-mapping unit tests, then tests against real database
//! files created in temp dirs (no mocks).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use futures::StreamExt;
use retl_engine::model::ModelSession;
use retl_engine::source::{Source, SourceError};
use serde_json::{Value, json};

use super::config::SqliteConfig;
use super::source_type;
use super::types::{arrow_type, parse_datetime, parse_decimal_literal, rescale_exact};
use crate::sources::test_support::{
    self, MEMORY, column_shapes, explain, json_rows, run, run_error, table_labels, with,
};

fn build(config: Value) -> Arc<dyn Source> {
    test_support::build(&source_type(), config)
}

fn build_error(config: Value) -> (String, String) {
    test_support::build_error(&source_type(), config)
}

// ---- config -------------------------------------------------------------------------------

#[test]
fn config_defaults() {
    let config: SqliteConfig = serde_json::from_value(json!({"path": "/data/app.db"})).unwrap();
    let valid = config.validate().unwrap();
    assert_eq!(valid.path, PathBuf::from("/data/app.db"));
    assert_eq!(valid.busy_timeout, Duration::from_millis(5_000));
    assert_eq!(valid.query_timeout, Some(Duration::from_millis(3_600_000)));

    let config: SqliteConfig = serde_json::from_value(
        json!({"path": "/data/app.db", "busy_timeout_ms": 0, "query_timeout_ms": 0}),
    )
    .unwrap();
    let valid = config.validate().unwrap();
    assert_eq!(valid.busy_timeout, Duration::ZERO);
    assert_eq!(valid.query_timeout, None);
}

#[test]
fn config_errors_name_the_field() {
    assert_eq!(build_error(json!({})).0, "config");
    let (field, message) = build_error(json!({"path": "/a.db", "file": "x"}));
    assert_eq!(field, "config");
    assert!(message.contains("file"), "{message}");
    let (field, message) = build_error(json!({"path": ""}));
    assert_eq!(field, "path");
    assert!(message.contains("absolute"), "{message}");
    let (field, message) = build_error(json!({"path": "data/app.db"}));
    assert_eq!(field, "path");
    assert!(
        message.contains("relative") && message.contains("data/app.db"),
        "{message}"
    );
    assert_eq!(build_error(json!({"path": ":memory:"})).0, "path");
    assert_eq!(build_error(json!({"path": "file:/a.db?mode=rw"})).0, "path");
    assert_eq!(
        build_error(json!({"path": "/a.db", "busy_timeout_ms": 10_000_000})).0,
        "busy_timeout_ms"
    );
    assert_eq!(
        build_error(json!({"path": "/a.db", "query_timeout_ms": 5})).0,
        "query_timeout_ms"
    );
    assert_eq!(
        build_error(json!({"path": "/a.db", "query_timeout_ms": "soon"})).0,
        "config"
    );
}

#[test]
fn building_touches_no_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-yet.db");
    let source = build(json!({"path": path.display().to_string()}));
    assert!(format!("{source:?}").contains("SqliteSource"));
    assert!(!path.exists());
}

#[test]
fn catalog_entry() {
    let ty = source_type();
    assert_eq!(ty.name, "sqlite");
    let names: Vec<_> = ty.config.iter().map(|f| f.name).collect();
    assert_eq!(names, ["path", "busy_timeout_ms", "query_timeout_ms"]);
    assert!(ty.config.iter().all(|f| !f.secret));
    assert!(ty.config.iter().filter(|f| f.required).count() == 1);
}

// ---- type mapping -------------------------------------------------------------------------

#[test]
fn declared_type_mapping_table() {
    let ok = |declared: &str| arrow_type(declared).unwrap();
    for declared in [
        "INTEGER",
        "int",
        "BIGINT",
        "SMALLINT",
        "TINYINT",
        "INT8",
        "UNSIGNED BIG INT",
        "MEDIUMINT",
    ] {
        assert_eq!(ok(declared), DataType::Int64, "{declared}");
    }
    for declared in [
        "REAL",
        "DOUBLE",
        "DOUBLE PRECISION",
        "FLOAT",
        "NUMERIC",
        "decimal",
    ] {
        assert_eq!(ok(declared), DataType::Float64, "{declared}");
    }
    for declared in [
        "TEXT",
        "VARCHAR(20)",
        "CHARACTER(3)",
        "NVARCHAR(100)",
        "CLOB",
        "JSON",
        "UUID",
        "",
    ] {
        assert_eq!(ok(declared), DataType::Utf8, "{declared}");
    }
    assert_eq!(ok("BLOB"), DataType::Binary);
    assert_eq!(ok("DECIMAL(12,2)"), DataType::Decimal128(12, 2));
    assert_eq!(ok("numeric(10, 3)"), DataType::Decimal128(10, 3));
    assert_eq!(ok("DECIMAL(10)"), DataType::Decimal128(10, 0));
    assert_eq!(ok("BOOLEAN"), DataType::Boolean);
    assert_eq!(ok("bool"), DataType::Boolean);
    assert_eq!(ok("DATE"), DataType::Date32);
    assert_eq!(
        ok("DATETIME"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        ok("timestamp"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        ok("TIMESTAMP WITH TIME ZONE"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(ok("TIME"), DataType::Time64(TimeUnit::Microsecond));
    for unsupported in [
        "STRING",
        "MONEY",
        "GEOMETRY",
        "DECIMAL(50,2)",
        "NUMERIC(5,9)",
    ] {
        let error = arrow_type(unsupported).unwrap_err();
        assert_eq!(error.declared, unsupported);
        assert!(error.to_string().contains(unsupported), "{error}");
    }
}

#[test]
fn decimal_and_datetime_text_parsing() {
    assert_eq!(parse_decimal_literal("19.99"), Some((1999, 2)));
    assert_eq!(parse_decimal_literal("-0.50"), Some((-5, 1)));
    assert_eq!(parse_decimal_literal("1e3"), Some((1, -3)));
    assert_eq!(parse_decimal_literal("+.5"), Some((5, 1)));
    assert_eq!(parse_decimal_literal("abc"), None);
    assert_eq!(parse_decimal_literal("1.2.3"), None);
    assert_eq!(rescale_exact(1999, 2, 4), Some(199_900));
    assert_eq!(rescale_exact(19_990, 3, 2), Some(1999));
    assert_eq!(rescale_exact(19_999, 3, 2), None, "never rounds");
    let expected = chrono::NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .and_hms_micro_opt(13, 14, 15, 123_000)
        .unwrap();
    assert_eq!(parse_datetime("2024-02-29 13:14:15.123"), Some(expected));
    assert_eq!(parse_datetime("2024-02-29T13:14:15.123"), Some(expected));
    assert_eq!(
        parse_datetime("2024-02-29T15:14:15.123+02:00"),
        Some(expected)
    );
    assert_eq!(parse_datetime("2024-02-29 13:14:15.123Z"), Some(expected));
    assert_eq!(parse_datetime("2024-02-30 00:00:00"), None);
    assert_eq!(parse_datetime("yesterday"), None);
}

// ---- against real database files ------------------------------------------------------------

/// A database file created with `sql` in a fresh temp dir.
fn database(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warehouse.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    (dir, path)
}

fn config(path: &Path) -> Value {
    json!({"path": path.display().to_string()})
}

const SAMPLE: &str = "
CREATE TABLE Users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, plan TEXT, active BOOLEAN);
INSERT INTO Users VALUES (1, 'a@example.com', 'pro', 1), (2, 'b@example.com', 'free', 1),
                         (3, 'c@example.com', NULL, 0);
CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, amount DECIMAL(12,2));
INSERT INTO orders VALUES (10, 1, 19.99), (11, 1, 5.01), (12, 2, 100.00);
CREATE VIEW active_users AS SELECT id, email FROM users WHERE active;
";

#[tokio::test]
async fn registers_and_queries_tables() {
    let (_dir, path) = database(SAMPLE);
    let source = build(config(&path));
    // `Users` is found as `users` (SQLite names are case-insensitive), and as `main.users`.
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
    let rows = json_rows(&run(&source, "SELECT count(*) AS n FROM main.users").await);
    assert_eq!(rows, [json!({"n": 3})]);
    // A view, a join and an aggregate over decimals: SQLite sums floats, the exact cents come
    // back.
    let sql = "SELECT u.id, u.email, sum(o.amount) AS total, count(*) AS orders \
               FROM active_users u JOIN orders o ON o.user_id = u.id \
               GROUP BY u.id, u.email ORDER BY u.id";
    let rows = json_rows(&run(&source, sql).await);
    assert_eq!(
        rows,
        [
            json!({"id": 1, "email": "a@example.com", "total": "25.00", "orders": 2}),
            json!({"id": 2, "email": "b@example.com", "total": "100.00", "orders": 1})
        ]
    );
    let error = run_error(&source, "SELECT * FROM nope").await;
    assert!(
        error.contains("nope") && error.contains("not found"),
        "{error}"
    );
    let error = run_error(&source, "SELECT * FROM other.users").await;
    assert!(error.contains("other"), "{error}");
    assert!(json_rows(&run(&source, "SELECT id FROM users WHERE id > 100").await).is_empty());
}

#[tokio::test]
async fn a_model_over_one_database_is_pushed_down_whole() {
    let (_dir, path) = database(SAMPLE);
    let source = build(config(&path));
    let sql = "SELECT u.id, count(*) AS orders FROM users u JOIN orders o \
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

const TYPES: &str = "
CREATE TABLE types (
  id INTEGER PRIMARY KEY, i INT, bi BIGINT, r REAL, db DOUBLE, fl FLOAT, t TEXT,
  vc VARCHAR(20), ch CHAR(3), bl BLOB, n NUMERIC, d DECIMAL(12,2), b BOOLEAN, dt DATE,
  dtm DATETIME, ts TIMESTAMP, tm TIME, j JSON, u UUID, untyped
);
INSERT INTO types VALUES (
  1, -2147483648, 9223372036854775807, 1.5, 2.25, -0.125, 'héllo', 'var', 'abc',
  x'00ff10', 12.5, '1234567890.12', 1, '2024-02-29', '2024-02-29 13:14:15.123456',
  '2024-02-29T13:14:15Z', '13:14:15.5', '{\"a\": [1, 2]}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 42
);
INSERT INTO types (id) VALUES (2);
CREATE VIEW type_view AS
  SELECT id, d, t || '!' AS shout, r * 2 AS doubled, CAST(i AS INTEGER) AS cast_i,
         CAST(i AS REAL) AS cast_r FROM types;
";

#[tokio::test]
async fn types_round_trip() {
    let (_dir, path) = database(TYPES);
    let source = build(config(&path));
    let batches = run(&source, "SELECT * FROM types ORDER BY id").await;
    let schema = batches[0].schema();
    let types: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();

    // What the provider produced agrees with list_tables.
    let tables = source.list_tables().await.unwrap();
    let listed = tables.iter().find(|t| t.name == "types").unwrap();
    let listed: Vec<(String, String)> = listed
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect();
    assert_eq!(types, listed);

    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
    let expected: Vec<(&str, DataType)> = vec![
        ("id", DataType::Int64),
        ("i", DataType::Int64),
        ("bi", DataType::Int64),
        ("r", DataType::Float64),
        ("db", DataType::Float64),
        ("fl", DataType::Float64),
        ("t", DataType::Utf8),
        ("vc", DataType::Utf8),
        ("ch", DataType::Utf8),
        ("bl", DataType::Binary),
        ("n", DataType::Float64),
        ("d", DataType::Decimal128(12, 2)),
        ("b", DataType::Boolean),
        ("dt", DataType::Date32),
        ("dtm", timestamp.clone()),
        ("ts", timestamp),
        ("tm", DataType::Time64(TimeUnit::Microsecond)),
        ("j", DataType::Utf8),
        ("u", DataType::Utf8),
        ("untyped", DataType::Utf8),
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
    expect("i", json!(-2147483648_i64));
    expect("bi", json!(9223372036854775807_i64));
    expect("r", json!(1.5));
    expect("db", json!(2.25));
    expect("fl", json!(-0.125));
    expect("t", json!("héllo"));
    expect("vc", json!("var"));
    expect("ch", json!("abc"));
    expect("bl", json!("00ff10"));
    expect("n", json!(12.5));
    expect("d", json!("1234567890.12"));
    expect("b", json!(true));
    expect("dt", json!("2024-02-29"));
    expect("dtm", json!("2024-02-29T13:14:15.123456"));
    expect("ts", json!("2024-02-29T13:14:15"));
    expect("tm", json!("13:14:15.500"));
    expect("j", json!("{\"a\": [1, 2]}"));
    expect("u", json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    // No declared type: read as text.
    expect("untyped", json!("42"));
    // The all-NULL row: every column null.
    for (column, value) in rows[1].as_object().unwrap() {
        if column != "id" {
            assert_eq!(value, &Value::Null, "column {column}");
        }
    }

    // A view: plain column references keep their declared type, a CAST gives its type
    // (SQLite derives it from the cast), other expressions have none and are read as text.
    let batches = run(&source, "SELECT * FROM type_view ORDER BY id").await;
    let view_types: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect();
    assert_eq!(
        view_types,
        [
            "id Int64",
            "d Decimal128(12, 2)",
            "shout Utf8",
            "doubled Utf8",
            "cast_i Int64",
            "cast_r Float64"
        ]
    );
    let rows = json_rows(&batches);
    assert_eq!(
        rows[0],
        json!({"id": 1, "d": "1234567890.12", "shout": "héllo!", "doubled": "3.0", "cast_i": -2147483648_i64, "cast_r": -2147483648.0})
    );
    assert_eq!(
        rows[1],
        json!({"id": 2, "d": null, "shout": null, "doubled": null, "cast_i": null, "cast_r": null})
    );
    // A model gives an expression column its type with a CAST, evaluated in SQLite.
    let rows = json_rows(
        &run(
            &source,
            "SELECT id, CAST(doubled AS DOUBLE) AS doubled FROM type_view ORDER BY id",
        )
        .await,
    );
    assert_eq!(
        rows,
        [
            json!({"id": 1, "doubled": 3.0}),
            json!({"id": 2, "doubled": null})
        ]
    );
}

#[tokio::test]
async fn decimals_are_never_rounded_silently() {
    let (_dir, path) = database(
        "CREATE TABLE prices (id INTEGER PRIMARY KEY, amount DECIMAL(10,2), exact TEXT);
         INSERT INTO prices VALUES (1, 0.1, '12345678901234567890.123456789'),
                                   (2, 0.2, NULL), (3, -7, NULL);",
    );
    let source = build(config(&path));
    // 0.1 + 0.2 is 0.30000000000000004 in SQLite's floats: within noise of 0.30.
    let rows = json_rows(&run(&source, "SELECT sum(amount) AS total FROM prices").await);
    assert_eq!(rows, [json!({"total": "-6.70"})]);
    let rows = json_rows(&run(&source, "SELECT amount FROM prices ORDER BY id").await);
    assert_eq!(
        rows,
        [
            json!({"amount": "0.10"}),
            json!({"amount": "0.20"}),
            json!({"amount": "-7.00"})
        ]
    );
    // Digits beyond 15 survive only as text.
    let rows = json_rows(&run(&source, "SELECT exact FROM prices WHERE id = 1").await);
    assert_eq!(rows, [json!({"exact": "12345678901234567890.123456789"})]);

    // A value with more decimal places than the column declares fails the read.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO prices VALUES (4, 19.999, NULL)", [])
        .unwrap();
    drop(conn);
    let error = run_error(&source, "SELECT id, amount FROM prices").await;
    assert!(
        error.contains("column 'amount'")
            && error.contains("row 4")
            && error.contains("19.999")
            && error.contains("decimal places"),
        "{error}"
    );
}

#[tokio::test]
async fn a_value_that_does_not_fit_its_column_is_a_read_error_naming_it() {
    let (_dir, path) = database(
        "CREATE TABLE counts (id INTEGER PRIMARY KEY, n INTEGER, day DATE);
         INSERT INTO counts VALUES (1, 5, '2024-01-01'), (2, 'abc', '2024-01-02');
         CREATE TABLE days (id INTEGER PRIMARY KEY, day DATE);
         INSERT INTO days VALUES (1, 1700000000);",
    );
    let source = build(config(&path));
    let error = run_error(&source, "SELECT id, n FROM counts").await;
    assert!(
        error.contains("column 'n'")
            && error.contains("row 2")
            && error.contains("'abc'")
            && error.contains("Int64"),
        "{error}"
    );
    // Projection pushdown: a model that does not read `n` is not affected.
    let rows = json_rows(&run(&source, "SELECT id, day FROM counts ORDER BY id").await);
    assert_eq!(rows.len(), 2);
    let error = run_error(&source, "SELECT id, day FROM days").await;
    assert!(
        error.contains("column 'day'") && error.contains("unixepoch"),
        "{error}"
    );
}

#[tokio::test]
async fn unsupported_declared_types_name_the_table_column_and_fix() {
    let (_dir, path) = database(
        "CREATE TABLE wallets (id INTEGER PRIMARY KEY, balance MONEY);
         INSERT INTO wallets VALUES (1, 10);
         CREATE VIEW wallets_v AS SELECT id, CAST(balance AS TEXT) AS balance FROM wallets;",
    );
    let source = build(config(&path));
    let error = run_error(&source, "SELECT id FROM wallets").await;
    assert!(
        error.contains("table wallets")
            && error.contains("'balance'")
            && error.contains("MONEY")
            && error.contains("CREATE VIEW"),
        "{error}"
    );
    // The fix works.
    let rows = json_rows(&run(&source, "SELECT id, balance FROM wallets_v").await);
    assert_eq!(rows, [json!({"id": 1, "balance": "10"})]);
    let tables = source.list_tables().await.unwrap();
    let column = &tables[0].columns[1];
    assert!(column.data_type.contains("unsupported"), "{column:?}");
}

#[tokio::test]
async fn list_tables_shows_tables_and_views_with_columns() {
    let (_dir, path) = database(SAMPLE);
    let all = build(config(&path)).list_tables().await.unwrap();
    let names = table_labels(&all);
    assert_eq!(
        names,
        [
            "main.Users table",
            "main.active_users view",
            "main.orders table"
        ]
    );
    let users = &all[0];
    let columns = column_shapes(users);
    assert_eq!(
        columns,
        [
            ("id", "Int64", true),
            ("email", "Utf8", false),
            ("plan", "Utf8", true),
            ("active", "Boolean", true)
        ]
    );
    assert_eq!(all[2].columns[2].data_type, "Decimal128(12, 2)");
    assert!(users.location.ends_with("warehouse.db#Users"), "{users:?}");
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[tokio::test]
async fn test_reports_each_failure_distinctly() {
    let dir = tempfile::tempdir().unwrap();

    // Missing file: an error naming `path`, and no file is created.
    let missing = dir.path().join("missing.db");
    match build(config(&missing)).test().await {
        Err(SourceError::InvalidConfig { field, message }) => {
            assert_eq!(field, "path");
            assert!(
                message.contains("no file") && message.contains("missing.db"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!missing.exists(), "retl must never create the database");
    // Registering for a model fails the same way.
    let error = run_error(&build(config(&missing)), "SELECT 1").await;
    assert!(
        error.contains("path") && error.contains("no file"),
        "{error}"
    );
    assert!(!missing.exists());

    // Not a SQLite database.
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "these are notes, not a database; long enough to have a header\n".repeat(20),
    )
    .unwrap();
    match build(config(&text)).test().await {
        Err(SourceError::InvalidConfig { field, message }) => {
            assert_eq!(field, "path");
            assert!(message.contains("not a SQLite database"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // A directory.
    match build(config(dir.path())).test().await {
        Err(SourceError::InvalidConfig { field, message }) => {
            assert_eq!(field, "path");
            assert!(message.contains("directory"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // Unreadable. As root, chmod does not deny reads, so there is nothing to test.
    let (_db_dir, db) = database(SAMPLE);
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
        match build(config(&db)).test().await {
            Err(SourceError::PermissionDenied { message }) => {
                assert!(message.contains("may not read"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    // An empty database (a zero-byte file is one): passes with a warning.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let report = build(config(&empty)).test().await.unwrap();
    assert_eq!(report.warnings.len(), 1, "{report:?}");
    assert!(report.warnings[0].contains("no tables"), "{report:?}");

    // Success: the version, the counts, and read-only.
    let report = build(config(&db)).test().await.unwrap();
    assert!(report.warnings.is_empty(), "{report:?}");
    let message = &report.message;
    assert!(
        message.contains("SQLite 3.")
            && message.contains("2 tables and 1 view;")
            && message.contains("read-only"),
        "{message}"
    );
}

#[tokio::test]
async fn reading_never_changes_the_file() {
    let (_dir, path) = database(SAMPLE);
    let before = std::fs::read(&path).unwrap();
    let source = build(config(&path));
    source.test().await.unwrap();
    source.list_tables().await.unwrap();
    run(&source, "SELECT * FROM users").await;
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let siblings: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(siblings, ["warehouse.db"], "no journal or WAL files");
}

#[tokio::test]
async fn a_database_locked_by_a_writer_is_a_clear_busy_error() {
    let (_dir, path) = database(SAMPLE);
    let writer = rusqlite::Connection::open(&path).unwrap();
    // Rollback-journal mode: an exclusive transaction keeps readers out.
    writer.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let source = build(with(config(&path), json!({"busy_timeout_ms": 200})));
    let started = Instant::now();
    let error = run_error(&source, "SELECT id FROM users").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        error.contains("locked") && error.contains("busy_timeout_ms = 200"),
        "{error}"
    );
    match source.test().await {
        Err(SourceError::Unavailable { message }) => assert!(message.contains("locked")),
        other => panic!("{other:?}"),
    }
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(run(&source, "SELECT id FROM users").await[0].num_rows(), 3);
}

#[tokio::test]
async fn in_wal_mode_readers_never_wait_for_a_writer() {
    let (_dir, path) = database(&format!("PRAGMA journal_mode=WAL; {SAMPLE}"));
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO users VALUES (4, 'd@example.com', NULL, 1);")
        .unwrap();
    let source = build(with(config(&path), json!({"busy_timeout_ms": 0})));
    // The committed snapshot, without waiting.
    assert_eq!(run(&source, "SELECT id FROM users").await[0].num_rows(), 3);
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(run(&source, "SELECT id FROM users").await[0].num_rows(), 4);
    let mode: String = writer
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// A table of `rows` rows of about 100 bytes.
fn big_database(rows: u64) -> (tempfile::TempDir, PathBuf) {
    database(&format!(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
         INSERT INTO events SELECT x, printf('%.90d', x) FROM c;"
    ))
}

/// Starts the model `SELECT id, payload FROM events`, reads its first batch, calls `meddle`,
/// then reads the rest: (rows read, the error if the stream failed).
async fn meddle_mid_read(
    source: &Arc<dyn Source>,
    meddle: impl FnOnce(),
) -> (usize, Option<String>) {
    let session = ModelSession::new(source.as_ref(), MEMORY, None)
        .await
        .unwrap();
    let plan = session
        .plan("SELECT id, payload FROM events")
        .await
        .unwrap();
    let mut stream = session.execute(plan).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    let mut rows = first.num_rows();
    meddle();
    while let Some(batch) = stream.next().await {
        match batch {
            Ok(batch) => rows += batch.num_rows(),
            Err(e) => return (rows, Some(e.to_string())),
        }
    }
    (rows, None)
}

#[tokio::test]
async fn a_file_overwritten_mid_read_fails_the_read_instead_of_ending_it_short() {
    const ROWS: u64 = 200_000;
    let (_dir, path) = big_database(ROWS);
    let source = build(config(&path));
    let target = path.clone();
    let (rows, error) = meddle_mid_read(&source, move || {
        // Overwritten in place without SQLite's locking (as `cp other.db warehouse.db` does).
        std::fs::write(&target, vec![0_u8; 64 * 1024]).unwrap();
    })
    .await;
    let error = error.unwrap_or_else(|| panic!("the read ended after {rows} rows without error"));
    assert!((rows as u64) < ROWS);
    assert!(
        error.contains("changed or became unreadable while it was being read")
            && error.contains("warehouse.db"),
        "{error}"
    );
}

#[tokio::test]
async fn a_file_deleted_or_replaced_mid_read_still_yields_the_whole_snapshot() {
    const ROWS: u64 = 50_000;
    let (_dir, path) = big_database(ROWS);
    let source = build(config(&path));
    let (replacement_dir, replacement) =
        database("CREATE TABLE events (id INTEGER, payload TEXT);");
    let target = path.clone();
    let (rows, error) = meddle_mid_read(&source, move || {
        std::fs::rename(&replacement, &target).unwrap();
    })
    .await;
    drop(replacement_dir);
    assert_eq!(error, None);
    assert_eq!(rows as u64, ROWS);
    // The next read sees the new (empty) file.
    assert!(run(&source, "SELECT id FROM events").await.is_empty());
}

#[tokio::test]
async fn query_timeout_interrupts_slow_queries() {
    let (_dir, path) = database(
        "CREATE VIEW slow AS WITH RECURSIVE c(x) AS
           (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
         SELECT max(x) AS n FROM c;",
    );
    let source = build(with(config(&path), json!({"query_timeout_ms": 200})));
    let started = Instant::now();
    let error = run_error(&source, "SELECT n FROM slow").await;
    assert!(started.elapsed() < Duration::from_secs(3), "{error}");
    assert!(error.contains("query_timeout_ms = 200"), "{error}");
}

#[tokio::test]
async fn rows_stream_in_bounded_batches() {
    let (_dir, path) = big_database(20_000);
    let source = build(config(&path));
    let batches = run(&source, "SELECT id, payload FROM events").await;
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        20_000
    );
    assert!(batches.len() >= 3, "{} batches", batches.len());
    assert!(batches.iter().all(|b| b.num_rows() <= 8_192));
}
