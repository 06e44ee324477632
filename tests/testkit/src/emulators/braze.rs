//! Emulator of Braze's REST API user endpoints: `/users/track` and `/users/delete`.
//!
//! # The contract it enforces
//! - `Authorization: Bearer <REST API key>`; a missing or unknown key is answered `401`
//!   `{"message": "Unknown or missing REST API key."}`.
//! - `POST /users/track`: a JSON object with `attributes`, `events` and/or `purchases` arrays,
//!   at most 75 objects in all (the newer combined limit, which also satisfies the legacy 75
//!   per array); more → `400`. Nothing in any array → `400` `{"message": "Valid data must be
//!   provided in the 'attributes', 'events', or 'purchases' fields."}` (nothing written).
//!   Each object needs an `external_id`; an event needs a `name` and an ISO 8601 `time`;
//!   `properties` must be an object. An invalid object, or one whose `external_id` is in
//!   [`BrazeEmulator::reject_keys`], is a minor error `{"type", "input_array", "index"}`:
//!   answered `201 {"message": "success", "errors": [...]}` when others were processed, `400`
//!   with the errors when none was. An attributes object with `_update_existing_only: true`
//!   for a user that does not exist is skipped without an error, as Braze does.
//! - `POST /users/delete`: `{"external_ids": [...]}` (at most 50, else `400`); unknown ids
//!   are no error: `201 {"deleted": <ids that existed>, "message": "success"}`.
//! - Fault controls first: [`BrazeEmulator::throttle_next`] (`429` with `X-RateLimit-Limit`,
//!   `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset` in UTC epoch seconds, no
//!   `Retry-After`, as Braze answers), `fail_next`, `fail_everything` (`503`),
//!   `lose_answers`.
//!
//! The ledger: every processed object ([`BrazeEmulator::objects`], duplicates kept), every
//! delete request's ids ([`BrazeEmulator::deleted`]) and the users ([`BrazeEmulator::user`]).

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

/// Objects per `/users/track` request.
pub const MAX_TRACK_OBJECTS: usize = 75;
/// External ids per `/users/delete` request.
pub const MAX_DELETE_IDS: usize = 50;

/// One object `/users/track` processed.
#[derive(Debug, Clone, PartialEq)]
pub struct BrazeObject {
    /// `attributes`, `events` or `purchases`.
    pub array: String,
    /// Its `external_id`.
    pub external_id: String,
    /// The object as received.
    pub body: Value,
}

#[derive(Debug, Default)]
struct Ledger {
    api_key: String,
    requests: Vec<LoggedRequest>,
    objects: Vec<BrazeObject>,
    deleted: Vec<String>,
    users: BTreeMap<String, Map<String, Value>>,
    reject_keys: BTreeSet<String>,
    throttled: Vec<u64>,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Braze emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct BrazeEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl BrazeEmulator {
    /// Starts an emulator accepting this REST API key.
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
        let (addr, task) = common::serve(app, "braze").await?;
        Ok(BrazeEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `rest_endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every processed `/users/track` object, duplicates kept.
    pub fn objects(&self) -> Vec<BrazeObject> {
        self.lock().objects.clone()
    }

    /// Every id of every processed `/users/delete` request, known or not.
    pub fn deleted(&self) -> Vec<String> {
        self.lock().deleted.clone()
    }

    /// The attributes of user `external_id`, if the user exists.
    pub fn user(&self, external_id: &str) -> Option<Map<String, Value>> {
        self.lock().users.get(external_id).cloned()
    }

    /// Answers objects with these external ids with a minor error.
    pub fn reject_keys(&self, external_ids: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(external_ids);
    }

    /// Answers the next `n` requests `429`, the window resetting `seconds` from now.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock()
            .throttled
            .extend(std::iter::repeat_n(seconds, n));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`BrazeEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Braze loses these users (deleted on its side).
    pub fn forget(&self, external_ids: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        for id in external_ids {
            ledger.users.remove(&id);
        }
    }

    /// Ends faults and rejections; forgets requests, objects and deletes (not users).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.throttled.clear();
        ledger.reject_keys.clear();
        ledger.requests.clear();
        ledger.objects.clear();
        ledger.deleted.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for BrazeEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn message(status: StatusCode, text: &str) -> Reply {
    Reply::json(status, json!({"message": text}))
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
    if !ledger.throttled.is_empty() {
        let seconds = ledger.throttled.remove(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let reset = (now + seconds as f64).ceil() as u64;
        let mut reply = message(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
        reply.headers = vec![
            ("x-ratelimit-limit", "3000".to_string()),
            ("x-ratelimit-remaining", "0".to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ];
        return reply;
    }
    if let Some(reply) = ledger
        .faults
        .injected(|status| json!({"message": format!("injected {status}")}))
    {
        return reply;
    }
    if common::bearer(headers).as_deref() != Some(ledger.api_key.as_str()) {
        return message(StatusCode::UNAUTHORIZED, "Unknown or missing REST API key.");
    }
    let Ok(Value::Object(parsed)) = serde_json::from_slice::<Value>(body) else {
        return message(StatusCode::BAD_REQUEST, "Invalid JSON body.");
    };
    let reply = match (method, path) {
        (&Method::POST, "/users/track") => track(ledger, &parsed),
        (&Method::POST, "/users/delete") => delete(ledger, &parsed),
        _ => return message(StatusCode::NOT_FOUND, "Not found."),
    };
    if reply.status.is_success() && ledger.faults.take_lost_answer() {
        return message(StatusCode::SERVICE_UNAVAILABLE, "answer lost");
    }
    reply
}

fn track(ledger: &mut Ledger, parsed: &Map<String, Value>) -> Reply {
    let arrays: Vec<(&str, &Vec<Value>)> = ["attributes", "events", "purchases"]
        .into_iter()
        .filter_map(|name| Some((name, parsed.get(name)?.as_array()?)))
        .collect();
    let total: usize = arrays.iter().map(|(_, a)| a.len()).sum();
    if total == 0 {
        return message(
            StatusCode::BAD_REQUEST,
            "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields.",
        );
    }
    if total > MAX_TRACK_OBJECTS {
        return message(
            StatusCode::BAD_REQUEST,
            "Too many objects: at most 75 attributes, events and purchases per request.",
        );
    }
    let mut errors = Vec::new();
    let mut processed = BTreeMap::<&str, usize>::new();
    for (array, objects) in arrays {
        for (index, object) in objects.iter().enumerate() {
            match check(array, object, &ledger.reject_keys) {
                Err(kind) => {
                    errors.push(json!({"type": kind, "input_array": array, "index": index}))
                }
                Ok(id) => {
                    *processed.entry(array).or_default() += 1;
                    let update_only = object["_update_existing_only"] == json!(true);
                    if array == "attributes" {
                        if update_only && !ledger.users.contains_key(&id) {
                            continue;
                        }
                        let user = ledger.users.entry(id.clone()).or_default();
                        for (k, v) in object.as_object().into_iter().flatten() {
                            if k != "external_id" && k != "_update_existing_only" {
                                user.insert(k.clone(), v.clone());
                            }
                        }
                    } else {
                        ledger.users.entry(id.clone()).or_default();
                    }
                    ledger.objects.push(BrazeObject {
                        array: array.to_string(),
                        external_id: id,
                        body: object.clone(),
                    });
                }
            }
        }
    }
    if processed.is_empty() {
        return Reply::json(
            StatusCode::BAD_REQUEST,
            json!({"message": "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields.", "errors": errors}),
        );
    }
    let mut body = json!({"message": "success"});
    for (array, n) in processed {
        body[format!("{array}_processed")] = json!(n);
    }
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    Reply::json(StatusCode::CREATED, body)
}

/// The object's external id, or the minor error's `type`.
fn check(array: &str, object: &Value, rejected: &BTreeSet<String>) -> Result<String, String> {
    let id = object
        .get("external_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("Missing or invalid 'external_id'")?;
    if rejected.contains(id) {
        return Err(format!("'{id}' was rejected (emulator reject_keys)"));
    }
    if array == "events" {
        if object
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err("'name' is required".to_string());
        }
        let time = object.get("time").and_then(Value::as_str).unwrap_or("");
        if time.len() < 10 || !time.contains('T') {
            return Err("'time' is not a valid ISO 8601 time".to_string());
        }
        if object.get("properties").is_some_and(|p| !p.is_object()) {
            return Err("'properties' must be an object".to_string());
        }
    }
    Ok(id.to_string())
}

fn delete(ledger: &mut Ledger, parsed: &Map<String, Value>) -> Reply {
    let Some(ids) = parsed.get("external_ids").and_then(Value::as_array) else {
        return message(StatusCode::BAD_REQUEST, "'external_ids' must be an array.");
    };
    if ids.len() > MAX_DELETE_IDS {
        return message(
            StatusCode::BAD_REQUEST,
            "At most 50 external_ids per request.",
        );
    }
    let mut deleted = 0usize;
    for id in ids {
        let Some(id) = id.as_str() else {
            return message(StatusCode::BAD_REQUEST, "'external_ids' must be strings.");
        };
        if ledger.users.remove(id).is_some() {
            deleted += 1;
        }
        ledger.deleted.push(id.to_string());
    }
    Reply::json(
        StatusCode::CREATED,
        json!({"deleted": deleted, "message": "success"}),
    )
}
