//! Emulator of Mixpanel's ingestion API: `/import` (strict mode) and `/engage` (profile
//! updates).
//!
//! # The contract it enforces
//! - `POST /import`: HTTP Basic with the service account (and `project_id` in the query) or
//!   with the project token as user name; otherwise `401` `{"code": 401, "error": "Invalid
//!   credentials", "status": "Unauthorized"}`. The body is a JSON array: more than 2,000
//!   events → `400`; over 10 MB → `413`. Each event needs a non-empty `event`, an object
//!   `properties` with a numeric `time` (seconds or milliseconds, after 1971, at most an hour
//!   ahead), a string `distinct_id`, and a `$insert_id` of at most 36 letters, digits or `-`.
//!   With `strict=1`, invalid events (and those of [`MixpanelEmulator::reject_keys`]) are
//!   answered `400` with `failed_records: [{"index", "insert_id", "field", "message"}]` and
//!   `num_records_imported`, the valid ones being imported; without it they are dropped
//!   silently and the answer is `200`.
//! - `POST /engage`: a JSON array of updates, each with the project `$token` (a wrong one is
//!   answered `401`), a non-empty `$distinct_id` and one of `$set`, `$set_once`, `$delete`.
//!   More than 2,000 updates, or an invalid update, is answered `200 {"status": 0, "error":
//!   ...}` with nothing applied; otherwise `200 {"status": 1, "error": null}`. A `$delete` of
//!   a profile that does not exist is `status: 1`.
//!
//! The ledger keeps every imported event ([`MixpanelEmulator::events`], duplicates kept),
//! every applied profile update ([`MixpanelEmulator::profile_updates`]) and the profiles
//! ([`MixpanelEmulator::profile`]). Fault controls come first: `throttle_next` (`429` +
//! `Retry-After`), `fail_next`, `fail_everything` (`503`), `lose_answers`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest, Reply};

/// Events per `/import` request and updates per `/engage` request.
pub const MAX_RECORDS: usize = 2000;
/// Bytes per `/import` request.
pub const MAX_IMPORT_BYTES: usize = 10 * 1000 * 1000;

/// The project an emulator serves.
#[derive(Debug, Clone)]
pub struct MixpanelProject {
    /// Project token.
    pub token: String,
    /// Project id.
    pub project_id: String,
    /// Service account `(user name, secret)`.
    pub service_account: (String, String),
}

/// One imported event.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedEvent {
    /// `event`.
    pub name: String,
    /// `properties.distinct_id`.
    pub distinct_id: String,
    /// `properties.$insert_id`.
    pub insert_id: String,
    /// The whole event as received.
    pub body: Value,
    /// Index of the request that carried it.
    pub request_index: usize,
}

/// One applied profile update.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileUpdate {
    /// `$distinct_id`.
    pub distinct_id: String,
    /// `$set`, `$set_once` or `$delete`.
    pub operation: String,
    /// The whole update as received.
    pub body: Value,
}

#[derive(Debug)]
struct Ledger {
    project: MixpanelProject,
    requests: Vec<LoggedRequest>,
    events: Vec<ImportedEvent>,
    updates: Vec<ProfileUpdate>,
    profiles: BTreeMap<String, Map<String, Value>>,
    reject_keys: BTreeSet<String>,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Mixpanel emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct MixpanelEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl MixpanelEmulator {
    /// Starts an emulator serving `project`.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(project: MixpanelProject) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            project,
            requests: Vec::new(),
            events: Vec::new(),
            updates: Vec::new(),
            profiles: BTreeMap::new(),
            reject_keys: BTreeSet::new(),
            faults: Faults::default(),
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "mixpanel").await?;
        Ok(MixpanelEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `api_host`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every imported event, duplicates kept.
    pub fn events(&self) -> Vec<ImportedEvent> {
        self.lock().events.clone()
    }

    /// Every applied profile update.
    pub fn profile_updates(&self) -> Vec<ProfileUpdate> {
        self.lock().updates.clone()
    }

    /// The profile of `distinct_id`, if it exists.
    pub fn profile(&self, distinct_id: &str) -> Option<Map<String, Value>> {
        self.lock().profiles.get(distinct_id).cloned()
    }

    /// Fails events with these distinct ids (strict mode's `failed_records`).
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

    /// Answers every request `503` until [`MixpanelEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Mixpanel loses these profiles (deleted on its side).
    pub fn forget(&self, distinct_ids: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        for id in distinct_ids {
            ledger.profiles.remove(&id);
        }
    }

    /// Ends the faults and rejections; forgets requests, events and updates (not profiles).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.reject_keys.clear();
        ledger.requests.clear();
        ledger.events.clear();
        ledger.updates.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for MixpanelEmulator {
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
    let reply = match ledger.faults.injected(|status| {
        json!({"code": status.as_u16(), "error": "Project exceeded rate limits. Please retry the request with exponential backoff.", "status": status.canonical_reason()})
    }) {
        Some(reply) => reply,
        None if method == Method::POST && uri.path() == "/import" => {
            import(&mut ledger, &entry, &headers, &body)
        }
        None if method == Method::POST && uri.path() == "/engage" => engage(&mut ledger, &body),
        None => Reply::json(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    };
    let reply = if reply.status.is_success() || reply.status == StatusCode::BAD_REQUEST {
        if ledger.faults.take_lost_answer() {
            Reply::json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "answer lost"}),
            )
        } else {
            reply
        }
    } else {
        reply
    };
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    reply.into_response()
}

fn failure(status: StatusCode, error: &str) -> Reply {
    Reply::json(
        status,
        json!({"code": status.as_u16(), "error": error, "status": status.canonical_reason()}),
    )
}

fn import(ledger: &mut Ledger, entry: &LoggedRequest, headers: &HeaderMap, body: &[u8]) -> Reply {
    let project = &ledger.project;
    let authorized = match common::basic_auth(headers) {
        Some((user, secret)) if (user.clone(), secret.clone()) == project.service_account => {
            entry.query.get("project_id") == Some(&project.project_id)
        }
        Some((user, _)) => user == project.token,
        None => false,
    };
    if !authorized {
        return failure(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    if body.len() > MAX_IMPORT_BYTES {
        return failure(StatusCode::PAYLOAD_TOO_LARGE, "request body over 10 MB");
    }
    let Ok(Value::Array(events)) = serde_json::from_slice::<Value>(body) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "body must be a JSON array of events",
        );
    };
    if events.len() > MAX_RECORDS {
        return failure(
            StatusCode::BAD_REQUEST,
            "too many events: at most 2000 per request",
        );
    }
    let strict = entry.query.get("strict").map(String::as_str) == Some("1");
    let request_index = ledger.requests.len();
    let mut failed = Vec::new();
    let mut imported = 0usize;
    for (index, event) in events.iter().enumerate() {
        match check_event(event, &ledger.reject_keys) {
            Ok(imported_event) => {
                imported += 1;
                ledger.events.push(ImportedEvent {
                    request_index,
                    ..imported_event
                });
            }
            Err((field, message)) => failed.push(json!({
                "index": index,
                "insert_id": event.pointer("/properties/$insert_id"),
                "field": field,
                "message": message,
            })),
        }
    }
    if strict && !failed.is_empty() {
        return Reply::json(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error": "some data points in the request failed validation",
                   "status": "Bad Request", "num_records_imported": imported,
                   "failed_records": failed}),
        );
    }
    Reply::json(
        StatusCode::OK,
        json!({"code": 200, "num_records_imported": imported, "status": "OK"}),
    )
}

/// The event if Mixpanel imports it, else `(field, message)`.
fn check_event(
    event: &Value,
    rejected: &BTreeSet<String>,
) -> Result<ImportedEvent, (String, String)> {
    let bad = |field: &str, message: &str| (field.to_string(), format!("'{field}' {message}"));
    let name = event
        .get("event")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("event", "is required"))?;
    let properties = event
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("properties", "must be an object"))?;
    let time = properties
        .get("time")
        .and_then(Value::as_f64)
        .ok_or_else(|| {
            bad(
                "properties.time",
                "is invalid: must be specified as seconds or milliseconds since epoch",
            )
        })?;
    let millis = if time >= 1e11 { time } else { time * 1000.0 };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    if millis < 31_536_000_000.0 || millis > now + 3_600_000.0 {
        return Err(bad(
            "properties.time",
            "must be after 1971-01-01 and at most an hour ahead",
        ));
    }
    let distinct_id = properties
        .get("distinct_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("properties.distinct_id", "is required"))?;
    if [
        "anon",
        "anonymous",
        "nil",
        "none",
        "null",
        "n/a",
        "undefined",
        "0",
        "-1",
    ]
    .contains(&distinct_id.to_ascii_lowercase().as_str())
    {
        return Err(bad("properties.distinct_id", "is a placeholder value"));
    }
    let insert_id = properties
        .get("$insert_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("properties.$insert_id", "is required"))?;
    if insert_id.is_empty()
        || insert_id.len() > 36
        || !insert_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(bad(
            "properties.$insert_id",
            "must be 1 to 36 letters, digits or '-'",
        ));
    }
    if rejected.contains(distinct_id) {
        return Err(bad(
            "properties.distinct_id",
            "was rejected (emulator reject_keys)",
        ));
    }
    Ok(ImportedEvent {
        name: name.to_string(),
        distinct_id: distinct_id.to_string(),
        insert_id: insert_id.to_string(),
        body: event.clone(),
        request_index: 0,
    })
}

fn engage(ledger: &mut Ledger, body: &[u8]) -> Reply {
    let refuse = |error: &str| Reply::json(StatusCode::OK, json!({"status": 0, "error": error}));
    let Ok(Value::Array(updates)) = serde_json::from_slice::<Value>(body) else {
        return refuse("data must be a JSON array of updates");
    };
    if updates.len() > MAX_RECORDS {
        return refuse("too many updates: at most 2000 per request");
    }
    let mut checked = Vec::with_capacity(updates.len());
    for update in &updates {
        if update.get("$token").and_then(Value::as_str) != Some(ledger.project.token.as_str()) {
            return Reply::json(
                StatusCode::UNAUTHORIZED,
                json!({"status": 0, "error": "Invalid project token"}),
            );
        }
        let Some(id) = update
            .get("$distinct_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            return refuse("$distinct_id is required");
        };
        let Some(operation) = ["$set", "$set_once", "$delete"]
            .into_iter()
            .find(|op| update.get(*op).is_some())
        else {
            return refuse("no profile operation ($set, $set_once, $delete)");
        };
        if operation != "$delete" && !update[operation].is_object() {
            return refuse("profile properties must be an object");
        }
        checked.push((id.to_string(), operation, update.clone()));
    }
    for (id, operation, update) in checked {
        match operation {
            "$delete" => {
                ledger.profiles.remove(&id);
            }
            op => {
                let profile = ledger.profiles.entry(id.clone()).or_default();
                for (k, v) in update[op].as_object().into_iter().flatten() {
                    if op == "$set" || !profile.contains_key(k) {
                        profile.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        ledger.updates.push(ProfileUpdate {
            distinct_id: id,
            operation: operation.to_string(),
            body: update,
        });
    }
    Reply::json(StatusCode::OK, json!({"status": 1, "error": null}))
}
