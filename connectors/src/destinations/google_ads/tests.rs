//! Google Ads Customer Match tests: config, encoding with hashing, Google's error answers,
//! round-trips against the Data Manager emulator (with its token endpoint).

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::GoogleDataManagerEmulator;
use retl_testkit::emulators::google_oauth::GoogleOAuthOptions;
use serde_json::{Value, json};

use super::actions::{AudienceAction, Encoder, Members};
use super::client;
use super::config::{GoogleAdsConfig, KeyIdentifier};
use super::{GoogleAdsDestination, destination_type};
use crate::destinations::hashing::{DigestEncoding, sha256_hex};
use crate::destinations::http::Answer;

const ACCOUNT: &str = "1234567890";
const AUDIENCE: &str = "9876543210";

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("gads"),
        mapping_id: MappingId::new("buyers"),
        run_id: RunId::new("run-1"),
        sync_mode: None,
        trace: None,
    }
}

fn payload(key: i64, change: ChangeKind, fields: Value) -> Payload {
    Payload {
        key: json!(key),
        change,
        fields: fields.as_object().cloned().unwrap().into(),
        fingerprint: None,
    }
}

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn config(emu: &GoogleDataManagerEmulator) -> Value {
    let key = GoogleOAuthOptions::default().service_account_key_json(&emu.token_uri());
    json!({
        "service_account_key": key,
        "operating_account_id": "123-456-7890",
        "audience_id": AUDIENCE,
        "customer_match_terms_accepted": true,
        "default_phone_country_code": "1",
        "api_url": emu.url(),
    })
}

fn destination(config: &Value) -> GoogleAdsDestination {
    let limits = DeliveryLimits {
        timeout_ms: 5_000,
        ..(destination_type().default_limits)()
    };
    GoogleAdsDestination::new(config, limits).unwrap()
}

fn encoder(key_identifier: Option<KeyIdentifier>) -> Encoder {
    Encoder {
        encoding: DigestEncoding::Hex,
        phone_code: Some("1".to_string()),
        key_identifier,
    }
}

#[tokio::test]
async fn config_validation_and_drift() {
    let emu = GoogleDataManagerEmulator::start(GoogleOAuthOptions::default(), ACCOUNT, AUDIENCE)
        .await
        .unwrap();
    let good = config(&emu);
    let field = |config: Value| match GoogleAdsDestination::new(&config, DeliveryLimits::default())
    {
        Err(DestinationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    assert_eq!(
        field(with("operating_account_id", json!("12-34"))),
        "operating_account_id"
    );
    assert_eq!(
        field(with("login_account_id", json!("abc"))),
        "login_account_id"
    );
    assert_eq!(field(with("audience_id", json!("list 1"))), "audience_id");
    assert_eq!(
        field(with("customer_match_terms_accepted", json!(false))),
        "customer_match_terms_accepted"
    );
    assert_eq!(field(with("encoding", json!("SHA"))), "encoding");
    assert_eq!(
        field(with("unique_id_identifier", json!("id"))),
        "unique_id_identifier"
    );
    assert_eq!(field(with("audience", json!("x"))), "config");
    let valid = serde_json::from_value::<GoogleAdsConfig>(good)
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(valid.operating_account_id, ACCOUNT);
    assert_eq!(
        valid.ingest_url.as_str(),
        format!("{}/v1/audienceMembers:ingest", emu.url())
    );
    retl_engine::config_fields::check_config_fields::<GoogleAdsConfig>(destination_type().config)
        .unwrap();
}

#[test]
fn records_encode_as_members_with_hashed_identifiers() {
    let batch = [
        payload(
            1,
            ChangeKind::Added,
            json!({"email": " Cloudy.SanFrancisco+shopping@gmail.com ", "phone": "(800)555-0100",
                   "ad_user_data_consent": "granted", "ad_personalization_consent": false}),
        ),
        payload(
            2,
            ChangeKind::Updated,
            json!({"first_name": "Dana", "last_name": "O'Brien", "country_code": "us", "postal_code": " 94045 "}),
        ),
        payload(
            3,
            ChangeKind::Added,
            json!({"email": "not-an-email", "first_name": "Ann"}),
        ),
        payload(4, ChangeKind::Deleted, json!({})),
    ];
    let encoded = encoder(None).encode(AudienceAction::Add, &batch);
    assert_eq!(encoded.ingest.rows, [0, 1]);
    assert_eq!(
        encoded.ingest.members[0],
        json!({"userData": {"userIdentifiers": [
            {"emailAddress": "223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4"},
            {"phoneNumber": "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30"},
        ]}, "consent": {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_DENIED"}})
    );
    assert_eq!(
        encoded.ingest.members[1],
        json!({"userData": {"userIdentifiers": [{"address": {
            "givenName": sha256_hex("dana"), "familyName": sha256_hex("obrien"),
            "regionCode": "US", "postalCode": "94045"}}]}})
    );
    let refused: Vec<usize> = encoded.refused.iter().map(|(i, _)| *i).collect();
    assert_eq!(refused, [2, 3]);
    let reason = &encoded.refused[0].1;
    assert!(
        reason.contains("email is not an email address") && reason.contains("address needs"),
        "{reason}"
    );
    assert!(
        !reason.contains("not-an-email"),
        "no personal data in reasons"
    );
    assert!(
        encoded.refused[1].1.contains("unique_id_identifier"),
        "{}",
        encoded.refused[1].1
    );

    // With the unique id as the email, a deleted record is removed by its hashed email.
    let deleted = Payload::delete(json!("Jane.Doe@Example.com"));
    let encoded = encoder(Some(KeyIdentifier::Email)).encode(AudienceAction::Add, &[deleted]);
    assert_eq!(
        encoded.remove.members,
        [
            json!({"userData": {"userIdentifiers": [{"emailAddress": sha256_hex("jane.doe@example.com")}]}})
        ]
    );
    // An existing digest passes through; Base64 re-encodes it.
    let digest = sha256_hex("x@example.com");
    let base64 = Encoder {
        encoding: DigestEncoding::Base64,
        ..encoder(None)
    };
    let encoded = base64.encode(
        AudienceAction::Remove,
        &[payload(
            5,
            ChangeKind::Added,
            json!({"email": digest.to_uppercase(), "ad_user_data_consent": "granted"}),
        )],
    );
    let sent = encoded.remove.members[0]["userData"]["userIdentifiers"][0]["emailAddress"].clone();
    assert_eq!(sent.as_str().map(str::len), Some(44));
    assert!(
        encoded.remove.members[0].get("consent").is_none(),
        "no consent on removal"
    );
    let bad_consent = [payload(
        7,
        ChangeKind::Added,
        json!({"email": "a@b.co", "ad_user_data_consent": "maybe"}),
    )];
    let encoded = encoder(None).encode(AudienceAction::Add, &bad_consent);
    assert!(encoded.refused[0].1.contains("ad_user_data_consent"));
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status: reqwest::StatusCode::from_u16(status).unwrap(),
        headers: reqwest::header::HeaderMap::new(),
        body: body.to_string().into_bytes(),
    }
}

fn google(status: u16, reason: &str, violations: Value) -> Answer {
    answer(
        status,
        json!({"error": {"code": status, "message": "m", "status": "INVALID_ARGUMENT", "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "datamanager.googleapis.com"},
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations},
            {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "req-42"},
        ]}}),
    )
}

#[test]
fn googles_errors_are_classified() {
    assert_eq!(
        client::member_index("audience_members[12].user_data.user_identifiers[0]"),
        Some(12)
    );
    assert_eq!(client::member_index("audienceMembers[3].userData"), Some(3));
    assert_eq!(
        client::member_index("destinations[0].product_destination_id"),
        None
    );
    let members = Members {
        members: vec![json!({}), json!({})],
        rows: vec![4, 9],
    };
    let fast_fail = google(
        400,
        "INVALID_ARGUMENT",
        json!([{"field": "audience_members[1].user_data.user_identifiers[0].email_address", "reason": "INVALID_SHA256_FORMAT", "description": "bad"}]),
    );
    let rejected = client::member_violations(&fast_fail, &members).unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, 9);
    assert!(
        rejected[0].1.contains("INVALID_SHA256_FORMAT"),
        "{}",
        rejected[0].1
    );
    let audience = google(
        400,
        "INVALID_USER_LIST_ID",
        json!([{"field": "destinations[0].product_destination_id"}]),
    );
    assert!(client::member_violations(&audience, &members).is_none());
    match client::error(&audience) {
        DestinationError::InvalidConfig { field, message } => {
            assert_eq!(field, "audience_id");
            assert!(message.contains("req-42"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client::error(&google(400, "TERMS_AND_CONDITIONS_NOT_SIGNED", json!([]))),
        DestinationError::InvalidConfig { field, .. } if field == "customer_match_terms_accepted"
    ));
    assert!(matches!(
        client::error(&google(400, "TOO_MANY_AUDIENCE_MEMBERS", json!([]))),
        DestinationError::PayloadTooLarge { .. }
    ));
    assert!(matches!(
        client::error(&google(403, "PERMISSION_DENIED", json!([]))),
        DestinationError::Authentication { .. }
    ));
    match client::error(&google(429, "RATE_LIMIT_EXCEEDED", json!([]))) {
        DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        } => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(60)));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client::error(&google(503, "INTERNAL_ERROR", json!([]))),
        DestinationError::Transient {
            throttled: false,
            ..
        }
    ));
    assert_eq!(
        client::request_id(&answer(200, json!({"requestId": "abc"}))),
        "abc"
    );
}

#[tokio::test]
async fn ingests_and_removes_against_the_emulator() {
    let emu = GoogleDataManagerEmulator::start(GoogleOAuthOptions::default(), ACCOUNT, AUDIENCE)
        .await
        .unwrap();
    let mut cfg = config(&emu);
    cfg["unique_id_identifier"] = json!("email");
    let dest = destination(&cfg);
    assert!(dest.test().await.unwrap().contains("nothing was changed"));
    assert!(
        emu.members(AUDIENCE).is_empty(),
        "validateOnly writes nothing"
    );
    let add = dest.action(spec("add_to_audience")).unwrap();
    let batch = [
        payload(1, ChangeKind::Added, json!({"email": "a@example.com"})),
        payload(
            2,
            ChangeKind::Added,
            json!({"email": "b@example.com", "phone": "+44 20 7946 0000"}),
        ),
        payload(3, ChangeKind::Added, json!({"email": "c@example.com"})),
    ];
    // Fast-fail: the named member is rejected, the others handed back, then accepted.
    emu.reject_identifiers([sha256_hex("b@example.com")]);
    let outcome = add.send(&ctx(), &batch).await.unwrap();
    assert!(
        matches!(&outcome.records[1], RecordOutcome::Rejected { reason } if reason.contains("INVALID_AUDIENCE_MEMBER"))
    );
    assert!(matches!(outcome.records[0], RecordOutcome::Retry { .. }));
    assert!(emu.members(AUDIENCE).is_empty());
    let outcome = add
        .send(&ctx(), &[batch[0].clone(), batch[2].clone()])
        .await
        .unwrap();
    assert_eq!(
        outcome.records,
        [RecordOutcome::Accepted, RecordOutcome::Accepted]
    );
    let request = emu.requests().last().cloned().unwrap();
    assert_eq!(request.path, "/v1/audienceMembers:ingest");
    assert_eq!(
        request.body["destinations"][0]["operatingAccount"]["accountId"],
        ACCOUNT
    );
    assert_eq!(
        request.body["termsOfService"]["customerMatchTermsOfServiceStatus"],
        "ACCEPTED"
    );
    assert_eq!(request.body["encoding"], "HEX");
    assert_eq!(emu.members(AUDIENCE).len(), 2);
    assert_eq!(emu.oauth().tokens_issued(), 1, "the token is cached");

    // A record that left the model, by its unique id (an email); twice: no error.
    for _ in 0..2 {
        let gone = Payload::delete(json!("A@example.com"));
        let outcome = add.send(&ctx(), &[gone]).await.unwrap();
        assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    }
    assert_eq!(emu.members(AUDIENCE).len(), 1);
    assert_eq!(
        emu.requests().last().unwrap().path,
        "/v1/audienceMembers:remove"
    );

    // An expired token is renewed once.
    emu.oauth().expire_tokens();
    let outcome = add.send(&ctx(), &[batch[0].clone()]).await.unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    assert_eq!(emu.oauth().tokens_issued(), 2);

    // An unknown audience is a config error; the throttle waits.
    let mut unknown = cfg.clone();
    unknown["audience_id"] = json!("111");
    match destination(&unknown).test().await {
        Err(DestinationError::InvalidConfig { field, .. }) => assert_eq!(field, "audience_id"),
        other => panic!("{other:?}"),
    }
    emu.throttle_next(1, 7);
    match add.send(&ctx(), &[batch[0].clone()]).await {
        Err(DestinationError::Transient {
            throttled: true,
            retry_after,
            ..
        }) => {
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(7)));
        }
        other => panic!("{other:?}"),
    }
    emu.set_requests_per_minute(1);
    assert!(matches!(
        add.send(&ctx(), &[batch[0].clone()]).await,
        Err(DestinationError::Transient {
            throttled: true,
            ..
        })
    ));
}
