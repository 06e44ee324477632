//! Mappings as users write them: templates, SQL expressions, dotted paths into objects, NULL
//! handling, test records, and values that cross the API exactly.

use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, column, customers, expression, literal, template, write_parquet};
use serde_json::{Value, json};

/// The fields the webhook accepted for `key`, last delivery first.
fn fields_of(hook: &WebhookEmulator, key: i64) -> serde_json::Map<String, Value> {
    hook.records()
        .into_iter()
        .rev()
        .find(|r| r.key == json!(key))
        .and_then(|r| r.fields)
        .expect("the record was delivered")
}

async fn webhook(h: &Harness) -> WebhookEmulator {
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    hook
}

#[tokio::test]
async fn templates_expressions_and_nested_fields_reach_the_destination() {
    let h = Harness::start().await;
    let mut rows = customers(3);
    h.warehouse(&rows).await;
    h.model("SELECT id, email, plan, last_login FROM customers")
        .await;
    let hook = webhook(&h).await;
    h.create_mapping_with(
        "up",
        "m",
        "hook",
        "upsert",
        vec![
            column("email", "email"),
            template("label", "{{ email | upper }} ({{ plan }})"),
            expression("score", "id * 100"),
            expression("domain", "split_part(email, '@', 2)"),
            column("traits.plan", "plan"),
            literal("traits.address.city", json!("Oslo")),
            expression("tags", "make_array(plan, 'retl')"),
            template(
                "tier",
                "{% if plan == 'pro' %}gold{% else %}standard{% endif %}",
            ),
        ],
        None,
    )
    .await
    .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        Value::Object(fields_of(&hook, 1)),
        json!({
            "email": "user1@example.com",
            "label": "USER1@EXAMPLE.COM (pro)",
            "score": 100,
            "domain": "example.com",
            "traits": {"plan": "pro", "address": {"city": "Oslo"}},
            "tags": ["pro", "retl"],
            "tier": "gold",
        })
    );
    // A column nothing reads changes: nothing is sent.
    rows[0].last_login = "2030-01-01".to_string();
    write_parquet(&h.path("customers.parquet"), &rows);
    let run = h.sync("up").await;
    let counts = run.counts.unwrap_or_default();
    assert_eq!((counts.added, counts.updated), (0, 0), "{run:?}");
    // A column only a template and a path read changes: that record is an update.
    rows[1].plan = Some("free".to_string());
    write_parquet(&h.path("customers.parquet"), &rows);
    let run = h.sync("up").await;
    let counts = run.counts.unwrap_or_default();
    assert_eq!((counts.added, counts.updated), (0, 1), "{run:?}");
    let second = fields_of(&hook, 2);
    assert_eq!(second["label"], json!("USER2@EXAMPLE.COM (free)"));
    assert_eq!(second["traits"]["plan"], json!("free"));
}

#[tokio::test]
async fn nulls_are_omitted_when_asked() {
    let h = Harness::start().await;
    let mut rows = customers(2);
    rows[0].plan = None;
    h.warehouse(&rows).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let hook = webhook(&h).await;
    let created = h
        .client
        .mappings()
        .create_mapping(v1::CreateMappingRequest {
            mapping_id: "up".into(),
            mapping: Some(v1::Mapping {
                model_id: "m".into(),
                destination_id: "hook".into(),
                action: "upsert".into(),
                fields: vec![column("email", "email"), column("traits.plan", "plan")],
                null_values: v1::NullValues::Omit as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.null_values(), v1::NullValues::Omit);
    h.sync("up").await;
    assert_eq!(
        Value::Object(fields_of(&hook, 1)),
        json!({"email": "user1@example.com"})
    );
    assert_eq!(fields_of(&hook, 2)["traits"], json!({"plan": "enterprise"}));
}

#[tokio::test]
async fn invalid_templates_and_expressions_are_refused_naming_the_field() {
    let h = Harness::start().await;
    h.warehouse(&customers(1)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let _hook = webhook(&h).await;
    let cases = [
        (
            template("name", "{{ emial }}"),
            "fields[0].template",
            "emial",
        ),
        (
            template("name", "{% if %}"),
            "fields[0].template",
            "does not parse",
        ),
        (
            expression("name", "lower(emial)"),
            "fields[0].expression",
            "emial",
        ),
        (
            expression("name", "sum(id)"),
            "fields[0].expression",
            "aggregate",
        ),
        (
            column("name", "emial"),
            "fields[0].column",
            "did you mean 'email'",
        ),
    ];
    for (field, at, needle) in cases {
        let err = h
            .create_mapping_with("bad", "m", "hook", "upsert", vec![field], None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains(at) && err.message().contains(needle),
            "{at} / {needle}: {}",
            err.message()
        );
    }
    assert!(h.mappings().await.is_empty(), "nothing was saved");
}

#[tokio::test]
async fn a_test_record_shows_the_request_and_answer_and_leaves_the_state() {
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let hook = webhook(&h).await;
    h.create_mapping_with(
        "up",
        "m",
        "hook",
        "upsert",
        vec![column("email", "email")],
        None,
    )
    .await
    .unwrap();
    let mut api = h.client.mappings();
    let r = api
        .send_test_record(v1::SendTestRecordRequest {
            mapping_id: "up".into(),
            key: "2".into(),
            mapping: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.accepted, "{r:?}");
    let payload: Value = serde_json::from_str(&r.payload_json).unwrap();
    assert_eq!(payload["key"], json!(2));
    assert_eq!(payload["fields"], json!({"email": "user2@example.com"}));
    assert_eq!(r.exchanges.len(), 1, "{r:?}");
    let exchange = &r.exchanges[0];
    assert_eq!(exchange.request, format!("POST {}", hook.url()));
    assert_eq!(exchange.status, 200);
    let sent: Value = serde_json::from_str(&exchange.request_body_json).unwrap();
    assert_eq!(
        sent["records"][0]["fields"]["email"],
        json!("user2@example.com")
    );
    assert_eq!(hook.accepted_keys(), vec![json!(2)]);
    // The state was not touched: the first sync still sends every row.
    let run = h.sync("up").await;
    assert_eq!(run.counts.unwrap_or_default().added, 3, "{run:?}");

    // A refusal is the answer, not an error.
    hook.reject_keys([json!(1)]);
    let r = api
        .send_test_record(v1::SendTestRecordRequest {
            mapping_id: "up".into(),
            key: "1".into(),
            mapping: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.accepted && r.message.contains("rejected"), "{r:?}");

    // An unsaved mapping, and a key that is not in the model.
    let unsaved = v1::Mapping {
        model_id: "m".into(),
        destination_id: "hook".into(),
        action: "upsert".into(),
        fields: vec![template("who", "{{ email }}")],
        ..Default::default()
    };
    let r = api
        .send_test_record(v1::SendTestRecordRequest {
            mapping_id: String::new(),
            key: "3".into(),
            mapping: Some(unsaved.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.accepted, "{r:?}");
    assert!(r.payload_json.contains("user3@example.com"), "{r:?}");
    let err = api
        .send_test_record(v1::SendTestRecordRequest {
            mapping_id: String::new(),
            key: "999".into(),
            mapping: Some(unsaved),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(err.message().contains("999"), "{err:?}");
}

#[tokio::test]
async fn big_integers_and_long_decimals_cross_the_api_exactly() {
    let h = Harness::start().await;
    h.warehouse(&customers(1)).await;
    h.model(
        "SELECT id, CAST(9007199254740993 AS BIGINT) AS big, \
         CAST('12345678901234567890123456789012345.678' AS DECIMAL(38, 3)) AS dec FROM customers",
    )
    .await;
    let preview = h
        .client
        .models()
        .preview_model(v1::PreviewModelRequest {
            target: Some(v1::preview_model_request::Target::ModelId("m".into())),
            limit: 1,
            refresh: true,
        })
        .await
        .unwrap()
        .into_inner();
    let row: Value = serde_json::from_str(&preview.rows_json[0]).unwrap();
    assert_eq!(row["big"].to_string(), "9007199254740993");
    assert_eq!(row["dec"], json!("12345678901234567890123456789012345.678"));
    let big = &preview.rows[0].fields["big"];
    assert_eq!(
        big.kind,
        Some(prost_types::value::Kind::StringValue(
            "9007199254740993".into()
        ))
    );
    let hook = webhook(&h).await;
    h.create_mapping_with(
        "up",
        "m",
        "hook",
        "upsert",
        vec![column("big", "big"), column("dec", "dec")],
        None,
    )
    .await
    .unwrap();
    let r = h
        .client
        .mappings()
        .send_test_record(v1::SendTestRecordRequest {
            mapping_id: "up".into(),
            key: String::new(),
            mapping: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        r.payload_json.contains("\"big\":9007199254740993"),
        "{}",
        r.payload_json
    );
    assert!(
        r.payload_json
            .contains("12345678901234567890123456789012345.678"),
        "{}",
        r.payload_json
    );
    h.sync("up").await;
    let raw = String::from_utf8(hook.requests().last().unwrap().raw_body.clone()).unwrap();
    assert!(raw.contains("9007199254740993"), "{raw}");
}
