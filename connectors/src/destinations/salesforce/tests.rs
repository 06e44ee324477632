//! Salesforce tests: config, encoding, results parsing, tokens, and round-trips against the
//! emulator.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, FieldType, Payload,
    RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::emulators::salesforce::{
    SalesforceEmulator, SalesforceOptions, TEST_PRIVATE_KEY_PEM,
};
use serde_json::{Value, json};

use super::config::{CONFIG_FIELDS, SalesforceConfig};
use super::{SalesforceDestination, actions, auth, client, destination_type};
use crate::destinations::http::Answer;

const CLIENT_ID: &str = "3MVG9-test";
const SECRET: &str = "s3cret";

fn ctx(mode: Option<SyncMode>) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("sf"),
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

fn destination(config: Value) -> SalesforceDestination {
    let limits = DeliveryLimits {
        timeout_ms: 5_000,
        ..(destination_type().default_limits)()
    };
    SalesforceDestination::new(&config, limits).unwrap()
}

async fn emulator() -> SalesforceEmulator {
    SalesforceEmulator::start(SalesforceOptions {
        client_id: CLIENT_ID.into(),
        client_secret: SECRET.into(),
        username: "sync@example.com".into(),
        jwt_key_pem: Some(TEST_PRIVATE_KEY_PEM.to_string()),
        object: "Contact".into(),
        fields: vec![
            ("Email".into(), "email".into()),
            ("LastName".into(), "string".into()),
            ("Retl_Id__c".into(), "string".into()),
        ],
        external_id_field: "Retl_Id__c".into(),
    })
    .await
    .unwrap()
}

fn secret_config(emu: &SalesforceEmulator) -> Value {
    json!({"login_url": emu.url(), "client_id": CLIENT_ID, "client_secret": SECRET,
           "object": "Contact", "external_id_field": "Retl_Id__c"})
}

#[test]
fn config_fields_match_the_typed_config() {
    retl_engine::config_fields::check_config_fields::<SalesforceConfig>(CONFIG_FIELDS).unwrap();
    for secret in ["client_secret", "private_key"] {
        assert!(CONFIG_FIELDS.iter().any(|f| f.name == secret && f.secret));
    }
}

#[test]
fn config_is_validated() {
    let base = json!({"client_id": "c", "client_secret": "s", "object": "Contact", "external_id_field": "Ext__c"});
    let error = |patch: Value| {
        let mut config = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                config.as_object_mut().unwrap().remove(k);
            } else {
                config[k] = v.clone();
            }
        }
        match SalesforceDestination::new(&config, DeliveryLimits::default()) {
            Err(DestinationError::InvalidConfig { field, .. }) => field,
            other => panic!("{:?}", other.map(|_| ())),
        }
    };
    assert_eq!(error(json!({"client_secret": null})), "client_secret");
    assert_eq!(error(json!({"username": "u"})), "client_secret");
    assert_eq!(
        error(json!({"client_secret": null, "username": "u"})),
        "private_key"
    );
    assert_eq!(
        error(json!({"client_secret": null, "username": "u", "private_key": "nope"})),
        "private_key"
    );
    assert_eq!(error(json!({"api_version": "45.0"})), "api_version");
    assert_eq!(error(json!({"object": "My Object"})), "object");
    assert_eq!(
        error(json!({"external_id_field": "Ext Id"})),
        "external_id_field"
    );
    assert_eq!(error(json!({"login_url": "nope"})), "login_url");
    // Both flows parse.
    let jwt = json!({"client_id": "c", "username": "u", "private_key": TEST_PRIVATE_KEY_PEM, "object": "Contact", "external_id_field": "Ext__c"});
    assert!(SalesforceDestination::new(&jwt, DeliveryLimits::default()).is_ok());
    assert!(SalesforceDestination::new(&base, DeliveryLimits::default()).is_ok());
}

#[test]
fn jwt_assertion_has_the_documented_claims() {
    let key = auth::parse_private_key(TEST_PRIVATE_KEY_PEM).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let jwt = auth::assertion(&key, "cid", "u@x.io", "https://login.salesforce.com", now).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(
        claims,
        json!({"iss": "cid", "sub": "u@x.io", "aud": "https://login.salesforce.com", "exp": 1_700_000_180u64})
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 256);
    assert_eq!(auth::encode_component("a b+c/é"), "a%20b%2Bc%2F%C3%A9");
}

#[test]
fn records_and_queries_are_encoded() {
    let batch = [
        upsert(
            json!(7),
            json!({"Email": "a@x.io", "Account": {"Ext__c": "A1"}}),
        ),
        upsert(json!(8), json!({"Retl_Id__c": "r-8", "Email": "b@x.io"})),
        upsert(json!(null), json!({"Email": "c@x.io"})),
    ];
    let prepared = actions::prepare_writes("Retl_Id__c", &batch);
    assert_eq!(prepared.sent.len(), 2);
    assert_eq!(prepared.sent[0].1, "7");
    assert_eq!(prepared.sent[1].1, "r-8");
    assert!(
        matches!(&prepared.outcomes[2], Some(RecordOutcome::Rejected { reason }) if reason.contains("the record's key"))
    );
    let record = actions::sobject("Contact", &prepared.sent[0].2, None);
    assert_eq!(
        record,
        json!({"attributes": {"type": "Contact"}, "Email": "a@x.io", "Account": {"Ext__c": "A1"}, "Retl_Id__c": "7"})
    );
    assert_eq!(
        actions::lookup_query("Contact", "Ext__c", &["a'b", "c\\d"]),
        r"SELECT Id, Ext__c FROM Contact WHERE Ext__c IN ('a\'b','c\\d')"
    );
}

#[test]
fn results_and_errors_are_classified() {
    let body = json!([
        {"id": "003A", "success": true, "errors": [], "created": true},
        {"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]},
    ]);
    let outcomes = client::parse_results(body.to_string().as_bytes(), 2, false).unwrap();
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    assert_eq!(
        outcomes[1],
        RecordOutcome::Rejected {
            reason:
                "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)"
                    .to_string()
        }
    );
    let gone = json!([{"success": false, "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted"}]}]);
    assert_eq!(
        client::parse_results(gone.to_string().as_bytes(), 1, true).unwrap(),
        [RecordOutcome::Accepted]
    );
    assert!(matches!(
        &client::parse_results(gone.to_string().as_bytes(), 1, false).unwrap()[0],
        RecordOutcome::Rejected { .. }
    ));
    // A result count that does not match acknowledges nothing.
    assert!(
        client::parse_results(gone.to_string().as_bytes(), 2, true)
            .unwrap()
            .iter()
            .all(|o| matches!(o, RecordOutcome::Rejected { .. }))
    );

    let answer = |status: u16, body: Value| Answer {
        status: StatusCode::from_u16(status).unwrap(),
        headers: HeaderMap::new(),
        body: body.to_string().into_bytes(),
    };
    match client::error(&answer(
        403,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
    )) {
        DestinationError::Transient {
            throttled: true,
            retry_after,
            message,
        } => {
            assert_eq!(retry_after, Some(client::LIMIT_WAIT));
            assert!(message.contains("REQUEST_LIMIT_EXCEEDED"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client::error(&answer(
            403,
            json!([{"message": "no access", "errorCode": "INSUFFICIENT_ACCESS"}])
        )),
        DestinationError::Authentication { .. }
    ));
    assert!(matches!(
        client::error(&answer(400, json!([{"message": "record limit reached", "errorCode": "EXCEEDED_ID_LIMIT"}]))),
        DestinationError::Rejected { message } if message.contains("EXCEEDED_ID_LIMIT")
    ));
}

#[tokio::test]
async fn every_mode_round_trips_and_tokens_are_refreshed() {
    let emu = emulator().await;
    let dest = destination(secret_config(&emu));
    let action = dest.action(spec("upsert_record")).unwrap();
    let batch = [
        upsert(json!(1), json!({"Email": "a@x.io", "LastName": "A"})),
        upsert(json!(2), json!({"Email": "b@x.io", "LastName": "B"})),
    ];
    // update-only: nothing exists yet
    let outcome = action
        .send(&ctx(Some(SyncMode::Update)), &batch)
        .await
        .unwrap();
    assert!(outcome.records.iter().all(
        |o| matches!(o, RecordOutcome::Rejected { reason } if reason.contains("update-only"))
    ));
    // create, then create again: duplicate
    assert_eq!(
        action
            .send(&ctx(Some(SyncMode::Create)), &batch[..1])
            .await
            .unwrap()
            .records,
        [RecordOutcome::Accepted]
    );
    let again = action
        .send(&ctx(Some(SyncMode::Create)), &batch[..1])
        .await
        .unwrap();
    assert!(
        matches!(&again.records[0], RecordOutcome::Rejected { reason } if reason.contains("DUPLICATE_VALUE"))
    );
    // upsert with one record rejected
    emu.reject_keys(["2".to_string()]);
    let outcome = action.send(&ctx(None), &batch).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(
        matches!(&outcome.records[1], RecordOutcome::Rejected { reason } if reason.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"))
    );
    let last = emu.requests().pop().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        (
            "PATCH",
            "/services/data/v62.0/composite/sobjects/Contact/Retl_Id__c"
        )
    );
    assert_eq!(
        last.body,
        json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Contact"}, "Email": "a@x.io", "LastName": "A", "Retl_Id__c": "1"},
            {"attributes": {"type": "Contact"}, "Email": "b@x.io", "LastName": "B", "Retl_Id__c": "2"},
        ]})
    );
    // update by id after a token expiry: one new token, the request sent again
    assert_eq!(emu.tokens_issued(), 1);
    emu.expire_tokens();
    let update = action
        .send(
            &ctx(Some(SyncMode::Update)),
            &[upsert(json!(1), json!({"LastName": "Z"}))],
        )
        .await
        .unwrap();
    assert_eq!(update.records, [RecordOutcome::Accepted]);
    assert_eq!(emu.tokens_issued(), 2);
    let statuses: Vec<u16> = emu
        .requests()
        .iter()
        .rev()
        .take(3)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 200, 200], "token, query retried, update");
    assert!(emu.objects().iter().any(|(_, f)| f["LastName"] == "Z"));
    // delete: one held, one never written; then again: already gone
    let delete = dest.action(spec("delete_record")).unwrap();
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
    assert!(emu.objects().is_empty());
    let outcome = delete
        .send(&ctx(None), &[Payload::delete(json!(1))])
        .await
        .unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
}

#[tokio::test]
async fn jwt_flow_test_and_fields() {
    let emu = emulator().await;
    let dest = destination(
        json!({"login_url": emu.url(), "client_id": CLIENT_ID, "username": "sync@example.com",
        "private_key": TEST_PRIVATE_KEY_PEM, "object": "Contact", "external_id_field": "Retl_Id__c"}),
    );
    let summary = dest.test().await.unwrap();
    assert!(
        summary.contains("/services/data/v62.0/sobjects/Contact/describe"),
        "{summary}"
    );
    let token_request = &emu.requests()[0];
    assert!(
        String::from_utf8_lossy(&token_request.raw_body)
            .contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
    );
    let fields = dest.fields(spec("upsert_record")).await.unwrap();
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_ref()).collect();
    assert_eq!(
        names,
        ["Email", "LastName", "Retl_Id__c"],
        "Id is not writable"
    );
    assert!(fields.iter().all(|f| f.field_type == FieldType::String));
    assert!(fields[2].description.contains("external id"));

    let wrong = destination(
        json!({"login_url": emu.url(), "client_id": CLIENT_ID, "client_secret": "wrong",
        "object": "Contact", "external_id_field": "Retl_Id__c"}),
    );
    match wrong.test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(
                message.contains("invalid_client: invalid client credentials"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}
