//! Webhook round-trips against `retl_testkit`'s emulator: accepted batches, auth headers,
//! signatures, per-record answers, server errors, throttling and refused credentials.

use super::*;

async fn emulator() -> WebhookEmulator {
    WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn accepted_batch_round_trip() {
    let emu = emulator().await;
    let destination = destination(json!({
        "url": emu.url(),
        "headers": {"X-Team": "growth"},
        "auth_header": "Bearer tok",
    }));
    emu.require_bearer("tok");
    let upsert = destination.action(spec("upsert")).unwrap();
    let outcome = upsert
        .send(&ctx("run-1"), &upserts(&[1, 2, 3]))
        .await
        .unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 3]);
    assert_eq!(emu.accepted_keys(), vec![json!(1), json!(2), json!(3)]);

    let delete = destination.action(spec("delete")).unwrap();
    let outcome = delete.send(&ctx("run-1"), &deletes(&["x"])).await.unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted]);

    let records = emu.records();
    assert_eq!(records[0].action, "upsert");
    assert_eq!(records[0].mapping.as_deref(), Some("users-to-hook"));
    assert_eq!(records[0].run.as_deref(), Some("run-1"));
    assert_eq!(records[0].change.as_deref(), Some("added"));
    assert_eq!(
        records[0].fields.as_ref().unwrap()["email"],
        "u1@example.com"
    );
    assert_eq!(records[3].action, "delete");
    assert_eq!(records[3].fields, None);

    let requests = emu.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("x-retl-mapping"), Some("users-to-hook"));
    assert_eq!(first.header("x-retl-run"), Some("run-1"));
    assert_eq!(first.header("x-team"), Some("growth"));
    assert_eq!(
        first.header("idempotency-key").map(str::to_string),
        Some(actions::idempotency_key(
            WebhookAction::Upsert,
            &ctx("run-1"),
            &upserts(&[1, 2, 3])
        ))
    );
    assert!(first.header("x-retl-signature").is_none());
}

#[tokio::test]
async fn custom_auth_header_name() {
    let emu = emulator().await;
    let destination = destination(json!({
        "url": emu.url(),
        "auth_header": "k-123",
        "auth_header_name": "X-Api-Key",
    }));
    let upsert = destination.action(spec("upsert")).unwrap();
    upsert.send(&ctx("r"), &upserts(&[1])).await.unwrap();
    assert_eq!(emu.requests()[0].header("x-api-key"), Some("k-123"));
    assert!(emu.requests()[0].header("authorization").is_none());
}

#[tokio::test]
async fn hmac_signature_verified_by_emulator() {
    let emu = emulator().await;
    emu.require_hmac("s3cret");
    let signed = destination(json!({"url": emu.url(), "signing_secret": "s3cret"}));
    let outcome = signed
        .action(spec("upsert"))
        .unwrap()
        .send(&ctx("r"), &upserts(&[1, 2]))
        .await
        .unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    assert!(
        emu.requests()[0]
            .header("x-retl-signature")
            .unwrap()
            .starts_with("sha256=")
    );

    let wrong = destination(json!({"url": emu.url(), "signing_secret": "other"}));
    let error = wrong
        .action(spec("upsert"))
        .unwrap()
        .send(&ctx("r"), &upserts(&[3]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, DestinationError::Authentication { .. }),
        "{error:?}"
    );
    assert_eq!(emu.accepted_keys(), vec![json!(1), json!(2)]);
}

#[tokio::test]
async fn per_record_rejection_round_trip() {
    let emu = emulator().await;
    emu.reject_keys([json!(2)]);
    emu.retry_keys([json!(3)]);
    let destination = destination(json!({"url": emu.url()}));
    let upsert = destination.action(spec("upsert")).unwrap();
    let outcome = upsert.send(&ctx("r"), &upserts(&[1, 2, 3])).await.unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
    assert!(matches!(outcome.records[2], RecordOutcome::Retry { .. }));
    assert_eq!(emu.accepted_keys(), vec![json!(1)]);
}

#[tokio::test]
async fn server_error_is_transient() {
    let emu = emulator().await;
    emu.fail_next(1, 500, None);
    let destination = destination(json!({"url": emu.url()}));
    let upsert = destination.action(spec("upsert")).unwrap();
    match upsert.send(&ctx("r"), &upserts(&[1])).await {
        Err(DestinationError::Transient {
            retry_after,
            throttled,
            message,
        }) => {
            assert_eq!(retry_after, None);
            assert!(!throttled);
            assert!(message.contains("500"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.accepted_keys().is_empty());
    // The same batch succeeds once the failure is over, with the same idempotency key.
    upsert.send(&ctx("r"), &upserts(&[1])).await.unwrap();
    let requests = emu.requests();
    assert_eq!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key")
    );
    assert_eq!(emu.accepted_keys(), vec![json!(1)]);
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let emu = emulator().await;
    emu.fail_next(1, 429, Some(3));
    emu.fail_next(1, 503, Some(1));
    let destination = destination(json!({"url": emu.url()}));
    let upsert = destination.action(spec("upsert")).unwrap();
    match upsert.send(&ctx("r"), &upserts(&[1])).await {
        Err(DestinationError::Transient {
            retry_after,
            throttled,
            ..
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(3)));
            assert!(throttled);
        }
        other => panic!("{other:?}"),
    }
    match upsert.send(&ctx("r"), &upserts(&[1])).await {
        Err(DestinationError::Transient {
            retry_after,
            throttled,
            ..
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
            assert!(!throttled);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn rate_limit_answers_are_throttled() {
    let emu = emulator().await;
    emu.rate_limit(1, Duration::from_secs(30));
    let destination = destination(json!({"url": emu.url()}));
    let upsert = destination.action(spec("upsert")).unwrap();
    upsert.send(&ctx("r"), &upserts(&[1])).await.unwrap();
    match upsert.send(&ctx("r"), &upserts(&[2])).await {
        Err(DestinationError::Transient {
            retry_after: Some(after),
            throttled: true,
            ..
        }) => assert!(after >= Duration::from_secs(1) && after <= Duration::from_secs(30)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unauthorized_is_authentication() {
    let emu = emulator().await;
    emu.require_bearer("right");
    let destination = destination(json!({"url": emu.url(), "auth_header": "Bearer sekrit-123"}));
    let error = destination
        .action(spec("upsert"))
        .unwrap()
        .send(&ctx("r"), &upserts(&[1]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, DestinationError::Authentication { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert!(!format!("{error}").contains("sekrit-123"));
}

#[tokio::test]
async fn a_delete_of_records_already_gone_succeeds_on_404() {
    let emu = emulator().await;
    emu.not_found_for_missing_deletes();
    let destination = destination(json!({"url": emu.url()}));
    let delete = destination.action(spec("delete")).unwrap();
    let outcome = delete
        .send(&ctx("r"), &deletes(&["gone-1", "gone-2"]))
        .await
        .unwrap();
    assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    assert_eq!(emu.requests()[0].status, 404, "the receiver answered 404");
    // A 404 to an upsert is an ordinary rejection.
    emu.fail_next(1, 404, None);
    let error = destination
        .action(spec("upsert"))
        .unwrap()
        .send(&ctx("r"), &upserts(&[1]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, DestinationError::Rejected { .. }),
        "{error:?}"
    );
}

#[test]
fn only_a_json_404_to_a_delete_means_already_gone() {
    use reqwest::StatusCode;
    use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
    let typed = |value: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    };
    let json = typed("application/json");
    assert!(client::already_gone(
        WebhookAction::Delete,
        StatusCode::NOT_FOUND,
        &json
    ));
    // A web server's 404 page for a wrong path is not the receiver saying "already gone".
    let html = typed("text/html");
    assert!(!client::already_gone(
        WebhookAction::Delete,
        StatusCode::NOT_FOUND,
        &html
    ));
    assert!(!client::already_gone(
        WebhookAction::Delete,
        StatusCode::NOT_FOUND,
        &HeaderMap::new()
    ));
    assert!(!client::already_gone(
        WebhookAction::Upsert,
        StatusCode::NOT_FOUND,
        &json
    ));
    assert!(!client::already_gone(
        WebhookAction::Delete,
        StatusCode::GONE,
        &json
    ));
}

#[tokio::test]
async fn oversized_batch_is_payload_too_large_with_body() {
    let emu = emulator().await;
    emu.max_batch(2);
    let destination = destination(json!({"url": emu.url()}));
    match destination
        .action(spec("upsert"))
        .unwrap()
        .send(&ctx("r"), &upserts(&[1, 2, 3]))
        .await
    {
        // The engine splits the batch on this error (see engine/src/delivery).
        Err(DestinationError::PayloadTooLarge { message }) => {
            assert!(message.contains("413"), "{message}");
            assert!(message.contains("exceeds the limit of 2"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(emu.accepted_keys().is_empty());
}

#[tokio::test]
async fn timeout_is_transient() {
    let emu = emulator().await;
    emu.respond_after(Duration::from_secs(5));
    let limits = DeliveryLimits {
        timeout_ms: 200,
        ..DeliveryLimits::default()
    };
    let destination = WebhookDestination::new(&json!({"url": emu.url()}), limits).unwrap();
    match destination
        .action(spec("upsert"))
        .unwrap()
        .send(&ctx("r"), &upserts(&[1]))
        .await
    {
        Err(DestinationError::Transient { message, .. }) => {
            assert!(message.contains("timed out"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn test_connects_without_sending() {
    let emu = emulator().await;
    let destination = destination(json!({"url": emu.url()}));
    let message = destination.test().await.unwrap();
    assert!(message.contains("connected to 127.0.0.1"), "{message}");
    assert_eq!(emu.request_count(), 0);

    let addr = emu.addr();
    drop(emu);
    // Wait for the aborted server to release the port.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let unreachable = destination_for(&format!("http://{addr}/x"));
    assert!(matches!(
        unreachable.test().await,
        Err(DestinationError::Transient { .. })
    ));
}

fn destination_for(url: &str) -> WebhookDestination {
    destination(json!({ "url": url }))
}
