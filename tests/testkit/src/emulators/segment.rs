//! Emulator of Segment's HTTP Tracking API batch endpoint and of the CDN settings document.
//!
//! # The contract it enforces
//! - `POST /v1/batch` with `{"batch": [...]}` and `Authorization: Basic <write key>:` (empty
//!   password). Other paths answer `404`.
//! - No `Authorization`, or an empty user name: `400` (the edge needs a write key). A write
//!   key the emulator does not know is answered `200 {"success": true}` like a known one, and
//!   its messages are dropped (recorded in [`SegmentEmulator::dropped`]): the real edge is
//!   stateless and does not check keys.
//! - A body over 500 KB, a message over 32 KB, invalid JSON or no `batch` array: `400` for the
//!   whole request (documented on the HTTP API page, "Max request size").
//! - Each message needs `type`, `messageId`, a `userId` or `anonymousId`; a `track` needs
//!   `event`, a `group` needs `groupId`. Segment answers 200 anyway and drops an invalid
//!   message: so does the emulator (it lands in [`SegmentEmulator::dropped`] with the reason).
//! - Otherwise `200 {"success": true}`: every valid message is appended to the ledger
//!   ([`SegmentEmulator::messages`]), duplicates (same `messageId`) kept so tests can count
//!   them.
//! - `GET /v1/projects/<write key>/settings`: `200` with a settings document for a known key,
//!   `404` otherwise.
//!
//! Fault controls (checked before anything else): [`SegmentEmulator::throttle_next`] (`429`
//! with `Retry-After`), [`SegmentEmulator::fail_next`], [`SegmentEmulator::fail_everything`]
//! (`503`), [`SegmentEmulator::lose_answers`] (processed, answered `503`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest, Reply};

/// Segment's documented limit of a batch request.
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
/// Segment's documented limit of one message.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// One message the emulator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentMessage {
    /// `type`.
    pub message_type: String,
    /// `messageId`.
    pub message_id: String,
    /// `userId`, else `anonymousId`: the ledger's key.
    pub key: String,
    /// The whole message as received.
    pub body: Value,
    /// Index of the request in [`SegmentEmulator::requests`] that carried it.
    pub request_index: usize,
}

#[derive(Debug, Default)]
struct Ledger {
    write_keys: BTreeSet<String>,
    requests: Vec<LoggedRequest>,
    messages: Vec<SegmentMessage>,
    dropped: Vec<(Value, String)>,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Segment emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct SegmentEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl SegmentEmulator {
    /// Starts an emulator that knows the source with this write key.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(write_key: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            write_keys: BTreeSet::from([write_key.to_string()]),
            ..Ledger::default()
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "segment").await?;
        Ok(SegmentEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `endpoint` and `settings_endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far (settings requests included), in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every accepted message, in order, duplicates kept.
    pub fn messages(&self) -> Vec<SegmentMessage> {
        self.lock().messages.clone()
    }

    /// Messages answered 200 but dropped (unknown write key, invalid message), with why.
    pub fn dropped(&self) -> Vec<(Value, String)> {
        self.lock().dropped.clone()
    }

    /// Answers the next `n` requests with `429` and `Retry-After: seconds`.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock().faults.fail_next(n, 429, Some(seconds));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request with `503` until [`SegmentEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Accepts the next `n` batches but answers them `503` (the answer is lost).
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Ends the faults and forgets requests, messages and drops.
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.requests.clear();
        ledger.messages.clear();
        ledger.dropped.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for SegmentEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut ledger = lock(&shared);
    let mut entry = common::log_entry(&method, &uri, &headers, &body);
    let reply = decide(&mut ledger, &method, uri.path(), &headers, &body);
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    reply.into_response()
}

fn error(status: StatusCode, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"code": "invalid_request", "message": message}),
    )
}

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    if let Some(reply) = ledger
        .faults
        .injected(|status| json!({"code": "error", "message": format!("injected {status}")}))
    {
        return reply;
    }
    if method == Method::GET
        && let Some(key) = path
            .strip_prefix("/v1/projects/")
            .and_then(|p| p.strip_suffix("/settings"))
    {
        return if ledger.write_keys.contains(key) {
            Reply::json(
                StatusCode::OK,
                json!({"integrations": {"Segment.io": {"apiKey": key}}, "plan": {}}),
            )
        } else {
            error(StatusCode::NOT_FOUND, "no such write key")
        };
    }
    if method != Method::POST || path != "/v1/batch" {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    let key = match common::basic_auth(headers) {
        Some((user, _)) if !user.is_empty() => user,
        _ => return error(StatusCode::BAD_REQUEST, "missing write key"),
    };
    if body.len() > MAX_REQUEST_BYTES {
        return error(StatusCode::BAD_REQUEST, "request too large: over 500 KB");
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let Some(batch) = parsed.get("batch").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "no batch array");
    };
    if batch
        .iter()
        .any(|m| serde_json::to_vec(m).map_or(0, |b| b.len()) > MAX_MESSAGE_BYTES)
    {
        return error(StatusCode::BAD_REQUEST, "message too large: over 32 KB");
    }
    let request_index = ledger.requests.len();
    let known = ledger.write_keys.contains(&key);
    for message in batch {
        let verdict = if known {
            check(message)
        } else {
            Err("unknown write key".to_string())
        };
        match verdict {
            Ok((message_type, message_id, key)) => ledger.messages.push(SegmentMessage {
                message_type,
                message_id,
                key,
                body: message.clone(),
                request_index,
            }),
            Err(reason) => ledger.dropped.push((message.clone(), reason)),
        }
    }
    if ledger.faults.take_lost_answer() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "answer lost");
    }
    Reply::json(StatusCode::OK, json!({"success": true}))
}

/// `(type, messageId, key)` of a valid message, or why Segment drops it.
fn check(message: &Value) -> Result<(String, String, String), String> {
    let text = |name: &str| {
        message
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let message_type = text("type").ok_or("no type")?;
    if !["identify", "track", "page", "screen", "group", "alias"].contains(&message_type.as_str()) {
        return Err(format!("unknown type {message_type}"));
    }
    let message_id = text("messageId").ok_or("no messageId")?;
    if message_id.len() > 100 {
        return Err("messageId over 100 characters".to_string());
    }
    let key = text("userId")
        .or_else(|| text("anonymousId"))
        .ok_or("no userId or anonymousId")?;
    if message_type == "track" && text("event").is_none() {
        return Err("track without event".to_string());
    }
    if message_type == "group" && text("groupId").is_none() {
        return Err("group without groupId".to_string());
    }
    for object in ["traits", "properties", "context"] {
        if message.get(object).is_some_and(|v| !v.is_object()) {
            return Err(format!("{object} is not an object"));
        }
    }
    Ok((message_type, message_id, key))
}
