//! SendGrid tests: config, encoding, answer parsing, round-trips against the emulator.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::SendgridEmulator;
use serde_json::{Value, json};

use super::actions;
use super::client;
use super::{SendgridDestination, destination_type};
use crate::destinations::http::Answer;

const KEY: &str = "SG.abcdefghijklmnop.0123456789-_abcdefghijklmnopqrstuvwxyz0";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("sendgrid"),
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

fn destination(url: &str, key: &str) -> SendgridDestination {
    let limits = DeliveryLimits {
        timeout_ms: 5_000,
        ..(destination_type().default_limits)()
    };
    SendgridDestination::new(&json!({"api_key": key, "endpoint": url}), &limits).unwrap()
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
    let error = |config: Value| match SendgridDestination::new(&config, &DeliveryLimits::default())
    {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(error(json!({"api_key": "abc"})), "api_key");
    assert_eq!(
        error(json!({"api_key": KEY, "list_id": "not a uuid"})),
        "list_id"
    );
    assert_eq!(error(json!({"api_key": KEY, "endpoint": "x"})), "endpoint");
    assert_eq!(error(json!({"api_key": KEY, "lists": []})), "config");
    retl_engine::config_fields::check_config_fields::<super::config::SendgridConfig>(
        destination_type().config,
    )
    .unwrap();
    let debug = format!("{:?}", destination("https://api.sendgrid.com", KEY));
    assert!(!debug.contains(KEY), "{debug}");
}

#[test]
fn contacts_and_deletes_encode() {
    let p = payload(
        json!(5),
        json!({"email": "A@x.io", "first_name": "Ada", "e1_T": "pro"}),
    );
    assert_eq!(
        actions::contact(spec("upsert_contact"), &p).unwrap(),
        json!({"email": "A@x.io", "first_name": "Ada", "custom_fields": {"e1_T": "pro"}})
    );
    let p = payload(json!(5), json!({"email": null}));
    assert!(actions::contact(spec("upsert_contact"), &p).is_err());
    assert_eq!(
        actions::delete_email(&Payload::delete(json!("A@x.io"))).unwrap(),
        "a@x.io"
    );
    assert!(actions::delete_email(&Payload::delete(json!(5))).is_err());
}

#[test]
fn answers_map_to_records() {
    let now = SystemTime::now();
    let refused = answer(
        400,
        &[],
        json!({"errors": [{"field": "contacts[1].email", "message": "email is invalid"}]}),
    );
    let outcomes = client::upsert_outcomes(&refused, 3, now).unwrap();
    assert!(matches!(outcomes[0], RecordOutcome::Retry { .. }));
    assert!(
        matches!(&outcomes[1], RecordOutcome::Rejected { reason } if reason.contains("invalid"))
    );
    let general = answer(
        400,
        &[],
        json!({"errors": [{"field": "list_ids", "message": "x"}]}),
    );
    assert!(client::upsert_outcomes(&general, 3, now).is_err());
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    match client::upsert_outcomes(
        &answer(429, &[("x-ratelimit-reset", "1700000005")], json!({})),
        1,
        now,
    ) {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => assert_eq!(retry_after, Some(Duration::from_secs(5))),
        other => panic!("{other:?}"),
    }
    let found = answer(
        200,
        &[],
        json!({"result": {"a@x.io": {"contact": {"id": "c1"}}, "b@x.io": {"error": "contact not found"}}}),
    );
    let ids = client::contact_ids(&found, now).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids["a@x.io"], "c1");
    assert!(
        client::contact_ids(&answer(404, &[], json!({})), now)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn upsert_and_delete_round_trip() {
    let emu = SendgridEmulator::start(KEY).await.unwrap();
    let destination = destination(&emu.url(), KEY);
    emu.reject_emails(["u2@x.io".to_string()]);
    let upsert = destination.action(spec("upsert_contact")).unwrap();
    let batch: Vec<Payload> = (1..=3)
        .map(|k| {
            payload(
                json!(k),
                json!({"email": format!("u{k}@x.io"), "e1_T": "pro"}),
            )
        })
        .collect();
    let outcome = upsert.send(&ctx(), &batch).await.unwrap();
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    let outcome = upsert
        .send(&ctx(), &[batch[0].clone(), batch[2].clone()])
        .await
        .unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    assert_eq!(
        emu.contact("u3@x.io").unwrap()["custom_fields"]["e1_T"],
        "pro"
    );
    let delete = destination.action(spec("delete_contact")).unwrap();
    let gone = [
        Payload::delete(json!("U1@x.io")),
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
    // Nothing left to find: the lookup answers 404 and the delete still succeeds.
    let outcome = delete.send(&ctx(), &gone[..1]).await.unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    let request = &emu.requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

#[tokio::test]
async fn test_checks_the_key_without_writing() {
    let emu = SendgridEmulator::start(KEY).await.unwrap();
    assert!(
        destination(&emu.url(), KEY)
            .test()
            .await
            .unwrap()
            .contains("Marketing scopes")
    );
    match destination(&emu.url(), "SG.wrong").test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("authorization grant"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.upserted().is_empty());
}
