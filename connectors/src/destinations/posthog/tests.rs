//! PostHog tests: config, encoding, round-trips against the emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, ExchangeLog,
    Payload, RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::{PosthogEmulator, PosthogProject};
use serde_json::{Value, json};

use super::actions::{self, PosthogAction};
use super::client::MAX_BATCH_BYTES;
use super::config::app_host_of;
use super::{PosthogDestination, destination_type};

const KEY: &str = "phc_projectkey123";
const PERSONAL: &str = "phx_personalkey456";

fn project() -> PosthogProject {
    PosthogProject {
        project_api_key: KEY.into(),
        project_id: "4242".into(),
        personal_api_key: PERSONAL.into(),
    }
}

fn ctx(mode: Option<SyncMode>) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("ph"),
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

fn destination(config: Value) -> PosthogDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    PosthogDestination::new(&config, limits).unwrap()
}

fn full_config(url: &str) -> Value {
    json!({"project_api_key": KEY, "host": url, "personal_api_key": PERSONAL,
           "project_id": "4242"})
}

#[test]
fn config_validation_names_the_field() {
    let error = |config: Value| match PosthogDestination::new(&config, DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, message }) => {
            assert!(!message.contains(PERSONAL), "{message}");
            field
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(error(json!({"project_api_key": ""})), "project_api_key");
    assert_eq!(
        error(json!({"project_api_key": PERSONAL})),
        "project_api_key"
    );
    assert_eq!(
        error(json!({"project_api_key": KEY, "personal_api_key": PERSONAL})),
        "project_id"
    );
    assert_eq!(
        error(json!({"project_api_key": KEY, "project_id": "1"})),
        "personal_api_key"
    );
    assert_eq!(
        error(json!({"project_api_key": KEY, "personal_api_key": PERSONAL, "project_id": "x"})),
        "project_id"
    );
    assert_eq!(error(json!({"project_api_key": KEY, "host": "x"})), "host");
    assert_eq!(
        app_host_of("https://eu.i.posthog.com/"),
        "https://eu.posthog.com"
    );
    assert_eq!(
        app_host_of("https://ph.example.com"),
        "https://ph.example.com"
    );
    retl_engine::config_fields::check_config_fields::<super::config::PosthogConfig>(
        destination_type().config,
    )
    .unwrap();
}

#[test]
fn events_carry_a_stable_uuid_and_the_mapped_timestamp() {
    let p = payload(
        7,
        json!({"event": "plan upgraded", "timestamp": 1_700_000_000, "plan": "pro",
               "properties": {"source": "crm"}}),
    );
    let uuid = actions::uuid_of("0123456789abcdef0123456789abcdef");
    assert_eq!(uuid, "01234567-89ab-cdef-0123-456789abcdef");
    let e = actions::capture(
        PosthogAction::CaptureEvent,
        spec("capture_event"),
        &p,
        &uuid,
        false,
    )
    .unwrap();
    assert_eq!(
        e,
        json!({"event": "plan upgraded", "distinct_id": "7", "uuid": uuid,
               "timestamp": "2023-11-14T22:13:20.000Z",
               "properties": {"source": "crm", "plan": "pro"}})
    );
    let p = payload(7, json!({"event": "E", "timestamp": null}));
    assert!(
        actions::capture(
            PosthogAction::CaptureEvent,
            spec("capture_event"),
            &p,
            &uuid,
            false
        )
        .unwrap_err()
        .contains("'timestamp'")
    );
    let p = payload(7, json!({"event": "E", "timestamp": 1, "distinct_id": ""}));
    assert!(
        actions::capture(
            PosthogAction::CaptureEvent,
            spec("capture_event"),
            &p,
            &uuid,
            false
        )
        .unwrap_err()
        .contains("distinct_id")
    );
}

#[test]
fn identify_sets_or_sets_once() {
    let p = payload(3, json!({"email": "a@x.io", "distinct_id": "u-3"}));
    let set = actions::capture(PosthogAction::Identify, spec("identify"), &p, "u", false).unwrap();
    assert_eq!(
        set,
        json!({"event": "$identify", "distinct_id": "u-3", "uuid": "u",
               "properties": {"$set": {"email": "a@x.io"}}})
    );
    let once = actions::capture(PosthogAction::Identify, spec("identify"), &p, "u", true).unwrap();
    assert_eq!(
        once["properties"],
        json!({"$set_once": {"email": "a@x.io"}})
    );
    assert_eq!(actions::delete_id(&Payload::delete(json!(9))).unwrap(), "9");
    assert!(actions::delete_id(&Payload::delete(json!(null))).is_err());
    assert!(MAX_BATCH_BYTES > (destination_type().default_limits)().max_batch_bytes);
}

#[tokio::test]
async fn capture_identify_and_delete_round_trip() {
    let emu = PosthogEmulator::start(project()).await.unwrap();
    let destination = destination(full_config(&emu.url()));
    let capture = destination.action(spec("capture_event")).unwrap();
    let batch: Vec<Payload> = (1..=2)
        .map(|k| {
            payload(
                k,
                json!({"event": "E", "timestamp": "2023-11-14T22:13:20Z"}),
            )
        })
        .collect();
    let outcome = capture
        .send(&ctx(Some(SyncMode::Add)), &batch)
        .await
        .unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    let events = emu.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].uuid.as_deref().map(str::len), Some(36));
    let request = &emu.requests()[0];
    assert_eq!(request.path, "/batch/");
    assert_eq!(request.body["api_key"], KEY);
    assert_eq!(request.body["historical_migration"], false);

    let identify = destination.action(spec("identify")).unwrap();
    identify
        .send(
            &ctx(Some(SyncMode::Upsert)),
            &[payload(1, json!({"plan": "free"}))],
        )
        .await
        .unwrap();
    identify
        .send(
            &ctx(Some(SyncMode::Create)),
            &[payload(1, json!({"plan": "pro", "seats": 3}))],
        )
        .await
        .unwrap();
    assert_eq!(
        Value::Object(emu.person("1").unwrap()),
        json!({"plan": "free", "seats": 3}),
        "$set_once keeps what the person has"
    );

    let delete = destination.action(spec("delete_person")).unwrap();
    let gone = vec![Payload::delete(json!(1)), Payload::delete(json!(99))];
    let outcome = delete.send(&ctx(None), &gone).await.unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    assert!(emu.person("1").is_none());
    assert_eq!(emu.deleted(), ["1", "99"]);
}

#[tokio::test]
async fn a_bad_event_rejects_only_its_record_and_invalid_batches_are_refused() {
    let emu = PosthogEmulator::start(project()).await.unwrap();
    let destination = destination(full_config(&emu.url()));
    let capture = destination.action(spec("capture_event")).unwrap();
    let batch = vec![
        payload(1, json!({"event": "E", "timestamp": 1_700_000_000})),
        payload(2, json!({"event": null, "timestamp": 1_700_000_000})),
    ];
    let outcome = capture.send(&ctx(None), &batch).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    emu.reject_keys(["1".to_string()]);
    match capture.send(&ctx(None), &batch[..1]).await {
        Err(DestinationError::Rejected { message }) => {
            assert!(message.contains("400"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    emu.clear();
    emu.throttle_next(1, 3);
    match capture.send(&ctx(None), &batch[..1]).await {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => assert_eq!(retry_after, Some(std::time::Duration::from_secs(3))),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn test_checks_both_keys_and_delete_needs_the_personal_key() {
    let emu = PosthogEmulator::start(project()).await.unwrap();
    let good = destination(full_config(&emu.url()));
    assert!(good.test().await.unwrap().contains("personal API key"));
    let bad = destination(json!({"project_api_key": "phc_wrong", "host": emu.url()}));
    match bad.test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("Project API key invalid"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let mut config = full_config(&emu.url());
    config["personal_api_key"] = json!("phx_wrong");
    match destination(config).test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(!message.contains("phx_wrong"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let capture_only = destination(json!({"project_api_key": KEY, "host": emu.url()}));
    match capture_only.action(spec("delete_person")) {
        Err(DestinationError::InvalidConfig { field, .. }) => {
            assert_eq!(field, "personal_api_key")
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("delete_person without a personal API key"),
    }
    assert!(emu.events().is_empty());
}

#[tokio::test]
async fn a_traced_capture_records_no_api_key() {
    let emu = PosthogEmulator::start(project()).await.unwrap();
    let destination = destination(full_config(&emu.url()));
    let identify = destination.action(spec("identify")).unwrap();
    let log = ExchangeLog::new();
    let mut traced = ctx(Some(SyncMode::Upsert));
    traced.trace = Some(log.clone());
    identify
        .send(&traced, &[payload(4, json!({"plan": "pro"}))])
        .await
        .unwrap();
    let exchanges = log.exchanges();
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0].request_body["api_key"], "<redacted>");
    assert_eq!(exchanges[0].status, Some(200));
    assert!(!format!("{:?}", exchanges[0]).contains(KEY));
    assert_eq!(emu.requests()[0].body["api_key"], KEY);
}
