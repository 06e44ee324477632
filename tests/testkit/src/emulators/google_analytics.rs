//! Emulator of the Google Analytics 4 Measurement Protocol: `/mp/collect` and its validation
//! server, `/debug/mp/collect`.
//!
//! # The contract it enforces
//! - `POST /mp/collect?measurement_id=&api_secret=`: answered `204` whatever the body, as
//!   documented ("always returns a 2xx status code if the HTTP request was received"). A
//!   request of the configured stream and secret whose body passes the checks below lands in
//!   the ledger ([`GoogleAnalyticsEmulator::events`], one entry per event, duplicates kept);
//!   anything else is dropped silently, with the reason kept in
//!   [`GoogleAnalyticsEmulator::dropped`].
//! - `POST /debug/mp/collect`: `200 {"validationMessages": [{"fieldPath", "description",
//!   "validationCode"}]}` from the same checks (the secret is not checked); nothing is
//!   recorded.
//! - The checks (the documented limitations): a JSON object with a string `client_id`; 1 to
//!   25 `events`; an event `name` of a letter then letters, digits or `_`, at most 40
//!   characters, not reserved; at most 25 `params`, names at most 40 characters without a
//!   reserved prefix, string values at most 100 characters; at most 25 `user_properties`
//!   `{name: {"value"}}`, names at most 24 characters, string values at most 36; a body
//!   smaller than 130 kB.
//!
//! Fault controls come first: `throttle_next` (`429` + `Retry-After`), `fail_next`,
//! `fail_everything` (`503`), `lose_answers` (recorded, answered `503`). Google documents
//! no 429 or 5xx for the Measurement Protocol: these model a transport or front-end failure.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest, Reply};

/// The documented limit of a request body: smaller than 130 kB.
pub const MAX_BODY_BYTES: usize = 130 * 1000;
/// The documented limit of events per request.
pub const MAX_EVENTS: usize = 25;

const RESERVED_EVENT_NAMES: &[&str] = &[
    "ad_activeview",
    "ad_click",
    "ad_exposure",
    "ad_query",
    "ad_reward",
    "adunit_exposure",
    "app_background",
    "app_clear_data",
    "app_exception",
    "app_remove",
    "app_store_refund",
    "app_store_subscription_cancel",
    "app_store_subscription_convert",
    "app_store_subscription_renew",
    "app_update",
    "app_upgrade",
    "dynamic_link_app_open",
    "dynamic_link_app_update",
    "dynamic_link_first_open",
    "error",
    "first_open",
    "first_visit",
    "in_app_purchase",
    "notification_dismiss",
    "notification_foreground",
    "notification_open",
    "notification_receive",
    "os_update",
    "session_start",
    "session_start_with_rollout",
    "user_engagement",
];
const RESERVED_PREFIXES: &[&str] = &["_", "firebase_", "ga_", "google_", "gtag."];

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Ga4Event {
    /// The request's `client_id`.
    pub client_id: String,
    /// The request's `user_id`, when sent.
    pub user_id: Option<String>,
    /// `name`.
    pub name: String,
    /// `params` (an empty object when absent).
    pub params: Value,
    /// The whole request body.
    pub request: Value,
    /// Index of the request that carried it.
    pub request_index: usize,
}

#[derive(Debug)]
struct Ledger {
    measurement_id: String,
    api_secret: String,
    requests: Vec<LoggedRequest>,
    events: Vec<Ga4Event>,
    dropped: Vec<(Value, String)>,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Measurement Protocol emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct GoogleAnalyticsEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl GoogleAnalyticsEmulator {
    /// Starts an emulator of the stream `measurement_id` with this API secret.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(measurement_id: &str, api_secret: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            measurement_id: measurement_id.to_string(),
            api_secret: api_secret.to_string(),
            requests: Vec::new(),
            events: Vec::new(),
            dropped: Vec::new(),
            faults: Faults::default(),
        }));
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(4 * MAX_BODY_BYTES))
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "google_analytics").await?;
        Ok(GoogleAnalyticsEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every recorded event, duplicates kept.
    pub fn events(&self) -> Vec<Ga4Event> {
        self.lock().events.clone()
    }

    /// Every request body `/mp/collect` dropped silently, with the reason.
    pub fn dropped(&self) -> Vec<(Value, String)> {
        self.lock().dropped.clone()
    }

    /// Answers the next `n` requests `429` with `Retry-After: seconds`.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock().faults.fail_next(n, 429, Some(seconds));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`GoogleAnalyticsEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Records the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Ends the faults; forgets requests, events and drops.
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.requests.clear();
        ledger.events.clear();
        ledger.dropped.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for GoogleAnalyticsEmulator {
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
    let injected = ledger
        .faults
        .injected(|status| json!({"error": status.canonical_reason()}));
    let response = match injected {
        Some(reply) => {
            entry.status = reply.status.as_u16();
            reply.into_response()
        }
        None if method == Method::POST && uri.path() == "/mp/collect" => {
            let request_index = ledger.requests.len();
            let lost = ledger.faults.take_lost_answer();
            collect(&mut ledger, &entry, &body, request_index);
            let status = if lost {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::NO_CONTENT
            };
            entry.status = status.as_u16();
            status.into_response()
        }
        None if method == Method::POST && uri.path() == "/debug/mp/collect" => {
            let messages: Vec<Value> = check(&body)
                .into_iter()
                .map(|(path, code, description)| {
                    json!({"fieldPath": path, "description": description, "validationCode": code})
                })
                .collect();
            entry.status = 200;
            Reply::json(StatusCode::OK, json!({"validationMessages": messages})).into_response()
        }
        None => {
            entry.status = 404;
            StatusCode::NOT_FOUND.into_response()
        }
    };
    ledger.requests.push(entry);
    response
}

/// Records the events of a valid request of the configured stream, or drops it.
fn collect(ledger: &mut Ledger, entry: &LoggedRequest, body: &[u8], request_index: usize) {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let stream = entry.query.get("measurement_id") == Some(&ledger.measurement_id)
        && entry.query.get("api_secret") == Some(&ledger.api_secret);
    if !stream {
        ledger
            .dropped
            .push((request, "unknown measurement_id or api_secret".to_string()));
        return;
    }
    if let Some((path, code, description)) = check(body).into_iter().next() {
        ledger
            .dropped
            .push((request, format!("{code} at {path}: {description}")));
        return;
    }
    let client_id = request["client_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let user_id = request["user_id"].as_str().map(str::to_string);
    for event in request["events"].as_array().into_iter().flatten() {
        ledger.events.push(Ga4Event {
            client_id: client_id.clone(),
            user_id: user_id.clone(),
            name: event["name"].as_str().unwrap_or_default().to_string(),
            params: event.get("params").cloned().unwrap_or_else(|| json!({})),
            request: request.clone(),
            request_index,
        });
    }
}

fn valid_name(name: &str, max: usize) -> bool {
    name.chars().count() <= max
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What the validation server says about a body: `(fieldPath, validationCode, description)`.
fn check(body: &[u8]) -> Vec<(String, &'static str, String)> {
    let mut messages = Vec::new();
    if body.len() >= MAX_BODY_BYTES {
        messages.push((
            String::new(),
            "VALUE_INVALID",
            "The request body must be smaller than 130kB.".to_string(),
        ));
        return messages;
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        messages.push((
            String::new(),
            "VALUE_INVALID",
            "Unable to parse the JSON payload.".to_string(),
        ));
        return messages;
    };
    if request
        .get("client_id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        messages.push((
            "client_id".to_string(),
            "VALUE_REQUIRED",
            "Measurement requires a client_id.".to_string(),
        ));
    }
    let events = request
        .get("events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if events.is_empty() {
        messages.push((
            "events".to_string(),
            "VALUE_REQUIRED",
            "Measurement requires events.".to_string(),
        ));
    }
    if events.len() > MAX_EVENTS {
        messages.push((
            "events".to_string(),
            "EXCEEDED_MAX_ENTITIES",
            "A request can have at most 25 events.".to_string(),
        ));
    }
    for (i, event) in events.iter().enumerate() {
        let name = event
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !valid_name(name, 40) {
            messages.push((
                format!("events[{i}].name"),
                "NAME_INVALID",
                format!("Event name '{name}' is invalid."),
            ));
        } else if RESERVED_EVENT_NAMES.contains(&name) {
            messages.push((
                format!("events[{i}].name"),
                "NAME_RESERVED",
                format!("Event name '{name}' is reserved."),
            ));
        }
        let params = event
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if params.len() > 25 {
            messages.push((
                format!("events[{i}].params"),
                "EXCEEDED_MAX_ENTITIES",
                "An event can have at most 25 parameters.".to_string(),
            ));
        }
        messages.extend(check_names(
            &params,
            &format!("events[{i}].params"),
            40,
            100,
            false,
        ));
    }
    let properties = request
        .get("user_properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if properties.len() > 25 {
        messages.push((
            "user_properties".to_string(),
            "EXCEEDED_MAX_ENTITIES",
            "At most 25 user properties.".to_string(),
        ));
    }
    messages.extend(check_names(&properties, "user_properties", 24, 36, true));
    messages
}

fn check_names(
    map: &Map<String, Value>,
    path: &str,
    max_name: usize,
    max_value: usize,
    wrapped: bool,
) -> Vec<(String, &'static str, String)> {
    let mut messages = Vec::new();
    for (name, value) in map {
        let at = format!("{path}.{name}");
        if name.chars().count() > max_name {
            messages.push((
                at.clone(),
                "NAME_INVALID",
                format!("Name '{name}' is too long."),
            ));
        }
        if RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            messages.push((
                at.clone(),
                "NAME_RESERVED",
                format!("Name '{name}' uses a reserved prefix."),
            ));
        }
        let value = if wrapped {
            value.get("value").unwrap_or(&Value::Null)
        } else {
            value
        };
        if value
            .as_str()
            .is_some_and(|s| s.chars().count() > max_value)
        {
            messages.push((
                at,
                "VALUE_OUT_OF_BOUNDS",
                format!("Value of '{name}' is too long."),
            ));
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checks_name_the_field() {
        let ok = json!({"client_id": "1.2", "events": [{"name": "sign_up", "params": {"a": 1}}]});
        assert!(check(ok.to_string().as_bytes()).is_empty());
        let bad = json!({"events": [{"name": "session_start", "params": {"ga_x": "y"}}]});
        let codes: Vec<_> = check(bad.to_string().as_bytes())
            .into_iter()
            .map(|m| m.1)
            .collect();
        assert_eq!(codes, ["VALUE_REQUIRED", "NAME_RESERVED", "NAME_RESERVED"]);
    }
}
