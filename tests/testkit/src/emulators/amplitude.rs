//! Emulator of Amplitude's HTTP V2 API (`/2/httpapi`) and Identify API (`/identify`).
//!
//! # The contract it enforces
//! - `POST /2/httpapi`, `Content-Type: application/json`, body `{"api_key", "events",
//!   "options"?}`:
//!   - no `api_key`: `400 {"code": 400, "error": "Request missing required field",
//!     "missing_field": "api_key"}`; a key the emulator does not know: `400 {"code": 400,
//!     "error": "Invalid API key: <key>"}`; no `events` array: `400` naming `events`;
//!   - a body of 1 MB or more, or more than 2,000 events: `413 {"code": 413, "error":
//!     "Payload too large"}`;
//!   - an event without `event_type`, or without `user_id` and `device_id`
//!     (`events_with_missing_fields`), with a non-integer `time`, with an id of
//!     [`AmplitudeEmulator::reject_keys`] (`events_with_invalid_fields`), or with an id shorter
//!     than `options.min_id_length` (default 5; `events_with_invalid_id_lengths`): `400
//!     {"code": 400, "error": ..., <field map>: {field: [event indexes]}}` and **nothing** of
//!     the request is ingested;
//!   - more than 30 events in the last second for one `user_id` or `device_id`: `429 {"code":
//!     429, "error": "Too many requests for some devices and users", "eps_threshold": 30,
//!     "throttled_users", "throttled_devices", "throttled_events"}`, nothing ingested;
//!   - otherwise `200 {"code": 200, "events_ingested", "payload_size_bytes",
//!     "server_upload_time"}`: every event is appended to the ledger
//!     ([`AmplitudeEmulator::events`], duplicates kept; [`AmplitudeEmulator::unique_events`]
//!     counts them deduplicated by id and `insert_id`, as Amplitude does).
//! - `POST /identify`, form-encoded `api_key` and `identification` (a JSON array of
//!   `{"user_id" | "device_id", "user_properties": {"$set" | "$setOnce": {...}}}`): an
//!   unknown key is `400 Invalid API key`, an invalid identification `400`; otherwise the
//!   properties are applied ([`AmplitudeEmulator::user`]) and the answer is `200 success`.
//!
//! Fault controls come first: `throttle_next` (`429` + `Retry-After`), `fail_next`,
//! `fail_everything` (`503`), `lose_answers` (processed, answered `503`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest, Reply};

/// Amplitude's documented limit of an HTTP V2 request: under 1 MB.
pub const MAX_REQUEST_BYTES: usize = 1000 * 1000;
/// Amplitude's documented limit of an HTTP V2 request: 2,000 events.
pub const MAX_EVENTS: usize = 2000;
/// Amplitude's documented limit per user or device: 30 events per second.
pub const EVENTS_PER_SECOND: usize = 30;

/// One ingested event.
#[derive(Debug, Clone, PartialEq)]
pub struct AmplitudeEvent {
    /// `event_type`.
    pub event_type: String,
    /// `user_id`, else `device_id`.
    pub id: String,
    /// `insert_id`, when sent.
    pub insert_id: Option<String>,
    /// The whole event as received.
    pub body: Value,
}

#[derive(Debug)]
struct Ledger {
    api_key: String,
    requests: Vec<LoggedRequest>,
    events: Vec<AmplitudeEvent>,
    users: BTreeMap<String, Map<String, Value>>,
    identifications: Vec<Value>,
    recent: BTreeMap<String, VecDeque<Instant>>,
    reject_keys: BTreeSet<String>,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Amplitude emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct AmplitudeEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl AmplitudeEmulator {
    /// Starts an emulator of the project with this API key.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(api_key: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            api_key: api_key.to_string(),
            requests: Vec::new(),
            events: Vec::new(),
            users: BTreeMap::new(),
            identifications: Vec::new(),
            recent: BTreeMap::new(),
            reject_keys: BTreeSet::new(),
            faults: Faults::default(),
        }));
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(2 * MAX_REQUEST_BYTES))
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "amplitude").await?;
        Ok(AmplitudeEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `api_host`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every ingested event, duplicates kept.
    pub fn events(&self) -> Vec<AmplitudeEvent> {
        self.lock().events.clone()
    }

    /// The number of distinct events once Amplitude drops repeated `insert_id`s of an id.
    pub fn unique_events(&self) -> usize {
        let ledger = self.lock();
        let mut seen = BTreeSet::new();
        ledger
            .events
            .iter()
            .filter(|e| match &e.insert_id {
                Some(insert_id) => seen.insert((e.id.clone(), insert_id.clone())),
                None => true,
            })
            .count()
    }

    /// Every applied identification, in order.
    pub fn identifications(&self) -> Vec<Value> {
        self.lock().identifications.clone()
    }

    /// The user properties of `user_id` (or device id), if any were set.
    pub fn user(&self, id: &str) -> Option<Map<String, Value>> {
        self.lock().users.get(id).cloned()
    }

    /// Makes the events of these user ids invalid (`events_with_invalid_fields.user_id`).
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

    /// Answers every request `503` until [`AmplitudeEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Ends the faults and rejections; forgets requests, events, identifications and the
    /// throttle window (not user properties).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.reject_keys.clear();
        ledger.requests.clear();
        ledger.events.clear();
        ledger.identifications.clear();
        ledger.recent.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for AmplitudeEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The emulator's answer: JSON, or Identify's plain `success`.
enum Answer {
    Json(Reply),
    Text(StatusCode, &'static str),
}

impl Answer {
    fn status(&self) -> StatusCode {
        match self {
            Answer::Json(reply) => reply.status,
            Answer::Text(status, _) => *status,
        }
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
    let answer = match ledger
        .faults
        .injected(|status| json!({"code": status.as_u16(), "error": status.canonical_reason()}))
    {
        Some(reply) => Answer::Json(reply),
        None if method == Method::POST && uri.path() == "/2/httpapi" => {
            Answer::Json(httpapi(&mut ledger, &headers, &body))
        }
        None if method == Method::POST && uri.path() == "/identify" => identify(&mut ledger, &body),
        None => Answer::Json(failure(StatusCode::NOT_FOUND, "not found")),
    };
    let answer = if answer.status().is_success() && ledger.faults.take_lost_answer() {
        Answer::Json(failure(StatusCode::SERVICE_UNAVAILABLE, "answer lost"))
    } else {
        answer
    };
    entry.status = answer.status().as_u16();
    if entry.body.is_null() {
        // A form body, logged as its decoded fields.
        entry.body = Value::Object(
            form_fields(&body)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        );
    }
    ledger.requests.push(entry);
    match answer {
        Answer::Json(reply) => reply.into_response(),
        Answer::Text(status, text) => {
            (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
        }
    }
}

fn failure(status: StatusCode, error: &str) -> Reply {
    Reply::json(status, json!({"code": status.as_u16(), "error": error}))
}

fn invalid_key(key: &str) -> Reply {
    failure(StatusCode::BAD_REQUEST, &format!("Invalid API key: {key}"))
}

fn httpapi(ledger: &mut Ledger, headers: &HeaderMap, body: &[u8]) -> Reply {
    let json_content = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_content {
        return failure(
            StatusCode::BAD_REQUEST,
            "Content-Type must be application/json",
        );
    }
    if body.len() >= MAX_REQUEST_BYTES {
        return failure(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large");
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return failure(StatusCode::BAD_REQUEST, "Invalid JSON request body");
    };
    let missing = |field: &str| {
        Reply::json(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error": "Request missing required field", "missing_field": field}),
        )
    };
    let Some(key) = request.get("api_key").and_then(Value::as_str) else {
        return missing("api_key");
    };
    if key != ledger.api_key {
        return invalid_key(key);
    }
    let Some(events) = request.get("events").and_then(Value::as_array) else {
        return missing("events");
    };
    if events.is_empty() {
        return missing("events");
    }
    if events.len() > MAX_EVENTS {
        return failure(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large");
    }
    let min_id_length = request
        .get("options")
        .and_then(|o| o.get("min_id_length"))
        .and_then(Value::as_u64)
        .map_or(5, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut invalid: BTreeMap<&str, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
    let mut flag = |map: &'static str, field: &str, index: usize| {
        invalid
            .entry(map)
            .or_default()
            .entry(field.to_string())
            .or_default()
            .push(index);
    };
    let mut checked = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let text = |field: &str| {
            event
                .get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let event_type = text("event_type");
        if event_type.is_none() {
            flag("events_with_missing_fields", "event_type", index);
        }
        let (user, device) = (text("user_id"), text("device_id"));
        if user.is_none() && device.is_none() {
            flag("events_with_missing_fields", "user_id", index);
        }
        for (field, id) in [("user_id", user), ("device_id", device)] {
            if id.is_some_and(|id| id.chars().count() < min_id_length) {
                flag("events_with_invalid_id_lengths", field, index);
            }
        }
        if event
            .get("time")
            .is_some_and(|t| !t.is_i64() && !t.is_u64())
        {
            flag("events_with_invalid_fields", "time", index);
        }
        if user.is_some_and(|u| ledger.reject_keys.contains(u)) {
            flag("events_with_invalid_fields", "user_id", index);
        }
        if let (Some(event_type), Some(id)) = (event_type, user.or(device)) {
            checked.push(AmplitudeEvent {
                event_type: event_type.to_string(),
                id: id.to_string(),
                insert_id: text("insert_id").map(str::to_string),
                body: event.clone(),
            });
        }
    }
    if !invalid.is_empty() {
        let mut answer = json!({"code": 400, "error": "Request contains invalid events"});
        for (map, fields) in invalid {
            answer[map] = json!(fields);
        }
        return Reply::json(StatusCode::BAD_REQUEST, answer);
    }
    if let Some(reply) = throttle(ledger, &checked) {
        return reply;
    }
    let now = Instant::now();
    let count = checked.len();
    for event in checked {
        ledger
            .recent
            .entry(event.id.clone())
            .or_default()
            .push_back(now);
        ledger.events.push(event);
    }
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Reply::json(
        StatusCode::OK,
        json!({"code": 200, "events_ingested": count, "payload_size_bytes": body.len(),
               "server_upload_time": millis}),
    )
}

/// The `429` of a request that would take a user or device over 30 events in a second.
fn throttle(ledger: &mut Ledger, events: &[AmplitudeEvent]) -> Option<Reply> {
    let now = Instant::now();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for event in events {
        *counts.entry(event.id.as_str()).or_default() += 1;
    }
    let mut throttled_users = Map::new();
    let mut throttled_devices = Map::new();
    let mut throttled_events = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let window = ledger.recent.entry(event.id.clone()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        let total = window.len() + counts.get(event.id.as_str()).copied().unwrap_or(0);
        if total > EVENTS_PER_SECOND {
            throttled_events.push(index);
            let map = if event.body.get("user_id").is_some() {
                &mut throttled_users
            } else {
                &mut throttled_devices
            };
            map.insert(event.id.clone(), json!(total));
        }
    }
    (!throttled_events.is_empty()).then(|| {
        Reply::json(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"code": 429, "error": "Too many requests for some devices and users",
                   "eps_threshold": EVENTS_PER_SECOND, "throttled_users": throttled_users,
                   "throttled_devices": throttled_devices, "throttled_events": throttled_events}),
        )
    })
}

fn identify(ledger: &mut Ledger, body: &[u8]) -> Answer {
    let fields = form_fields(body);
    let Some(key) = fields.get("api_key") else {
        return Answer::Json(failure(StatusCode::BAD_REQUEST, "missing api_key"));
    };
    if *key != ledger.api_key {
        return Answer::Json(invalid_key(key));
    }
    let identifications = fields
        .get("identification")
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    let Some(Value::Array(identifications)) = identifications else {
        return Answer::Json(failure(
            StatusCode::BAD_REQUEST,
            "identification must be a JSON array",
        ));
    };
    let mut checked = Vec::new();
    for identification in &identifications {
        let id = ["user_id", "device_id"].into_iter().find_map(|f| {
            identification
                .get(f)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        });
        let Some(id) = id else {
            return Answer::Json(failure(
                StatusCode::BAD_REQUEST,
                "missing user_id or device_id",
            ));
        };
        let Some(properties) = identification
            .get("user_properties")
            .and_then(Value::as_object)
        else {
            return Answer::Json(failure(
                StatusCode::BAD_REQUEST,
                "user_properties must be an object",
            ));
        };
        checked.push((id.to_string(), properties.clone(), identification.clone()));
    }
    for (id, operations, identification) in checked {
        let user = ledger.users.entry(id).or_default();
        for (operation, values) in operations {
            for (k, v) in values.as_object().into_iter().flatten() {
                match operation.as_str() {
                    "$setOnce" if user.contains_key(k) => {}
                    "$set" | "$setOnce" => {
                        user.insert(k.clone(), v.clone());
                    }
                    _ => {}
                }
            }
        }
        ledger.identifications.push(identification);
    }
    Answer::Text(StatusCode::OK, "success")
}

/// The fields of an `application/x-www-form-urlencoded` body (a repeated name keeps its last
/// value).
fn form_fields(body: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `+` and `%XX` escapes.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode() {
        let fields = form_fields(b"api_key=abc&identification=%5B%7B%22a%22%3A+1%7D%5D&x=%");
        assert_eq!(fields["api_key"], "abc");
        assert_eq!(fields["identification"], "[{\"a\": 1}]");
        assert_eq!(fields["x"], "%");
    }
}
