//! Braze tests: config, encoding, answer parsing, round-trips against the emulator.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::BrazeEmulator;
use serde_json::{Value, json};

use super::actions::{self, BrazeAction};
use super::client;
use super::{BrazeDestination, destination_type};
use crate::destinations::http::Answer;

const KEY: &str = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc";

fn ctx(mode: Option<SyncMode>) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("braze"),
        mapping_id: MappingId::new("users"),
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
        fingerprint: None,
    }
}

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn destination(url: &str, key: &str) -> BrazeDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    BrazeDestination::new(&json!({"api_key": key, "rest_endpoint": url}), limits).unwrap()
}

fn answer(status: u16, headers: &[(&'static str, &str)], body: Value) -> Answer {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().unwrap());
    }
    Answer {
        status: reqwest::StatusCode::from_u16(status).unwrap(),
        headers: map,
        body: body.to_string().into_bytes(),
    }
}

#[test]
fn config_validation_and_drift() {
    let error = |config: Value| match BrazeDestination::new(&config, DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        error(json!({"api_key": "", "rest_endpoint": "https://x"})),
        "api_key"
    );
    assert_eq!(
        error(json!({"api_key": KEY, "rest_endpoint": "x"})),
        "rest_endpoint"
    );
    assert_eq!(error(json!({"api_key": KEY})), "config");
    retl_engine::config_fields::check_config_fields::<super::config::BrazeConfig>(
        destination_type().config,
    )
    .unwrap();
    let debug = format!("{:?}", destination("https://rest.iad-01.braze.com", KEY));
    assert!(!debug.contains(KEY), "{debug}");
}

#[test]
fn attributes_events_and_deletes_encode() {
    let p = payload(5, json!({"email": "a@x.io", "attributes": {"plan": "pro"}}));
    let a = actions::attributes(spec("update_user_profile"), &p, true).unwrap();
    assert_eq!(
        a,
        json!({"plan": "pro", "email": "a@x.io", "external_id": "5", "_update_existing_only": true})
    );
    let p = payload(
        5,
        json!({"external_id": "u-5", "name": "plan_upgraded",
                               "time": 1_700_000_000, "seats": 3}),
    );
    let e = actions::event(spec("track_event"), &p).unwrap();
    assert_eq!(
        e,
        json!({"external_id": "u-5", "name": "plan_upgraded", "time": "2023-11-14T22:13:20.000Z",
               "properties": {"seats": 3}})
    );
    assert_eq!(actions::delete_id(&Payload::delete(json!(9))).unwrap(), "9");
    let p = payload(5, json!({"external_id": null}));
    assert!(actions::attributes(spec("update_user_profile"), &p, false).is_err());
}

#[test]
fn minor_and_fatal_errors_map_to_records() {
    let now = SystemTime::now();
    let minor = answer(
        201,
        &[],
        json!({"message": "success", "attributes_processed": 2,
               "errors": [{"type": "bad email", "input_array": "attributes", "index": 1}]}),
    );
    let outcomes = client::outcomes_of(&minor, BrazeAction::UpdateUserProfile, 3, now).unwrap();
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    assert_eq!(
        outcomes[1],
        RecordOutcome::Rejected {
            reason: "bad email".into()
        }
    );
    let fatal = answer(
        400,
        &[],
        json!({"message": "Valid data must be provided", "errors": [
            {"type": "bad time", "input_array": "events", "index": 0}]}),
    );
    let outcomes = client::outcomes_of(&fatal, BrazeAction::TrackEvent, 2, now).unwrap();
    assert_eq!(
        outcomes[0],
        RecordOutcome::Rejected {
            reason: "bad time".into()
        }
    );
    assert!(
        matches!(&outcomes[1], RecordOutcome::Rejected { reason } if reason.contains("Valid data"))
    );
    let out_of_range = answer(
        201,
        &[],
        json!({"message": "success", "errors": [{"index": 9}]}),
    );
    assert!(client::outcomes_of(&out_of_range, BrazeAction::TrackEvent, 2, now).is_err());
    assert!(matches!(
        client::outcomes_of(
            &answer(401, &[], json!({"message": "Unknown key"})),
            BrazeAction::DeleteUser,
            1,
            now
        ),
        Err(DestinationError::Authentication { .. })
    ));
}

#[test]
fn a_429_waits_for_the_rate_limit_reset() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let throttled = answer(
        429,
        &[("x-ratelimit-reset", "1700000007")],
        json!({"message": "slow down"}),
    );
    match client::outcomes_of(&throttled, BrazeAction::UpdateUserProfile, 1, now) {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn track_and_delete_round_trip() {
    let emu = BrazeEmulator::start(KEY).await.unwrap();
    let destination = destination(&emu.url(), KEY);
    emu.reject_keys(["2".to_string()]);
    let profile = destination.action(spec("update_user_profile")).unwrap();
    let batch: Vec<Payload> = (1..=3)
        .map(|k| payload(k, json!({"plan": "pro"})))
        .collect();
    let outcome = profile
        .send(&ctx(Some(SyncMode::Upsert)), &batch)
        .await
        .unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    assert_eq!(emu.user("3").unwrap()["plan"], "pro");
    // Update-only leaves unknown users alone.
    let outcome = profile
        .send(
            &ctx(Some(SyncMode::Update)),
            &[payload(8, json!({"plan": "x"}))],
        )
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    assert!(emu.user("8").is_none());
    let delete = destination.action(spec("delete_user")).unwrap();
    let gone = [Payload::delete(json!(1)), Payload::delete(json!(77))];
    let outcome = delete.send(&ctx(None), &gone).await.unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    assert!(emu.user("1").is_none());
    let too_many: Vec<Payload> = (1..=51).map(|k| Payload::delete(json!(k))).collect();
    assert!(matches!(
        delete.send(&ctx(None), &too_many).await,
        Err(DestinationError::PayloadTooLarge { .. })
    ));
    let request = &emu.requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

#[tokio::test]
async fn test_checks_the_key_without_writing() {
    let emu = BrazeEmulator::start(KEY).await.unwrap();
    assert!(
        destination(&emu.url(), KEY)
            .test()
            .await
            .unwrap()
            .contains("accepted")
    );
    match destination(&emu.url(), "wrong-key").test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(
                message.contains("Unknown or missing REST API key"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.objects().is_empty());
}
