//! Emulator of the contract of retl's generic `webhook` destination.
//!
//! # The contract it enforces
//! Any path is accepted; a delivery is `POST` with a JSON body
//! `{"action": "...", "mapping": "...", "run": "...", "records": [{"key": ..., "change": ..., "fields": {...}}]}`.
//!
//! Checks run in this order, the first that fails answers the request:
//! 1. injected failures ([`WebhookEmulator::fail_next`]): the configured status, with
//!    `Retry-After` when one was given;
//! 2. the rate limit ([`WebhookEmulator::rate_limit`]): a token bucket; when empty, `429` with
//!    `Retry-After` in whole seconds (at least 1);
//! 3. authentication: `Authorization: Bearer <token>` ([`WebhookEmulator::require_bearer`]) and
//!    `X-Retl-Signature: sha256=<hex HMAC-SHA256 of the raw body>`
//!    ([`WebhookEmulator::require_hmac`]); wrong or missing → `401`;
//! 4. method (`POST` only, else `405`), JSON body with a `records` array (else `400`);
//! 5. the batch limit ([`WebhookEmulator::max_batch`]): more records than allowed → `413`.
//!
//! With [`WebhookEmulator::not_found_for_missing_deletes`], a `delete` request none of whose
//! keys the receiver holds (never accepted, already deleted, or [`WebhookEmulator::forget`]ten)
//! is answered `404` with a JSON body, the way REST APIs answer a delete of a missing record.
//!
//! Otherwise the answer is `200` with `{"accepted": n, "errors": [{"index": i, "message": "..."}],
//! "retry": [{"index": i}]}`: records whose key is in [`WebhookEmulator::reject_keys`] are
//! listed in `errors`, those in [`WebhookEmulator::retry_keys`] in `retry` (once per key), all
//! others are accepted and appended to the ledger ([`WebhookEmulator::records`]).
//!
//! A request answered with anything but `200`, and a record listed in `errors` or `retry`, is
//! **not** in the ledger of accepted records.
//!
//! With [`WebhookEmulator::respond_after`] the emulator decides (and records) first and answers
//! after the delay, which models "processed by the server, answer lost to a client timeout".

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::task::JoinHandle;

/// The header carrying the body signature, `sha256=<hex>`, lower-cased.
pub const SIGNATURE_HEADER: &str = "x-retl-signature";

/// How an emulator starts; every setting can also be changed later through the controls.
#[derive(Debug, Clone, Default)]
pub struct WebhookOptions {
    /// Require `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Require a valid `X-Retl-Signature` computed with this secret.
    pub hmac_secret: Option<String>,
    /// Largest number of records accepted in one request (larger → `413`).
    pub max_batch: Option<usize>,
}

/// One request as the emulator received it, with the status it answered.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// HTTP method.
    pub method: String,
    /// Request path (and query).
    pub path: String,
    /// Headers, names lower-cased (a repeated header keeps its last value).
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, `Value::Null` when it was not JSON.
    pub body: Value,
    /// The raw body bytes.
    pub raw_body: Vec<u8>,
    /// When it arrived.
    pub received_at: SystemTime,
    /// The status the emulator answered.
    pub status: u16,
}

impl ReceivedRequest {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// One record the emulator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRecord {
    /// The request's `action` (`upsert`, `delete`, ...).
    pub action: String,
    /// The request's `mapping`, if present.
    pub mapping: Option<String>,
    /// The request's `run`, if present.
    pub run: Option<String>,
    /// The record's key.
    pub key: Value,
    /// The record's `change` (`added`, `updated`, `deleted`), if present.
    pub change: Option<String>,
    /// The record's `fields`, if present (deletes carry none).
    pub fields: Option<serde_json::Map<String, Value>>,
    /// Index of the request in [`WebhookEmulator::requests`] that delivered it.
    pub request_index: usize,
}

/// An injected failure: the next `remaining` requests get `status`.
#[derive(Debug, Clone)]
struct InjectedFailure {
    remaining: usize,
    status: StatusCode,
    retry_after: Option<u64>,
}

/// A token bucket: `capacity` requests, refilled at one token per `per_token`.
#[derive(Debug, Clone)]
struct Bucket {
    capacity: f64,
    tokens: f64,
    per_token: Duration,
    last: Instant,
}

impl Bucket {
    fn new(requests: u32, per: Duration) -> Self {
        let requests = requests.max(1);
        Bucket {
            capacity: f64::from(requests),
            tokens: f64::from(requests),
            per_token: per / requests,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is available.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let per_token = self.per_token.as_secs_f64();
        if per_token > 0.0 {
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed / per_token).min(self.capacity);
        } else {
            self.tokens = self.capacity;
        }
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) * per_token))
        }
    }
}

/// Everything the emulator knows; behind one mutex.
#[derive(Debug, Default)]
struct Ledger {
    requests: Vec<ReceivedRequest>,
    records: Vec<ReceivedRecord>,
    bearer_token: Option<String>,
    hmac_secret: Option<String>,
    max_batch: Option<usize>,
    failures: VecDeque<InjectedFailure>,
    reject_keys: BTreeSet<String>,
    retry_keys: BTreeSet<String>,
    bucket: Option<Bucket>,
    respond_after: Option<Duration>,
    /// Keys the receiver holds: accepted by a non-delete request and not deleted since.
    present: BTreeSet<String>,
    /// Answer `404` to a delete request none of whose keys is present.
    not_found_for_missing_deletes: bool,
}

/// What the emulator decided for one request.
struct Decision {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

impl Decision {
    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Decision {
            status,
            retry_after: None,
            body: json!({ "error": message.into() }),
        }
    }
}

type Shared = Arc<Mutex<Ledger>>;

/// A running webhook emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct WebhookEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl WebhookEmulator {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(options: WebhookOptions) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            bearer_token: options.bearer_token,
            hmac_secret: options.hmac_secret,
            max_batch: options.max_batch,
            ..Ledger::default()
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "webhook emulator stopped");
            }
        });
        Ok(WebhookEmulator { addr, shared, task })
    }

    /// The URL to configure as the webhook destination's `url`.
    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.lock().requests.clone()
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// Every accepted record, in acceptance order (duplicates kept).
    pub fn records(&self) -> Vec<ReceivedRecord> {
        self.lock().records.clone()
    }

    /// Keys of the accepted records, in acceptance order (duplicates kept).
    pub fn accepted_keys(&self) -> Vec<Value> {
        self.lock().records.iter().map(|r| r.key.clone()).collect()
    }

    /// Requires `Authorization: Bearer <token>` from now on.
    pub fn require_bearer(&self, token: impl Into<String>) {
        self.lock().bearer_token = Some(token.into());
    }

    /// Requires a valid `X-Retl-Signature` (HMAC-SHA256 of the raw body) from now on.
    pub fn require_hmac(&self, secret: impl Into<String>) {
        self.lock().hmac_secret = Some(secret.into());
    }

    /// Answers the next `n` requests with `status` (and `Retry-After: <secs>` when given),
    /// after any failures already queued.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        self.lock().failures.push_back(InjectedFailure {
            remaining: n,
            status,
            retry_after,
        });
    }

    /// Rejects records with these keys (listed in the `errors` array of a `200` answer).
    pub fn reject_keys(&self, keys: impl IntoIterator<Item = Value>) {
        let mut ledger = self.lock();
        ledger
            .reject_keys
            .extend(keys.into_iter().map(|k| k.to_string()));
    }

    /// Asks once for a retry of records with these keys (the `retry` array of a `200` answer);
    /// the next delivery of such a key is treated normally.
    pub fn retry_keys(&self, keys: impl IntoIterator<Item = Value>) {
        let mut ledger = self.lock();
        ledger
            .retry_keys
            .extend(keys.into_iter().map(|k| k.to_string()));
    }

    /// Answers `413` to a request carrying more than `n` records.
    pub fn max_batch(&self, n: usize) {
        self.lock().max_batch = Some(n);
    }

    /// Allows `requests` requests per `per` (token bucket, full at start); beyond that answers
    /// `429` with `Retry-After`.
    pub fn rate_limit(&self, requests: u32, per: Duration) {
        self.lock().bucket = Some(Bucket::new(requests, per));
    }

    /// From now on, answers `404` (JSON body) to a `delete` request none of whose keys the
    /// receiver holds; a delete naming at least one held key is processed as usual.
    pub fn not_found_for_missing_deletes(&self) {
        self.lock().not_found_for_missing_deletes = true;
    }

    /// The receiver loses these records (deleted on its side): a later delete of them finds
    /// nothing.
    pub fn forget(&self, keys: impl IntoIterator<Item = Value>) {
        let mut ledger = self.lock();
        for key in keys {
            ledger.present.remove(&key.to_string());
        }
    }

    /// Delays every answer by `delay` (the request is decided and recorded first).
    pub fn respond_after(&self, delay: Duration) {
        self.lock().respond_after = Some(delay);
    }

    /// Forgets every request and record, and removes the fault controls (injected failures,
    /// rejected and retried keys, rate limit, delay). Authentication, the batch limit, the
    /// `404` answer to missing deletes and the records the receiver holds stay.
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.requests.clear();
        ledger.records.clear();
        ledger.failures.clear();
        ledger.reject_keys.clear();
        ledger.retry_keys.clear();
        ledger.bucket = None;
        ledger.respond_after = None;
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for WebhookEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Locks the ledger; a panic in another holder does not make the state unreadable.
fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// HMAC-SHA256 of `body` with `secret`, as `sha256=<hex>`; what a client must send.
pub fn signature(secret: &str, body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        // HMAC accepts keys of any length; this branch is unreachable in practice.
        Err(_) => String::new(),
    }
}

/// Whether `header_value` is a valid signature of `body` (constant-time comparison).
fn signature_valid(secret: &str, body: &[u8], header_value: Option<&str>) -> bool {
    let Some(hex_sig) = header_value.and_then(|v| v.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (decision, delay) = {
        let mut ledger = lock(&shared);
        let decision = decide(&mut ledger, &method, &headers, &body);
        let request = ReceivedRequest {
            method: method.to_string(),
            path: uri.to_string(),
            headers: headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw_body: body.to_vec(),
            received_at: SystemTime::now(),
            status: decision.status.as_u16(),
        };
        ledger.requests.push(request);
        (decision, ledger.respond_after)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = (decision.status, axum::Json(decision.body)).into_response();
    if let Some(secs) = decision.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Applies the contract to one request; appends accepted records to the ledger.
fn decide(ledger: &mut Ledger, method: &Method, headers: &HeaderMap, body: &[u8]) -> Decision {
    // 1. injected failures
    if let Some(failure) = ledger.failures.front_mut() {
        failure.remaining = failure.remaining.saturating_sub(1);
        let decision = Decision {
            status: failure.status,
            retry_after: failure.retry_after,
            body: json!({ "error": "injected failure" }),
        };
        if failure.remaining == 0 {
            ledger.failures.pop_front();
        }
        if decision.status != StatusCode::OK {
            return decision;
        }
    }
    // 2. rate limit
    if let Some(bucket) = ledger.bucket.as_mut()
        && let Err(wait) = bucket.take(Instant::now())
    {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        return Decision {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(secs),
            body: json!({ "error": "rate limit exceeded" }),
        };
    }
    // 3. authentication
    let header_str = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = &ledger.bearer_token {
        let expected = format!("Bearer {token}");
        if header_str("authorization") != Some(expected.as_str()) {
            return Decision::error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    if let Some(secret) = &ledger.hmac_secret
        && !signature_valid(secret, body, header_str(SIGNATURE_HEADER))
    {
        return Decision::error(
            StatusCode::UNAUTHORIZED,
            "missing or invalid X-Retl-Signature",
        );
    }
    // 4. shape
    if method != Method::POST {
        return Decision::error(StatusCode::METHOD_NOT_ALLOWED, "only POST is accepted");
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return Decision::error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let Some(records) = parsed.get("records").and_then(Value::as_array) else {
        return Decision::error(StatusCode::BAD_REQUEST, "body has no 'records' array");
    };
    // 5. batch limit
    if let Some(max) = ledger.max_batch
        && records.len() > max
    {
        return Decision::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "batch of {} records exceeds the limit of {max}",
                records.len()
            ),
        );
    }
    // per-record processing
    let text = |name: &str| parsed.get(name).and_then(Value::as_str).map(str::to_string);
    let action = text("action").unwrap_or_default();
    let deleting = action == "delete";
    if deleting
        && ledger.not_found_for_missing_deletes
        && !records.iter().any(|r| {
            r.get("key")
                .is_some_and(|k| ledger.present.contains(&k.to_string()))
        })
    {
        return Decision::error(
            StatusCode::NOT_FOUND,
            "none of these records exists (already deleted?)",
        );
    }
    let (mapping, run) = (text("mapping"), text("run"));
    let request_index = ledger.requests.len();
    let mut errors = Vec::new();
    let mut retry = Vec::new();
    let mut accepted = 0usize;
    for (index, record) in records.iter().enumerate() {
        let Some(key) = record.get("key").filter(|k| !k.is_null()) else {
            errors.push(json!({ "index": index, "message": "record has no key" }));
            continue;
        };
        let key_text = key.to_string();
        if ledger.reject_keys.contains(&key_text) {
            errors.push(json!({ "index": index, "message": format!("key {key_text} rejected") }));
            continue;
        }
        if ledger.retry_keys.remove(&key_text) {
            retry.push(json!({ "index": index }));
            continue;
        }
        accepted += 1;
        if deleting {
            ledger.present.remove(&key_text);
        } else {
            ledger.present.insert(key_text);
        }
        ledger.records.push(ReceivedRecord {
            action: action.clone(),
            mapping: mapping.clone(),
            run: run.clone(),
            key: key.clone(),
            change: record
                .get("change")
                .and_then(Value::as_str)
                .map(str::to_string),
            fields: record.get("fields").and_then(Value::as_object).cloned(),
            request_index,
        });
    }
    Decision {
        status: StatusCode::OK,
        retry_after: None,
        body: json!({ "accepted": accepted, "errors": errors, "retry": retry }),
    }
}

#[cfg(test)]
mod tests;
