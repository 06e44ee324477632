//! Customer.io tests: config, encoding, answer parsing, round-trips against the emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::CustomerioEmulator;
use serde_json::{Value, json};

use super::actions::{self, CustomerioAction};
use super::client::{self, MAX_BATCH_BYTES};
use super::{CustomerioDestination, destination_type};
use crate::destinations::http::Answer;

const SITE: &str = "site123";
const KEY: &str = "key456";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("cio"),
        mapping_id: MappingId::new("people"),
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
        fingerprint: Some(u128::from(key.unsigned_abs())),
    }
}

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn destination(url: &str, key: &str) -> CustomerioDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    CustomerioDestination::new(
        &json!({"site_id": SITE, "api_key": key, "track_host": url}),
        limits,
    )
    .unwrap()
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
    let error = |config: Value| match CustomerioDestination::new(&config, DeliveryLimits::default())
    {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(error(json!({"site_id": "", "api_key": KEY})), "site_id");
    assert_eq!(error(json!({"site_id": SITE, "api_key": "a:b"})), "api_key");
    assert_eq!(
        error(json!({"site_id": SITE, "api_key": KEY, "track_host": "nope"})),
        "track_host"
    );
    retl_engine::config_fields::check_config_fields::<super::config::CustomerioConfig>(
        destination_type().config,
    )
    .unwrap();
}

#[test]
fn entries_by_action_and_documented_limits() {
    let p = payload(7, json!({"email": "a@x.io", "attributes": {"plan": "pro"}}));
    assert_eq!(
        actions::entry(CustomerioAction::Identify, spec("identify"), &p).unwrap(),
        json!({"type": "person", "identifiers": {"id": "7"}, "action": "identify",
               "attributes": {"plan": "pro", "email": "a@x.io"}})
    );
    let p = payload(
        7,
        json!({"name": "upgraded", "timestamp": 1_700_000_000, "seats": 3}),
    );
    assert_eq!(
        actions::entry(CustomerioAction::TrackEvent, spec("track_event"), &p).unwrap(),
        json!({"type": "person", "identifiers": {"id": "7"}, "action": "event",
               "name": "upgraded", "timestamp": 1_700_000_000, "attributes": {"seats": 3}})
    );
    assert_eq!(
        actions::entry(
            CustomerioAction::DeletePerson,
            spec("delete_person"),
            &Payload::delete(json!(9))
        )
        .unwrap(),
        json!({"type": "person", "identifiers": {"id": "9"}, "action": "delete"})
    );
    let many: serde_json::Map<String, Value> =
        (0..301).map(|i| (format!("a{i}"), json!(i))).collect();
    let p = payload(1, json!({"attributes": many}));
    assert!(
        actions::entry(CustomerioAction::Identify, spec("identify"), &p)
            .unwrap_err()
            .contains("300")
    );
    let p = payload(1, json!({"bio": "x".repeat(1001)}));
    assert!(
        actions::entry(CustomerioAction::Identify, spec("identify"), &p)
            .unwrap_err()
            .contains("1000")
    );
    let p = payload(1, json!({"name": "n".repeat(101)}));
    assert!(
        actions::entry(CustomerioAction::TrackEvent, spec("track_event"), &p)
            .unwrap_err()
            .contains("100")
    );
    assert!(MAX_BATCH_BYTES > (destination_type().default_limits)().max_batch_bytes);
}

#[test]
fn answers_map_to_entries() {
    assert_eq!(
        client::batch_outcomes(&answer(200, json!({})), 2).unwrap(),
        vec![RecordOutcome::Accepted; 2]
    );
    let partial = answer(
        207,
        json!({"errors": [{"batch_index": 1, "reason": "required", "field": "identifiers",
                           "message": "identifiers.id must be present"}]}),
    );
    let outcomes = client::batch_outcomes(&partial, 3).unwrap();
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    match &outcomes[1] {
        RecordOutcome::Rejected { reason } => assert!(reason.contains("identifiers"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let bad = answer(
        400,
        json!({"errors": [{"batch_index": 0, "reason": "invalid"}]}),
    );
    let outcomes = client::batch_outcomes(&bad, 2).unwrap();
    assert!(matches!(outcomes[1], RecordOutcome::Retry { .. }));
    assert!(matches!(
        client::batch_outcomes(&answer(400, json!({"meta": {"error": "invalid JSON"}})), 2),
        Err(DestinationError::Rejected { .. })
    ));
    assert!(
        client::batch_outcomes(&answer(207, json!({"errors": [{"batch_index": 9}]})), 2).is_err()
    );
    assert!(matches!(
        client::batch_outcomes(
            &answer(401, json!({"meta": {"error": "Unauthorized request"}})),
            2
        ),
        Err(DestinationError::Authentication { .. })
    ));
}

#[tokio::test]
async fn identify_event_and_delete_round_trip() {
    let emu = CustomerioEmulator::start(SITE, KEY).await.unwrap();
    let destination = destination(&emu.url(), KEY);
    assert!(destination.test().await.unwrap().contains("region: us"));
    let identify = destination.action(spec("identify")).unwrap();
    emu.reject_keys(["2".to_string()]);
    let outcome = identify
        .send(
            &ctx(),
            &[
                payload(1, json!({"plan": "pro"})),
                payload(2, json!({"plan": "free"})),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    assert_eq!(
        Value::Object(emu.person("1").unwrap()),
        json!({"plan": "pro"})
    );
    assert!(emu.person("2").is_none());
    let request = &emu.requests()[1];
    assert_eq!(request.path, "/api/v2/batch");
    assert_eq!(request.basic_user().as_deref(), Some(SITE));

    let track = destination.action(spec("track_event")).unwrap();
    let outcome = track
        .send(&ctx(), &[payload(1, json!({"name": "upgraded"}))])
        .await
        .unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted]);

    let delete = destination.action(spec("delete_person")).unwrap();
    let outcome = delete
        .send(
            &ctx(),
            &[Payload::delete(json!(1)), Payload::delete(json!(99))],
        )
        .await
        .unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    assert!(emu.person("1").is_none());
}

#[tokio::test]
async fn refused_credentials_are_named() {
    let emu = CustomerioEmulator::start(SITE, KEY).await.unwrap();
    let bad = destination(&emu.url(), "wrongkey");
    for result in [
        bad.test().await.map(|_| ()),
        bad.action(spec("identify"))
            .unwrap()
            .send(&ctx(), &[payload(1, json!({}))])
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(DestinationError::Authentication { message }) => {
                assert!(message.contains("Unauthorized request"), "{message}");
                assert!(!message.contains("wrongkey"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
