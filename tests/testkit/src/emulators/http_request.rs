//! Emulator of a generic JSON REST API of users, the second API shape the `http` (HTTP
//! Request) destination is tested against (the first being the webhook contract): bare JSON
//! arrays, an `X-Api-Key` header, per-record errors in a 200 answer, and `503` +
//! `Retry-After` as its throttle signal.
//!
//! # The contract it enforces
//! Checks run in this order; the first that fails answers the request:
//! 1. fault controls: [`HttpApiEmulator::throttle_next`] (`503 {"error": "overloaded, retry
//!    later"}` with `Retry-After`), [`HttpApiEmulator::fail_next`],
//!    [`HttpApiEmulator::fail_everything`] (`503`);
//! 2. `X-Api-Key: <key>`; missing or wrong → `401 {"error": "invalid API key"}`;
//! 3. a body over [`MAX_BODY_BYTES`] → `413 {"error": "request body over 1 MiB"}`;
//! 4. the endpoints:
//!    - `POST /v1/users/batch`: a JSON array of at most [`MAX_BATCH`] user objects, each with
//!      an `id` (more → `413 {"error": "at most 100 users per request"}`; not an array →
//!      `400`). A user without an `id`, or whose `id` is in
//!      [`HttpApiEmulator::reject_keys`], is listed in the answer
//!      `200 {"errors": [{"index": i, "message": "..."}]}`; the others are stored.
//!    - `PUT /v1/users/{id}`: one user object; stored and answered `200 {"id": ...}`; a
//!      rejected id → `422 {"error": "..."}`.
//!    - `POST /v1/users/delete`: `{"ids": [...]}` (at most [`MAX_BATCH`]); ids it does not
//!      hold are no error: `200 {"deleted": n, "errors": []}`.
//!    - `DELETE /v1/users/{id}`: `204`, or `404 {"error": "not found"}` for a user it does not
//!      hold.
//!    - anything else → `404 {"error": "no such endpoint"}`.
//!
//! The ledger: every request ([`HttpApiEmulator::requests`]), every accepted write
//! ([`HttpApiEmulator::accepted`], duplicates kept) and the users it holds
//! ([`HttpApiEmulator::user`]).

use std::collections::{BTreeMap, BTreeSet};
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

/// Users per batch request.
pub const MAX_BATCH: usize = 100;
/// Bytes per request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One write the emulator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedWrite {
    /// `upsert` or `delete`.
    pub operation: String,
    /// The user's id, as text (`42`, `"abc"` → `abc`).
    pub id: String,
    /// The user object (`Value::Null` for a delete).
    pub body: Value,
}

#[derive(Debug, Default)]
struct Ledger {
    api_key: String,
    requests: Vec<LoggedRequest>,
    accepted: Vec<AcceptedWrite>,
    users: BTreeMap<String, Value>,
    reject_keys: BTreeSet<String>,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct HttpApiEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl HttpApiEmulator {
    /// Starts an emulator accepting this API key.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(api_key: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            api_key: api_key.to_string(),
            ..Ledger::default()
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "http_request").await?;
        Ok(HttpApiEmulator { addr, shared, task })
    }

    /// The base URL, e.g. `http://127.0.0.1:4567`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every accepted write, duplicates kept.
    pub fn accepted(&self) -> Vec<AcceptedWrite> {
        self.lock().accepted.clone()
    }

    /// The user with this id, if held.
    pub fn user(&self, id: &str) -> Option<Value> {
        self.lock().users.get(id).cloned()
    }

    /// Rejects users with these ids (per record in a batch, `422` alone).
    pub fn reject_keys(&self, ids: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(ids);
    }

    /// Answers the next `n` requests `503` with `Retry-After: seconds`.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock().faults.fail_next(n, 503, Some(seconds));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`HttpApiEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// The API loses these users (deleted on its side).
    pub fn forget(&self, ids: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        for id in ids {
            ledger.users.remove(&id);
        }
    }

    /// Ends faults and rejections; forgets requests and accepted writes (not users).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.reject_keys.clear();
        ledger.requests.clear();
        ledger.accepted.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for HttpApiEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error(status: StatusCode, text: &str) -> Reply {
    Reply::json(status, json!({"error": text}))
}

/// An id as text: a string as is, a number as written.
fn id_text(id: &Value) -> Option<String> {
    match id {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
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

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    if let Some(reply) = ledger.faults.injected(|status| {
        if status == StatusCode::SERVICE_UNAVAILABLE {
            json!({"error": "overloaded, retry later"})
        } else {
            json!({"error": format!("injected {status}")})
        }
    }) {
        return reply;
    }
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key != Some(ledger.api_key.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "invalid API key");
    }
    if body.len() > MAX_BODY_BYTES {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body over 1 MiB");
    }
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let user_id = path
        .strip_prefix("/v1/users/")
        .filter(|id| !id.is_empty() && !id.contains('/'));
    match (method, path, user_id) {
        (&Method::POST, "/v1/users/batch", _) => batch_upsert(ledger, &parsed),
        (&Method::POST, "/v1/users/delete", _) => batch_delete(ledger, &parsed),
        (&Method::PUT, _, Some(id)) => put(ledger, id, parsed),
        (&Method::DELETE, _, Some(id)) => {
            if ledger.users.remove(id).is_none() {
                return error(StatusCode::NOT_FOUND, "not found");
            }
            ledger.accepted.push(AcceptedWrite {
                operation: "delete".to_string(),
                id: id.to_string(),
                body: Value::Null,
            });
            Reply::json(StatusCode::NO_CONTENT, Value::Null)
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

fn batch_upsert(ledger: &mut Ledger, parsed: &Value) -> Reply {
    let Some(users) = parsed.as_array() else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON array of users",
        );
    };
    if users.len() > MAX_BATCH {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "at most 100 users per request",
        );
    }
    let mut errors = Vec::new();
    for (index, user) in users.iter().enumerate() {
        let Some(id) = user.get("id").and_then(id_text) else {
            errors.push(json!({"index": index, "message": "'id' is required"}));
            continue;
        };
        if ledger.reject_keys.contains(&id) {
            errors.push(json!({"index": index, "message": format!("user {id} was rejected")}));
            continue;
        }
        ledger.users.insert(id.clone(), user.clone());
        ledger.accepted.push(AcceptedWrite {
            operation: "upsert".to_string(),
            id,
            body: user.clone(),
        });
    }
    Reply::json(StatusCode::OK, json!({"errors": errors}))
}

fn put(ledger: &mut Ledger, id: &str, user: Value) -> Reply {
    if !user.is_object() {
        return error(StatusCode::BAD_REQUEST, "the body must be a user object");
    }
    if ledger.reject_keys.contains(id) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("user {id} was rejected"),
        );
    }
    ledger.users.insert(id.to_string(), user.clone());
    ledger.accepted.push(AcceptedWrite {
        operation: "upsert".to_string(),
        id: id.to_string(),
        body: user,
    });
    Reply::json(StatusCode::OK, json!({"id": id}))
}

fn batch_delete(ledger: &mut Ledger, parsed: &Value) -> Reply {
    let Some(ids) = parsed.get("ids").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "'ids' must be an array");
    };
    if ids.len() > MAX_BATCH {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "at most 100 ids per request");
    }
    let mut deleted = 0usize;
    for id in ids {
        let Some(id) = id_text(id) else {
            return error(StatusCode::BAD_REQUEST, "'ids' must be strings or numbers");
        };
        if ledger.users.remove(&id).is_some() {
            deleted += 1;
        }
        ledger.accepted.push(AcceptedWrite {
            operation: "delete".to_string(),
            id,
            body: Value::Null,
        });
    }
    Reply::json(StatusCode::OK, json!({"deleted": deleted, "errors": []}))
}
