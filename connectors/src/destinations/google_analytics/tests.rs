//! Google Analytics 4 tests: config, encoding and limits, round-trips against the emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, ExchangeLog,
    Payload, RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::GoogleAnalyticsEmulator;
use serde_json::{Value, json};

use super::actions;
use super::client::validation_messages;
use super::{GoogleAnalyticsDestination, destination_type};

const MEASUREMENT_ID: &str = "G-TEST123";
const SECRET: &str = "s3cr3t-api-secret";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("ga"),
        mapping_id: MappingId::new("events"),
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
        fingerprint: Some(u128::from(key.unsigned_abs())),
    }
}

fn spec() -> &'static ActionSpec {
    destination_type().action("send_event").unwrap()
}

fn destination(url: &str) -> GoogleAnalyticsDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    GoogleAnalyticsDestination::new(
        &json!({"measurement_id": MEASUREMENT_ID, "api_secret": SECRET, "endpoint": url}),
        limits,
    )
    .unwrap()
}

#[test]
fn config_validation_names_the_field() {
    let error =
        |config: Value| match GoogleAnalyticsDestination::new(&config, DeliveryLimits::default()) {
            Err(DestinationError::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
    assert_eq!(
        error(json!({"measurement_id": "UA-1", "api_secret": SECRET})),
        "measurement_id"
    );
    assert_eq!(
        error(json!({"measurement_id": "1234567", "api_secret": SECRET})),
        "measurement_id"
    );
    assert_eq!(
        error(json!({"measurement_id": MEASUREMENT_ID, "api_secret": ""})),
        "api_secret"
    );
    assert_eq!(
        error(json!({"measurement_id": MEASUREMENT_ID, "api_secret": SECRET, "endpoint": "x"})),
        "endpoint"
    );
    retl_engine::config_fields::check_config_fields::<super::config::GoogleAnalyticsConfig>(
        destination_type().config,
    )
    .unwrap();
}

#[test]
fn events_are_encoded_and_checked_against_the_documented_limits() {
    let p = payload(
        7,
        json!({"name": "generate_lead", "plan": "pro", "params": {"value": 3},
               "user_properties": {"tier": "gold"}, "user_id": "u-7"}),
    );
    let e = actions::encode(spec(), &p).unwrap();
    assert_eq!(
        Value::Object(e.request),
        json!({"client_id": "7", "user_id": "u-7", "user_properties": {"tier": {"value": "gold"}}})
    );
    assert_eq!(
        e.event,
        json!({"name": "generate_lead", "params": {"value": 3, "plan": "pro"}})
    );
    let reject = |fields: Value| actions::encode(spec(), &payload(1, fields)).unwrap_err();
    assert!(reject(json!({"name": "session_start"})).contains("reserved"));
    assert!(reject(json!({"name": "9lives"})).contains("invalid"));
    assert!(reject(json!({"name": "x".repeat(41)})).contains("40"));
    assert!(reject(json!({"name": "e", "ga_x": 1})).contains("reserved prefix"));
    assert!(reject(json!({"name": "e", "long": "v".repeat(101)})).contains("100"));
    assert!(reject(json!({"name": "e", "nested": {"a": 1}})).contains("string, a number"));
    assert!(reject(json!({"name": "e", "timestamp": 1_000_000_000})).contains("72 hours"));
    assert!(reject(json!({"name": "e", "user_properties": {"p": "v".repeat(37)}})).contains("36"));
    let many: serde_json::Map<String, Value> =
        (0..26).map(|i| (format!("p{i}"), json!(i))).collect();
    assert!(reject(json!({"name": "e", "params": many})).contains("25"));
    let now = chrono::Utc::now().timestamp();
    let e = actions::encode(spec(), &payload(1, json!({"name": "e", "timestamp": now}))).unwrap();
    assert_eq!(e.request["timestamp_micros"], json!(now * 1_000_000));
}

#[test]
fn validation_server_answers_are_read() {
    assert!(
        validation_messages(r#"{"validationMessages": []}"#)
            .unwrap()
            .is_empty()
    );
    let messages = validation_messages(
        r#"{"validationMessages": [{"fieldPath": "events", "description": "bad", "validationCode": "VALUE_INVALID"}]}"#,
    )
    .unwrap();
    assert_eq!(messages, ["VALUE_INVALID at events: bad"]);
    assert!(validation_messages("<html>").is_err());
}

#[tokio::test]
async fn one_clients_events_share_a_request_and_mixed_clients_are_split() {
    let emu = GoogleAnalyticsEmulator::start(MEASUREMENT_ID, SECRET)
        .await
        .unwrap();
    let action = destination(&emu.url()).action(spec()).unwrap();
    let same: Vec<Payload> = (1..=3)
        .map(|k| payload(k, json!({"client_id": "555.1", "name": "purchase", "n": k})))
        .collect();
    let outcome = action.send(&ctx(), &same).await.unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 3]);
    assert_eq!(emu.requests().len(), 1);
    assert_eq!(emu.events().len(), 3);
    let request = &emu.requests()[0];
    assert_eq!(
        request.query.get("measurement_id").map(String::as_str),
        Some(MEASUREMENT_ID)
    );
    assert!(emu.dropped().is_empty(), "{:?}", emu.dropped());

    let mixed = vec![
        payload(1, json!({"name": "purchase"})),
        payload(2, json!({"name": "purchase"})),
    ];
    assert!(matches!(
        action.send(&ctx(), &mixed).await,
        Err(DestinationError::PayloadTooLarge { .. })
    ));
    assert_eq!(emu.requests().len(), 1, "nothing sent for a mixed batch");
    // A rejected record does not take a request; an all-rejected batch sends nothing.
    let outcome = action
        .send(&ctx(), &[payload(3, json!({"name": "first_visit"}))])
        .await
        .unwrap();
    assert!(matches!(outcome.records[0], RecordOutcome::Rejected { .. }));
    assert_eq!(emu.requests().len(), 1);
}

#[tokio::test]
async fn test_uses_the_validation_server_and_the_secret_is_never_recorded() {
    let emu = GoogleAnalyticsEmulator::start(MEASUREMENT_ID, SECRET)
        .await
        .unwrap();
    let destination = destination(&emu.url());
    assert!(
        destination
            .test()
            .await
            .unwrap()
            .contains("validation server")
    );
    assert_eq!(emu.requests()[0].path, "/debug/mp/collect");
    assert!(emu.events().is_empty());

    let action = destination.action(spec()).unwrap();
    let log = ExchangeLog::new();
    let mut traced = ctx();
    traced.trace = Some(log.clone());
    action
        .send(&traced, &[payload(4, json!({"name": "sign_up"}))])
        .await
        .unwrap();
    let exchanges = log.exchanges();
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0].status, Some(204));
    assert!(!format!("{:?}", exchanges[0]).contains(SECRET));
    emu.fail_next(1, 500, None);
    match action
        .send(&ctx(), &[payload(5, json!({"name": "sign_up"}))])
        .await
    {
        Err(DestinationError::Transient { message, .. }) => assert!(!message.contains(SECRET)),
        other => panic!("{other:?}"),
    }
}
