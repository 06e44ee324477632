//! Tests of the webhook emulator: its contract as a client sees it.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal HTTP/1.1 client: returns (status, raw response text).
async fn post(addr: SocketAddr, body: &str, extra_headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST /webhook HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    (status, response)
}

fn batch(keys: &[i64]) -> String {
    let records: Vec<Value> = keys
        .iter()
        .map(|k| json!({"key": k, "change": "added", "fields": {"n": k}}))
        .collect();
    json!({"action": "upsert", "mapping": "m", "run": "r", "records": records}).to_string()
}

#[tokio::test]
async fn accepts_and_rejects_per_record() {
    let emu = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    emu.reject_keys([json!(2)]);
    let (status, response) = post(emu.addr(), &batch(&[1, 2, 3]), &[]).await;
    assert_eq!(status, 200);
    assert!(response.contains(r#""index":1"#), "{response}");
    assert_eq!(emu.accepted_keys(), vec![json!(1), json!(3)]);
    let records = emu.records();
    assert_eq!(records[0].action, "upsert");
    assert_eq!(records[0].change.as_deref(), Some("added"));
    assert_eq!(emu.requests()[0].status, 200);
}

#[tokio::test]
async fn injected_failures_then_success() {
    let emu = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    emu.fail_next(1, 429, Some(7));
    let (status, response) = post(emu.addr(), &batch(&[1]), &[]).await;
    assert_eq!(status, 429);
    assert!(
        response.to_ascii_lowercase().contains("retry-after: 7"),
        "{response}"
    );
    assert!(emu.accepted_keys().is_empty());
    let (status, _) = post(emu.addr(), &batch(&[1]), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(emu.accepted_keys(), vec![json!(1)]);
}

#[tokio::test]
async fn enforces_auth_batch_limit_and_rate() {
    let emu = WebhookEmulator::start(WebhookOptions {
        bearer_token: Some("tok".into()),
        hmac_secret: Some("s3cret".into()),
        max_batch: Some(2),
    })
    .await
    .unwrap();
    let body = batch(&[1]);
    let sig = signature("s3cret", body.as_bytes());
    assert_eq!(post(emu.addr(), &body, &[]).await.0, 401);
    assert_eq!(
        post(emu.addr(), &body, &[("Authorization", "Bearer tok")])
            .await
            .0,
        401
    );
    let good = [
        ("Authorization", "Bearer tok"),
        ("X-Retl-Signature", sig.as_str()),
    ];
    assert_eq!(post(emu.addr(), &body, &good).await.0, 200);
    let big = batch(&[1, 2, 3]);
    let big_sig = signature("s3cret", big.as_bytes());
    let big_headers = [
        ("Authorization", "Bearer tok"),
        ("X-Retl-Signature", big_sig.as_str()),
    ];
    assert_eq!(post(emu.addr(), &big, &big_headers).await.0, 413);

    emu.rate_limit(1, Duration::from_secs(60));
    assert_eq!(post(emu.addr(), &body, &good).await.0, 200);
    let (status, response) = post(emu.addr(), &body, &good).await;
    assert_eq!(status, 429);
    assert!(response.to_ascii_lowercase().contains("retry-after:"));
    assert_eq!(emu.accepted_keys().len(), 2);

    emu.clear();
    assert!(emu.requests().is_empty());
    assert_eq!(post(emu.addr(), &body, &good).await.0, 200);
}

#[tokio::test]
async fn a_delete_of_missing_records_can_answer_404() {
    let emu = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let delete = |keys: &[i64]| {
        let records: Vec<Value> = keys
            .iter()
            .map(|k| json!({"key": k, "change": "deleted"}))
            .collect();
        json!({"action": "delete", "mapping": "m", "run": "r", "records": records}).to_string()
    };
    assert_eq!(post(emu.addr(), &batch(&[1, 2]), &[]).await.0, 200);
    // Without the setting a delete of anything is answered 200.
    assert_eq!(post(emu.addr(), &delete(&[9]), &[]).await.0, 200);
    emu.not_found_for_missing_deletes();
    let (status, response) = post(emu.addr(), &delete(&[9]), &[]).await;
    assert_eq!(status, 404);
    assert!(response.contains("none of these records"), "{response}");
    emu.forget([json!(2)]);
    assert_eq!(post(emu.addr(), &delete(&[2]), &[]).await.0, 404);
    assert_eq!(post(emu.addr(), &delete(&[1, 2]), &[]).await.0, 200);
    assert_eq!(post(emu.addr(), &delete(&[1]), &[]).await.0, 404);
}

#[test]
fn bucket_refills() {
    let mut bucket = Bucket::new(2, Duration::from_secs(2));
    let t0 = Instant::now();
    assert!(bucket.take(t0).is_ok());
    assert!(bucket.take(t0).is_ok());
    let wait = bucket.take(t0).unwrap_err();
    assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900));
    assert!(bucket.take(t0 + Duration::from_secs(1)).is_ok());
}
