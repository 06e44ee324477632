//! Emulator of Klaviyo's JSON:API REST API endpoints used by the `klaviyo` destination:
//! `POST /api/profile-bulk-import-jobs`, `POST /api/events`, `POST
//! /api/data-privacy-deletion-jobs` and `GET /api/accounts`.
//!
//! # The contract it enforces
//! - `Authorization: Klaviyo-API-Key <private key>`; a missing or unknown key is answered `401`
//!   with a JSON:API error (`code: not_authenticated`). A missing `revision` header is `400`.
//! - Errors are JSON:API: `{"errors": [{"id", "status", "code", "title", "detail",
//!   "source": {"pointer"}}]}`.
//! - Bulk import job: `data.type` `profile-bulk-import-job`, at most [`MAX_PROFILES`] profiles
//!   (more → `400`), a body of at most [`MAX_BODY_BYTES`] (more → `413`). Every profile needs
//!   an `email`, `phone_number` or `external_id`; an email without `@`, a `properties` that is
//!   not an object, or an `external_id` in [`KlaviyoEmulator::reject_keys`] is a `400` with
//!   one error per such profile pointing at `/data/attributes/profiles/data/<i>/...`, and
//!   **no** job is created (nothing imported). Otherwise `202` with the job (`status:
//!   queued`); the emulator applies it at once (upsert by `external_id`, else email).
//! - `POST /api/events`: `data.type` `event` with `properties` (object), a metric name and a
//!   profile identifier, else `400`; `202` with no body; an event whose `unique_id` was seen
//!   is dropped (still `202`).
//! - `POST /api/data-privacy-deletion-jobs`: exactly one of `email`, `phone_number`, `id`
//!   (else `400`); `202`, whether or not a profile matches (the deletion is asynchronous).
//! - `GET /api/accounts`: `200` with the account (a read).
//! - Fault controls first: [`KlaviyoEmulator::throttle_next`] (`429` `code: throttled` with
//!   `Retry-After`), `fail_next`, `fail_everything` (`503`), `lose_answers`.
//!
//! The ledger: every imported profile and accepted event ([`KlaviyoEmulator::objects`],
//! duplicates kept), every deletion request's email ([`KlaviyoEmulator::deleted`]), the
//! profiles ([`KlaviyoEmulator::profile`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest, Reply};

/// Profiles per bulk import job.
pub const MAX_PROFILES: usize = 10_000;
/// Body bytes per bulk import job (5 MB).
pub const MAX_BODY_BYTES: usize = 5_000_000;

/// One profile import or event Klaviyo accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct KlaviyoObject {
    /// `profile` or `event`.
    pub kind: String,
    /// The profile's `external_id` (empty when it had none).
    pub external_id: String,
    /// The `attributes` as received.
    pub attributes: Value,
}

#[derive(Debug, Default)]
struct Ledger {
    api_key: String,
    requests: Vec<LoggedRequest>,
    objects: Vec<KlaviyoObject>,
    deleted: Vec<String>,
    profiles: BTreeMap<String, Map<String, Value>>,
    unique_ids: BTreeSet<String>,
    reject_keys: BTreeSet<String>,
    throttled: Vec<u64>,
    jobs: usize,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Klaviyo emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct KlaviyoEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl KlaviyoEmulator {
    /// Starts an emulator accepting this private API key.
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
        let (addr, task) = common::serve(app, "klaviyo").await?;
        Ok(KlaviyoEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every imported profile and accepted event, duplicates kept.
    pub fn objects(&self) -> Vec<KlaviyoObject> {
        self.lock().objects.clone()
    }

    /// The email of every deletion request, matching or not.
    pub fn deleted(&self) -> Vec<String> {
        self.lock().deleted.clone()
    }

    /// The attributes of the profile with this `external_id` (or email), if it exists.
    pub fn profile(&self, id: &str) -> Option<Map<String, Value>> {
        self.lock().profiles.get(id).cloned()
    }

    /// Refuses import jobs holding profiles with these external ids (a `400` pointing at them).
    pub fn reject_keys(&self, external_ids: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(external_ids);
    }

    /// Answers the next `n` requests `429` with `Retry-After: seconds`.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock()
            .throttled
            .extend(std::iter::repeat_n(seconds, n));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`KlaviyoEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Ends faults and rejections; forgets requests, objects and deletions (not profiles).
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

impl Drop for KlaviyoEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One JSON:API error object.
fn error_object(status: StatusCode, code: &str, title: &str, detail: &str, pointer: &str) -> Value {
    json!({"id": "00000000-0000-0000-0000-000000000000", "status": status.as_u16(), "code": code,
           "title": title, "detail": detail, "source": {"pointer": pointer}})
}

fn error(status: StatusCode, code: &str, title: &str, detail: &str) -> Reply {
    Reply::json(
        status,
        json!({"errors": [error_object(status, code, title, detail, "/data/")]}),
    )
}

fn invalid(detail: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, "invalid", "Invalid input.", detail)
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
    if reply.status == StatusCode::ACCEPTED && reply.body.is_null() {
        return StatusCode::ACCEPTED.into_response();
    }
    let mut response = reply.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/vnd.api+json"),
    );
    response
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
        let mut reply = error(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "Request was throttled.",
            &format!("Request was throttled. Expected available in {seconds} second."),
        );
        reply.retry_after = Some(seconds);
        return reply;
    }
    if let Some(reply) = ledger.faults.injected(|status| {
        json!({"errors": [error_object(status, "error", "A server error occurred.", &format!("injected {status}"), "/data/")]})
    }) {
        return reply;
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Klaviyo-API-Key "));
    if auth != Some(ledger.api_key.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            "Authentication credentials were not provided.",
            "Missing or invalid private key.",
        );
    }
    if headers.get("revision").is_none() {
        return invalid("Missing required header: revision");
    }
    if method == Method::GET && path == "/api/accounts" {
        return Reply::json(
            StatusCode::OK,
            json!({"data": [{"type": "account", "id": "AbC123", "attributes": {"contact_information": {"organization_name": "Emulated"}}}]}),
        );
    }
    if method != Method::POST {
        return error(StatusCode::NOT_FOUND, "not_found", "Not found.", path);
    }
    if path == "/api/profile-bulk-import-jobs" && body.len() > MAX_BODY_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large.",
            "The maximum allowed payload size is 5MB.",
        );
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return invalid("The request body is not valid JSON.");
    };
    let reply = match path {
        "/api/profile-bulk-import-jobs" => import(ledger, &parsed),
        "/api/events" => event(ledger, &parsed),
        "/api/data-privacy-deletion-jobs" => deletion(ledger, &parsed),
        _ => error(StatusCode::NOT_FOUND, "not_found", "Not found.", path),
    };
    if reply.status.is_success() && ledger.faults.take_lost_answer() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            "A server error occurred.",
            "answer lost",
        );
    }
    reply
}

/// The profile's identifier as the emulator keys it, or why it is invalid.
fn profile_problem(
    attributes: &Value,
    rejected: &BTreeSet<String>,
) -> Result<String, (&'static str, String)> {
    let text = |f: &str| {
        attributes
            .get(f)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (email, phone, external) = (text("email"), text("phone_number"), text("external_id"));
    if email.is_none() && phone.is_none() && external.is_none() {
        return Err((
            "",
            "One of email, phone_number or external_id is required.".to_string(),
        ));
    }
    if let Some(email) = email.filter(|e| !e.contains('@')) {
        return Err(("email", format!("Invalid email address: {email}")));
    }
    if attributes.get("properties").is_some_and(|p| !p.is_object()) {
        return Err(("properties", "properties must be an object.".to_string()));
    }
    if let Some(id) = external.filter(|id| rejected.contains(*id)) {
        return Err((
            "external_id",
            format!("Profile '{id}' was rejected (emulator reject_keys)."),
        ));
    }
    Ok(external.or(email).or(phone).unwrap_or_default().to_string())
}

fn import(ledger: &mut Ledger, parsed: &Value) -> Reply {
    if parsed["data"]["type"] != "profile-bulk-import-job" {
        return invalid("data.type must be 'profile-bulk-import-job'.");
    }
    let Some(profiles) = parsed["data"]["attributes"]["profiles"]["data"].as_array() else {
        return invalid("data.attributes.profiles.data must be an array.");
    };
    if profiles.is_empty() || profiles.len() > MAX_PROFILES {
        return invalid("Between 1 and 10,000 profiles are accepted per request.");
    }
    let mut errors = Vec::new();
    let mut keys = Vec::new();
    for (i, profile) in profiles.iter().enumerate() {
        let attributes = &profile["attributes"];
        if profile["type"] != "profile" || !attributes.is_object() {
            errors.push(error_object(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid input.",
                "Each profile must be a 'profile' resource with attributes.",
                &format!("/data/attributes/profiles/data/{i}"),
            ));
            continue;
        }
        match profile_problem(attributes, &ledger.reject_keys) {
            Ok(key) => keys.push(key),
            Err((field, detail)) => errors.push(error_object(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid input.",
                &detail,
                &format!("/data/attributes/profiles/data/{i}/attributes/{field}"),
            )),
        }
    }
    if !errors.is_empty() {
        return Reply::json(StatusCode::BAD_REQUEST, json!({"errors": errors}));
    }
    for (profile, key) in profiles.iter().zip(keys) {
        let attributes = &profile["attributes"];
        let stored = ledger.profiles.entry(key).or_default();
        for (k, v) in attributes.as_object().into_iter().flatten() {
            if k == "properties" {
                let props = stored.entry("properties").or_insert_with(|| json!({}));
                for (pk, pv) in v.as_object().into_iter().flatten() {
                    props[pk] = pv.clone();
                }
            } else {
                stored.insert(k.clone(), v.clone());
            }
        }
        ledger.objects.push(KlaviyoObject {
            kind: "profile".to_string(),
            external_id: attributes["external_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            attributes: attributes.clone(),
        });
    }
    ledger.jobs += 1;
    Reply::json(
        StatusCode::ACCEPTED,
        json!({"data": {"type": "profile-bulk-import-job", "id": format!("job-{}", ledger.jobs),
            "attributes": {"status": "queued", "total_count": profiles.len(), "completed_count": 0,
                           "failed_count": 0, "created_at": "2026-01-01T00:00:00+00:00"}}}),
    )
}

fn event(ledger: &mut Ledger, parsed: &Value) -> Reply {
    let data = &parsed["data"];
    let attributes = &data["attributes"];
    if data["type"] != "event" {
        return invalid("data.type must be 'event'.");
    }
    if !attributes["properties"].is_object() {
        return invalid("data.attributes.properties must be an object.");
    }
    let metric = &attributes["metric"]["data"]["attributes"]["name"];
    if metric.as_str().is_none_or(str::is_empty) {
        return invalid("A metric name is required.");
    }
    let profile = &attributes["profile"]["data"]["attributes"];
    let key = match profile_problem(profile, &BTreeSet::new()) {
        Ok(key) => key,
        Err((_, detail)) => return invalid(&detail),
    };
    if let Some(time) = attributes.get("time")
        && time.as_str().is_none_or(|t| !t.contains('T'))
    {
        return invalid("data.attributes.time must be an ISO 8601 datetime.");
    }
    let fresh = match attributes["unique_id"].as_str() {
        Some(id) => ledger.unique_ids.insert(id.to_string()),
        None => true,
    };
    if fresh {
        ledger.profiles.entry(key).or_default();
        ledger.objects.push(KlaviyoObject {
            kind: "event".to_string(),
            external_id: profile["external_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            attributes: attributes.clone(),
        });
    }
    Reply::json(StatusCode::ACCEPTED, Value::Null)
}

fn deletion(ledger: &mut Ledger, parsed: &Value) -> Reply {
    if parsed["data"]["type"] != "data-privacy-deletion-job" {
        return invalid("data.type must be 'data-privacy-deletion-job'.");
    }
    let Some(profile) = parsed["data"]["attributes"]["profile"]["data"]["attributes"].as_object()
    else {
        return invalid("data.attributes.profile.data.attributes is required.");
    };
    let given: Vec<&String> = ["email", "phone_number", "id"]
        .iter()
        .filter_map(|k| profile.get_key_value(*k).map(|(k, _)| k))
        .collect();
    if given.len() != 1 {
        return invalid("Exactly one of email, phone_number or id must be provided.");
    }
    let Some(email) = profile.get("email").and_then(Value::as_str) else {
        return Reply::json(StatusCode::ACCEPTED, Value::Null);
    };
    ledger.deleted.push(email.to_string());
    ledger
        .profiles
        .retain(|key, p| key != email && p.get("email").and_then(Value::as_str) != Some(email));
    Reply::json(StatusCode::ACCEPTED, Value::Null)
}
