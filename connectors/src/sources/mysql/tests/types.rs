//! Type mapping: the table of `types.rs` as a unit test, and every type read from a real server.

use super::*;

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

/// Every MySQL type of the table in `types.rs`, with a value of it.
fn type_cases() -> Vec<TypeCase> {
    vec![
        case("id", "int PRIMARY KEY", "1", DataType::Int32, json!(1)),
        case("ti", "tinyint", "-128", DataType::Int8, json!(-128)),
        case("tu", "tinyint unsigned", "255", DataType::UInt8, json!(255)),
        case("si", "smallint", "-32768", DataType::Int16, json!(-32768)),
        case(
            "su",
            "smallint unsigned",
            "65535",
            DataType::UInt16,
            json!(65535),
        ),
        case(
            "mi",
            "mediumint",
            "-8388608",
            DataType::Int32,
            json!(-8388608),
        ),
        case(
            "mu",
            "mediumint unsigned",
            "16777215",
            DataType::UInt32,
            json!(16777215),
        ),
        case(
            "i",
            "int",
            "-2147483648",
            DataType::Int32,
            json!(-2147483648_i64),
        ),
        case(
            "iu",
            "int unsigned",
            "4294967295",
            DataType::UInt32,
            json!(4294967295_u64),
        ),
        case(
            "bi",
            "bigint",
            "-9223372036854775808",
            DataType::Int64,
            json!(i64::MIN),
        ),
        case(
            "bu",
            "bigint unsigned",
            "18446744073709551615",
            DataType::UInt64,
            json!(u64::MAX),
        ),
        case(
            "d",
            "decimal(12,2)",
            "1234567890.12",
            DataType::Decimal128(12, 2),
            json!("1234567890.12"),
        ),
        // Decimals keep every digit, also past 38 (Decimal256).
        case(
            "dl",
            "decimal(38,10)",
            "1234567890123456789012345678.1234567890",
            DataType::Decimal128(38, 10),
            json!("1234567890123456789012345678.1234567890"),
        ),
        case(
            "dh",
            "decimal(65,30)",
            "12345678901234567890123456789012345.123456789012345678901234567891",
            DataType::Decimal256(65, 30),
            json!("12345678901234567890123456789012345.123456789012345678901234567891"),
        ),
        case("f", "float", "1.5", DataType::Float32, json!(1.5)),
        case("db", "double", "2.25", DataType::Float64, json!(2.25)),
        case(
            "bt",
            "bit(10)",
            "b'1010000001'",
            DataType::UInt64,
            json!(641),
        ),
        case("bo", "boolean", "true", DataType::Int8, json!(1)),
        case("c", "char(5)", "'ab'", DataType::Utf8, json!("ab")),
        case("vc", "varchar(20)", "'var'", DataType::Utf8, json!("var")),
        case("tt", "tinytext", "'tiny'", DataType::Utf8, json!("tiny")),
        case("t", "text", "'héllo'", DataType::Utf8, json!("héllo")),
        case(
            "mt",
            "mediumtext",
            "'medium'",
            DataType::Utf8,
            json!("medium"),
        ),
        case(
            "lt",
            "longtext",
            "'long'",
            DataType::LargeUtf8,
            json!("long"),
        ),
        case(
            "e",
            "enum('sad','ok','happy')",
            "'happy'",
            DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
            json!("happy"),
        ),
        case(
            "st",
            "set('a','b','c')",
            "'a,c'",
            DataType::Utf8,
            json!("a,c"),
        ),
        case(
            "j",
            "json",
            r#"'{"a": [1, 2]}'"#,
            DataType::LargeUtf8,
            json!("{\"a\": [1, 2]}"),
        ),
        case(
            "dt",
            "date",
            "'2024-02-29'",
            DataType::Date32,
            json!("2024-02-29"),
        ),
        case(
            "tm",
            "time(6)",
            "'13:14:15.123456'",
            DataType::Time64(TimeUnit::Nanosecond),
            json!("13:14:15.123456"),
        ),
        case(
            "dtm",
            "datetime(6)",
            "'2024-02-29 13:14:15.123456'",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            json!("2024-02-29T13:14:15.123456"),
        ),
        case(
            "ts",
            "timestamp(6) NULL DEFAULT NULL",
            "'2024-02-29 13:14:15.123456'",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            json!("2024-02-29T13:14:15.123456+00:00"),
        ),
        case("y", "year", "2024", DataType::Int16, json!(2024)),
        case("bn", "binary(3)", "'ab'", DataType::Binary, json!("616200")),
        case(
            "vb",
            "varbinary(10)",
            "x'00ff10'",
            DataType::Binary,
            json!("00ff10"),
        ),
        case("bl", "blob", "x'0102'", DataType::Binary, json!("0102")),
        case(
            "lb",
            "longblob",
            "x'03'",
            DataType::LargeBinary,
            json!("03"),
        ),
        case(
            "u",
            "uuid",
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            DataType::Utf8,
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ),
    ]
}

#[tokio::test]
async fn types_round_trip() {
    let db = server().await;
    let cases = type_cases();
    db.sql(&type_table_sql("types", &cases)).await.unwrap();
    let source = build(root_config(&db));
    type_table_round_trip(&source, "types", &cases).await;
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
