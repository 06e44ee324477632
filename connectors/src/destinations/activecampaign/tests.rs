//! ActiveCampaign tests: config, encoding, answer parsing, round-trips against the emulator.

use std::time::Duration;

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::ActiveCampaignEmulator;
use serde_json::{Value, json};

use super::actions;
use super::client;
use super::{ActiveCampaignDestination, destination_type};
use crate::destinations::http::Answer;

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123abcd";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("activecampaign"),
        mapping_id: MappingId::new("contacts"),
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

fn destination(url: &str, key: &str) -> ActiveCampaignDestination {
    let limits = DeliveryLimits {
        timeout_ms: 5_000,
        requests_per_second: 100.0,
        ..(destination_type().default_limits)()
    };
    ActiveCampaignDestination::new(&json!({"api_key": key, "api_url": url}), &limits).unwrap()
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
    let error =
        |config: Value| match ActiveCampaignDestination::new(&config, &DeliveryLimits::default()) {
            Err(DestinationError::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
    assert_eq!(
        error(json!({"api_key": "", "api_url": "https://a.api-us1.com"})),
        "api_key"
    );
    assert_eq!(
        error(json!({"api_key": KEY, "api_url": "a.api-us1.com"})),
        "api_url"
    );
    assert_eq!(error(json!({"api_key": KEY})), "config");
    retl_engine::config_fields::check_config_fields::<super::config::ActiveCampaignConfig>(
        destination_type().config,
    )
    .unwrap();
    let debug = format!("{:?}", destination("https://a.api-us1.com", KEY));
    assert!(!debug.contains(KEY), "{debug}");
}

#[test]
fn contacts_and_deletes_encode() {
    let p = payload(
        json!(5),
        json!({"email": "a@x.io", "first_name": "Ada", "phone": "+1555", "12": "pro", "13": 3}),
    );
    assert_eq!(
        actions::sync_body(spec("sync_contact"), &p).unwrap(),
        json!({"contact": {"email": "a@x.io", "firstName": "Ada", "phone": "+1555",
               "fieldValues": [{"field": "12", "value": "pro"}, {"field": "13", "value": "3"}]}})
    );
    let p = payload(json!(5), json!({"email": "a@x.io", "12": {"a": 1}}));
    assert!(actions::sync_body(spec("sync_contact"), &p).is_err());
    assert_eq!(
        actions::delete_email(&Payload::delete(json!("a@x.io"))).unwrap(),
        "a@x.io"
    );
    assert!(actions::delete_email(&Payload::delete(json!(5))).is_err());
}

#[test]
fn answers_map_to_outcomes() {
    assert_eq!(
        client::outcome_of(&answer(201, &[], json!({"contact": {}}))).unwrap(),
        RecordOutcome::Accepted
    );
    let invalid = answer(
        422,
        &[],
        json!({"errors": [{"title": "Email address is not valid.", "code": "email_invalid"}]}),
    );
    assert!(matches!(
        client::outcome_of(&invalid).unwrap(),
        RecordOutcome::Rejected { reason } if reason.contains("not valid")
    ));
    match client::outcome_of(&answer(429, &[("retry-after", "30")], json!({}))) {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => assert_eq!(retry_after, Some(Duration::from_secs(30))),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client::outcome_of(&answer(403, &[], json!({"message": "Forbidden"}))),
        Err(DestinationError::Authentication { .. })
    ));
}

#[tokio::test]
async fn sync_and_delete_round_trip() {
    let emu = ActiveCampaignEmulator::start(KEY).await.unwrap();
    let destination = destination(&emu.url(), KEY);
    emu.reject_emails(["u2@x.io".to_string()]);
    let sync = destination.action(spec("sync_contact")).unwrap();
    let batch: Vec<Payload> = (1..=3)
        .map(|k| payload(json!(k), json!({"email": format!("u{k}@x.io"), "7": "pro"})))
        .collect();
    let outcome = sync.send(&ctx(), &batch).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    assert_eq!(outcome.records[2], RecordOutcome::Accepted);
    assert_eq!(emu.contact("u3@x.io").unwrap()["fieldValues"]["7"], "pro");
    let delete = destination.action(spec("delete_contact")).unwrap();
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
    assert!(emu.contact("u1@x.io").is_none());
    assert_eq!(emu.deleted(), ["u1@x.io"]);
    let request = &emu.requests()[0];
    assert_eq!(request.header("api-token"), Some(KEY));
    assert_eq!(request.path, "/api/3/contact/sync");
}

#[tokio::test]
async fn test_checks_the_key_without_writing() {
    let emu = ActiveCampaignEmulator::start(KEY).await.unwrap();
    assert!(
        destination(&emu.url(), KEY)
            .test()
            .await
            .unwrap()
            .contains("accepted")
    );
    match destination(&emu.url(), "wrongkey").test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("Forbidden"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.synced().is_empty());
}
