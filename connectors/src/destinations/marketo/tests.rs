//! Marketo tests: config, encoding, answer parsing, round-trips against the emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::MarketoEmulator;
use serde_json::{Value, json};

use super::actions;
use super::client;
use super::config::{CONFIG_FIELDS, MarketoConfig};
use super::{MarketoDestination, destination_type};

const CLIENT_ID: &str = "client-1";
const SECRET: &str = "s3cr3t-marketo-client";

fn ctx(mode: Option<SyncMode>) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("marketo"),
        mapping_id: MappingId::new("leads"),
        run_id: RunId::new("run-1"),
        sync_mode: mode,
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

fn destination(url: &str, secret: &str) -> MarketoDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    MarketoDestination::new(
        &json!({"base_url": url, "client_id": CLIENT_ID, "client_secret": secret}),
        limits,
    )
    .unwrap()
}

#[test]
fn config_validation_and_drift() {
    retl_engine::config_fields::check_config_fields::<MarketoConfig>(CONFIG_FIELDS).unwrap();
    assert!(
        CONFIG_FIELDS
            .iter()
            .any(|f| f.name == "client_secret" && f.secret)
    );
    let error = |config: Value| match MarketoDestination::new(&config, DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let config = |url: &str, id: &str, secret: &str| json!({"base_url": url, "client_id": id, "client_secret": secret});
    assert_eq!(error(config("x", "a", "b")), "base_url");
    assert_eq!(
        error(config("https://1-A-2.mktorest.com/rest", "a", "b")),
        "base_url"
    );
    assert_eq!(
        error(config("https://1-A-2.mktorest.com", " ", "b")),
        "client_id"
    );
    assert_eq!(
        error(config("https://1-A-2.mktorest.com", "a", "")),
        "client_secret"
    );
    let mut bad = config("https://1-A-2.mktorest.com", "a", "b");
    bad["lookup_field"] = json!("e-mail");
    assert_eq!(error(bad), "lookup_field");
    let ok = destination("https://1-A-2.mktorest.com", SECRET);
    assert!(!format!("{ok:?}").contains(SECRET));
}

#[test]
fn leads_encode_and_results_map_to_records() {
    let lead = actions::lead(
        "email",
        &added(1, json!({"id": "a@x.io", "firstName": "Ann"})),
    )
    .unwrap();
    assert_eq!(lead, json!({"firstName": "Ann", "email": "a@x.io"}));
    let lead = actions::lead("retlId", &added(7, json!({"email": "b@x.io"}))).unwrap();
    assert_eq!(lead, json!({"email": "b@x.io", "retlId": "7"}));
    assert!(actions::lead("email", &added(1, json!({"tags": ["a"]}))).is_err());
    assert!(actions::lead("email", &added(1, json!({"id": "a,b"}))).is_err());
    assert_eq!(actions::sync_action(Some(SyncMode::Update)), "updateOnly");
    assert_eq!(actions::sync_action(Some(SyncMode::Create)), "createOnly");
    assert_eq!(actions::sync_action(None), "createOrUpdate");
    let body = json!({"success": true, "result": [
        {"id": 1, "status": "created"},
        {"status": "skipped", "reasons": [{"code": "1006", "message": "Field 'x' not found"}]},
        {"id": 2, "status": "updated"},
    ]});
    let outcomes = client::sync_outcomes(&body, 3);
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    assert_eq!(
        outcomes[1],
        RecordOutcome::Rejected {
            reason: "Marketo skipped: 1006: Field 'x' not found".into()
        }
    );
    assert_eq!(outcomes[2], RecordOutcome::Accepted);
    assert!(
        client::sync_outcomes(&body, 2)
            .iter()
            .all(|o| matches!(o, RecordOutcome::Rejected { .. }))
    );
    let deleted = json!({"success": true, "result": [
        {"id": 1, "status": "deleted"},
        {"id": 2, "status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]},
        {"id": 3, "status": "skipped", "reasons": [{"code": "1007", "message": "Multiple leads"}]},
    ]});
    let outcomes = client::delete_outcomes(&deleted, 3);
    assert_eq!(
        outcomes[..2],
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    assert!(matches!(outcomes[2], RecordOutcome::Rejected { .. }));
}

#[tokio::test]
async fn leads_round_trip_with_token_renewal_and_throttling() {
    let emu = MarketoEmulator::start(CLIENT_ID, SECRET).await.unwrap();
    let dest = destination(&emu.base_url(), SECRET);
    let upsert = dest.action(spec("upsert_lead")).unwrap();
    emu.reject_keys(["c@x.io".to_string()]);
    let batch = [
        added(1, json!({"id": "a@x.io", "firstName": "Ann"})),
        added(2, json!({"id": "b@x.io"})),
        added(3, json!({"id": "c@x.io"})),
    ];
    let outcome = upsert.send(&ctx(None), &batch).await.unwrap();
    assert_eq!(
        outcome.records[..2],
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    assert!(
        matches!(&outcome.records[2], RecordOutcome::Rejected { reason } if reason.contains("1006"))
    );
    // createOnly skips an existing lead
    let outcome = upsert
        .send(&ctx(Some(SyncMode::Create)), &batch[..1])
        .await
        .unwrap();
    assert!(
        matches!(&outcome.records[0], RecordOutcome::Rejected { reason } if reason.contains("1005"))
    );
    // an expired token is renewed once, the call sent again
    emu.expire_tokens();
    let outcome = upsert.send(&ctx(None), &batch[1..2]).await.unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    let identity = emu
        .requests()
        .iter()
        .filter(|r| r.path == "/identity/oauth/token")
        .count();
    assert_eq!(identity, 2, "one token, then one renewal");
    // 606 is throttling with the 20-second window as the wait
    emu.throttle_next(1);
    match upsert.send(&ctx(None), &batch[..1]).await {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => assert_eq!(retry_after, Some(client::RATE_WINDOW)),
        other => panic!("{other:?}"),
    }
    // deletes: one held, one never written
    let delete = dest.action(spec("delete_lead")).unwrap();
    let outcome = delete
        .send(
            &ctx(None),
            &[
                Payload::delete(json!("a@x.io")),
                Payload::delete(json!("zz@x.io")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.records,
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    assert!(emu.lead("email", "a@x.io").is_none());
    assert!(emu.lead("email", "b@x.io").is_some());
    let too_many: Vec<Payload> = (0..301).map(|k| added(k, json!({}))).collect();
    assert!(matches!(
        upsert.send(&ctx(None), &too_many).await,
        Err(DestinationError::PayloadTooLarge { .. })
    ));
}

#[tokio::test]
async fn test_checks_the_credentials() {
    let emu = MarketoEmulator::start(CLIENT_ID, SECRET).await.unwrap();
    let summary = destination(&emu.base_url(), SECRET).test().await.unwrap();
    assert!(summary.contains("API calls today"), "{summary}");
    match destination(&emu.base_url(), "wrong").test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("Bad client credentials"), "{message}");
            assert!(!message.contains("wrong"));
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.writes().is_empty());
}
