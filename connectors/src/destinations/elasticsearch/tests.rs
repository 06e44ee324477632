//! Elasticsearch destination tests: NDJSON encoding, `_bulk` answer parsing, config, and
//! round-trips against the testkit's Elasticsearch emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, Destination, DestinationError, FieldType, Payload, RecordOutcome,
    SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::{ElasticsearchEmulator, ElasticsearchOptions};
use serde_json::{Value, json};

use super::actions::{Operation, bulk_lines};
use super::client::items_of;
use super::{ElasticsearchDestination, destination_type};
use crate::destinations::http::Answer;

const KEY: &str = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn ctx(mode: Option<SyncMode>) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("search"),
        mapping_id: MappingId::new("users"),
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

fn destination(config: Value) -> Result<ElasticsearchDestination, DestinationError> {
    ElasticsearchDestination::new(&config, &(destination_type().default_limits)())
}

fn config(emu: &ElasticsearchEmulator) -> Value {
    json!({"url": emu.url(), "index": "users", "api_key": KEY})
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status: reqwest::StatusCode::from_u16(status).unwrap(),
        headers: reqwest::header::HeaderMap::new(),
        body: body.to_string().into_bytes(),
    }
}

#[test]
fn records_become_bulk_lines_per_sync_mode() {
    let p = upsert(json!(7), json!({"email": "a@example.com", "plan": null}));
    assert_eq!(
        bulk_lines(Operation::Upsert, &p).unwrap(),
        "{\"update\":{\"_id\":\"7\"}}\n{\"doc\":{\"email\":\"a@example.com\",\"plan\":null},\"doc_as_upsert\":true}\n"
    );
    assert_eq!(
        bulk_lines(Operation::Update, &p).unwrap(),
        "{\"update\":{\"_id\":\"7\"}}\n{\"doc\":{\"email\":\"a@example.com\",\"plan\":null}}\n"
    );
    assert_eq!(
        bulk_lines(Operation::Create, &p).unwrap(),
        "{\"create\":{\"_id\":\"7\"}}\n{\"email\":\"a@example.com\",\"plan\":null}\n"
    );
    assert_eq!(
        bulk_lines(Operation::Delete, &Payload::delete(json!("u-1"))).unwrap(),
        "{\"delete\":{\"_id\":\"u-1\"}}\n"
    );
    let long = Payload::delete(json!("x".repeat(513)));
    assert!(
        bulk_lines(Operation::Delete, &long)
            .unwrap_err()
            .contains("512 bytes")
    );
}

#[test]
fn bulk_items_become_outcomes() {
    let body = json!({"took": 3, "errors": true, "items": [
        {"update": {"_id": "1", "status": 200, "result": "updated"}},
        {"update": {"_id": "2", "status": 400, "error": {"type": "document_parsing_exception", "reason": "failed to parse field [seats]"}}},
        {"update": {"_id": "3", "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "rejected execution"}}},
        {"update": {"_id": "4", "status": 201, "result": "created"}}
    ]});
    let outcomes = items_of(&answer(200, body), Operation::Upsert, 4).unwrap();
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    assert!(
        matches!(&outcomes[1], RecordOutcome::Rejected { reason } if reason.contains("document_parsing_exception: failed to parse field [seats]"))
    );
    assert!(matches!(
        &outcomes[2],
        RecordOutcome::Retry { after: None, .. }
    ));
    assert_eq!(outcomes[3], RecordOutcome::Accepted);

    let deletes = json!({"errors": false, "items": [
        {"delete": {"_id": "1", "status": 200, "result": "deleted"}},
        {"delete": {"_id": "2", "status": 404, "result": "not_found"}}
    ]});
    assert_eq!(
        items_of(&answer(200, deletes), Operation::Delete, 2).unwrap(),
        [RecordOutcome::Accepted, RecordOutcome::Accepted],
        "a delete of a missing document is success"
    );

    let short = json!({"errors": false, "items": [{"update": {"_id": "1", "status": 200}}]});
    assert!(items_of(&answer(200, short), Operation::Upsert, 2).is_err());

    let throttled = json!({"error": {"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}, "status": 429});
    match items_of(&answer(429, throttled), Operation::Upsert, 1).unwrap_err() {
        DestinationError::Transient {
            message,
            throttled: true,
            retry_after: None,
        } => assert!(
            message.contains("es_rejected_execution_exception"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    let refused = json!({"error": {"type": "security_exception", "reason": "unable to authenticate with provided credentials"}, "status": 401});
    let error = items_of(&answer(401, refused), Operation::Upsert, 1).unwrap_err();
    assert!(
        matches!(&error, DestinationError::Authentication { message } if message.contains("security_exception: unable to authenticate")),
        "{error}"
    );
    assert!(matches!(
        items_of(&answer(413, Value::Null), Operation::Upsert, 1).unwrap_err(),
        DestinationError::PayloadTooLarge { .. }
    ));
}

#[test]
fn config_errors_name_the_field() {
    let base = json!({"url": "https://es.example.com:9243", "index": "users", "api_key": KEY});
    assert!(destination(base.clone()).is_ok());
    for (change, field) in [
        (json!({"index": "Users"}), "index"),
        (json!({"index": "_users"}), "index"),
        (json!({"index": "a/b"}), "index"),
        (json!({"username": "elastic"}), "api_key"),
        (json!({"api_key": null, "username": "elastic"}), "password"),
        (json!({"url": "es.example.com"}), "url"),
    ] {
        let mut config = base.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                config.as_object_mut().unwrap().remove(k);
            } else {
                config[k] = v.clone();
            }
        }
        match destination(config.clone()) {
            Err(DestinationError::InvalidConfig { field: f, .. }) => {
                assert_eq!(f, field, "{config}")
            }
            other => panic!("{config}: {other:?}"),
        }
    }
    let error = destination(json!({"url": "http://x", "index": "u", "api_key": "secret value"}))
        .unwrap_err()
        .to_string();
    assert!(!error.contains("secret value"), "{error}");
}

#[tokio::test]
async fn a_batch_is_one_bulk_request_with_per_item_outcomes() {
    let emu = ElasticsearchEmulator::start(ElasticsearchOptions::api_key(KEY))
        .await
        .unwrap();
    let dest = destination(config(&emu)).unwrap();
    let message = dest.test().await.unwrap();
    assert!(message.contains("does not exist yet"), "{message}");

    emu.reject_keys(["2".to_string()]);
    emu.busy_keys(["3".to_string()]);
    let action = dest.action(spec("upsert_document")).unwrap();
    let batch = [
        upsert(json!(1), json!({"email": "a@example.com", "seats": 3})),
        upsert(json!(2), json!({"email": "b@example.com", "seats": 4})),
        upsert(json!(3), json!({"email": "c@example.com", "seats": 5})),
    ];
    let outcome = action.send(&ctx(None), &batch).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    assert!(matches!(outcome.records[2], RecordOutcome::Retry { .. }));
    let requests = emu.requests();
    assert_eq!(
        requests.len(),
        2,
        "the test's mapping read and one bulk request"
    );
    assert_eq!(requests[1].path, "/users/_bulk");
    assert_eq!(
        requests[1].header("authorization"),
        Some(format!("ApiKey {KEY}").as_str())
    );
    assert_eq!(
        requests[1].header("content-type"),
        Some("application/x-ndjson")
    );
    assert_eq!(
        emu.document("users", "1").unwrap(),
        *json!({"email": "a@example.com", "seats": 3})
            .as_object()
            .unwrap()
    );

    // Upsert merges: fields not mapped stay.
    emu.clear();
    let again = [upsert(json!(1), json!({"seats": 9}))];
    action.send(&ctx(None), &again).await.unwrap();
    assert_eq!(
        emu.document("users", "1").unwrap(),
        *json!({"email": "a@example.com", "seats": 9})
            .as_object()
            .unwrap()
    );

    // Sync modes create and update refuse what they may not touch.
    let both = [
        upsert(json!(1), json!({"seats": 1})),
        upsert(json!(8), json!({"seats": 8})),
    ];
    let created = action
        .send(&ctx(Some(SyncMode::Create)), &both)
        .await
        .unwrap();
    assert!(
        matches!(&created.records[0], RecordOutcome::Rejected { reason } if reason.contains("exists already"))
    );
    assert_eq!(created.records[1], RecordOutcome::Accepted);
    emu.forget("users", ["8".to_string()]);
    let updated = action
        .send(&ctx(Some(SyncMode::Update)), &both)
        .await
        .unwrap();
    assert_eq!(updated.records[0], RecordOutcome::Accepted);
    assert!(
        matches!(&updated.records[1], RecordOutcome::Rejected { reason } if reason.contains("only changes existing"))
    );

    // Deletes: a missing document is already gone.
    let delete = dest.action(spec("delete_document")).unwrap();
    let outcome = delete
        .send(
            &ctx(None),
            &[Payload::delete(json!(1)), Payload::delete(json!(404))],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.records,
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    assert!(emu.document("users", "1").is_none());

    // The mapping's fields are the upsert action's fields.
    emu.create_index(
        "users",
        json!({"signed_up": {"type": "date"}, "ltv": {"type": "scaled_float"}}),
    );
    let fields = dest.fields(spec("upsert_document")).await.unwrap();
    let types: Vec<(String, FieldType)> = fields
        .iter()
        .map(|f| (f.name.to_string(), f.field_type))
        .collect();
    assert!(
        types.contains(&("signed_up".to_string(), FieldType::Datetime)),
        "{types:?}"
    );
    assert!(
        types.contains(&("ltv".to_string(), FieldType::Number)),
        "{types:?}"
    );
}

#[tokio::test]
async fn refused_credentials_and_oversized_bodies_are_named() {
    let mut options = ElasticsearchOptions::api_key(KEY);
    options.max_content_length = 200;
    let emu = ElasticsearchEmulator::start(options).await.unwrap();
    let mut wrong = config(&emu);
    wrong["api_key"] = json!("d3Jvbmc6a2V5");
    let error = destination(wrong).unwrap().test().await.unwrap_err();
    assert!(
        matches!(&error, DestinationError::Authentication { message } if message.contains("unable to authenticate")),
        "{error}"
    );
    let dest = destination(config(&emu)).unwrap();
    let action = dest.action(spec("upsert_document")).unwrap();
    let big = [upsert(json!(1), json!({"bio": "x".repeat(300)}))];
    assert!(matches!(
        action.send(&ctx(None), &big).await.unwrap_err(),
        DestinationError::PayloadTooLarge { .. }
    ));
    emu.throttle_next(1);
    let small = [upsert(json!(1), json!({"bio": "x"}))];
    assert!(matches!(
        action.send(&ctx(None), &small).await.unwrap_err(),
        DestinationError::Transient {
            throttled: true,
            ..
        }
    ));
    let basic =
        json!({"url": emu.url(), "index": "users", "username": "elastic", "password": "pw"});
    let error = destination(basic).unwrap().test().await.unwrap_err();
    assert!(
        matches!(error, DestinationError::Authentication { .. }),
        "{error}"
    );
}
