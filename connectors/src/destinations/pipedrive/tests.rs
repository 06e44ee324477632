//! Pipedrive tests: config, encoding, answer parsing, round-trips against the emulator.

use std::time::Duration;

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::PipedriveEmulator;
use serde_json::{Value, json};

use super::actions;
use super::client::{self, Found};
use super::config::{CONFIG_FIELDS, MatchField, PipedriveConfig};
use super::{PipedriveDestination, destination_type};
use crate::destinations::http::Answer;

const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
/// A custom field key holding the model's id.
const RETL_ID: &str = "8f1e2d3c4b5a69788f1e2d3c4b5a69788f1e2d3c";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("pipedrive"),
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

fn destination(config: Value) -> PipedriveDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    PipedriveDestination::new(&config, limits).unwrap()
}

#[test]
fn config_validation_and_drift() {
    retl_engine::config_fields::check_config_fields::<PipedriveConfig>(CONFIG_FIELDS).unwrap();
    assert!(
        CONFIG_FIELDS
            .iter()
            .any(|f| f.name == "api_token" && f.secret)
    );
    let error = |config: Value| match PipedriveDestination::new(&config, DeliveryLimits::default())
    {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(error(json!({"api_token": ""})), "api_token");
    assert_eq!(error(json!({"api_token": "a b"})), "api_token");
    assert_eq!(
        error(json!({"api_token": "t", "person_match_field": "retl_id"})),
        "person_match_field"
    );
    assert_eq!(
        error(json!({"api_token": "t", "organization_match_field": "email"})),
        "organization_match_field"
    );
    assert_eq!(
        error(json!({"api_token": "t", "base_url": "https://x?y=1"})),
        "base_url"
    );
    let ok = destination(json!({"api_token": TOKEN, "person_match_field": RETL_ID}));
    assert!(!format!("{ok:?}").contains(TOKEN));
}

#[test]
fn records_encode_with_their_match_value() {
    let email = MatchField {
        key: "email".into(),
        search: "email",
    };
    let (value, body) = actions::record(
        &email,
        &added(1, json!({"id": "a@x.io", "name": "Ann", RETL_ID: 1})),
    )
    .unwrap();
    assert_eq!(value, "a@x.io");
    assert_eq!(body, json!({"name": "Ann", RETL_ID: 1, "email": "a@x.io"}));
    let custom = MatchField {
        key: RETL_ID.into(),
        search: "custom_fields",
    };
    let (value, body) = actions::record(&custom, &added(7, json!({"name": "Bo"}))).unwrap();
    assert_eq!(value, "7");
    assert_eq!(body, json!({"name": "Bo", RETL_ID: "7"}));
    assert!(actions::record(&custom, &added(7, json!({"id": null}))).is_err());
    assert!(actions::record(&custom, &added(7, json!({"address": {"city": "x"}}))).is_err());
    assert_eq!(
        actions::delete_value(&Payload::delete(json!(3))).unwrap(),
        "3"
    );
}

#[test]
fn answers_are_parsed_and_classified() {
    let one =
        json!({"success": true, "data": {"items": [{"result_score": 1.0, "item": {"id": 42}}]}});
    assert_eq!(
        client::parse_search(one.to_string().as_bytes()).unwrap(),
        Found::One("42".into())
    );
    let none = json!({"success": true, "data": {"items": []}});
    assert_eq!(
        client::parse_search(none.to_string().as_bytes()).unwrap(),
        Found::Nothing
    );
    let two =
        json!({"success": true, "data": {"items": [{"item": {"id": 1}}, {"item": {"id": 2}}]}});
    assert_eq!(
        client::parse_search(two.to_string().as_bytes()).unwrap(),
        Found::Many
    );
    assert!(client::parse_search(b"{}").is_err());
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
        json!({"success": false, "error": "Name must be given.", "error_info": "see docs"}),
    )) {
        Ok(RecordOutcome::Rejected { reason }) => {
            assert!(
                reason.contains("Name must be given. (see docs)"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client::record_outcome(&answer(
            401,
            &[],
            json!({"success": false, "error": "unauthorized access"})
        )),
        Err(DestinationError::Authentication { .. })
    ));
    match client::error(&answer(
        429,
        &[("x-ratelimit-reset", "2")],
        json!({"success": false, "error": "Request over limit"}),
    )) {
        DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        } => assert_eq!(retry_after, Some(Duration::from_secs(2))),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn persons_and_organizations_round_trip() {
    let emu = PipedriveEmulator::start(TOKEN).await.unwrap();
    let dest = destination(json!({"api_token": TOKEN, "base_url": emu.base_url(),
                                  "person_match_field": RETL_ID}));
    let upsert = dest.action(spec("upsert_person")).unwrap();
    // none matches: added
    let outcome = upsert
        .send(
            &ctx(),
            &[added(1, json!({"name": "Ann", "email": "a@x.io"}))],
        )
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    // one matches: updated, no second person
    let outcome = upsert
        .send(&ctx(), &[added(1, json!({"name": "Ann B"}))])
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    let persons = emu.records("persons");
    assert_eq!(persons.len(), 1);
    let person = persons.values().next().unwrap();
    assert_eq!(person["name"], "Ann B");
    assert_eq!(person[RETL_ID], "1");
    let calls: Vec<String> = emu
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        [
            "GET /v1/persons/search",
            "POST /v1/persons",
            "GET /v1/persons/search",
            format!("PUT /v1/persons/{}", person["id"]).as_str(),
        ]
    );
    let search = &emu.requests()[0];
    assert_eq!(search.query["fields"], "custom_fields");
    assert_eq!(search.query["exact_match"], "true");
    assert_eq!(search.header("x-api-token"), Some(TOKEN));
    assert!(!search.query.contains_key("api_token"));
    // a person without a name cannot be added
    let outcome = upsert.send(&ctx(), &[added(2, json!({}))]).await.unwrap();
    assert!(
        matches!(&outcome.records[0], RecordOutcome::Rejected { reason } if reason.contains("Name must be given"))
    );
    // two persons holding the value: ambiguous
    emu.insert("persons", json!({"name": "X", RETL_ID: "9"}));
    emu.insert("persons", json!({"name": "Y", RETL_ID: "9"}));
    let outcome = upsert
        .send(&ctx(), &[added(9, json!({"name": "Z"}))])
        .await
        .unwrap();
    assert!(
        matches!(&outcome.records[0], RecordOutcome::Rejected { reason } if reason.contains("several"))
    );
    // organizations by name
    let org = dest.action(spec("upsert_organization")).unwrap();
    let outcome = org
        .send(
            &ctx(),
            &[added(5, json!({"id": "Acme", "address": "Oslo"}))],
        )
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    assert_eq!(
        emu.find("organizations", "name", "Acme").unwrap()["address"],
        "Oslo"
    );
    // deletes: one held, one never written
    let delete = dest.action(spec("delete_person")).unwrap();
    for key in [1, 77] {
        let outcome = delete
            .send(&ctx(), &[Payload::delete(json!(key))])
            .await
            .unwrap();
        assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    }
    assert!(emu.find("persons", RETL_ID, "1").is_none());
    assert!(matches!(
        upsert
            .send(&ctx(), &[added(3, json!({})), added(4, json!({}))])
            .await,
        Err(DestinationError::PayloadTooLarge { .. })
    ));
}

#[tokio::test]
async fn test_reads_me_and_throttles_wait_for_the_window() {
    let emu = PipedriveEmulator::start(TOKEN).await.unwrap();
    let config = json!({"api_token": TOKEN, "base_url": emu.base_url()});
    assert!(
        destination(config)
            .test()
            .await
            .unwrap()
            .contains("user@example.com")
    );
    match destination(json!({"api_token": "wrong", "base_url": emu.base_url()}))
        .test()
        .await
    {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("unauthorized access"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    emu.throttle_next(1, 2);
    let upsert = destination(json!({"api_token": TOKEN, "base_url": emu.base_url()}))
        .action(spec("upsert_person"))
        .unwrap();
    match upsert
        .send(&ctx(), &[added(1, json!({"id": "a@x.io", "name": "A"}))])
        .await
    {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => assert_eq!(retry_after, Some(Duration::from_secs(2))),
        other => panic!("{other:?}"),
    }
    assert!(emu.writes().is_empty());
}
