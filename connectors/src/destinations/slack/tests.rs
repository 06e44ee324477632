//! Slack tests: config, encoding, classification, round-trips against the emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, ExchangeLog,
    Payload, RecordOutcome, SyncMode,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::{SlackEmulator, SlackWebhook};
use serde_json::{Value, json};

use super::actions;
use super::{SlackDestination, destination_type};

const TOKEN: &str = "XXXXsecretTOKEN123";

fn webhook() -> SlackWebhook {
    SlackWebhook {
        team: "T0001".into(),
        app: "B0002".into(),
        token: TOKEN.into(),
    }
}

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("slack"),
        mapping_id: MappingId::new("alerts"),
        run_id: RunId::new("run-1"),
        sync_mode: Some(SyncMode::Add),
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

fn spec() -> &'static ActionSpec {
    destination_type().action("send_message").unwrap()
}

fn slack_destination(url: &str) -> SlackDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    SlackDestination::new(&json!({ "webhook_url": url }), limits).unwrap()
}

#[test]
fn config_validation_checks_the_url_shape_without_quoting_it() {
    let error = |url: &str| match SlackDestination::new(
        &json!({ "webhook_url": url }),
        DeliveryLimits::default(),
    ) {
        Err(DestinationError::InvalidConfig { field, message }) => {
            assert!(!message.contains("SECRET"), "{message}");
            (field, message)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(error("not a url SECRET").0, "webhook_url");
    assert!(
        error("http://hooks.slack.com/services/T1/B2/SECRET")
            .1
            .contains("https")
    );
    assert!(
        error("https://example.com/services/T1/B2/SECRET")
            .1
            .contains("hooks.slack.com")
    );
    assert!(
        error("https://hooks.slack.com/services/T1/SECRET")
            .1
            .contains("path")
    );
    assert!(
        error("https://hooks.slack.com/triggers/T1/123/SECRET")
            .1
            .contains("Workflow")
    );
    assert!(
        error("https://hooks.slack.com/services/T1/B2/SECRET?x=1")
            .1
            .contains("query")
    );
    assert!(matches!(
        SlackDestination::new(
            &json!({"webhook_url": "x", "channel": "#a"}),
            DeliveryLimits::default()
        ),
        Err(DestinationError::InvalidConfig { .. })
    ));
    for ok in [
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "https://hooks.slack-gov.com/services/T1/B2/abc",
        "http://127.0.0.1:8080/services/T1/B2/abc",
    ] {
        SlackDestination::new(&json!({ "webhook_url": ok }), DeliveryLimits::default()).unwrap();
    }
    retl_engine::config_fields::check_config_fields::<super::config::SlackConfig>(
        destination_type().config,
    )
    .unwrap();
}

#[test]
fn a_record_is_text_and_optional_blocks() {
    let block = json!({"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}});
    assert_eq!(
        actions::message(&payload(1, json!({"text": "a@x.io is on pro"}))).unwrap(),
        json!({"text": "a@x.io is on pro"})
    );
    assert_eq!(
        actions::message(&payload(1, json!({"text": "hi", "blocks": [block]}))).unwrap(),
        json!({"text": "hi", "blocks": [block]})
    );
    let as_text = json!({"text": "hi", "blocks": json!([block]).to_string()});
    assert_eq!(
        actions::message(&payload(1, as_text)).unwrap()["blocks"],
        json!([block])
    );
    let rejected = |fields: Value| actions::message(&payload(1, fields)).unwrap_err();
    assert!(rejected(json!({"text": ""})).contains("'text'"));
    assert!(rejected(json!({"text": null})).contains("'text'"));
    assert!(rejected(json!({"text": "x".repeat(40_001)})).contains("40000"));
    assert!(rejected(json!({"text": "hi", "blocks": {"type": "section"}})).contains("array"));
    assert!(rejected(json!({"text": "hi", "blocks": "[nope"})).contains("not JSON"));
    assert!(rejected(json!({"text": "hi", "blocks": [1]})).contains("not a block"));
    let many = Value::Array(vec![block; 51]);
    assert!(rejected(json!({"text": "hi", "blocks": many})).contains("at most 50"));
}

#[tokio::test]
async fn messages_are_posted_one_per_request_and_errors_classified() {
    let emu = SlackEmulator::start(webhook()).await.unwrap();
    let destination = slack_destination(&emu.url());
    assert!(
        destination
            .test()
            .await
            .unwrap()
            .contains("nothing was sent")
    );
    assert!(!destination.test().await.unwrap().contains(TOKEN));
    assert!(emu.requests().is_empty());
    let action = destination.action(spec()).unwrap();
    let outcome = action
        .send(&ctx(), &[payload(1, json!({"text": "hello"}))])
        .await
        .unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted]);
    assert_eq!(emu.messages()[0].body, json!({"text": "hello"}));

    // More than one record: too large, nothing sent (the engine halves the batch).
    let two = [
        payload(2, json!({"text": "a"})),
        payload(3, json!({"text": "b"})),
    ];
    assert!(matches!(
        action.send(&ctx(), &two).await,
        Err(DestinationError::PayloadTooLarge { .. })
    ));
    // An invalid record: rejected, nothing sent.
    let outcome = action
        .send(&ctx(), &[payload(4, json!({"text": null}))])
        .await
        .unwrap();
    assert!(matches!(outcome.records[0], RecordOutcome::Rejected { .. }));
    assert_eq!(emu.requests().len(), 1);

    emu.reject_texts(["bad".to_string()]);
    match &action
        .send(&ctx(), &[payload(5, json!({"text": "bad one"}))])
        .await
        .unwrap()
        .records[0]
    {
        RecordOutcome::Rejected { reason } => {
            assert!(reason.contains("invalid_payload"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    emu.throttle_next(1, 3);
    match action
        .send(&ctx(), &[payload(6, json!({"text": "x"}))])
        .await
    {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => assert_eq!(retry_after, Some(std::time::Duration::from_secs(3))),
        other => panic!("{other:?}"),
    }
    emu.archive_channel();
    match action
        .send(&ctx(), &[payload(7, json!({"text": "x"}))])
        .await
    {
        Err(DestinationError::InvalidConfig { field, message }) => {
            assert_eq!(field, "webhook_url");
            assert!(message.contains("channel_is_archived"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    emu.clear();
    let wrong = slack_destination(&emu.url_with_token("wrongTOKEN9"));
    match wrong
        .action(spec())
        .unwrap()
        .send(&ctx(), &[payload(8, json!({"text": "x"}))])
        .await
    {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("invalid_token"), "{message}");
            assert!(!message.contains("wrongTOKEN9"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.messages().is_empty());
}

#[tokio::test]
async fn the_emulator_enforces_the_rate_and_a_trace_hides_the_token() {
    let emu = SlackEmulator::start(webhook()).await.unwrap();
    emu.enforce_rate(2);
    let action = slack_destination(&emu.url()).action(spec()).unwrap();
    let log = ExchangeLog::new();
    let mut traced = ctx();
    traced.trace = Some(log.clone());
    for key in 1..=2 {
        action
            .send(&traced, &[payload(key, json!({"text": "burst"}))])
            .await
            .unwrap();
    }
    assert!(matches!(
        action
            .send(&ctx(), &[payload(3, json!({"text": "x"}))])
            .await,
        Err(DestinationError::Transient {
            throttled: true,
            ..
        })
    ));
    let exchanges = log.exchanges();
    assert_eq!(exchanges.len(), 2);
    assert!(!format!("{exchanges:?}").contains(TOKEN));
    assert!(
        exchanges[0]
            .request
            .ends_with("/services/T0001/B0002/<redacted>")
    );
    assert_eq!(exchanges[0].request_body, json!({"text": "burst"}));
}
