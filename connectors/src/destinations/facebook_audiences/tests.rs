//! Facebook Custom Audiences tests: config, encoding with hashing, answers, round-trips
//! against the emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::FacebookAudiencesEmulator;
use serde_json::{Value, json};

use super::actions::{self, AudienceAction};
use super::client;
use super::config::FacebookAudiencesConfig;
use super::{FacebookAudiencesDestination, destination_type};
use crate::destinations::hashing::sha256_hex;

const TOKEN: &str = "EAAtesttoken123";
const AUDIENCE: &str = "23850000000000001";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("fb"),
        mapping_id: MappingId::new("buyers"),
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
        fingerprint: None,
    }
}

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn config(url: &str, token: &str) -> Value {
    json!({"access_token": token, "audience_id": AUDIENCE, "api_url": url, "default_phone_country_code": "1"})
}

fn destination(url: &str, token: &str) -> FacebookAudiencesDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    FacebookAudiencesDestination::new(&config(url, token), limits).unwrap()
}

#[test]
fn config_validation_and_drift() {
    let field =
        |config: Value| match FacebookAudiencesDestination::new(&config, DeliveryLimits::default())
        {
            Err(DestinationError::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
    let good = config("https://graph.facebook.com", TOKEN);
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    assert_eq!(field(with("access_token", json!("a b"))), "access_token");
    assert_eq!(field(with("audience_id", json!("act_12"))), "audience_id");
    assert_eq!(field(with("api_version", json!("25"))), "api_version");
    assert_eq!(
        field(with("default_phone_country_code", json!("1a"))),
        "default_phone_country_code"
    );
    assert_eq!(field(with("schema", json!([]))), "config");
    let valid = serde_json::from_value::<FacebookAudiencesConfig>(good)
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(
        valid.users_url.as_str(),
        format!("https://graph.facebook.com/v25.0/{AUDIENCE}/users")
    );
    retl_engine::config_fields::check_config_fields::<FacebookAudiencesConfig>(
        destination_type().config,
    )
    .unwrap();
}

#[test]
fn batches_encode_hashed_identifiers_with_the_key_as_extern_id() {
    let batch = [
        payload(
            1,
            json!({"email": " John_Smith@gmail.com ", "phone": "(650)555-1212"}),
        ),
        payload(
            2,
            json!({"email": "Mary@example.com", "phone": null, "first_name": "Mary"}),
        ),
        payload(3, json!({"email": "not-an-email"})),
    ];
    let encoded = actions::encode(AudienceAction::Add, &batch, Some("1"));
    assert_eq!(
        encoded.payload["schema"],
        json!(["EXTERN_ID", "EMAIL", "PHONE", "FN"])
    );
    assert_eq!(
        encoded.payload["data"],
        json!([
            [
                "1",
                "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f",
                "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176",
                ""
            ],
            [
                "2",
                sha256_hex("mary@example.com"),
                "",
                "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"
            ],
        ])
    );
    assert_eq!(encoded.rows, [0, 1]);
    assert_eq!(encoded.refused.len(), 1);
    assert_eq!(encoded.refused[0].0, 2);
    assert!(
        encoded.refused[0].1.contains("email"),
        "{}",
        encoded.refused[0].1
    );
    assert!(
        !encoded.refused[0].1.contains("not-an-email"),
        "no personal data in errors"
    );
    let deletes = [Payload::delete(json!(7)), Payload::delete(json!("a"))];
    let encoded = actions::encode(AudienceAction::RemoveDeleted, &deletes, None);
    assert_eq!(
        encoded.payload,
        json!({"schema": ["EXTERN_ID"], "data": [["7"], ["a"]]})
    );
}

#[test]
fn invalid_samples_name_rows_and_graph_errors_are_classified() {
    let sent = vec![
        vec!["1".to_string(), "aa".to_string()],
        vec!["2".to_string(), "bb".to_string()],
    ];
    let answer = json!({"num_invalid_entries": 1, "invalid_entry_samples": {"bb": "bad hash"}});
    assert_eq!(
        client::invalid_rows(&answer, &sent),
        [(1, "bad hash".to_string())]
    );
    assert!(client::invalid_rows(&json!({"invalid_entry_samples": {}}), &sent).is_empty());
    let answer = |code: i64| crate::destinations::http::Answer {
        status: reqwest::StatusCode::BAD_REQUEST,
        headers: reqwest::header::HeaderMap::new(),
        body: json!({"error": {"message": "m", "type": "OAuthException", "code": code}})
            .to_string()
            .into_bytes(),
    };
    assert!(matches!(
        client::error(&answer(190)),
        DestinationError::Authentication { .. }
    ));
    assert!(matches!(
        client::error(&answer(80003)),
        DestinationError::Transient {
            throttled: true,
            ..
        }
    ));
    assert!(matches!(
        client::error(&answer(100)),
        DestinationError::Rejected { .. }
    ));
}

#[tokio::test]
async fn adds_and_removes_against_the_emulator() {
    let emu = FacebookAudiencesEmulator::start(TOKEN, AUDIENCE)
        .await
        .unwrap();
    let dest = destination(&emu.url(), TOKEN);
    assert!(dest.test().await.unwrap().contains("Emulated audience"));
    let add = dest.action(spec("add_users")).unwrap();
    let batch = [
        payload(1, json!({"email": "a@example.com"})),
        payload(
            2,
            json!({"email": "b@example.com", "phone": "+44 20 7946 0000"}),
        ),
    ];
    emu.reject_keys(["2".to_string()]);
    let outcome = add.send(&ctx(), &batch).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(
        matches!(&outcome.records[1], RecordOutcome::Rejected { reason } if reason.contains("invalid entry"))
    );
    let members = emu.members();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["EMAIL"], sha256_hex("a@example.com"));
    assert_eq!(members[0]["EXTERN_ID"], "1");
    let request = &emu.requests()[1];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/v25.0/{AUDIENCE}/users"));
    assert_eq!(request.body["session"]["batch_seq"], 1);

    // Removal of the user who left the model, by EXTERN_ID; again: no error.
    let remove = dest.action(spec("remove_deleted_users")).unwrap();
    for _ in 0..2 {
        let outcome = remove
            .send(&ctx(), &[Payload::delete(json!(1))])
            .await
            .unwrap();
        assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    }
    assert!(emu.members().is_empty());

    let wrong = destination(&emu.url(), "EAAwrong");
    match wrong
        .action(spec("add_users"))
        .unwrap()
        .send(&ctx(), &batch)
        .await
    {
        Err(DestinationError::Authentication { message }) => {
            assert!(message.contains("Invalid OAuth access token"), "{message}");
            assert!(!message.contains("EAAwrong"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    emu.throttle_next(1, 120);
    match add.send(&ctx(), &batch).await {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(120)));
        }
        other => panic!("{other:?}"),
    }
}
