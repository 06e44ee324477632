//! Amplitude tests: config, encoding, answer parsing, round-trips against the emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, ExchangeLog,
    Payload, RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::AmplitudeEmulator;
use serde_json::{Value, json};

use super::actions;
use super::client::{self, MAX_REQUEST_BYTES};
use super::{AmplitudeDestination, destination_type};

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn ctx(mode: Option<SyncMode>) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("amp"),
        mapping_id: MappingId::new("events"),
        run_id: RunId::new("run-1"),
        sync_mode: mode,
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

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn destination(config: Value) -> AmplitudeDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    AmplitudeDestination::new(&config, limits).unwrap()
}

#[test]
fn config_validation_names_the_field() {
    let error = |config: Value| match AmplitudeDestination::new(&config, DeliveryLimits::default())
    {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(error(json!({"api_key": ""})), "api_key");
    assert_eq!(error(json!({"api_key": "a b"})), "api_key");
    assert_eq!(
        error(json!({"api_key": KEY, "min_id_length": 0})),
        "min_id_length"
    );
    assert_eq!(
        error(json!({"api_key": KEY, "api_host": "ftp://x"})),
        "api_host"
    );
    retl_engine::config_fields::check_config_fields::<super::config::AmplitudeConfig>(
        destination_type().config,
    )
    .unwrap();
}

#[test]
fn events_carry_insert_id_ms_time_and_the_key_as_user_id() {
    let p = payload(
        7,
        json!({"event_type": "Plan Upgraded", "time": "2023-11-14T22:13:20Z", "plan": "pro",
               "user_properties": {"tier": 2}}),
    );
    let e = actions::event(spec("track_event"), &p, "abc").unwrap();
    assert_eq!(
        e,
        json!({"user_id": "7", "event_type": "Plan Upgraded", "time": 1_700_000_000_000u64,
               "insert_id": "abc", "event_properties": {"plan": "pro"},
               "user_properties": {"tier": 2}})
    );
    let p = payload(7, json!({"event_type": "E", "device_id": "dev-12345"}));
    let e = actions::event(spec("track_event"), &p, "abc").unwrap();
    assert_eq!(e["device_id"], "dev-12345");
    assert!(
        e.get("user_id").is_none(),
        "a mapped device_id replaces the key"
    );
    let p = payload(7, json!({"event_type": "E", "user_id": null}));
    assert!(
        actions::event(spec("track_event"), &p, "x")
            .unwrap_err()
            .contains("user_id")
    );
    let p = payload(7, json!({"time": 1}));
    assert!(
        actions::event(spec("track_event"), &p, "x")
            .unwrap_err()
            .contains("event_type")
    );
}

#[test]
fn identifications_set_or_set_once() {
    let p = payload(3, json!({"plan": "pro", "user_id": "user-3"}));
    let set = actions::identification(spec("identify_user"), &p, false).unwrap();
    assert_eq!(
        set,
        json!({"user_id": "user-3", "user_properties": {"$set": {"plan": "pro"}}})
    );
    let once = actions::identification(spec("identify_user"), &p, true).unwrap();
    assert_eq!(
        once["user_properties"],
        json!({"$setOnce": {"plan": "pro"}})
    );
    assert_eq!(
        String::from_utf8(client::form(&[("a", "x y&z"), ("b", "[1]")])).unwrap(),
        "a=x+y%26z&b=%5B1%5D"
    );
    assert_eq!(
        client::redact("Invalid API key: secret", "secret"),
        "Invalid API key: <redacted>"
    );
    assert!(MAX_REQUEST_BYTES > (destination_type().default_limits)().max_batch_bytes);
}

#[tokio::test]
async fn a_400_rejects_the_named_events_and_resends_the_others() {
    let emu = AmplitudeEmulator::start(KEY).await.unwrap();
    let track = destination(json!({"api_key": KEY, "api_host": emu.url()}))
        .action(spec("track_event"))
        .unwrap();
    let batch = vec![
        payload(1, json!({"event_type": "E", "user_id": "user-1"})),
        payload(2, json!({"event_type": "E", "user_id": "u2"})),
        payload(3, json!({"event_type": "E", "user_id": "user-3"})),
    ];
    let outcome = track.send(&ctx(Some(SyncMode::Add)), &batch).await.unwrap();
    assert!(matches!(&outcome.records[0], RecordOutcome::Retry { .. }));
    match &outcome.records[1] {
        RecordOutcome::Rejected { reason } => {
            assert!(reason.contains("user_id too short"), "{reason}");
            assert!(reason.contains("min_id_length"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&outcome.records[2], RecordOutcome::Retry { .. }));
    assert!(emu.events().is_empty(), "a 400 ingests nothing");
    // The engine re-sends the others: ingested.
    let outcome = track
        .send(
            &ctx(Some(SyncMode::Add)),
            &[batch[0].clone(), batch[2].clone()],
        )
        .await
        .unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    // With min_id_length the short id is fine.
    let short = destination(json!({"api_key": KEY, "api_host": emu.url(), "min_id_length": 1}));
    let outcome = short
        .action(spec("track_event"))
        .unwrap()
        .send(&ctx(None), &batch[1..2])
        .await
        .unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted]);
    assert_eq!(
        emu.requests().last().unwrap().body["options"],
        json!({"min_id_length": 1})
    );
    assert_eq!(emu.events().len(), 3);
}

#[tokio::test]
async fn over_30_events_a_second_for_a_user_is_throttled() {
    let emu = AmplitudeEmulator::start(KEY).await.unwrap();
    let destination = destination(json!({"api_key": KEY, "api_host": emu.url()}));
    let track = destination.action(spec("track_event")).unwrap();
    let batch: Vec<Payload> = (1..=31)
        .map(|k| payload(k, json!({"event_type": "E", "user_id": "same-user"})))
        .collect();
    match track.send(&ctx(None), &batch).await {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            message,
        }) => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(30)));
            assert!(message.contains("same-user"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.events().is_empty());
}

#[tokio::test]
async fn identify_round_trip_and_refused_keys_are_redacted() {
    let emu = AmplitudeEmulator::start(KEY).await.unwrap();
    let good = destination(json!({"api_key": KEY, "api_host": emu.url()}));
    let identify = good.action(spec("identify_user")).unwrap();
    identify
        .send(
            &ctx(Some(SyncMode::Upsert)),
            &[payload(1, json!({"user_id": "user-1", "plan": "free"}))],
        )
        .await
        .unwrap();
    identify
        .send(
            &ctx(Some(SyncMode::Create)),
            &[payload(
                1,
                json!({"user_id": "user-1", "plan": "pro", "seats": 3}),
            )],
        )
        .await
        .unwrap();
    assert_eq!(
        Value::Object(emu.user("user-1").unwrap()),
        json!({"plan": "free", "seats": 3})
    );
    assert!(good.test().await.unwrap().contains("Amplitude"));

    let wrong = "ffffffffffffffffffffffffffffffff";
    let bad = destination(json!({"api_key": wrong, "api_host": emu.url()}));
    for result in [
        bad.test().await.map(|_| ()),
        bad.action(spec("identify_user"))
            .unwrap()
            .send(&ctx(None), &[payload(2, json!({"user_id": "user-2"}))])
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(DestinationError::Authentication { message }) => {
                assert!(message.contains("Invalid API key"), "{message}");
                assert!(!message.contains(wrong), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_traced_delivery_records_no_api_key() {
    let emu = AmplitudeEmulator::start(KEY).await.unwrap();
    let destination = destination(json!({"api_key": KEY, "api_host": emu.url()}));
    for name in ["track_event", "identify_user"] {
        let action = destination.action(spec(name)).unwrap();
        let log = ExchangeLog::new();
        let mut traced = ctx(None);
        traced.trace = Some(log.clone());
        action
            .send(
                &traced,
                &[payload(4, json!({"event_type": "E", "user_id": "user-4"}))],
            )
            .await
            .unwrap();
        let exchanges = log.exchanges();
        assert_eq!(exchanges.len(), 1);
        assert_eq!(exchanges[0].status, Some(200));
        assert!(!format!("{:?}", exchanges[0]).contains(KEY), "{name}");
    }
}
