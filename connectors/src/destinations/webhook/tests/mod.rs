//! Webhook tests: config validation, body encoding, answer parsing; round-trips against the
//! testkit emulator are in `emulator.rs`.

use std::time::Duration;

use retl_engine::destination::spec::{ActionKind, ChangeKind};
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, FieldInfo, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_engine::secret::Secret;
use retl_testkit::{WebhookEmulator, WebhookOptions};
use serde_json::{Value, json};

use super::actions::{self, WebhookAction};
use super::client::{self, parse_response};
use super::{WebhookDestination, destination_type};

fn ctx(run: &str) -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("hook"),
        mapping_id: MappingId::new("users-to-hook"),
        run_id: RunId::new(run),
        sync_mode: None,
        trace: None,
    }
}

fn upserts(keys: &[i64]) -> Vec<Payload> {
    keys.iter()
        .map(|k| Payload {
            key: json!(k),
            change: if k % 2 == 0 {
                ChangeKind::Updated
            } else {
                ChangeKind::Added
            },
            fields: json!({"email": format!("u{k}@example.com"), "n": k})
                .as_object()
                .cloned()
                .unwrap()
                .into(),
            fingerprint: None,
        })
        .collect()
}

fn deletes(keys: &[&str]) -> Vec<Payload> {
    keys.iter()
        .map(|k| Payload {
            key: json!(k),
            change: ChangeKind::Deleted,
            fields: Default::default(),
            fingerprint: None,
        })
        .collect()
}

fn destination(config: Value) -> WebhookDestination {
    let limits = DeliveryLimits {
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    };
    WebhookDestination::new(&config, limits).unwrap()
}

/// The spec of this action, resolved against the type the way the engine does.
fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn build_error(config: Value) -> (String, String) {
    match WebhookDestination::new(&config, DeliveryLimits::default()) {
        Err(DestinationError::InvalidConfig { field, message }) => (field, message),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

// ---- config -------------------------------------------------------------------------------

#[test]
fn config_validation_names_the_field() {
    assert_eq!(build_error(json!({"url": "ftp://x/y"})).0, "url");
    assert_eq!(build_error(json!({"url": "not a url"})).0, "url");
    assert!(
        build_error(json!({"url": "https://x", "bogus": 1}))
            .1
            .contains("bogus")
    );
    assert_eq!(
        build_error(json!({"url": "https://x", "headers": {"Authorization": "Bearer t"}})).0,
        "headers.Authorization"
    );
    assert_eq!(
        build_error(json!({"url": "https://x", "headers": {"Content-Type": "text/plain"}})).0,
        "headers.Content-Type"
    );
    assert_eq!(
        build_error(json!({"url": "https://x", "headers": {"bad name": "v"}})).0,
        "headers.bad name"
    );
    assert_eq!(
        build_error(json!({"url": "https://x", "auth_header_name": "X-Key"})).0,
        "auth_header_name"
    );
    assert_eq!(
        build_error(json!({"url": "https://x", "auth_header": "a\nb"})).0,
        "auth_header"
    );
    assert_eq!(
        build_error(json!({"url": "https://x", "signing_secret": ""})).0,
        "signing_secret"
    );
}

#[test]
fn debug_output_hides_secrets() {
    let destination = destination(json!({
        "url": "https://example.com/hook",
        "auth_header": "Bearer hunter2",
        "signing_secret": "s3cret-key",
    }));
    let debug = format!("{destination:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("s3cret-key"), "{debug}");
}

#[test]
fn catalog_entry() {
    let ty = destination_type();
    assert_eq!(ty.name, "webhook");
    let names: Vec<_> = ty.actions.iter().map(|a| a.name).collect();
    assert_eq!(names, ["upsert", "delete"]);
    assert!(ty.action("upsert").unwrap().open_fields);
    assert!(ty.action("delete").unwrap().accepts(ChangeKind::Deleted));
    assert!(!ty.action("delete").unwrap().accepts(ChangeKind::Added));
    let secrets: Vec<_> = ty
        .config
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.name)
        .collect();
    assert_eq!(secrets, ["auth_header", "signing_secret"]);
    match ty.action("nope") {
        Err(DestinationError::UnknownAction { available, .. }) => {
            assert_eq!(available, "upsert, delete")
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("expected UnknownAction"),
    }
}

#[tokio::test]
async fn every_action_spec_is_bound_by_name_and_fields_default_to_the_spec() {
    let destination = destination(json!({"url": "http://127.0.0.1:9/x"}));
    for spec in destination_type().actions {
        let bound = destination.action(spec).unwrap();
        assert!(std::ptr::eq(bound.spec(), spec));
        let action = WebhookAction::from_spec(spec).unwrap();
        assert_eq!(
            action.name(),
            spec.name,
            "the body's action is the spec's name"
        );
        assert_eq!(
            destination.fields(spec).await.unwrap(),
            FieldInfo::from_specs(spec.fields)
        );
    }
    // A spec the type does not declare is a bug in retl, not a user error.
    static FOREIGN: ActionSpec = ActionSpec {
        name: "append_changes",
        display_name: "Append Changes",
        description: "",
        kind: ActionKind::Mirror,
        fields: &[],
        open_fields: true,
        sync_modes: &[],
    };
    assert!(matches!(
        destination.action(&FOREIGN),
        Err(DestinationError::Internal { .. })
    ));
}

#[test]
fn config_fields_match_the_typed_config() {
    retl_engine::config_fields::check_config_fields::<super::config::WebhookConfig>(
        destination_type().config,
    )
    .unwrap();
}

// ---- encoding -----------------------------------------------------------------------------

#[test]
fn upsert_body_shape() {
    let body = actions::encode(WebhookAction::Upsert, &ctx("run-1"), &upserts(&[1, 2])).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({
            "action": "upsert",
            "mapping": "users-to-hook",
            "run": "run-1",
            "records": [
                {"key": 1, "change": "added", "fields": {"email": "u1@example.com", "n": 1}},
                {"key": 2, "change": "updated", "fields": {"email": "u2@example.com", "n": 2}},
            ]
        })
    );
}

#[test]
fn delete_body_has_no_fields() {
    let body = actions::encode(WebhookAction::Delete, &ctx("run-1"), &deletes(&["a"])).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["records"], json!([{"key": "a", "change": "deleted"}]));
    assert_eq!(body["action"], "delete");
}

#[test]
fn idempotency_key_is_stable_per_batch() {
    let batch = upserts(&[1, 2, 3]);
    let a = actions::idempotency_key(WebhookAction::Upsert, &ctx("r1"), &batch);
    assert_eq!(a.len(), 32);
    assert_eq!(
        a,
        actions::idempotency_key(WebhookAction::Upsert, &ctx("r1"), &batch)
    );
    assert_ne!(
        a,
        actions::idempotency_key(WebhookAction::Upsert, &ctx("r2"), &batch)
    );
    assert_ne!(
        a,
        actions::idempotency_key(WebhookAction::Delete, &ctx("r1"), &batch)
    );
    assert_ne!(
        a,
        actions::idempotency_key(WebhookAction::Upsert, &ctx("r1"), &upserts(&[1, 2]))
    );
}

#[test]
fn signature_is_hmac_sha256_hex() {
    // RFC 4231 test case 2.
    let sig = client::signature(&Secret::new("Jefe"), b"what do ya want for nothing?");
    assert_eq!(
        sig,
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

// ---- answer parsing -----------------------------------------------------------------------

#[test]
fn empty_or_plain_answers_accept_everything() {
    for body in [&b""[..], b"ok", b"[]", b"{}", br#"{"accepted": 3}"#] {
        let outcome = parse_response(body, 3, None).unwrap();
        assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 3]);
    }
}

#[test]
fn per_record_errors_and_retries() {
    let body = br#"{"errors":[{"index":0,"message":"bad email"},{"index":2}],
                    "retry":[{"index":1,"retry_after":2},{"index":2},{"index":3}]}"#;
    let outcome = parse_response(body, 4, Some(Duration::from_secs(9))).unwrap();
    assert_eq!(
        outcome.records,
        vec![
            RecordOutcome::Rejected {
                reason: "bad email".into()
            },
            RecordOutcome::Retry {
                reason: "the webhook asked for a retry".into(),
                after: Some(Duration::from_secs(2))
            },
            RecordOutcome::Rejected {
                reason: "rejected by the webhook".into()
            },
            RecordOutcome::Retry {
                reason: "the webhook asked for a retry".into(),
                after: Some(Duration::from_secs(9))
            },
        ]
    );
}

#[test]
fn broken_per_record_answers_acknowledge_nothing() {
    for body in [
        &br#"{"errors":[{"index":5}]}"#[..],
        br#"{"errors":"some failed"}"#,
        br#"{"errors":[{"message":"no index"}]}"#,
        br#"{"retry":[{"index":-1}]}"#,
    ] {
        assert!(
            matches!(
                parse_response(body, 2, None),
                Err(DestinationError::Rejected { .. })
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

// ---- round-trips against the emulator -----------------------------------------------------

mod emulator;
