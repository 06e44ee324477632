//! Mailchimp tests: config, the subscriber hash, encoding, answer parsing, round-trips
//! against the emulator.

use std::time::Duration;

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::MailchimpEmulator;
use serde_json::{Value, json};

use super::actions;
use super::client;
use super::{MailchimpDestination, destination_type};
use crate::destinations::http::Answer;

const KEY: &str = "0123456789abcdef0123456789abcdef-us6";
const LIST: &str = "a1b2c3d4e5";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("mailchimp"),
        mapping_id: MappingId::new("members"),
        run_id: RunId::new("run-1"),
        sync_mode: None,
        trace: None,
    }
}

fn payload(key: Value, fields: Value) -> Payload {
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

fn destination(url: &str, key: &str) -> MailchimpDestination {
    let limits = DeliveryLimits {
        timeout_ms: 5_000,
        ..(destination_type().default_limits)()
    };
    MailchimpDestination::new(
        &json!({"api_key": key, "list_id": LIST, "endpoint": url}),
        &limits,
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
fn config_validation_and_drift() {
    let error = |config: Value| match MailchimpDestination::new(&config, &DeliveryLimits::default())
    {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        error(json!({"api_key": "nodatacenter", "list_id": LIST})),
        "api_key"
    );
    assert_eq!(
        error(json!({"api_key": "abc-", "list_id": LIST})),
        "api_key"
    );
    assert_eq!(error(json!({"api_key": KEY, "list_id": "a b"})), "list_id");
    assert_eq!(
        error(json!({"api_key": KEY, "list_id": LIST, "status_if_new": "maybe"})),
        "status_if_new"
    );
    assert_eq!(error(json!({"api_key": KEY})), "config");
    let config: super::config::MailchimpConfig =
        serde_json::from_value(json!({"api_key": KEY, "list_id": LIST})).unwrap();
    let valid = config.validate().unwrap();
    assert_eq!(
        valid.list_url.as_str(),
        "https://us6.api.mailchimp.com/3.0/lists/a1b2c3d4e5"
    );
    assert_eq!(valid.status_if_new, "subscribed");
    retl_engine::config_fields::check_config_fields::<super::config::MailchimpConfig>(
        destination_type().config,
    )
    .unwrap();
    let debug = format!("{:?}", destination("https://us6.api.mailchimp.com", KEY));
    assert!(!debug.contains(KEY), "{debug}");
}

#[test]
fn subscriber_hash_is_md5_of_the_lowercase_email() {
    // RFC 1321 test vectors.
    assert_eq!(
        actions::subscriber_hash(""),
        "d41d8cd98f00b204e9800998ecf8427e"
    );
    assert_eq!(
        actions::subscriber_hash("abc"),
        "900150983cd24fb0d6963f7d28e17f72"
    );
    assert_eq!(
        actions::subscriber_hash("Urist.McVankab@FreddiesJokes.com"),
        "62eeb292278cc15f5817cb78f7790b08"
    );
    assert_eq!(
        actions::archive_hash(&Payload::delete(json!("urist.mcvankab@freddiesjokes.com"))).unwrap(),
        "62eeb292278cc15f5817cb78f7790b08"
    );
    assert!(actions::archive_hash(&Payload::delete(json!(5))).is_err());
}

#[test]
fn members_encode() {
    let p = payload(
        json!(5),
        json!({"email": "A@x.io", "FNAME": "Ada", "status": "pending"}),
    );
    let (member, email) = actions::member(spec("upsert_member"), &p, "subscribed").unwrap();
    assert_eq!(
        member,
        json!({"email_address": "A@x.io", "status_if_new": "subscribed", "status": "pending",
               "merge_fields": {"FNAME": "Ada"}})
    );
    assert_eq!(email, "a@x.io");
    let p = payload(json!(5), json!({"email": "a@x.io", "status": "gone"}));
    assert!(actions::member(spec("upsert_member"), &p, "subscribed").is_err());
}

#[test]
fn batch_errors_map_to_members() {
    let body = json!({"new_members": [], "updated_members": [],
        "errors": [{"email_address": "B@x.io", "error": "Invalid email", "field": "email_address", "field_message": "bad"}],
        "error_count": 1});
    let outcomes =
        client::batch_outcomes(&answer(200, body), &["a@x.io".into(), "b@x.io".into()]).unwrap();
    assert_eq!(outcomes[0], RecordOutcome::Accepted);
    assert!(
        matches!(&outcomes[1], RecordOutcome::Rejected { reason } if reason.contains("Invalid email"))
    );
    let unnamed = json!({"errors": [], "error_count": 1});
    assert!(matches!(
        client::batch_outcomes(&answer(200, unnamed), &["a@x.io".into()]).unwrap()[0],
        RecordOutcome::Retry { .. }
    ));
    match client::batch_outcomes(&answer(429, json!({"title": "Too Many Requests"})), &[]) {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => assert_eq!(retry_after, Some(Duration::from_secs(1))),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client::batch_outcomes(&answer(401, json!({"title": "API Key Invalid"})), &[]),
        Err(DestinationError::Authentication { .. })
    ));
}

#[tokio::test]
async fn upsert_and_archive_round_trip() {
    let emu = MailchimpEmulator::start(KEY, LIST).await.unwrap();
    let destination = destination(&emu.url(), KEY);
    emu.reject_emails(["u2@x.io".to_string()]);
    let upsert = destination.action(spec("upsert_member")).unwrap();
    let batch: Vec<Payload> = (1..=3)
        .map(|k| {
            payload(
                json!(k),
                json!({"email": format!("U{k}@x.io"), "PLAN": "pro"}),
            )
        })
        .collect();
    let outcome = upsert.send(&ctx(), &batch).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    assert_eq!(outcome.records[2], RecordOutcome::Accepted);
    let member = emu.member("u3@x.io").unwrap();
    assert_eq!(member["merge_fields"]["PLAN"], "pro");
    assert_eq!(member["status"], "subscribed");
    let archive = destination.action(spec("archive_member")).unwrap();
    let gone = [
        Payload::delete(json!("U1@x.io")),
        Payload::delete(json!("nobody@x.io")),
        Payload::delete(json!(4)),
    ];
    let outcome = archive.send(&ctx(), &gone).await.unwrap();
    assert_eq!(
        outcome.records[..2],
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    assert!(matches!(outcome.records[2], RecordOutcome::Rejected { .. }));
    assert!(emu.member("u1@x.io").is_none());
    assert_eq!(emu.archived(), ["u1@x.io"]);
    let request = &emu.requests()[0];
    assert_eq!(request.basic_user().as_deref(), Some("retl"));
    let archived = &emu.requests()[1];
    assert_eq!(
        archived.path,
        format!(
            "/3.0/lists/{LIST}/members/{}",
            actions::subscriber_hash("u1@x.io")
        )
    );
}

#[tokio::test]
async fn test_checks_the_key_without_writing() {
    let emu = MailchimpEmulator::start(KEY, LIST).await.unwrap();
    assert!(
        destination(&emu.url(), KEY)
            .test()
            .await
            .unwrap()
            .contains("accepted")
    );
    match destination(&emu.url(), "ffffffffffffffffffffffffffffffff-us6")
        .test()
        .await
    {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("API Key Invalid"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.upserted().is_empty());
}
