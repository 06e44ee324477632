//! HubSpot tests: config, encoding, answer parsing, and round-trips against the emulator.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, FieldType, Payload,
    RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::emulators::hubspot::{HubSpotEmulator, HubSpotOptions};
use serde_json::{Value, json};

use super::actions::{self, ID_FIELD};
use super::client::{self, Found};
use super::config::{CONFIG_FIELDS, HubSpotConfig};
use super::{HubSpotDestination, destination_type};
use crate::destinations::http::Answer;

const TOKEN: &str = "pat-na1-test";

fn ctx(mode: Option<SyncMode>) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("crm"),
        mapping_id: MappingId::new("contacts"),
        run_id: RunId::new("run-1"),
        sync_mode: mode,
        trace: None,
    }
}

fn upsert(key: Value, fields: Value) -> Payload {
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

fn destination(config: Value) -> HubSpotDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    HubSpotDestination::new(&config, limits).unwrap()
}

async fn emulator() -> HubSpotEmulator {
    HubSpotEmulator::start(HubSpotOptions {
        access_token: TOKEN.to_string(),
        properties: vec![
            ("contacts".into(), "plan".into(), false),
            ("contacts".into(), "external_id".into(), true),
            ("companies".into(), "external_id".into(), true),
        ],
    })
    .await
    .unwrap()
}

#[test]
fn config_fields_match_the_typed_config() {
    retl_engine::config_fields::check_config_fields::<HubSpotConfig>(CONFIG_FIELDS).unwrap();
    assert!(
        CONFIG_FIELDS
            .iter()
            .any(|f| f.name == "access_token" && f.secret)
    );
}

#[test]
fn config_is_validated() {
    let error = |config: Value| match HubSpotDestination::new(&config, DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, message }) => (field, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(error(json!({"access_token": " "})).0, "access_token");
    assert_eq!(
        error(json!({"access_token": "t", "base_url": "ftp://x"})).0,
        "base_url"
    );
    let (field, message) = error(json!({"access_token": "t", "contact_id_property": "Email"}));
    assert_eq!(field, "contact_id_property");
    assert!(message.contains("internal name"), "{message}");
    assert_eq!(
        error(json!({"access_token": "t", "company_id_property": "hs_object_id"})).0,
        "company_id_property"
    );
    assert_eq!(
        error(json!({"access_token": "t", "token": "x"})).0,
        "config"
    );
    // Company actions need a company id property.
    let dest = destination(json!({"access_token": "t"}));
    match dest.action(spec("upsert_company")) {
        Err(DestinationError::InvalidConfig { field, .. }) => {
            assert_eq!(field, "company_id_property")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(dest.action(spec("upsert_contact")).is_ok());
}

#[test]
fn write_inputs_per_mode() {
    let batch = [
        upsert(
            json!(1),
            json!({"id": "a@x.io", "firstname": "Ann", "age": 41, "vip": true, "tags": ["a", "b"], "phone": null}),
        ),
        upsert(json!(2), json!({"firstname": "Bo"})),
        upsert(
            json!(3),
            json!({"id": "c@x.io", "address": {"city": "Oslo"}}),
        ),
        upsert(json!(null), json!({"firstname": "Nobody"})),
    ];
    let encoded = actions::encode_write(SyncMode::Upsert, "email", &batch);
    assert_eq!(
        encoded.body,
        json!({"inputs": [
            {"idProperty": "email", "id": "a@x.io", "objectWriteTraceId": "0",
             "properties": {"firstname": "Ann", "age": "41", "vip": "true", "tags": "a;b", "phone": ""}},
            {"idProperty": "email", "id": "2", "objectWriteTraceId": "1", "properties": {"firstname": "Bo"}},
        ]})
    );
    assert_eq!(
        encoded.sent,
        [(0, "a@x.io".to_string()), (1, "2".to_string())]
    );
    assert!(
        matches!(&encoded.outcomes[2], Some(RecordOutcome::Rejected { reason }) if reason.contains("'address' is an object"))
    );
    assert!(
        matches!(&encoded.outcomes[3], Some(RecordOutcome::Rejected { reason }) if reason.contains("the record's key"))
    );

    let created = actions::encode_write(SyncMode::Create, "email", &batch[..1]);
    assert_eq!(
        created.body["inputs"][0],
        json!({"objectWriteTraceId": "0", "properties": {"firstname": "Ann", "age": "41", "vip": "true", "tags": "a;b", "phone": "", "email": "a@x.io"}})
    );
    assert_eq!(actions::write_endpoint(SyncMode::Update), "update");
    assert_eq!(actions::write_endpoint(SyncMode::Create), "create");
    assert_eq!(actions::write_endpoint(SyncMode::Upsert), "upsert");
    assert_eq!(ID_FIELD, "id");
}

#[test]
fn multi_status_errors_become_per_record_rejections() {
    let batch = [
        upsert(json!("a"), json!({})),
        upsert(json!("b"), json!({})),
        upsert(json!("c"), json!({})),
    ];
    let encoded = actions::encode_write(SyncMode::Update, "external_id", &batch);
    let body = json!({
        "status": "COMPLETE",
        "results": [{"id": "1"}],
        "numErrors": 2,
        "errors": [
            {"status": "error", "category": "VALIDATION_ERROR", "message": "bad value", "context": {"objectWriteTraceId": ["1"]}},
            {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "not there", "context": {"ids": ["c"]}},
        ],
    });
    let outcomes =
        client::parse_write(body.to_string().as_bytes(), &encoded, "external_id").unwrap();
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    assert_eq!(
        outcomes[1],
        RecordOutcome::Rejected {
            reason: "HubSpot VALIDATION_ERROR: bad value".to_string()
        }
    );
    assert!(
        matches!(&outcomes[2], RecordOutcome::Rejected { reason } if reason.contains("OBJECT_NOT_FOUND"))
    );

    // An error naming no input: nothing else is acknowledged.
    let body = json!({"results": [{"id": "1"}, {"id": "2"}], "errors": [{"category": "X", "message": "?", "context": {}}]});
    let outcomes =
        client::parse_write(body.to_string().as_bytes(), &encoded, "external_id").unwrap();
    assert!(outcomes.iter().all(
        |o| matches!(o, RecordOutcome::Rejected { reason } if reason.contains("does not say"))
    ));
    // Fewer results than inputs and no errors: likewise.
    let body = json!({"results": [{"id": "1"}]});
    let outcomes =
        client::parse_write(body.to_string().as_bytes(), &encoded, "external_id").unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, RecordOutcome::Rejected { .. }))
    );
    let body = json!({"results": [{"id": "1"}, {"id": "2"}, {"id": "3"}]});
    let outcomes =
        client::parse_write(body.to_string().as_bytes(), &encoded, "external_id").unwrap();
    assert!(outcomes.iter().all(|o| *o == RecordOutcome::Accepted));
}

#[test]
fn lookup_maps_values_to_record_ids() {
    let batch = [
        Payload::delete(json!("A@X.io")),
        Payload::delete(json!("b@x.io")),
    ];
    let encoded = actions::encode_lookup("email", &batch);
    assert_eq!(
        encoded.body,
        json!({"idProperty": "email", "inputs": [{"id": "A@X.io"}, {"id": "b@x.io"}], "properties": ["email"]})
    );
    let body = json!({
        "results": [{"id": "77", "properties": {"email": "a@x.io"}}],
        "errors": [{"category": "OBJECT_NOT_FOUND", "message": "gone", "context": {"ids": ["b@x.io"]}}],
    });
    let found = client::parse_lookup(body.to_string().as_bytes(), &encoded, "email").unwrap();
    assert_eq!(found, [Found::Object("77".to_string()), Found::Gone]);
}

#[test]
fn hubspot_error_bodies_are_classified() {
    let answer = |status: u16, body: Value, retry: Option<&str>| {
        let mut headers = HeaderMap::new();
        if let Some(r) = retry {
            headers.insert("retry-after", r.parse().unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.to_string().into_bytes(),
        }
    };
    let throttled = client::error(&answer(
        429,
        json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}),
        Some("2"),
    ));
    match throttled {
        DestinationError::Transient {
            throttled,
            retry_after,
            message,
        } => {
            assert!(throttled);
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(2)));
            assert!(message.contains("TEN_SECONDLY_ROLLING"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let daily = client::error(&answer(
        429,
        json!({"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT", "policyName": "DAILY"}),
        None,
    ));
    assert!(daily.to_string().contains("daily API limit"), "{daily}");
    let auth = client::error(&answer(
        401,
        json!({"status": "error", "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION"}),
        None,
    ));
    assert!(
        matches!(&auth, DestinationError::Authentication { message } if message.contains("INVALID_AUTHENTICATION: Authentication credentials not found")),
        "{auth:?}"
    );
    let bad = client::error(&answer(
        400,
        json!({"status": "error", "message": "Too many inputs", "category": "VALIDATION_ERROR"}),
        None,
    ));
    assert!(matches!(bad, DestinationError::Rejected { .. }));
}

#[tokio::test]
async fn round_trips_every_mode_against_the_emulator() {
    let emu = emulator().await;
    let dest = destination(
        json!({"access_token": TOKEN, "base_url": emu.base_url(), "contact_id_property": "external_id"}),
    );
    let action = dest.action(spec("upsert_contact")).unwrap();
    let batch = [
        upsert(json!(1), json!({"email": "a@x.io", "plan": "pro"})),
        upsert(json!(2), json!({"email": "b@x.io", "plan": "free"})),
    ];
    // update of records HubSpot does not hold: rejected per record
    let outcome = action
        .send(&ctx(Some(SyncMode::Update)), &batch)
        .await
        .unwrap();
    assert!(outcome.records.iter().all(|o| matches!(o, RecordOutcome::Rejected { reason } if reason.contains("OBJECT_NOT_FOUND"))), "{outcome:?}");
    // create, then create again: the second is a conflict
    let outcome = action
        .send(&ctx(Some(SyncMode::Create)), &batch[..1])
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    let outcome = action
        .send(&ctx(Some(SyncMode::Create)), &batch[..1])
        .await
        .unwrap();
    assert!(
        matches!(&outcome.records[0], RecordOutcome::Rejected { reason } if reason.contains("CONFLICT"))
    );
    // upsert both, one rejected by the account
    emu.reject_keys(["2".to_string()]);
    let outcome = action.send(&ctx(None), &batch).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(matches!(
        &outcome.records[1],
        RecordOutcome::Rejected { .. }
    ));
    let requests = emu.requests();
    let last = requests.last().unwrap();
    assert_eq!(last.path, "/crm/v3/objects/contacts/batch/upsert");
    assert_eq!(last.status, 207);
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        last.body["inputs"][0],
        json!({"idProperty": "external_id", "id": "1", "objectWriteTraceId": "0", "properties": {"email": "a@x.io", "plan": "pro"}})
    );
    // an unknown property fails that record only
    let outcome = action
        .send(&ctx(None), &[upsert(json!(3), json!({"nope": "x"}))])
        .await
        .unwrap();
    assert!(
        matches!(&outcome.records[0], RecordOutcome::Rejected { reason } if reason.contains("PROPERTY_DOESNT_EXIST"))
    );

    // delete: one held, one never written
    let delete = dest.action(spec("delete_contact")).unwrap();
    let outcome = delete
        .send(
            &ctx(None),
            &[Payload::delete(json!(1)), Payload::delete(json!(9))],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.records,
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    assert!(emu.objects("contacts").is_empty());
    let archived: Vec<_> = emu
        .records()
        .into_iter()
        .filter(|r| r.operation == "archive")
        .collect();
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0].properties["external_id"], "1");
    // deleting again finds nothing and sends no archive
    let before = emu.requests().len();
    let outcome = delete
        .send(&ctx(None), &[Payload::delete(json!(1))])
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    assert_eq!(emu.requests().len(), before + 1);
}

#[tokio::test]
async fn test_and_fields_use_the_api() {
    let emu = emulator().await;
    let dest = destination(json!({"access_token": TOKEN, "base_url": emu.base_url()}));
    let summary = dest.test().await.unwrap();
    assert!(
        summary.contains("GET /crm/v3/objects/contacts?limit=1"),
        "{summary}"
    );
    let fields = dest.fields(spec("upsert_contact")).await.unwrap();
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_ref()).collect();
    assert_eq!(names[0], "id");
    assert!(
        names.contains(&"plan") && names.contains(&"external_id"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"hs_object_id"),
        "read-only properties are left out"
    );
    assert!(fields.iter().all(|f| f.field_type == FieldType::String));

    let wrong = destination(json!({"access_token": "nope", "base_url": emu.base_url()}));
    match wrong.test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("INVALID_AUTHENTICATION"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    emu.throttle_next(Some(1));
    let action = dest.action(spec("upsert_contact")).unwrap();
    match action
        .send(&ctx(None), &[upsert(json!("z@x.io"), json!({}))])
        .await
    {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(1)))
        }
        other => panic!("{other:?}"),
    }
}
