//! Emulator of PostHog's capture API (`/batch/`), its flag evaluation endpoint (`/flags`,
//! the key check) and the persons API's `bulk_delete`.
//!
//! # The contract it enforces
//! - `POST /batch/` (or `/batch`) with `{"api_key", "historical_migration"?, "batch": [...]}`:
//!   - no `api_key`, an empty one, a personal API key (`phx_...`) or a project key the
//!     emulator does not know: `401 {"type": "authentication_error", "code":
//!     "invalid_api_key", "detail": ...}`;
//!   - a body of 20 MB or more: `413` (documented: "the entire request body must be less than
//!     20MB");
//!   - invalid JSON, no `batch` array, an empty batch, or any invalid event: `400` for the
//!     whole request (the capture API answers per request, never per event). An event needs
//!     a non-empty `event`, a non-empty string `distinct_id` (top level or in `properties`),
//!     a `uuid` in UUID form when present and an RFC 3339 `timestamp` when present;
//!     [`PosthogEmulator::reject_keys`] makes the events of these distinct ids invalid;
//!   - otherwise `200 {"status": 1}`: every event is appended to the ledger
//!     ([`PosthogEmulator::events`], duplicates kept) and its `$set` / `$set_once` properties
//!     are applied to its person ([`PosthogEmulator::person`]), created when new.
//! - `POST /flags` with `{"api_key", "distinct_id"}`: `200 {"featureFlags": {}, ...}` for a
//!   known project key, else `401` "Project API key invalid".
//! - `POST /api/projects/<id>/persons/bulk_delete/` with `Authorization: Bearer <personal
//!   key>` and `{"distinct_ids": [...]}`: a wrong key is `401`, another project `404`, more
//!   than 1,000 ids or none `400`; otherwise the persons are removed and the answer is `202`
//!   (ids with no person are not an error). `GET /api/projects/<id>/persons/` lists persons.
//!
//! Fault controls come first: `throttle_next` (`429` + `Retry-After`), `fail_next`,
//! `fail_everything` (`503`), `lose_answers` (processed, answered `503`).

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

/// PostHog's documented limit of a `/batch/` body: less than 20 MB.
pub const MAX_BATCH_BYTES: usize = 20 * 1000 * 1000;
/// PostHog's documented limit of a `bulk_delete`: 1,000 ids.
pub const MAX_DELETE_IDS: usize = 1000;

/// The project an emulator serves.
#[derive(Debug, Clone)]
pub struct PosthogProject {
    /// Project API key (`phc_...`).
    pub project_api_key: String,
    /// Project id.
    pub project_id: String,
    /// A personal API key (`phx_...`) allowed to delete persons.
    pub personal_api_key: String,
}

/// One captured event.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedEvent {
    /// `event`.
    pub event: String,
    /// `distinct_id` (top level, else `properties.distinct_id`).
    pub distinct_id: String,
    /// `uuid`, when sent.
    pub uuid: Option<String>,
    /// The whole event as received.
    pub body: Value,
    /// Index of the request that carried it.
    pub request_index: usize,
}

#[derive(Debug)]
struct Ledger {
    project: PosthogProject,
    requests: Vec<LoggedRequest>,
    events: Vec<CapturedEvent>,
    persons: BTreeMap<String, Map<String, Value>>,
    deleted: Vec<String>,
    reject_keys: BTreeSet<String>,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running PostHog emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct PosthogEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl PosthogEmulator {
    /// Starts an emulator serving `project`.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(project: PosthogProject) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            project,
            requests: Vec::new(),
            events: Vec::new(),
            persons: BTreeMap::new(),
            deleted: Vec::new(),
            reject_keys: BTreeSet::new(),
            faults: Faults::default(),
        }));
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES + 1024 * 1024))
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "posthog").await?;
        Ok(PosthogEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `host` (and `app_host`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every captured event, duplicates kept.
    pub fn events(&self) -> Vec<CapturedEvent> {
        self.lock().events.clone()
    }

    /// The properties of the person of `distinct_id`, if it exists.
    pub fn person(&self, distinct_id: &str) -> Option<Map<String, Value>> {
        self.lock().persons.get(distinct_id).cloned()
    }

    /// Every distinct id a successful `bulk_delete` named (present or not), in order.
    pub fn deleted(&self) -> Vec<String> {
        self.lock().deleted.clone()
    }

    /// Makes the events of these distinct ids invalid (their batch is answered `400`).
    pub fn reject_keys(&self, distinct_ids: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(distinct_ids);
    }

    /// Answers the next `n` requests `429` with `Retry-After: seconds`.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock().faults.fail_next(n, 429, Some(seconds));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`PosthogEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// PostHog loses these persons (deleted on its side).
    pub fn forget(&self, distinct_ids: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        for id in distinct_ids {
            ledger.persons.remove(&id);
        }
    }

    /// Ends the faults and rejections; forgets requests, events and deletes (not persons).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.reject_keys.clear();
        ledger.requests.clear();
        ledger.events.clear();
        ledger.deleted.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for PosthogEmulator {
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
    let path = uri.path();
    let persons_base = format!("/api/projects/{}/persons", ledger.project.project_id);
    let reply = match ledger.faults.injected(|status| {
        error_body(
            "server_error",
            "throttled",
            status.canonical_reason().unwrap_or("error"),
        )
    }) {
        Some(reply) => reply,
        None if method == Method::POST && (path == "/batch/" || path == "/batch") => {
            capture(&mut ledger, &body)
        }
        None if method == Method::POST && (path == "/flags" || path == "/flags/") => {
            flags(&ledger, &body)
        }
        None if path.starts_with("/api/projects/") => {
            if common::bearer(&headers).as_deref() != Some(ledger.project.personal_api_key.as_str())
            {
                failure(
                    StatusCode::UNAUTHORIZED,
                    "authentication_error",
                    "authentication_failed",
                    "Personal API key found in request Authorization header is invalid.",
                )
            } else if method == Method::POST && path == format!("{persons_base}/bulk_delete/") {
                bulk_delete(&mut ledger, &body)
            } else if method == Method::GET && path == format!("{persons_base}/") {
                let results: Vec<Value> = ledger
                    .persons
                    .iter()
                    .take(1)
                    .map(|(id, p)| json!({"distinct_ids": [id], "properties": p}))
                    .collect();
                Reply::json(StatusCode::OK, json!({"results": results, "next": null}))
            } else {
                failure(
                    StatusCode::NOT_FOUND,
                    "invalid_request",
                    "not_found",
                    "Not found.",
                )
            }
        }
        None => Reply::json(StatusCode::NOT_FOUND, json!({"detail": "not found"})),
    };
    let reply = if reply.status.is_success() && ledger.faults.take_lost_answer() {
        Reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": "answer lost"}),
        )
    } else {
        reply
    };
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    reply.into_response()
}

/// PostHog's error body.
fn error_body(kind: &str, code: &str, detail: &str) -> Value {
    json!({"type": kind, "code": code, "detail": detail, "attr": null})
}

fn failure(status: StatusCode, kind: &str, code: &str, detail: &str) -> Reply {
    Reply::json(status, error_body(kind, code, detail))
}

fn invalid_key() -> Reply {
    failure(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "invalid_api_key",
        "Project API key invalid. You can find your project API key in PostHog project settings.",
    )
}

fn bad_request(detail: &str) -> Reply {
    failure(
        StatusCode::BAD_REQUEST,
        "validation_error",
        "invalid_payload",
        detail,
    )
}

fn capture(ledger: &mut Ledger, body: &[u8]) -> Reply {
    if body.len() >= MAX_BATCH_BYTES {
        return failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            "validation_error",
            "payload_too_large",
            "the request body must be less than 20MB",
        );
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return bad_request("failed to parse request: not a JSON object");
    };
    let key = request.get("api_key").and_then(Value::as_str).unwrap_or("");
    if key.is_empty() || key.starts_with("phx_") || key != ledger.project.project_api_key {
        return invalid_key();
    }
    let Some(Value::Array(events)) = request.get("batch") else {
        return bad_request("failed to parse request: no batch array");
    };
    if events.is_empty() {
        return bad_request("request holds no events");
    }
    let mut checked = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        match check_event(event, &ledger.reject_keys) {
            Ok(event) => checked.push(event),
            Err(message) => return bad_request(&format!("event {index}: {message}")),
        }
    }
    let request_index = ledger.requests.len();
    for event in checked {
        let person = ledger.persons.entry(event.distinct_id.clone()).or_default();
        let properties = event.body.get("properties").and_then(Value::as_object);
        for (operation, overwrite) in [("$set", true), ("$set_once", false)] {
            let values = properties
                .and_then(|p| p.get(operation))
                .and_then(Value::as_object);
            for (k, v) in values.into_iter().flatten() {
                if overwrite || !person.contains_key(k) {
                    person.insert(k.clone(), v.clone());
                }
            }
        }
        ledger.events.push(CapturedEvent {
            request_index,
            ..event
        });
    }
    Reply::json(StatusCode::OK, json!({"status": 1}))
}

/// The event if PostHog takes it, else why not.
fn check_event(event: &Value, rejected: &BTreeSet<String>) -> Result<CapturedEvent, String> {
    let name = event
        .get("event")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("missing event name")?;
    let distinct_id = event
        .get("distinct_id")
        .or_else(|| event.pointer("/properties/distinct_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("missing distinct_id")?;
    if let Some(properties) = event.get("properties")
        && !properties.is_object()
    {
        return Err("properties must be an object".to_string());
    }
    let uuid = match event.get("uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(uuid)) if is_uuid(uuid) => Some(uuid.clone()),
        Some(other) => return Err(format!("invalid uuid {other}")),
    };
    match event.get("timestamp") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if is_rfc3339(t) => {}
        Some(other) => return Err(format!("invalid timestamp {other}")),
    }
    if rejected.contains(distinct_id) {
        return Err(format!(
            "distinct_id {distinct_id} rejected (emulator reject_keys)"
        ));
    }
    Ok(CapturedEvent {
        event: name.to_string(),
        distinct_id: distinct_id.to_string(),
        uuid,
        body: event.clone(),
        request_index: 0,
    })
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `YYYY-MM-DDTHH:MM:SS` followed by optional fractions and a zone (`Z` or `±HH:MM`).
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        range
            .clone()
            .all(|i| b.get(i).is_some_and(u8::is_ascii_digit))
    };
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (text.ends_with('Z') || text.ends_with('z') || text[19..].contains(['+', '-']))
}

fn flags(ledger: &Ledger, body: &[u8]) -> Reply {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let key = request.get("api_key").and_then(Value::as_str).unwrap_or("");
    if key != ledger.project.project_api_key {
        return invalid_key();
    }
    if request.get("distinct_id").and_then(Value::as_str).is_none() {
        return bad_request("missing distinct_id");
    }
    Reply::json(
        StatusCode::OK,
        json!({"featureFlags": {}, "featureFlagPayloads": {}, "errorsWhileComputingFlags": false}),
    )
}

fn bulk_delete(ledger: &mut Ledger, body: &[u8]) -> Reply {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(ids) = request.get("distinct_ids").and_then(Value::as_array) else {
        return bad_request("Either ids or distinct_ids must be provided");
    };
    if ids.is_empty() || ids.len() > MAX_DELETE_IDS {
        return bad_request("You can only pass 1000 ids or distinct_ids at a time");
    }
    let Some(ids): Option<Vec<String>> = ids
        .iter()
        .map(|id| id.as_str().map(str::to_string))
        .collect()
    else {
        return bad_request("distinct_ids must be strings");
    };
    for id in ids {
        ledger.persons.remove(&id);
        ledger.deleted.push(id);
    }
    Reply {
        status: StatusCode::ACCEPTED,
        retry_after: None,
        headers: Vec::new(),
        body: Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_and_time_forms() {
        assert!(is_uuid("0123abcd-0123-4567-89ab-0123456789ab"));
        assert!(!is_uuid("0123abcd0123456789ab0123456789ab"));
        assert!(is_rfc3339("2023-11-14T22:13:20.000Z"));
        assert!(is_rfc3339("2023-11-14T23:13:20+01:00"));
        assert!(!is_rfc3339("yesterday"));
        assert!(!is_rfc3339("2023-11-14"));
    }
}
