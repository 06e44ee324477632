//! Attio tests: config, encoding, answer parsing, round-trips against the emulator.

use std::time::Duration;

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::{AttioEmulator, AttioObject};
use serde_json::{Value, json};

use super::actions;
use super::client::{self, Found};
use super::config::{AttioConfig, CONFIG_FIELDS};
use super::{AttioDestination, destination_type};
use crate::destinations::http::Answer;

const TOKEN: &str = "attio-unit-token";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("attio"),
        mapping_id: MappingId::new("people"),
        run_id: RunId::new("run-1"),
        sync_mode: None,
        trace: None,
    }
}

fn added(key: i64, fields: Value) -> Payload {
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

fn destination(url: &str, token: &str) -> AttioDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    AttioDestination::new(
        &json!({"access_token": token, "object": "people",
                "matching_attribute": "email_addresses", "base_url": url}),
        limits,
    )
    .unwrap()
}

async fn emulator() -> AttioEmulator {
    AttioEmulator::start(
        TOKEN,
        vec![AttioObject {
            slug: "people".into(),
            attributes: vec![
                ("email_addresses".into(), true),
                ("job_title".into(), false),
            ],
        }],
    )
    .await
    .unwrap()
}

#[test]
fn config_validation_and_drift() {
    retl_engine::config_fields::check_config_fields::<AttioConfig>(CONFIG_FIELDS).unwrap();
    assert!(
        CONFIG_FIELDS
            .iter()
            .any(|f| f.name == "access_token" && f.secret)
    );
    let error = |config: Value| match AttioDestination::new(&config, DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let base = |patch: Value| {
        let mut config = json!({"access_token": "t", "object": "people", "matching_attribute": "email_addresses"});
        for (k, v) in patch.as_object().unwrap() {
            config[k] = v.clone();
        }
        config
    };
    assert_eq!(error(base(json!({"access_token": ""}))), "access_token");
    assert_eq!(error(base(json!({"object": "People"}))), "object");
    assert_eq!(
        error(base(json!({"matching_attribute": "Email addresses"}))),
        "matching_attribute"
    );
    assert_eq!(error(base(json!({"base_url": "ftp://x"}))), "base_url");
    assert_eq!(error(json!({"access_token": "t"})), "config");
    let ok = destination("https://api.attio.com", TOKEN);
    assert!(!format!("{ok:?}").contains(TOKEN));
}

#[test]
fn asserts_encode_and_answers_parse() {
    let (value, body) = actions::assert_body(
        "email_addresses",
        &added(
            1,
            json!({"id": "a@x.io", "job_title": "CTO", "tags": ["a", "b"]}),
        ),
    )
    .unwrap();
    assert_eq!(value, "a@x.io");
    assert_eq!(
        body,
        json!({"data": {"values": {"job_title": "CTO", "tags": ["a", "b"], "email_addresses": "a@x.io"}}})
    );
    let (value, _) = actions::assert_body("retl_id", &added(7, json!({}))).unwrap();
    assert_eq!(value, "7");
    assert!(actions::assert_body("retl_id", &added(7, json!({"retl_id": "x"}))).is_err());
    assert!(actions::assert_body("retl_id", &added(7, json!({"id": null}))).is_err());
    let one = json!({"data": [{"id": {"record_id": "r1"}}]});
    assert_eq!(
        client::parse_query(one.to_string().as_bytes()).unwrap(),
        Found::One("r1".into())
    );
    assert_eq!(
        client::parse_query(br#"{"data": []}"#).unwrap(),
        Found::Nothing
    );
    let two = json!({"data": [{"id": {"record_id": "r1"}}, {"id": {"record_id": "r2"}}]});
    assert_eq!(
        client::parse_query(two.to_string().as_bytes()).unwrap(),
        Found::Many
    );
    let answer = |status: u16, headers: &[(&'static str, &str)], body: Value| {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        Answer {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.to_string().into_bytes(),
        }
    };
    match client::record_outcome(&answer(
        400,
        &[],
        json!({"status_code": 400, "type": "invalid_request_error", "code": "validation_type",
               "message": "Cannot find attribute with slug/ID \"x\"."}),
    )) {
        Ok(RecordOutcome::Rejected { reason }) => {
            assert!(
                reason.contains("validation_type: Cannot find attribute"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(5));
    match client::record_outcome(&answer(429, &[("retry-after", later.as_str())], json!({}))) {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after: Some(wait),
            ..
        }) => assert!(wait > Duration::from_secs(3) && wait <= Duration::from_secs(5)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn asserts_and_deletes_round_trip() {
    let emu = emulator().await;
    let dest = destination(&emu.base_url(), TOKEN);
    let assert = dest.action(spec("assert_record")).unwrap();
    for title in ["CTO", "CEO"] {
        let outcome = assert
            .send(
                &ctx(),
                &[added(1, json!({"id": "a@x.io", "job_title": title}))],
            )
            .await
            .unwrap();
        assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    }
    assert_eq!(emu.records("people").len(), 1);
    assert_eq!(
        emu.find("people", "email_addresses", "a@x.io").unwrap()["job_title"],
        "CEO"
    );
    let request = &emu.requests()[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.query["matching_attribute"], "email_addresses");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // an unknown attribute rejects the record
    let outcome = assert
        .send(&ctx(), &[added(2, json!({"id": "b@x.io", "nope": 1}))])
        .await
        .unwrap();
    assert!(
        matches!(&outcome.records[0], RecordOutcome::Rejected { reason } if reason.contains("nope"))
    );
    // deletes: one held, one never written
    let delete = dest.action(spec("delete_record")).unwrap();
    for key in ["a@x.io", "zz@x.io"] {
        let outcome = delete
            .send(&ctx(), &[Payload::delete(json!(key))])
            .await
            .unwrap();
        assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    }
    assert!(emu.records("people").is_empty());
    assert!(matches!(
        assert
            .send(&ctx(), &[added(3, json!({})), added(4, json!({}))])
            .await,
        Err(DestinationError::PayloadTooLarge { .. })
    ));
}

#[tokio::test]
async fn test_reads_self_and_throttles_wait_for_the_date() {
    let emu = emulator().await;
    assert!(
        destination(&emu.base_url(), TOKEN)
            .test()
            .await
            .unwrap()
            .contains("Emulated Workspace")
    );
    match destination(&emu.base_url(), "wrong").test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("Invalid access token"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    emu.throttle_next(1, 1);
    let assert = destination(&emu.base_url(), TOKEN)
        .action(spec("assert_record"))
        .unwrap();
    match assert
        .send(&ctx(), &[added(1, json!({"id": "a@x.io"}))])
        .await
    {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after: Some(wait),
            ..
        }) => assert!(wait >= Duration::from_millis(900), "{wait:?}"),
        other => panic!("{other:?}"),
    }
    assert!(emu.writes().is_empty());
}
