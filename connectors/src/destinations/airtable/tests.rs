//! Airtable tests: config, encoding, classification, round-trips against the emulator.

use std::time::Duration;

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::AirtableEmulator;
use serde_json::{Value, json};

use super::actions;
use super::config::AirtableConfig;
use super::{AirtableDestination, destination_type};

const TOKEN: &str = "patTEST.0123456789abcdef";
const BASE: &str = "appA1b2C3d4E5f6G7";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("at"),
        mapping_id: MappingId::new("users"),
        run_id: RunId::new("run-1"),
        sync_mode: None,
        trace: None,
    }
}

fn payload(key: i64, fields: Value) -> Payload {
    Payload {
        key: json!(key),
        change: ChangeKind::Added,
        fields: fields.as_object().cloned().unwrap().into(),
        fingerprint: None,
    }
}

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn config(url: &str, token: &str) -> Value {
    json!({"access_token": token, "base_id": BASE, "table": "Customers", "merge_field": "id", "api_url": url})
}

fn destination(url: &str, token: &str) -> AirtableDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    AirtableDestination::new(&config(url, token), limits).unwrap()
}

#[test]
fn config_validation_and_drift() {
    let field = |config: Value| match AirtableDestination::new(&config, DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let good = config("https://api.airtable.com", TOKEN);
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    assert_eq!(field(with("access_token", json!(""))), "access_token");
    assert_eq!(field(with("base_id", json!("app123"))), "base_id");
    assert_eq!(field(with("table", json!(" "))), "table");
    assert_eq!(field(with("merge_field", json!("{id}"))), "merge_field");
    assert_eq!(field(with("api_url", json!("not a url"))), "api_url");
    assert_eq!(field(with("batch", json!(10))), "config");
    let valid = serde_json::from_value::<AirtableConfig>(with("table", json!("My Table/2")))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(
        valid.table_url.as_str(),
        "https://api.airtable.com/v0/appA1b2C3d4E5f6G7/My%20Table%2F2"
    );
    retl_engine::config_fields::check_config_fields::<AirtableConfig>(destination_type().config)
        .unwrap();
    assert_eq!((destination_type().default_limits)().batch_size, 10);
}

#[test]
fn upsert_body_merges_on_the_key_and_formulas_quote_keys() {
    let batch = [
        payload(1, json!({"email": "a@example.com"})),
        payload(2, json!({"id": 20, "email": "b@example.com"})),
    ];
    assert_eq!(
        actions::upsert_body("id", false, &batch),
        json!({
            "performUpsert": {"fieldsToMergeOn": ["id"]},
            "records": [
                {"fields": {"email": "a@example.com", "id": 1}},
                {"fields": {"id": 20, "email": "b@example.com"}},
            ],
            "typecast": false,
        })
    );
    let keys = [json!(1), json!("a\"b\\c")];
    let refs: Vec<&Value> = keys.iter().collect();
    assert_eq!(
        actions::lookup_formula("Customer ID", &refs),
        r#"OR({Customer ID}=1,{Customer ID}="a\"b\\c")"#
    );
    assert!(actions::matches(&json!("42"), &json!(42)));
    assert!(actions::matches(&json!(42), &json!(42)));
    assert!(!actions::matches(&json!(43), &json!(42)));
}

#[tokio::test]
async fn upserts_deletes_and_lookups_against_the_emulator() {
    let emu = AirtableEmulator::start(TOKEN, BASE, &["Customers"])
        .await
        .unwrap();
    let dest = destination(&emu.url(), TOKEN);
    assert!(dest.test().await.is_ok());
    let upsert = dest.action(spec("upsert_records")).unwrap();
    let batch: Vec<Payload> = (1..=3)
        .map(|i| payload(i, json!({"email": format!("u{i}@example.com")})))
        .collect();
    let outcome = upsert.send(&ctx(), &batch).await.unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 3]);
    // Again with a change: updated in place, not duplicated.
    let changed = [payload(2, json!({"email": "new@example.com"}))];
    upsert.send(&ctx(), &changed).await.unwrap();
    let rows = emu.rows("Customers");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].fields["email"], "new@example.com");
    let patch = &emu.requests()[1];
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.path, format!("/v0/{BASE}/Customers"));

    // Eleven records: too large for one request, handed back to be halved.
    let eleven: Vec<Payload> = (1..=11).map(|i| payload(i, json!({}))).collect();
    assert!(matches!(
        upsert.send(&ctx(), &eleven).await,
        Err(DestinationError::PayloadTooLarge { .. })
    ));

    // One invalid record fails the whole request.
    emu.reject_keys(["1".to_string()]);
    match upsert.send(&ctx(), &batch).await {
        Err(DestinationError::Rejected { message }) => {
            assert!(message.contains("INVALID_VALUE_FOR_COLUMN"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    emu.clear();
    // The emulator allows 5 requests per second per base; 4 were sent.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Deletes: found by the merge field, then deleted; a missing key is already gone.
    let delete = dest.action(spec("delete_records")).unwrap();
    let deletes = [Payload::delete(json!(1)), Payload::delete(json!(9))];
    let outcome = delete.send(&ctx(), &deletes).await.unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    assert_eq!(emu.rows("Customers").len(), 2);
    let methods: Vec<String> = emu.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["GET", "DELETE"]);
    let lookup = &emu.requests()[0];
    assert_eq!(lookup.param("filterByFormula"), Some("OR({id}=1,{id}=9)"));
    // Re-sent: nothing found, nothing deleted, accepted.
    emu.clear();
    let outcome = delete.send(&ctx(), &deletes).await.unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    assert_eq!(emu.requests().len(), 1);
}

#[tokio::test]
async fn refused_tokens_and_throttling_are_classified() {
    let emu = AirtableEmulator::start(TOKEN, BASE, &["Customers"])
        .await
        .unwrap();
    let wrong = destination(&emu.url(), "patWRONG");
    match wrong.test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("Authentication required"), "{message}");
            assert!(!message.contains("patWRONG"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The emulator's own rate limit (5/s, no Retry-After): the documented 30 s wait.
    let dest = destination(&emu.url(), TOKEN);
    let upsert = dest.action(spec("upsert_records")).unwrap();
    let batch = [payload(1, json!({}))];
    let mut throttled = None;
    for _ in 0..8 {
        if let Err(e) = upsert.send(&ctx(), &batch).await {
            throttled = Some(e);
            break;
        }
    }
    match throttled {
        Some(DestinationError::Transient {
            retry_after,
            throttled,
            ..
        }) => {
            assert!(throttled);
            assert_eq!(retry_after, Some(Duration::from_secs(30)));
        }
        other => panic!("{other:?}"),
    }
}
