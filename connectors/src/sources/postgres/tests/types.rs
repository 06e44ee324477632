//! Type mapping: the table of `types.rs` as a unit test, and every type read from a real server.

use super::*;

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

/// Every PostgreSQL type of the table in `types.rs`, with a value of it.
fn type_cases() -> Vec<TypeCase> {
    vec![
        case("id", "int PRIMARY KEY", "1", DataType::Int32, json!(1)),
        case("i2", "int2", "-32768", DataType::Int16, json!(-32768)),
        case(
            "i4",
            "int4",
            "2147483647",
            DataType::Int32,
            json!(2147483647),
        ),
        case(
            "i8",
            "int8",
            "9223372036854775807",
            DataType::Int64,
            json!(9223372036854775807_i64),
        ),
        case(
            "n",
            "numeric(12,2)",
            "1234567890.12",
            DataType::Decimal128(12, 2),
            json!("1234567890.12"),
        ),
        // 28 significant digits: the most the decoder keeps exactly (see types.rs).
        case(
            "nb",
            "numeric",
            "1234567890123456.123456789012",
            DataType::Decimal128(38, 20),
            json!("1234567890123456.12345678901200000000"),
        ),
        case("f4", "float4", "1.5", DataType::Float32, json!(1.5)),
        case("f8", "float8", "2.25", DataType::Float64, json!(2.25)),
        case("b", "bool", "true", DataType::Boolean, json!(true)),
        case("t", "text", "'héllo'", DataType::Utf8, json!("héllo")),
        case("vc", "varchar(20)", "'var'", DataType::Utf8, json!("var")),
        case(
            "u",
            "uuid",
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            DataType::Utf8,
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ),
        case(
            "d",
            "date",
            "'2024-02-29'",
            DataType::Date32,
            json!("2024-02-29"),
        ),
        case(
            "tm",
            "time",
            "'13:14:15.123456'",
            DataType::Time64(TimeUnit::Nanosecond),
            json!("13:14:15.123456"),
        ),
        case(
            "ts",
            "timestamp",
            "'2024-02-29 13:14:15.123456'",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            json!("2024-02-29T13:14:15.123456"),
        ),
        case(
            "tstz",
            "timestamptz",
            "'2024-02-29 13:14:15.123456+02'",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            json!("2024-02-29T11:14:15.123456+00:00"),
        ),
        case(
            "iv",
            "interval",
            "'1 year 2 months 3 days 04:05:06.5'",
            DataType::Interval(IntervalUnit::MonthDayNano),
            None,
        ),
        case(
            "j",
            "json",
            r#"'{"a": [1, 2]}'"#,
            DataType::Utf8,
            json!("{\"a\": [1, 2]}"),
        ),
        case(
            "jb",
            "jsonb",
            r#"'{"b": {"c": null}}'"#,
            DataType::Utf8,
            json!("{\"b\": {\"c\": null}}"),
        ),
        case(
            "ta",
            "text[]",
            r#"'{x,"y z"}'"#,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            json!(["x", "y z"]),
        ),
        case(
            "ia",
            "int4[]",
            "'{1,3}'",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            json!([1, 3]),
        ),
        case(
            "by",
            "bytea",
            r#"'\x00ff10'"#,
            DataType::Binary,
            json!("00ff10"),
        ),
        case(
            "m",
            "mood",
            "'happy'",
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)),
            json!("happy"),
        ),
    ]
}

#[tokio::test]
async fn types_round_trip() {
    let pg = server().await;
    let cases = type_cases();
    pg.psql(&format!(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');\n{}",
        type_table_sql("types", &cases)
    ))
    .await
    .unwrap();
    let source = build(superuser_config(&pg));
    let rows = type_table_round_trip(&source, "types", &cases).await;
    // Intervals are text in PostgreSQL's own style.
    let interval = rows[0]["iv"].as_str().unwrap_or_default().to_string();
    assert!(
        interval.contains("14 mons") && interval.contains("3 days"),
        "{interval}"
    );
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
