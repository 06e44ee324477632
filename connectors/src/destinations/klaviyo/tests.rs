//! Klaviyo tests: config, encoding, answer parsing, round-trips against the emulator.

use std::time::Duration;

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::KlaviyoEmulator;
use serde_json::{Value, json};

use super::actions;
use super::client;
use super::{KlaviyoDestination, destination_type};
use crate::destinations::http::Answer;

const KEY: &str = "pk_0123456789abcdef0123456789abcdef01";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("klaviyo"),
        mapping_id: MappingId::new("profiles"),
        run_id: RunId::new("run-1"),
        sync_mode: None,
        trace: None,
    }
}

fn payload(key: Value, fields: Value) -> Payload {
    Payload {
        key,
        change: ChangeKind::Added,
        fields: fields.as_object().cloned().unwrap().into(),
        fingerprint: None,
    }
}

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn destination(url: &str, key: &str) -> KlaviyoDestination {
    // Deletions are paced at 1/s: 10 s fit the 3 of the round trip (half the timeout).
    let limits = DeliveryLimits {
        timeout_ms: 10_000,
        ..(destination_type().default_limits)()
    };
    KlaviyoDestination::new(&json!({"api_key": key, "endpoint": url}), &limits).unwrap()
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
    let error = |config: Value| match KlaviyoDestination::new(&config, &DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(error(json!({"api_key": "AbC123"})), "api_key");
    assert_eq!(error(json!({"api_key": "pk_"})), "api_key");
    assert_eq!(error(json!({"api_key": KEY, "list_id": "a b"})), "list_id");
    assert_eq!(
        error(json!({"api_key": KEY, "endpoint": "ftp://x"})),
        "endpoint"
    );
    assert_eq!(error(json!({"api_key": KEY, "lists": []})), "config");
    retl_engine::config_fields::check_config_fields::<super::config::KlaviyoConfig>(
        destination_type().config,
    )
    .unwrap();
    let debug = format!("{:?}", destination("https://a.klaviyo.com", KEY));
    assert!(!debug.contains(KEY), "{debug}");
}

#[test]
fn profiles_events_and_deletions_encode() {
    let p = payload(
        json!(5),
        json!({"email": "a@x.io", "first_name": "Ada", "plan": "pro"}),
    );
    assert_eq!(
        actions::profile(spec("upsert_profile"), &p).unwrap(),
        json!({"type": "profile", "attributes": {"external_id": "5", "email": "a@x.io",
               "first_name": "Ada", "properties": {"plan": "pro"}}})
    );
    let p = payload(
        json!(5),
        json!({"metric": "Plan Upgraded", "time": 1_700_000_000, "value": 9.5, "seats": 3}),
    );
    let event = actions::event(spec("track_event"), &ctx(), &p).unwrap();
    let attributes = &event["data"]["attributes"];
    assert_eq!(
        attributes["metric"]["data"]["attributes"]["name"],
        "Plan Upgraded"
    );
    assert_eq!(attributes["time"], "2023-11-14T22:13:20.000Z");
    assert_eq!(attributes["value"], 9.5);
    assert_eq!(attributes["properties"], json!({"seats": 3}));
    assert_eq!(attributes["unique_id"], json!(ctx().idempotency_key(&p)));
    assert_eq!(
        attributes["profile"]["data"]["attributes"],
        json!({"external_id": "5"})
    );
    let p = payload(json!(5), json!({"metric": "M", "value": "lots"}));
    assert!(actions::event(spec("track_event"), &ctx(), &p).is_err());
    let deletion = actions::deletion(&Payload::delete(json!("a@x.io"))).unwrap();
    assert_eq!(
        deletion["data"]["attributes"]["profile"]["data"]["attributes"],
        json!({"email": "a@x.io"})
    );
    assert!(
        actions::deletion(&Payload::delete(json!(7)))
            .unwrap_err()
            .contains("not an email")
    );
}

#[test]
fn import_errors_point_at_profiles() {
    let refused = answer(
        400,
        &[],
        json!({"errors": [{"status": 400, "code": "invalid", "detail": "Invalid email address: x",
            "source": {"pointer": "/data/attributes/profiles/data/1/attributes/email"}}]}),
    );
    let outcomes = client::import_outcomes(&refused, 3).unwrap();
    assert!(matches!(outcomes[0], RecordOutcome::Retry { .. }));
    assert!(
        matches!(&outcomes[1], RecordOutcome::Rejected { reason } if reason.contains("Invalid email"))
    );
    let out_of_range = answer(
        400,
        &[],
        json!({"errors": [{"source": {"pointer": "/data/attributes/profiles/data/9"}}]}),
    );
    assert!(client::import_outcomes(&out_of_range, 3).is_err());
    let general = answer(
        400,
        &[],
        json!({"errors": [{"detail": "bad", "source": {"pointer": "/data/"}}]}),
    );
    assert!(matches!(
        client::import_outcomes(&general, 3),
        Err(DestinationError::Rejected { .. })
    ));
    match client::import_outcomes(&answer(429, &[("retry-after", "7")], json!({})), 1) {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => assert_eq!(retry_after, Some(Duration::from_secs(7))),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        client::import_outcomes(&answer(202, &[], json!({"data": {}})), 2).unwrap(),
        vec![RecordOutcome::Accepted; 2]
    );
}

#[tokio::test]
async fn import_events_and_deletions_round_trip() {
    let emu = KlaviyoEmulator::start(KEY).await.unwrap();
    let destination = destination(&emu.url(), KEY);
    emu.reject_keys(["2".to_string()]);
    let upsert = destination.action(spec("upsert_profile")).unwrap();
    let batch: Vec<Payload> = (1..=3)
        .map(|k| {
            payload(
                json!(k),
                json!({"email": format!("u{k}@x.io"), "plan": "pro"}),
            )
        })
        .collect();
    let outcome = upsert.send(&ctx(), &batch).await.unwrap();
    assert!(matches!(outcome.records[0], RecordOutcome::Retry { .. }));
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    let outcome = upsert
        .send(&ctx(), &[batch[0].clone(), batch[2].clone()])
        .await
        .unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    assert_eq!(emu.profile("3").unwrap()["properties"]["plan"], "pro");
    let track = destination.action(spec("track_event")).unwrap();
    let event = payload(json!(3), json!({"metric": "Signed Up"}));
    for _ in 0..2 {
        let outcome = track
            .send(&ctx(), std::slice::from_ref(&event))
            .await
            .unwrap();
        assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    }
    assert_eq!(
        emu.objects().iter().filter(|o| o.kind == "event").count(),
        1
    );
    let delete = destination.action(spec("delete_profile")).unwrap();
    let gone = [
        Payload::delete(json!("u1@x.io")),
        Payload::delete(json!("nobody@x.io")),
        Payload::delete(json!(4)),
    ];
    let outcome = delete.send(&ctx(), &gone).await.unwrap();
    assert_eq!(
        outcome.records[..2],
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    assert!(matches!(outcome.records[2], RecordOutcome::Rejected { .. }));
    assert!(emu.profile("1").is_none());
    assert_eq!(emu.deleted(), ["u1@x.io", "nobody@x.io"]);
    let request = &emu.requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some(format!("Klaviyo-API-Key {KEY}").as_str())
    );
    assert_eq!(request.header("revision"), Some(client::REVISION));
}

#[tokio::test]
async fn test_checks_the_key_without_writing() {
    let emu = KlaviyoEmulator::start(KEY).await.unwrap();
    assert!(
        destination(&emu.url(), KEY)
            .test()
            .await
            .unwrap()
            .contains("accepted")
    );
    match destination(&emu.url(), "pk_wrong").test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(
                message.contains("Missing or invalid private key"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.objects().is_empty());
}
