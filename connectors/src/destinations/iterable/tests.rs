//! Iterable tests: config, encoding, answer parsing, round-trips against the emulator.

use std::time::Duration;

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::IterableEmulator;
use serde_json::{Value, json};

use super::actions::{self, Sent};
use super::client;
use super::{IterableDestination, destination_type};
use crate::destinations::http::Answer;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("iterable"),
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

fn destination(url: &str, key: &str) -> IterableDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        requests_per_second: 100.0,
        ..(destination_type().default_limits)()
    };
    IterableDestination::new(&json!({"api_key": key, "endpoint": url}), &limits).unwrap()
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status: reqwest::StatusCode::from_u16(status).unwrap(),
        headers: reqwest::header::HeaderMap::new(),
        body: body.to_string().into_bytes(),
    }
}

fn sent(id: &str, email: Option<&str>) -> Sent {
    Sent {
        user_id: id.into(),
        email: email.map(str::to_string),
        event_name: Some("e".into()),
    }
}

#[test]
fn config_validation_and_drift() {
    let error = |config: Value| match IterableDestination::new(&config, &DeliveryLimits::default())
    {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(error(json!({"api_key": ""})), "api_key");
    assert_eq!(error(json!({"api_key": "a b"})), "api_key");
    assert_eq!(
        error(json!({"api_key": KEY, "endpoint": "nope"})),
        "endpoint"
    );
    assert_eq!(error(json!({"api_key": KEY, "region": "eu"})), "config");
    IterableDestination::new(&json!({"api_key": KEY}), &DeliveryLimits::default()).unwrap();
    retl_engine::config_fields::check_config_fields::<super::config::IterableConfig>(
        destination_type().config,
    )
    .unwrap();
    let debug = format!("{:?}", destination("https://api.iterable.com", KEY));
    assert!(!debug.contains(KEY), "{debug}");
}

#[test]
fn users_events_and_deletes_encode() {
    let p = payload(
        5,
        json!({"email": "a@x.io", "data_fields": {"plan": "pro"}, "seats": 3}),
    );
    let (user, who) = actions::user(spec("upsert_user"), &p).unwrap();
    assert_eq!(
        user,
        json!({"userId": "5", "email": "a@x.io", "preferUserId": true,
               "dataFields": {"plan": "pro", "seats": 3}})
    );
    assert_eq!(who.email.as_deref(), Some("a@x.io"));
    let p = payload(
        5,
        json!({"user_id": "u-5", "event_name": "plan_upgraded", "created_at": "2023-11-14T22:13:20Z", "seats": 3}),
    );
    let (event, _) = actions::event(spec("track_event"), &ctx(), &p).unwrap();
    assert_eq!(event["userId"], "u-5");
    assert_eq!(event["eventName"], "plan_upgraded");
    assert_eq!(event["createdAt"], 1_700_000_000);
    assert_eq!(event["dataFields"], json!({"seats": 3}));
    assert_eq!(event["id"], json!(ctx().idempotency_key(&p)));
    assert_eq!(actions::delete_id(&Payload::delete(json!(9))).unwrap(), "9");
    let p = payload(5, json!({"user_id": null}));
    assert!(actions::user(spec("upsert_user"), &p).is_err());
    let p = payload(5, json!({"data_fields": {"userId": "x"}}));
    assert!(
        actions::user(spec("upsert_user"), &p)
            .unwrap_err()
            .contains("user_id")
    );
}

#[test]
fn failure_lists_map_to_records() {
    let body = json!({"successCount": 1, "failCount": 2, "invalidEmails": ["bad"],
        "invalidUserIds": [], "disallowedEventNames": [],
        "failedUpdates": {"notFoundUserIds": ["2"], "invalidEmails": ["bad"]}});
    let outcomes = client::outcomes_of(
        &answer(200, body),
        &[sent("1", None), sent("2", None), sent("3", Some("BAD"))],
    )
    .unwrap();
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    assert!(
        matches!(&outcomes[1], RecordOutcome::Rejected { reason } if reason.contains("notFoundUserIds"))
    );
    assert!(matches!(&outcomes[2], RecordOutcome::Rejected { .. }));
    // More failures counted than named: the unnamed are not acknowledged.
    let body = json!({"successCount": 1, "failCount": 1});
    let outcomes =
        client::outcomes_of(&answer(200, body), &[sent("1", None), sent("2", None)]).unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, RecordOutcome::Retry { .. }))
    );
    let disallowed = json!({"successCount": 0, "failCount": 1, "disallowedEventNames": ["e"]});
    assert!(matches!(
        client::outcomes_of(&answer(200, disallowed), &[sent("1", None)]).unwrap()[0],
        RecordOutcome::Rejected { .. }
    ));
    match client::outcomes_of(&answer(429, json!({"code": "RateLimitExceeded"})), &[]) {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => assert_eq!(retry_after, Some(Duration::from_secs(1))),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client::outcomes_of(&answer(401, json!({"code": "BadApiKey"})), &[]),
        Err(DestinationError::Authentication { .. })
    ));
    assert!(matches!(
        client::outcomes_of(&answer(400, json!({"code": "BadJsonBody"})), &[]),
        Err(DestinationError::Rejected { .. })
    ));
}

#[tokio::test]
async fn bulk_update_track_and_delete_round_trip() {
    let emu = IterableEmulator::start(KEY).await.unwrap();
    let destination = destination(&emu.url(), KEY);
    emu.reject_keys(["2".to_string()]);
    let upsert = destination.action(spec("upsert_user")).unwrap();
    let mut batch: Vec<Payload> = (1..=3)
        .map(|k| payload(k, json!({"plan": "pro"})))
        .collect();
    batch.push(payload(4, json!({"email": "not-an-email"})));
    let outcome = upsert.send(&ctx(), &batch).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    assert_eq!(outcome.records[2], RecordOutcome::Accepted);
    assert!(matches!(outcome.records[3], RecordOutcome::Rejected { .. }));
    assert_eq!(emu.user("3").unwrap()["plan"], "pro");
    let track = destination.action(spec("track_event")).unwrap();
    let event = payload(3, json!({"event_name": "signed_up", "plan": "pro"}));
    let outcome = track
        .send(&ctx(), std::slice::from_ref(&event))
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    // The same event re-sent replaces itself (its id is the idempotency key).
    track.send(&ctx(), &[event]).await.unwrap();
    assert_eq!(
        emu.objects().iter().filter(|o| o.kind == "events").count(),
        1
    );
    let delete = destination.action(spec("delete_user")).unwrap();
    let gone = [Payload::delete(json!(1)), Payload::delete(json!(77))];
    let outcome = delete.send(&ctx(), &gone).await.unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    assert!(emu.user("1").is_none());
    assert_eq!(emu.deleted(), ["1", "77"]);
    let request = &emu.requests()[0];
    assert_eq!(request.header("api-key"), Some(KEY));
    assert_eq!(request.path, "/api/users/bulkUpdate");
}

#[tokio::test]
async fn test_checks_the_key_without_writing() {
    let emu = IterableEmulator::start(KEY).await.unwrap();
    assert!(
        destination(&emu.url(), KEY)
            .test()
            .await
            .unwrap()
            .contains("accepted")
    );
    match destination(&emu.url(), "wrongkey").test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("Invalid API key"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.objects().is_empty());
}
