//! Segment tests: config validation, message encoding, and round-trips against the emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::SegmentEmulator;
use serde_json::{Value, json};

use super::actions::{self, SegmentAction};
use super::client;
use super::{SegmentDestination, destination_type};

const KEY: &str = "wk0123456789abcdef";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("seg"),
        mapping_id: MappingId::new("users-to-segment"),
        run_id: RunId::new("run-1"),
        sync_mode: None,
        trace: None,
    }
}

fn payload(key: i64, fields: Value, fingerprint: u128) -> Payload {
    Payload {
        key: json!(key),
        change: ChangeKind::Added,
        fields: fields.as_object().cloned().unwrap().into(),
        fingerprint: Some(fingerprint),
    }
}

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn destination(config: Value) -> SegmentDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    SegmentDestination::new(&config, limits).unwrap()
}

fn build_error(config: Value) -> (String, String) {
    match SegmentDestination::new(&config, DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, message }) => (field, message),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn config_validation_names_the_field() {
    assert_eq!(build_error(json!({"write_key": ""})).0, "write_key");
    assert_eq!(build_error(json!({"write_key": "a b"})).0, "write_key");
    assert_eq!(
        build_error(json!({"write_key": KEY, "endpoint": "ftp://x"})).0,
        "endpoint"
    );
    assert_eq!(
        build_error(json!({"write_key": KEY, "settings_endpoint": "nope"})).0,
        "settings_endpoint"
    );
    assert!(
        build_error(json!({"write_key": KEY, "bogus": 1}))
            .1
            .contains("bogus")
    );
    let debug = format!("{:?}", destination(json!({"write_key": KEY})));
    assert!(!debug.contains(KEY), "{debug}");
}

#[test]
fn config_fields_match_the_typed_config() {
    retl_engine::config_fields::check_config_fields::<super::config::SegmentConfig>(
        destination_type().config,
    )
    .unwrap();
}

#[test]
fn catalog_entry() {
    let ty = destination_type();
    let names: Vec<_> = ty.actions.iter().map(|a| a.name).collect();
    assert_eq!(names, ["identify", "track", "group", "page"]);
    for action in ty.actions {
        assert!(
            !action.accepts(ChangeKind::Deleted),
            "no deletes in the Tracking API"
        );
        assert_eq!(
            SegmentAction::from_spec(action).unwrap().message_type(),
            action.name
        );
    }
    assert_eq!(ty.action("track").unwrap().sync_modes, [SyncMode::Add]);
    assert_eq!(
        ty.action("identify").unwrap().sync_modes,
        [SyncMode::Upsert]
    );
    let limits = (ty.default_limits)();
    assert!(limits.max_batch_bytes < client::MAX_REQUEST_BYTES);
}

#[test]
fn identify_uses_the_key_as_user_id_and_open_fields_as_traits() {
    let p = payload(42, json!({"email": "a@example.com", "plan": "pro"}), 1);
    let m = actions::message(SegmentAction::Identify, spec("identify"), &p, "mid").unwrap();
    assert_eq!(
        m,
        json!({"type": "identify", "messageId": "mid", "userId": "42",
               "traits": {"email": "a@example.com", "plan": "pro"}})
    );
}

#[test]
fn track_group_page_shapes() {
    let p = payload(
        1,
        json!({"user_id": "u1", "event": "Order Completed", "revenue": 9.5,
               "properties": {"currency": "EUR"}, "timestamp": 1_700_000_000,
               "context": {"ip": "1.2.3.4"}}),
        1,
    );
    let m = actions::message(SegmentAction::Track, spec("track"), &p, "m1").unwrap();
    assert_eq!(
        m,
        json!({"type": "track", "messageId": "m1", "userId": "u1", "event": "Order Completed",
               "properties": {"currency": "EUR", "revenue": 9.5},
               "timestamp": "2023-11-14T22:13:20.000Z", "context": {"ip": "1.2.3.4"}})
    );
    let p = payload(
        1,
        json!({"anonymous_id": "anon", "group_id": 77, "name": "Acme"}),
        1,
    );
    let m = actions::message(SegmentAction::Group, spec("group"), &p, "m2").unwrap();
    assert_eq!(
        m,
        json!({"type": "group", "messageId": "m2", "anonymousId": "anon", "groupId": "77",
               "traits": {"name": "Acme"}})
    );
    let p = payload(5, json!({"name": "Pricing", "path": "/pricing"}), 1);
    let m = actions::message(SegmentAction::Page, spec("page"), &p, "m3").unwrap();
    assert_eq!(
        m,
        json!({"type": "page", "messageId": "m3", "userId": "5", "name": "Pricing",
               "properties": {"path": "/pricing"}})
    );
}

#[test]
fn records_without_identity_or_required_fields_are_rejected() {
    let p = payload(1, json!({"user_id": null}), 1);
    let e = actions::message(SegmentAction::Identify, spec("identify"), &p, "m").unwrap_err();
    assert!(e.contains("userId or an anonymousId"), "{e}");
    let p = payload(1, json!({"anonymous_id": null}), 1);
    assert!(actions::message(SegmentAction::Identify, spec("identify"), &p, "m").is_err());
    let p = payload(1, json!({"event": null}), 1);
    let e = actions::message(SegmentAction::Track, spec("track"), &p, "m").unwrap_err();
    assert!(e.contains("'event'"), "{e}");
    let p = payload(1, json!({"traits": [1]}), 1);
    assert!(actions::message(SegmentAction::Identify, spec("identify"), &p, "m").is_err());
}

#[test]
fn message_ids_are_the_idempotency_keys_and_big_messages_stay_home() {
    let ctx = ctx();
    let batch = vec![
        payload(1, json!({"plan": "pro"}), 10),
        payload(2, json!({"plan": "x".repeat(40 * 1024)}), 11),
        payload(1, json!({"plan": "pro"}), 10),
    ];
    let (messages, outcomes) =
        client::encode(SegmentAction::Identify, spec("identify"), &ctx, &batch);
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[0].1["messageId"],
        json!(ctx.idempotency_key(&batch[0]))
    );
    assert_eq!(messages[0].1["messageId"], messages[1].1["messageId"]);
    assert_eq!(messages[0].1["messageId"].as_str().unwrap().len(), 32);
    match &outcomes[1] {
        RecordOutcome::Rejected { reason } => assert!(reason.contains("32 KB"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_batch_round_trip_with_basic_auth() {
    let emu = SegmentEmulator::start(KEY).await.unwrap();
    let destination = destination(json!({"write_key": KEY, "endpoint": emu.url()}));
    let action = destination.action(spec("identify")).unwrap();
    let batch = vec![
        payload(1, json!({"email": "a@x.io"}), 1),
        payload(2, json!({"user_id": null}), 2),
        payload(3, json!({"email": "c@x.io"}), 3),
    ];
    let outcome = action.send(&ctx(), &batch).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    assert_eq!(outcome.records[2], RecordOutcome::Accepted);
    let messages = emu.messages();
    let keys: Vec<_> = messages.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["1", "3"]);
    assert!(emu.dropped().is_empty(), "{:?}", emu.dropped());
    let request = &emu.requests()[0];
    assert_eq!(request.path, "/v1/batch");
    assert_eq!(request.body["batch"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn throttling_and_failures_are_transient() {
    let emu = SegmentEmulator::start(KEY).await.unwrap();
    let destination = destination(json!({"write_key": KEY, "endpoint": emu.url()}));
    let action = destination.action(spec("track")).unwrap();
    let batch = vec![payload(1, json!({"event": "E"}), 1)];
    emu.throttle_next(1, 3);
    match action.send(&ctx(), &batch).await {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after: Some(after),
            ..
        }) => assert_eq!(after.as_secs(), 3),
        other => panic!("{other:?}"),
    }
    emu.fail_everything();
    assert!(matches!(
        action.send(&ctx(), &batch).await,
        Err(DestinationError::Transient {
            throttled: false,
            ..
        })
    ));
    assert!(emu.messages().is_empty());
}

#[tokio::test]
async fn test_checks_the_write_key_with_the_settings_document() {
    let emu = SegmentEmulator::start(KEY).await.unwrap();
    let config = |key: &str| json!({"write_key": key, "endpoint": emu.url(), "settings_endpoint": emu.url()});
    let summary = destination(config(KEY)).test().await.unwrap();
    assert!(summary.contains("knows the write key"), "{summary}");
    match destination(config("wrongkey")).test().await {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("404"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // No settings endpoint for a custom collector: said, not hidden.
    let summary = destination(json!({"write_key": "wrongkey", "endpoint": emu.url()}))
        .test()
        .await
        .unwrap();
    assert!(summary.contains("not checked"), "{summary}");
    assert!(emu.messages().is_empty() && emu.dropped().is_empty());
}
