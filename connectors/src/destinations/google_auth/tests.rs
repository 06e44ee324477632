//! Unit tests of `google_auth`: the JWT, the credential fields, the cache and the token
//! endpoint's errors (against `retl_testkit::emulators::google_oauth`).

use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use retl_engine::destination::DestinationError;
use retl_engine::secret::Secret;
use retl_testkit::emulators::google_oauth::{
    GoogleOAuthEmulator, GoogleOAuthOptions, TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM,
};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};

use super::credentials::parse_private_key;
use super::*;

const SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";

fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn segment(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn jwt_has_the_documented_header_and_claims_and_verifies() {
    let key = parse_private_key(TEST_PRIVATE_KEY_PEM).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let jwt = assertion(
        &key,
        "sa@p.iam.gserviceaccount.com",
        SCOPE,
        DEFAULT_TOKEN_URI,
        now,
    )
    .unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(segment(parts[0]), json!({"alg": "RS256", "typ": "JWT"}));
    assert_eq!(
        segment(parts[1]),
        json!({
            "iss": "sa@p.iam.gserviceaccount.com",
            "scope": SCOPE,
            "aud": "https://oauth2.googleapis.com/token",
            "iat": 1_700_000_000u64,
            "exp": 1_700_003_600u64,
        })
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    // With the committed public key and with ring's view of the key pair's public half.
    for public in [der(TEST_PUBLIC_KEY_PEM), key.public().as_ref().to_vec()] {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
            .verify(signed.as_bytes(), &signature)
            .unwrap();
    }
    let tampered = signed.replace(parts[1], &URL_SAFE_NO_PAD.encode(b"{\"iss\":\"x\"}"));
    assert!(
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der(TEST_PUBLIC_KEY_PEM))
            .verify(tampered.as_bytes(), &signature)
            .is_err()
    );
}

fn field_of(error: DestinationError) -> (String, String) {
    match error {
        DestinationError::InvalidConfig { field, message } => (field, message),
        other => panic!("{other:?}"),
    }
}

#[test]
fn credential_fields_name_what_is_missing_or_conflicting() {
    let secret = Secret::new("s3cr3t");
    let (field, message) =
        field_of(GoogleCredentials::from_fields(CredentialFields::default()).unwrap_err());
    assert_eq!(field, "service_account_key");
    assert!(message.contains("refresh_token"), "{message}");
    let both = CredentialFields {
        service_account_key: Some(&secret),
        refresh_token: Some(&secret),
        ..CredentialFields::default()
    };
    let (field, message) = field_of(GoogleCredentials::from_fields(both).unwrap_err());
    assert_eq!(field, "service_account_key");
    assert!(message.contains("not both"), "{message}");
    let partial = CredentialFields {
        client_id: Some("id.apps.googleusercontent.com"),
        refresh_token: Some(&secret),
        ..CredentialFields::default()
    };
    assert_eq!(
        field_of(GoogleCredentials::from_fields(partial).unwrap_err()).0,
        "client_secret"
    );
    let full = CredentialFields {
        client_id: Some("id.apps.googleusercontent.com"),
        client_secret: Some(&secret),
        refresh_token: Some(&secret),
        ..CredentialFields::default()
    };
    let credentials = GoogleCredentials::from_fields(full).unwrap();
    assert!(!format!("{credentials:?}").contains("s3cr3t"));
    let valid = credentials.validate(None).unwrap();
    assert_eq!(valid.token_uri.as_str(), DEFAULT_TOKEN_URI);
    assert!(!format!("{valid:?}").contains("s3cr3t"));
}

fn service_account(key_json: &str) -> GoogleCredentials {
    GoogleCredentials::ServiceAccount {
        key_json: Secret::new(key_json),
    }
}

#[test]
fn key_files_are_checked_without_quoting_them() {
    let options = GoogleOAuthOptions::default();
    let file = options.service_account_key_json("https://file.example/token");
    let valid = service_account(&file).validate(None).unwrap();
    assert_eq!(valid.token_uri.as_str(), "https://file.example/token");
    let valid = service_account(&file)
        .validate(Some("http://127.0.0.1:9/token"))
        .unwrap();
    assert_eq!(valid.token_uri.as_str(), "http://127.0.0.1:9/token");
    assert!(!format!("{valid:?}").contains("PRIVATE KEY"));

    let cut = &file[..file.len() / 2];
    let (field, message) = field_of(service_account(cut).validate(None).unwrap_err());
    assert_eq!(field, "service_account_key");
    assert!(message.contains("line 1"), "{message}");
    assert!(!message.contains("MII"), "{message}");

    let user = json!({"type": "authorized_user", "client_id": "a", "client_secret": "b", "refresh_token": "c"});
    let (_, message) = field_of(
        service_account(&user.to_string())
            .validate(None)
            .unwrap_err(),
    );
    assert!(
        message.contains("client_id, client_secret and refresh_token"),
        "{message}"
    );

    let mut broken: Value = serde_json::from_str(&file).unwrap();
    broken["private_key"] =
        json!("-----BEGIN PRIVATE KEY-----\nMIIBroken\n-----END PRIVATE KEY-----\n");
    let (_, message) = field_of(
        service_account(&broken.to_string())
            .validate(None)
            .unwrap_err(),
    );
    assert!(message.contains("private_key is not"), "{message}");
    assert!(!message.contains("MIIBroken"), "{message}");

    let (field, _) = field_of(
        service_account(&file)
            .validate(Some("ftp://x"))
            .unwrap_err(),
    );
    assert_eq!(field, "token_uri");
}

#[test]
fn tokens_are_renewed_before_they_expire() {
    let t = Instant::now();
    assert_eq!(renew_at(t, 3599), t + Duration::from_secs(3299));
    assert_eq!(renew_at(t, 2), t + Duration::from_secs(1));
    assert_eq!(renew_at(t, 0), t);
}

async fn auth_for(emulator: &GoogleOAuthEmulator, credentials: GoogleCredentials) -> GoogleAuth {
    let valid = credentials.validate(Some(&emulator.token_uri())).unwrap();
    GoogleAuth::new(
        valid,
        &[SCOPE],
        http::client(Duration::from_secs(5)).unwrap(),
    )
}

fn sa_auth_credentials(emulator: &GoogleOAuthEmulator) -> GoogleCredentials {
    service_account(
        &emulator
            .oauth()
            .options()
            .service_account_key_json(&emulator.token_uri()),
    )
}

async fn userinfo(auth: &GoogleAuth, url: &str) -> StatusCode {
    let url = format!("{url}/v1/userinfo");
    auth.send(None, |client, bearer| {
        authorized(client.get(&url), bearer)
            .build()
            .map_err(http::classify_send_error)
    })
    .await
    .unwrap()
    .status
}

#[tokio::test]
async fn service_account_tokens_are_cached_and_renewed_once_after_a_401() {
    let emulator = GoogleOAuthEmulator::start(GoogleOAuthOptions::default())
        .await
        .unwrap();
    let auth = auth_for(&emulator, sa_auth_credentials(&emulator)).await;
    let first = auth.token().await.unwrap();
    assert_eq!(auth.token().await.unwrap(), first);
    assert_eq!(userinfo(&auth, &emulator.url()).await, StatusCode::OK);
    assert_eq!(emulator.oauth().tokens_issued(), 1);
    let claims = &emulator.oauth().token_requests()[0].claims;
    assert_eq!(claims["aud"], json!(emulator.token_uri()));
    assert_eq!(claims["scope"], json!(SCOPE));

    emulator.oauth().expire_tokens();
    assert_eq!(userinfo(&auth, &emulator.url()).await, StatusCode::OK);
    assert_eq!(emulator.oauth().tokens_issued(), 2);
    assert_ne!(auth.token().await.unwrap(), first);
    assert!(!format!("{auth:?}").contains("ya29"));
}

#[tokio::test]
async fn a_second_401_is_returned_after_one_renewal() {
    let options = GoogleOAuthOptions {
        expires_in: 0,
        ..GoogleOAuthOptions::default()
    };
    let emulator = GoogleOAuthEmulator::start(options).await.unwrap();
    let auth = auth_for(&emulator, sa_auth_credentials(&emulator)).await;
    assert_eq!(
        userinfo(&auth, &emulator.url()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(emulator.oauth().token_requests().len(), 2);
}

#[tokio::test]
async fn refresh_tokens_are_exchanged_and_refusals_say_what_to_fix_without_secrets() {
    let options = GoogleOAuthOptions::default();
    let emulator = GoogleOAuthEmulator::start(options.clone()).await.unwrap();
    let (secret, refresh) = (
        Secret::new(&options.client_secret),
        Secret::new(&options.refresh_token),
    );
    let fields = CredentialFields {
        client_id: Some(&options.client_id),
        client_secret: Some(&secret),
        refresh_token: Some(&refresh),
        ..CredentialFields::default()
    };
    let auth = auth_for(&emulator, GoogleCredentials::from_fields(fields).unwrap()).await;
    assert_eq!(userinfo(&auth, &emulator.url()).await, StatusCode::OK);
    assert_eq!(
        emulator.oauth().token_requests()[0].grant_type,
        "refresh_token"
    );

    emulator.oauth().revoke_refresh_token();
    emulator.oauth().expire_tokens();
    assert!(
        auth.token().await.is_ok(),
        "the cached token is still within its lifetime"
    );
    auth.invalidate(&auth.token().await.unwrap()).await;
    let message = match auth.token().await.unwrap_err() {
        DestinationError::Authentication { message } => message,
        other => panic!("{other:?}"),
    };
    assert!(message.contains("invalid_grant"), "{message}");
    assert!(message.contains("obtain a new refresh_token"), "{message}");
    for secret in [&options.client_secret, &options.refresh_token] {
        assert!(!message.contains(secret.as_str()), "{message}");
    }

    let wrong = Secret::new("GOCSPX-wrong");
    let fields = CredentialFields {
        client_secret: Some(&wrong),
        ..fields
    };
    let auth = auth_for(&emulator, GoogleCredentials::from_fields(fields).unwrap()).await;
    match auth.token().await.unwrap_err() {
        DestinationError::Authentication { message } => {
            assert!(
                message.contains("invalid_client") && message.contains("client_secret"),
                "{message}"
            );
            assert!(!message.contains("GOCSPX-wrong"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_key_the_endpoint_does_not_know_and_endpoint_outages_are_classified() {
    // The endpoint verifies with a different public key: the signature is refused.
    let other_key =
        "-----BEGIN RSA PUBLIC KEY-----\nMIIBCgKCAQEAwZ7\n-----END RSA PUBLIC KEY-----\n";
    let options = GoogleOAuthOptions {
        public_key_pem: other_key.to_string(),
        ..GoogleOAuthOptions::default()
    };
    let emulator = GoogleOAuthEmulator::start(options).await.unwrap();
    let auth = auth_for(&emulator, sa_auth_credentials(&emulator)).await;
    match auth.token().await.unwrap_err() {
        DestinationError::Authentication { message } => {
            assert!(message.contains("Invalid JWT Signature"), "{message}");
            assert!(message.contains("check service_account_key"), "{message}");
            assert!(!message.contains("eyJ"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    let emulator = GoogleOAuthEmulator::start(GoogleOAuthOptions::default())
        .await
        .unwrap();
    let auth = auth_for(&emulator, sa_auth_credentials(&emulator)).await;
    emulator.oauth().fail_next(1, 503);
    assert!(matches!(
        auth.token().await.unwrap_err(),
        DestinationError::Transient {
            throttled: false,
            ..
        }
    ));
    assert!(auth.token().await.is_ok());
}
