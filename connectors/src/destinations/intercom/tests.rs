//! Intercom tests: config, encoding, answer parsing, round-trips against the emulator.

use std::time::{Duration, UNIX_EPOCH};

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::IntercomEmulator;
use serde_json::{Value, json};

use super::actions;
use super::client;
use super::config::{CONFIG_FIELDS, IntercomConfig};
use super::{IntercomDestination, destination_type};
use crate::destinations::http::Answer;

const TOKEN: &str = "dG9rOmFiY2RlZjEyMzQ1Njc4OTA=";

fn ctx(mode: Option<SyncMode>) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("intercom"),
        mapping_id: MappingId::new("users"),
        run_id: RunId::new("run-1"),
        sync_mode: mode,
        trace: None,
    }
}

fn payload(key: i64, change: ChangeKind, fields: Value) -> Payload {
    Payload {
        key: json!(key),
        change,
        fields: fields.as_object().cloned().unwrap().into(),
        fingerprint: None,
    }
}

fn added(key: i64, fields: Value) -> Payload {
    payload(key, ChangeKind::Added, fields)
}

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn destination(url: &str, token: &str) -> IntercomDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    IntercomDestination::new(&json!({"access_token": token, "base_url": url}), limits).unwrap()
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
    retl_engine::config_fields::check_config_fields::<IntercomConfig>(CONFIG_FIELDS).unwrap();
    assert!(
        CONFIG_FIELDS
            .iter()
            .any(|f| f.name == "access_token" && f.secret)
    );
    let error = |config: Value| match IntercomDestination::new(&config, DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(error(json!({"access_token": "  "})), "access_token");
    assert_eq!(
        error(json!({"access_token": "t", "base_url": "ftp://x"})),
        "base_url"
    );
    assert_eq!(
        error(json!({"access_token": "t", "base_url": "https://x?a=1"})),
        "base_url"
    );
    assert_eq!(error(json!({"token": "t"})), "config");
    let debug = format!("{:?}", destination("https://api.intercom.io", TOKEN));
    assert!(!debug.contains(TOKEN), "{debug}");
}

#[test]
fn a_record_encodes_as_a_contact() {
    let p = added(
        7,
        json!({"email": "a@x.io", "name": "Ann", "owner_id": "12", "signed_up_at": "2026-01-02T03:04:05Z",
               "unsubscribed_from_emails": false, "phone": null, "plan": "pro",
               "custom_attributes": {"seats": 3}}),
    );
    let contact = actions::contact(spec("upsert_contact"), &p).unwrap();
    assert_eq!(contact.external_id, "7");
    assert_eq!(
        contact.create_body(),
        json!({"role": "user", "external_id": "7", "email": "a@x.io", "name": "Ann",
               "owner_id": 12, "signed_up_at": 1_767_323_045, "unsubscribed_from_emails": false,
               "phone": null, "custom_attributes": {"seats": 3, "plan": "pro"}})
    );
    assert!(contact.update_body().get("role").is_none());
    let mapped = added(7, json!({"external_id": "u-7"}));
    assert_eq!(
        actions::contact(spec("upsert_contact"), &mapped)
            .unwrap()
            .external_id,
        "u-7"
    );
    for bad in [
        json!({"external_id": null}),
        json!({"owner_id": "x"}),
        json!({"unsubscribed_from_emails": "yes"}),
        json!({"signed_up_at": "yesterday"}),
        json!({"address": {"city": "Oslo"}}),
        json!({"custom_attributes": [1]}),
    ] {
        assert!(
            actions::contact(spec("upsert_contact"), &added(1, bad.clone())).is_err(),
            "{bad}"
        );
    }
    assert_eq!(
        actions::archive_id(&Payload::delete(json!(9))).unwrap(),
        "9"
    );
    assert!(actions::archive_id(&Payload::delete(json!(null))).is_err());
}

#[test]
fn answers_are_classified() {
    let list = |code: &str, message: &str| json!({"type": "error.list", "request_id": "r", "errors": [{"code": code, "message": message}]});
    assert_eq!(
        client::record_outcome(&answer(200, &[], json!({"id": "1"}))).unwrap(),
        RecordOutcome::Accepted
    );
    match client::record_outcome(&answer(
        400,
        &[],
        list("parameter_invalid", "Custom attribute 'x' does not exist"),
    )) {
        Ok(RecordOutcome::Rejected { reason }) => assert!(
            reason.contains("parameter_invalid: Custom attribute 'x' does not exist"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client::record_outcome(&answer(
            401,
            &[],
            list("unauthorized", "Access Token Invalid")
        )),
        Err(DestinationError::Authentication { message }) if message.contains("Access Token Invalid")
    ));
    assert!(matches!(
        client::record_outcome(&answer(503, &[], json!({}))),
        Err(DestinationError::Transient {
            throttled: false,
            ..
        })
    ));
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    match client::error(
        &answer(
            429,
            &[
                ("x-ratelimit-limit", "1666"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1700000004"),
            ],
            list("rate_limit_exceeded", "Rate Limit Exceeded"),
        ),
        now,
    ) {
        DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        } => assert_eq!(retry_after, Some(Duration::from_secs(4))),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        client::contact_id(br#"{"type": "contact", "id": "abc"}"#).as_deref(),
        Some("abc")
    );
    assert_eq!(
        client::contact_id(br#"{"type": "list", "data": [{"id": "d"}]}"#).as_deref(),
        Some("d")
    );
    assert_eq!(client::contact_id(br#"{"type": "list", "data": []}"#), None);
}

#[tokio::test]
async fn upserts_and_archives_round_trip() {
    let emu = IntercomEmulator::start(TOKEN).await.unwrap();
    let dest = destination(&emu.base_url(), TOKEN);
    let upsert = dest.action(spec("upsert_contact")).unwrap();
    // added: one create
    let outcome = upsert
        .send(
            &ctx(None),
            &[added(1, json!({"email": "a@x.io", "plan": "pro"}))],
        )
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    let contact = emu.contact("1").unwrap();
    assert_eq!(contact.custom_attributes["plan"], "pro");
    assert_eq!(contact.role, "user");
    let requests = emu.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/contacts")
    );
    assert_eq!(requests[0].header("intercom-version"), Some("2.13"));
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // added again (e.g. a lost answer): 409, look-up, update
    let outcome = upsert
        .send(&ctx(None), &[added(1, json!({"plan": "team"}))])
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    let paths: Vec<(u16, String)> = emu
        .requests()
        .into_iter()
        .skip(1)
        .map(|r| (r.status, format!("{} {}", r.method, r.path)))
        .collect();
    assert_eq!(
        paths,
        [
            (409, "POST /contacts".to_string()),
            (200, "GET /contacts/find_by_external_id/1".to_string()),
            (200, format!("PUT /contacts/{}", contact.id)),
        ]
    );
    assert_eq!(emu.contact("1").unwrap().custom_attributes["plan"], "team");
    // updated record of a contact Intercom does not hold: look-up, create
    let updated = payload(2, ChangeKind::Updated, json!({"email": "b@x.io"}));
    let outcome = upsert.send(&ctx(None), &[updated]).await.unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    assert!(emu.contact("2").is_some());
    // update mode: a missing contact is rejected, nothing created
    let outcome = upsert
        .send(&ctx(Some(SyncMode::Update)), &[added(3, json!({}))])
        .await
        .unwrap();
    assert!(
        matches!(&outcome.records[0], RecordOutcome::Rejected { reason } if reason.contains("no user contact")),
        "{outcome:?}"
    );
    assert!(emu.contact("3").is_none());
    // a record Intercom refuses: rejected with its error
    emu.reject_keys(["4".to_string()]);
    let outcome = upsert
        .send(&ctx(None), &[added(4, json!({}))])
        .await
        .unwrap();
    assert!(
        matches!(&outcome.records[0], RecordOutcome::Rejected { reason } if reason.contains("parameter_invalid")),
        "{outcome:?}"
    );
    // more than one record: handed back to be split
    assert!(matches!(
        upsert
            .send(&ctx(None), &[added(5, json!({})), added(6, json!({}))])
            .await,
        Err(DestinationError::PayloadTooLarge { .. })
    ));
    // archive: found → archived; missing → accepted after the look-up only
    let archive = dest.action(spec("archive_contact")).unwrap();
    let outcome = archive
        .send(&ctx(None), &[Payload::delete(json!(1))])
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    assert!(emu.contact("1").unwrap().archived);
    let before = emu.requests().len();
    let outcome = archive
        .send(&ctx(None), &[Payload::delete(json!(1))])
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    assert_eq!(emu.requests().len(), before + 1);
    let archives: Vec<_> = emu
        .writes()
        .into_iter()
        .filter(|w| w.operation == "archive")
        .collect();
    assert_eq!(archives.len(), 1);
}

#[tokio::test]
async fn test_reads_me_and_throttles_are_signalled() {
    let emu = IntercomEmulator::start(TOKEN).await.unwrap();
    let summary = destination(&emu.base_url(), TOKEN).test().await.unwrap();
    assert!(summary.contains("admin@example.com"), "{summary}");
    match destination(&emu.base_url(), "wrong").test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("Access Token Invalid"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.writes().is_empty());
    emu.throttle_next(1, 2);
    let upsert = destination(&emu.base_url(), TOKEN)
        .action(spec("upsert_contact"))
        .unwrap();
    match upsert.send(&ctx(None), &[added(1, json!({}))]).await {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after: Some(wait),
            ..
        }) => assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(3)),
        other => panic!("{other:?}"),
    }
    // The 10-second window: over the limit, 429 until it resets.
    emu.set_window_limit(1);
    let outcome = upsert.send(&ctx(None), &[added(2, json!({}))]).await;
    assert!(
        matches!(
            outcome,
            Err(DestinationError::Transient {
                throttled: true,
                ..
            })
        ),
        "{outcome:?}"
    );
}
