//! Type mapping: the declared-type table of `types.rs` as a unit test, value parsing, and every type read from real files.

use super::*;

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

/// Every declared type of the table in `types.rs`, with a value of it.
fn type_cases() -> Vec<TypeCase> {
    vec![
        case("id", "INTEGER PRIMARY KEY", "1", DataType::Int64, json!(1)),
        case(
            "i",
            "INT",
            "-2147483648",
            DataType::Int64,
            json!(-2147483648_i64),
        ),
        case(
            "bi",
            "BIGINT",
            "9223372036854775807",
            DataType::Int64,
            json!(9223372036854775807_i64),
        ),
        case("r", "REAL", "1.5", DataType::Float64, json!(1.5)),
        case("db", "DOUBLE", "2.25", DataType::Float64, json!(2.25)),
        case("fl", "FLOAT", "-0.125", DataType::Float64, json!(-0.125)),
        case("t", "TEXT", "'héllo'", DataType::Utf8, json!("héllo")),
        case("vc", "VARCHAR(20)", "'var'", DataType::Utf8, json!("var")),
        case("ch", "CHAR(3)", "'abc'", DataType::Utf8, json!("abc")),
        case("bl", "BLOB", "x'00ff10'", DataType::Binary, json!("00ff10")),
        case("n", "NUMERIC", "12.5", DataType::Float64, json!(12.5)),
        case(
            "d",
            "DECIMAL(12,2)",
            "'1234567890.12'",
            DataType::Decimal128(12, 2),
            json!("1234567890.12"),
        ),
        case("b", "BOOLEAN", "1", DataType::Boolean, json!(true)),
        case(
            "dt",
            "DATE",
            "'2024-02-29'",
            DataType::Date32,
            json!("2024-02-29"),
        ),
        case(
            "dtm",
            "DATETIME",
            "'2024-02-29 13:14:15.123456'",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            json!("2024-02-29T13:14:15.123456"),
        ),
        case(
            "ts",
            "TIMESTAMP",
            "'2024-02-29T13:14:15Z'",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            json!("2024-02-29T13:14:15"),
        ),
        case(
            "tm",
            "TIME",
            "'13:14:15.5'",
            DataType::Time64(TimeUnit::Microsecond),
            json!("13:14:15.500"),
        ),
        case(
            "j",
            "JSON",
            r#"'{"a": [1, 2]}'"#,
            DataType::Utf8,
            json!("{\"a\": [1, 2]}"),
        ),
        case(
            "u",
            "UUID",
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            DataType::Utf8,
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ),
        // No declared type: read as text.
        case("untyped", "", "42", DataType::Utf8, json!("42")),
    ]
}

/// A view over the type table (see `types_round_trip`).
const TYPE_VIEW: &str = "
CREATE VIEW type_view AS
  SELECT id, d, t || '!' AS shout, r * 2 AS doubled, CAST(i AS INTEGER) AS cast_i,
         CAST(i AS REAL) AS cast_r FROM types;
";

#[tokio::test]
async fn types_round_trip() {
    let cases = type_cases();
    let (_dir, path) = database(&format!("{}{TYPE_VIEW}", type_table_sql("types", &cases)));
    let source = build(config(&path));
    type_table_round_trip(&source, "types", &cases).await;
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
