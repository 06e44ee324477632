//! Mixpanel tests: config, encoding, answer parsing, round-trips against the emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, ExchangeLog,
    Payload, RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::{MixpanelEmulator, MixpanelProject};
use serde_json::{Value, json};

use super::actions::{self, MixpanelAction};
use super::client::{self, MAX_IMPORT_BYTES};
use super::{MixpanelDestination, destination_type};
use crate::destinations::http::Answer;

const TOKEN: &str = "projtoken123";

fn project() -> MixpanelProject {
    MixpanelProject {
        token: TOKEN.into(),
        project_id: "4242".into(),
        service_account: ("retl.sa".into(), "sa-secret".into()),
    }
}

fn ctx(mode: Option<SyncMode>) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("mp"),
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

fn destination(config: Value) -> MixpanelDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    MixpanelDestination::new(&config, limits).unwrap()
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status: reqwest::StatusCode::from_u16(status).unwrap(),
        headers: reqwest::header::HeaderMap::new(),
        body: body.to_string().into_bytes(),
    }
}

#[test]
fn config_validation_names_the_field() {
    let error = |config: Value| match MixpanelDestination::new(&config, DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(error(json!({"project_token": ""})), "project_token");
    assert_eq!(
        error(json!({"project_token": TOKEN, "service_account_username": "u"})),
        "service_account_secret"
    );
    assert_eq!(
        error(
            json!({"project_token": TOKEN, "service_account_username": "u",
                     "service_account_secret": "s"})
        ),
        "project_id"
    );
    assert_eq!(
        error(json!({"project_token": TOKEN, "api_host": "x"})),
        "api_host"
    );
    retl_engine::config_fields::check_config_fields::<super::config::MixpanelConfig>(
        destination_type().config,
    )
    .unwrap();
}

#[test]
fn events_carry_insert_id_time_in_ms_and_distinct_id() {
    let p = payload(
        7,
        json!({"event": "Plan Upgraded", "time": "2023-11-14T22:13:20Z", "plan": "pro",
               "properties": {"source": "crm"}}),
    );
    let e = actions::event(spec("track_event"), &p, "0123456789abcdef0123456789abcdef").unwrap();
    assert_eq!(
        e,
        json!({"event": "Plan Upgraded", "properties": {
            "source": "crm", "plan": "pro", "time": 1_700_000_000_000u64, "distinct_id": "7",
            "$insert_id": "0123456789abcdef0123456789abcdef"}})
    );
    let p = payload(7, json!({"event": "E", "time": null}));
    assert!(
        actions::event(spec("track_event"), &p, "x")
            .unwrap_err()
            .contains("'time'")
    );
    let key = ctx(None).idempotency_key(&payload(1, json!({})));
    assert!(key.len() <= 36 && key.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn profile_updates_by_sync_mode_and_deletes() {
    let p = payload(3, json!({"$email": "a@x.io", "distinct_id": "u-3"}));
    let set = actions::profile_update(
        MixpanelAction::SetProfile,
        spec("set_profile"),
        &p,
        TOKEN,
        false,
    )
    .unwrap();
    assert_eq!(
        set,
        json!({"$token": TOKEN, "$distinct_id": "u-3", "$set": {"$email": "a@x.io"}})
    );
    let once = actions::profile_update(
        MixpanelAction::SetProfile,
        spec("set_profile"),
        &p,
        TOKEN,
        true,
    )
    .unwrap();
    assert_eq!(once["$set_once"], json!({"$email": "a@x.io"}));
    let delete = actions::profile_update(
        MixpanelAction::DeleteProfile,
        spec("delete_profile"),
        &Payload::delete(json!(9)),
        TOKEN,
        false,
    )
    .unwrap();
    assert_eq!(
        delete,
        json!({"$token": TOKEN, "$distinct_id": "9", "$delete": "null"})
    );
}

#[test]
fn strict_import_answers_map_to_records() {
    let ok = client::import_outcomes(&answer(200, json!({"code": 200})), 3).unwrap();
    assert_eq!(ok, vec![RecordOutcome::Accepted; 3]);
    let partial = answer(
        400,
        json!({"code": 400, "num_records_imported": 2, "failed_records": [
            {"index": 1, "insert_id": "x", "field": "properties.time", "message": "'properties.time' is invalid"}]}),
    );
    let outcomes = client::import_outcomes(&partial, 3).unwrap();
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    assert_eq!(
        outcomes[1],
        RecordOutcome::Rejected {
            reason: "'properties.time' is invalid".into()
        }
    );
    let out_of_range = answer(400, json!({"failed_records": [{"index": 5}]}));
    assert!(client::import_outcomes(&out_of_range, 3).is_err());
    assert!(matches!(
        client::import_outcomes(&answer(400, json!({"error": "bad json"})), 3),
        Err(DestinationError::Rejected { .. })
    ));
    assert!(matches!(
        client::import_outcomes(&answer(401, json!({"error": "Invalid credentials"})), 3),
        Err(DestinationError::Authentication { .. })
    ));
    assert!(matches!(
        client::import_outcomes(&answer(429, json!({})), 3),
        Err(DestinationError::Transient {
            throttled: true,
            ..
        })
    ));
    assert!(MAX_IMPORT_BYTES > (destination_type().default_limits)().max_batch_bytes);
}

#[test]
fn engage_answers_map_to_records() {
    let ok = client::engage_outcomes(&answer(200, json!({"status": 1, "error": null})), 2).unwrap();
    assert_eq!(ok, vec![RecordOutcome::Accepted; 2]);
    match client::engage_outcomes(&answer(200, json!({"status": 0, "error": "bad token"})), 2) {
        Err(DestinationError::Rejected { message }) => assert!(message.contains("bad token")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn import_round_trip_with_a_service_account_and_a_rejected_event() {
    let emu = MixpanelEmulator::start(project()).await.unwrap();
    let destination = destination(json!({
        "project_token": TOKEN, "api_host": emu.url(), "project_id": "4242",
        "service_account_username": "retl.sa", "service_account_secret": "sa-secret"}));
    emu.reject_keys(["2".to_string()]);
    let action = destination.action(spec("track_event")).unwrap();
    let batch: Vec<Payload> = (1..=3)
        .map(|k| payload(k, json!({"event": "E", "time": 1_700_000_000})))
        .collect();
    let outcome = action
        .send(&ctx(Some(SyncMode::Add)), &batch)
        .await
        .unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    assert_eq!(outcome.records[2], RecordOutcome::Accepted);
    let ids: Vec<_> = emu.events().iter().map(|e| e.distinct_id.clone()).collect();
    assert_eq!(ids, ["1", "3"]);
    let request = &emu.requests()[0];
    assert_eq!(request.query.get("strict").map(String::as_str), Some("1"));
    assert_eq!(
        request.query.get("project_id").map(String::as_str),
        Some("4242")
    );
    assert_eq!(request.basic_user().as_deref(), Some("retl.sa"));
}

#[tokio::test]
async fn profiles_set_once_and_delete_round_trip() {
    let emu = MixpanelEmulator::start(project()).await.unwrap();
    let destination = destination(json!({"project_token": TOKEN, "api_host": emu.url()}));
    let set = destination.action(spec("set_profile")).unwrap();
    let first = vec![payload(1, json!({"plan": "free"}))];
    set.send(&ctx(Some(SyncMode::Upsert)), &first)
        .await
        .unwrap();
    let second = vec![payload(1, json!({"plan": "pro", "seats": 3}))];
    set.send(&ctx(Some(SyncMode::Create)), &second)
        .await
        .unwrap();
    assert_eq!(
        Value::Object(emu.profile("1").unwrap()),
        json!({"plan": "free", "seats": 3}),
        "$set_once keeps what the profile has"
    );
    let delete = destination.action(spec("delete_profile")).unwrap();
    let gone = vec![Payload::delete(json!(1)), Payload::delete(json!(99))];
    let outcome = delete.send(&ctx(None), &gone).await.unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    assert!(emu.profile("1").is_none());
}

#[tokio::test]
async fn test_names_refused_credentials() {
    let emu = MixpanelEmulator::start(project()).await.unwrap();
    let good = destination(json!({"project_token": TOKEN, "api_host": emu.url()}));
    assert!(good.test().await.unwrap().contains("accepted"));
    let bad = destination(json!({"project_token": "wrongtoken", "api_host": emu.url()}));
    match bad.test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("Invalid credentials"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.events().is_empty());
}

#[tokio::test]
async fn a_traced_profile_update_records_no_token() {
    let emu = MixpanelEmulator::start(project()).await.unwrap();
    let destination = destination(json!({"project_token": TOKEN, "api_host": emu.url()}));
    let set = destination.action(spec("set_profile")).unwrap();
    let log = ExchangeLog::new();
    let mut traced = ctx(Some(SyncMode::Upsert));
    traced.trace = Some(log.clone());
    set.send(&traced, &[payload(4, json!({"plan": "pro"}))])
        .await
        .unwrap();
    let exchanges = log.exchanges();
    assert_eq!(exchanges.len(), 1);
    assert_eq!(
        exchanges[0].request_body,
        json!([{"$token": "<redacted>", "$distinct_id": "4", "$set": {"plan": "pro"}}])
    );
    assert_eq!(exchanges[0].status, Some(200));
    assert!(!format!("{:?}", exchanges[0]).contains(TOKEN));
    // Mixpanel got the real token.
    assert_eq!(emu.profile_updates()[0].body["$token"], TOKEN);
}
