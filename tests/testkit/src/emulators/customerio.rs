//! Emulator of Customer.io's Track API: the v2 batch endpoint and the v1 account region.
//!
//! # The contract it enforces
//! - HTTP Basic `site_id:api_key` on every request; other credentials: `401 {"meta":
//!   {"error": "Unauthorized request"}}`.
//! - `POST /api/v2/batch` with `{"batch": [entry, ...]}`:
//!   - a body of 500 KB or more, invalid JSON or no `batch` array: `400 {"meta": {"error"}}`;
//!   - each entry needs `"type": "person"`, `identifiers.id` (a non-empty string of at most
//!     150 bytes) and an `action` of `identify`, `event` (with a non-empty `name` of at most
//!     100 bytes) or `delete`; an entry of 32 KB or more, an identify with more than 300
//!     attributes, or an id of [`CustomerioEmulator::reject_keys`] is an error;
//!   - every valid entry is applied; when some are not, the answer is `207 {"errors":
//!     [{"batch_index", "reason", "field", "message"}]}`, else `200 {}`. Deleting a person that
//!     does not exist is applied (not an error).
//! - `GET /api/v1/accounts/region`: `200 {"url", "environment_id", "region": "us"}`.
//!
//! The ledger keeps every applied entry ([`CustomerioEmulator::applied`], duplicates kept) and
//! the people ([`CustomerioEmulator::person`]). Fault controls come first: `throttle_next`
//! (`429` + `Retry-After`), `fail_next`, `fail_everything` (`503`), `lose_answers`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest, Reply};

/// The documented limit of a v2 batch request: smaller than 500 KB.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// The documented limit of one call, applied to each entry: 32 KB.
pub const MAX_ENTRY_BYTES: usize = 32 * 1024;

/// One applied batch entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerioEntry {
    /// `identifiers.id`.
    pub id: String,
    /// `identify`, `event` or `delete`.
    pub action: String,
    /// The whole entry as received.
    pub body: Value,
}

#[derive(Debug)]
struct Ledger {
    credentials: (String, String),
    requests: Vec<LoggedRequest>,
    applied: Vec<CustomerioEntry>,
    people: BTreeMap<String, Map<String, Value>>,
    reject_keys: BTreeSet<String>,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Customer.io emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct CustomerioEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl CustomerioEmulator {
    /// Starts an emulator of the workspace with these Track API credentials.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(site_id: &str, api_key: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            credentials: (site_id.to_string(), api_key.to_string()),
            requests: Vec::new(),
            applied: Vec::new(),
            people: BTreeMap::new(),
            reject_keys: BTreeSet::new(),
            faults: Faults::default(),
        }));
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(4 * MAX_BATCH_BYTES))
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "customerio").await?;
        Ok(CustomerioEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `track_host`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every applied entry, duplicates kept.
    pub fn applied(&self) -> Vec<CustomerioEntry> {
        self.lock().applied.clone()
    }

    /// The attributes of the person `id`, if it exists.
    pub fn person(&self, id: &str) -> Option<Map<String, Value>> {
        self.lock().people.get(id).cloned()
    }

    /// Makes the entries of these person ids errors of a `207`.
    pub fn reject_keys(&self, ids: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(ids);
    }

    /// Answers the next `n` requests `429` with `Retry-After: seconds`.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock().faults.fail_next(n, 429, Some(seconds));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`CustomerioEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Customer.io loses these people (deleted on its side).
    pub fn forget(&self, ids: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        for id in ids {
            ledger.people.remove(&id);
        }
    }

    /// Ends the faults and rejections; forgets requests and applied entries (not people).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.reject_keys.clear();
        ledger.requests.clear();
        ledger.applied.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for CustomerioEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn meta_error(status: StatusCode, error: &str) -> Reply {
    Reply::json(status, json!({"meta": {"error": error}}))
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
    let reply = match ledger
        .faults
        .injected(|status| json!({"meta": {"error": status.canonical_reason()}}))
    {
        Some(reply) => reply,
        None if common::basic_auth(&headers).as_ref() != Some(&ledger.credentials) => {
            meta_error(StatusCode::UNAUTHORIZED, "Unauthorized request")
        }
        None if method == Method::POST && uri.path() == "/api/v2/batch" => {
            batch(&mut ledger, &body)
        }
        None if method == Method::GET && uri.path() == "/api/v1/accounts/region" => Reply::json(
            StatusCode::OK,
            json!({"url": "https://track.customer.io", "environment_id": 1, "region": "us"}),
        ),
        None => meta_error(StatusCode::NOT_FOUND, "not found"),
    };
    let reply = if reply.status.is_success() && ledger.faults.take_lost_answer() {
        meta_error(StatusCode::SERVICE_UNAVAILABLE, "answer lost")
    } else {
        reply
    };
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    reply.into_response()
}

fn batch(ledger: &mut Ledger, body: &[u8]) -> Reply {
    if body.len() >= MAX_BATCH_BYTES {
        return meta_error(
            StatusCode::BAD_REQUEST,
            "request must be smaller than 500kb",
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return meta_error(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let Some(entries) = request.get("batch").and_then(Value::as_array) else {
        return meta_error(StatusCode::BAD_REQUEST, "batch must be an array");
    };
    let mut errors = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match check(entry, &ledger.reject_keys) {
            Ok((id, action)) => {
                apply(ledger, &id, &action, entry);
                ledger.applied.push(CustomerioEntry {
                    id,
                    action,
                    body: entry.clone(),
                });
            }
            Err((reason, field, message)) => errors.push(json!({
                "batch_index": index, "reason": reason, "field": field, "message": message,
            })),
        }
    }
    if errors.is_empty() {
        Reply::json(StatusCode::OK, json!({}))
    } else {
        Reply::json(StatusCode::MULTI_STATUS, json!({"errors": errors}))
    }
}

type EntryError = (&'static str, &'static str, String);

/// `(id, action)` of a valid entry, else `(reason, field, message)`.
fn check(entry: &Value, rejected: &BTreeSet<String>) -> Result<(String, String), EntryError> {
    let size = serde_json::to_vec(entry).map_or(0, |b| b.len());
    if size >= MAX_ENTRY_BYTES {
        return Err(("invalid", "", format!("entry is {size} bytes, over 32kb")));
    }
    if entry.get("type").and_then(Value::as_str) != Some("person") {
        return Err(("required", "type", "type must be person".to_string()));
    }
    let id = entry
        .pointer("/identifiers/id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or((
            "required",
            "identifiers",
            "identifiers.id must be present".to_string(),
        ))?;
    if id.len() > 150 {
        return Err((
            "invalid",
            "identifiers",
            "id cannot be longer than 150 bytes".to_string(),
        ));
    }
    let action = entry.get("action").and_then(Value::as_str).unwrap_or("");
    match action {
        "identify" => {
            let count = entry
                .get("attributes")
                .and_then(Value::as_object)
                .map_or(0, Map::len);
            if count > 300 {
                return Err((
                    "invalid",
                    "attributes",
                    "cannot identify more than 300 attributes in one request".to_string(),
                ));
            }
        }
        "event" => {
            let name = entry.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                return Err((
                    "required",
                    "name",
                    "event name must not be blank".to_string(),
                ));
            }
            if name.len() > 100 {
                return Err((
                    "invalid",
                    "name",
                    "event name cannot be longer than 100 bytes".to_string(),
                ));
            }
        }
        "delete" => {}
        other => return Err(("invalid", "action", format!("unknown action '{other}'"))),
    }
    if rejected.contains(id) {
        return Err((
            "invalid",
            "identifiers",
            format!("person {id} rejected (emulator reject_keys)"),
        ));
    }
    Ok((id.to_string(), action.to_string()))
}

fn apply(ledger: &mut Ledger, id: &str, action: &str, entry: &Value) {
    match action {
        "identify" => {
            let person = ledger.people.entry(id.to_string()).or_default();
            for (k, v) in entry
                .get("attributes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                person.insert(k.clone(), v.clone());
            }
        }
        "delete" => {
            ledger.people.remove(id);
        }
        _ => {}
    }
}
