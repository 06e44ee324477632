//! Emulator of Zendesk Support's Users API bulk endpoints and job statuses.
//!
//! # The contract it enforces
//! - HTTP Basic `<email>/token:<api_token>`; anything else is answered `401` `{"error":
//!   "Couldn't authenticate you"}`.
//! - Rate limit: calls counted per minute (700 by default, the Enterprise plan's,
//!   [`ZendeskEmulator::set_rate_limit`]); answers carry `X-Rate-Limit` and
//!   `X-Rate-Limit-Remaining`; over the limit, `429` with `Retry-After` (seconds to the end of
//!   the minute).
//! - `GET /api/v2/users/me`: the authenticated user.
//! - `POST /api/v2/users/create_or_update_many`: `{"users": [...]}`, at most 100 (else `400`);
//!   answers `200 {"job_status": {"id", "status": "queued", ...}}` and applies the users at
//!   once. Each user is matched by `external_id`, then by `email`; a new user needs a `name`;
//!   `email` must hold an `@`, `role` be `end-user`, `agent` or `admin`, `tags` an array of
//!   text, `user_fields` an object; a user whose `external_id` is in
//!   [`ZendeskEmulator::reject_keys`] fails. The job's `results` follow the order of the
//!   users: `{"id", "status": "Created"|"Updated", "external_id", "email"}` or `{"id":
//!   <index>, "status": "Failed", "error": "UserCreateError"|"UserUpdateError", "details"}`.
//! - `DELETE /api/v2/users/destroy_many?external_ids=a,b`: at most 100 ids (else `400`);
//!   deletes the users found; the job's results name only them (`{"id", "action": "delete",
//!   "status": "Deleted", "success": true}`).
//! - `GET /api/v2/job_statuses/{id}`: `working` for the job's first
//!   [`ZendeskEmulator::set_polls_until_done`] polls (0 by default), then `completed` with
//!   its results; an unknown id is `404`.
//! - Fault controls first: [`ZendeskEmulator::throttle_next`] (`429` + `Retry-After`),
//!   `fail_next`, `fail_everything` (`503`), `lose_answers`, and
//!   [`ZendeskEmulator::fail_jobs`] (jobs that end `failed` without applying anything).
//!
//! The ledger: every request, every applied write ([`ZendeskEmulator::writes`]: create,
//! update, delete; duplicates kept) and the users ([`ZendeskEmulator::user`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest, Reply};

/// Users per `create_or_update_many` and ids per `destroy_many`.
pub const MAX_USERS: usize = 100;

/// One write the emulator applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ZendeskWrite {
    /// `create`, `update` or `delete`.
    pub operation: &'static str,
    /// The user's `external_id`.
    pub external_id: Option<String>,
    /// The user object received (`Null` for a delete).
    pub body: Value,
}

#[derive(Debug)]
struct Job {
    polls_left: u32,
    failed: bool,
    total: usize,
    results: Vec<Value>,
}

#[derive(Debug)]
struct Ledger {
    authorization: String,
    requests: Vec<LoggedRequest>,
    writes: Vec<ZendeskWrite>,
    users: BTreeMap<u64, Map<String, Value>>,
    next_id: u64,
    jobs: BTreeMap<String, Job>,
    polls_until_done: u32,
    fail_jobs: bool,
    reject_keys: BTreeSet<String>,
    throttled: Vec<u64>,
    faults: Faults,
    rate_limit: u32,
    window_start: SystemTime,
    window_calls: u32,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Zendesk emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct ZendeskEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

/// `Basic base64(user:password)`.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl ZendeskEmulator {
    /// Starts an emulator accepting `<email>/token` with this API token.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(email: &str, api_token: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            authorization: basic(&format!("{email}/token"), api_token),
            requests: Vec::new(),
            writes: Vec::new(),
            users: BTreeMap::new(),
            next_id: 1001,
            jobs: BTreeMap::new(),
            polls_until_done: 0,
            fail_jobs: false,
            reject_keys: BTreeSet::new(),
            throttled: Vec::new(),
            faults: Faults::default(),
            rate_limit: 700,
            window_start: SystemTime::now(),
            window_calls: 0,
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "zendesk").await?;
        Ok(ZendeskEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every applied write, in order, duplicates kept.
    pub fn writes(&self) -> Vec<ZendeskWrite> {
        self.lock().writes.clone()
    }

    /// The user with this `external_id`.
    pub fn user(&self, external_id: &str) -> Option<Map<String, Value>> {
        self.lock()
            .users
            .values()
            .find(|u| u.get("external_id").and_then(Value::as_str) == Some(external_id))
            .cloned()
    }

    /// Every user held.
    pub fn users(&self) -> Vec<Map<String, Value>> {
        self.lock().users.values().cloned().collect()
    }

    /// Adds a user as if created in Zendesk (not a write of the ledger).
    pub fn insert(&self, user: Value) {
        let mut ledger = self.lock();
        let id = ledger.next_id;
        ledger.next_id += 1;
        let mut user = user.as_object().cloned().unwrap_or_default();
        user.insert("id".into(), json!(id));
        ledger.users.insert(id, user);
    }

    /// Fails users with these external ids in the job results.
    pub fn reject_keys(&self, external_ids: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(external_ids);
    }

    /// Calls allowed per minute.
    pub fn set_rate_limit(&self, per_minute: u32) {
        self.lock().rate_limit = per_minute;
    }

    /// Polls answered `working` before a job is `completed`.
    pub fn set_polls_until_done(&self, polls: u32) {
        self.lock().polls_until_done = polls;
    }

    /// Jobs submitted from now on end `failed` and apply nothing.
    pub fn fail_jobs(&self, fail: bool) {
        self.lock().fail_jobs = fail;
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

    /// Answers every request `503` until [`ZendeskEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Zendesk loses the users with these external ids (deleted on its side).
    pub fn forget(&self, external_ids: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        for id in external_ids {
            ledger
                .users
                .retain(|_, u| u.get("external_id").and_then(Value::as_str) != Some(&id));
        }
    }

    /// Ends faults and rejections; forgets requests and writes (not users).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.throttled.clear();
        ledger.reject_keys.clear();
        ledger.fail_jobs = false;
        ledger.requests.clear();
        ledger.writes.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for ZendeskEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error(status: StatusCode, error: &str, description: &str) -> Reply {
    Reply::json(status, json!({"error": error, "description": description}))
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
    let reply = decide(&mut ledger, &method, &uri, &headers, &body);
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    reply.into_response()
}

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    if !ledger.throttled.is_empty() {
        let seconds = ledger.throttled.remove(0);
        let mut reply = error(
            StatusCode::TOO_MANY_REQUESTS,
            "APIRateLimitExceeded",
            "Number of allowed API requests per minute exceeded",
        );
        reply.retry_after = Some(seconds);
        return reply;
    }
    if let Some(reply) = ledger
        .faults
        .injected(|status| json!({"error": "ServiceUnavailable", "description": format!("injected {status}")}))
    {
        return reply;
    }
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if authorization != Some(ledger.authorization.as_str()) {
        return Reply::json(
            StatusCode::UNAUTHORIZED,
            json!({"error": "Couldn't authenticate you"}),
        );
    }
    let now = SystemTime::now();
    let elapsed = now.duration_since(ledger.window_start).unwrap_or_default();
    if elapsed >= Duration::from_secs(60) {
        ledger.window_start = now;
        ledger.window_calls = 0;
    }
    if ledger.window_calls >= ledger.rate_limit {
        let mut reply = error(
            StatusCode::TOO_MANY_REQUESTS,
            "APIRateLimitExceeded",
            "Number of allowed API requests per minute exceeded",
        );
        let left = Duration::from_secs(60).saturating_sub(elapsed);
        reply.retry_after = Some(left.as_secs().max(1));
        reply.headers = rate_headers(ledger);
        return reply;
    }
    ledger.window_calls += 1;
    let path = uri.path().trim_end_matches(".json");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut reply = match (method, segments.as_slice()) {
        (&Method::GET, ["api", "v2", "users", "me"]) => Reply::json(
            StatusCode::OK,
            json!({"user": {"id": 1, "name": "Emulated Admin", "email": "admin@example.com", "role": "admin"}}),
        ),
        (&Method::POST, ["api", "v2", "users", "create_or_update_many"]) => {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => create_or_update_many(ledger, &map),
                _ => error(
                    StatusCode::BAD_REQUEST,
                    "InvalidPayload",
                    "The body must be a JSON object",
                ),
            }
        }
        (&Method::DELETE, ["api", "v2", "users", "destroy_many"]) => {
            destroy_many(ledger, uri.query().unwrap_or(""))
        }
        (&Method::GET, ["api", "v2", "job_statuses", id]) => job_status(ledger, id),
        _ => error(StatusCode::NOT_FOUND, "InvalidEndpoint", "Not found"),
    };
    if reply.status.is_success() && ledger.faults.take_lost_answer() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "answer lost",
        );
    }
    reply.headers.extend(rate_headers(ledger));
    reply
}

/// `X-Rate-Limit` and `X-Rate-Limit-Remaining` of the current minute.
fn rate_headers(ledger: &Ledger) -> Vec<(&'static str, String)> {
    vec![
        ("x-rate-limit", ledger.rate_limit.to_string()),
        (
            "x-rate-limit-remaining",
            ledger
                .rate_limit
                .saturating_sub(ledger.window_calls)
                .to_string(),
        ),
    ]
}

/// Queues a job answering with these results; returns the `job_status` answer.
fn queue_job(ledger: &mut Ledger, total: usize, results: Vec<Value>) -> Reply {
    let id = format!("{:032x}", 0xdd93_21f2_u64 + ledger.jobs.len() as u64);
    ledger.jobs.insert(
        id.clone(),
        Job {
            polls_left: ledger.polls_until_done,
            failed: ledger.fail_jobs,
            total,
            results,
        },
    );
    Reply::json(
        StatusCode::OK,
        json!({"job_status": {"id": id, "url": format!("/api/v2/job_statuses/{id}.json"),
                              "status": "queued", "total": total, "progress": null,
                              "message": null, "results": null}}),
    )
}

fn job_status(ledger: &mut Ledger, id: &str) -> Reply {
    let Some(job) = ledger.jobs.get_mut(id) else {
        return error(StatusCode::NOT_FOUND, "RecordNotFound", "Not found");
    };
    let status = if job.polls_left > 0 {
        job.polls_left -= 1;
        "working"
    } else if job.failed {
        "failed"
    } else {
        "completed"
    };
    let done = status == "completed";
    Reply::json(
        StatusCode::OK,
        json!({"job_status": {"id": id, "status": status, "total": job.total,
                              "progress": if done { job.total } else { 0 },
                              "message": if job.failed && !done { "Job failed (emulator fail_jobs)" } else { "Completed" },
                              "results": if done { Value::Array(job.results.clone()) } else { Value::Null }}}),
    )
}

/// Why a user object is invalid, if it is.
fn invalid_user(user: &Map<String, Value>, creating: bool) -> Option<String> {
    let text = |name: &str| user.get(name).and_then(Value::as_str);
    if creating && text("name").is_none_or(|n| n.trim().is_empty()) {
        return Some("Name: is too short (minimum is 1 character)".to_string());
    }
    if let Some(email) = user.get("email").filter(|v| !v.is_null())
        && email.as_str().is_none_or(|e| !e.contains('@'))
    {
        return Some(format!("Email: {email} is not properly formatted"));
    }
    if let Some(role) = user.get("role").filter(|v| !v.is_null())
        && !matches!(role.as_str(), Some("end-user" | "agent" | "admin"))
    {
        return Some(format!("Role: {role} is not a valid role"));
    }
    if let Some(tags) = user.get("tags").filter(|v| !v.is_null())
        && !tags
            .as_array()
            .is_some_and(|t| t.iter().all(Value::is_string))
    {
        return Some("Tags: must be an array of strings".to_string());
    }
    if user
        .get("user_fields")
        .is_some_and(|f| !f.is_null() && !f.is_object())
    {
        return Some("User fields: must be an object".to_string());
    }
    None
}

fn create_or_update_many(ledger: &mut Ledger, body: &Map<String, Value>) -> Reply {
    let Some(users) = body.get("users").and_then(Value::as_array) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidPayload",
            "'users' must be an array",
        );
    };
    if users.len() > MAX_USERS {
        return error(
            StatusCode::BAD_REQUEST,
            "TooManyValues",
            "You can pass at most 100 users",
        );
    }
    let apply = !ledger.fail_jobs;
    let mut results = Vec::with_capacity(users.len());
    for (index, user) in users.iter().enumerate() {
        let Some(user) = user.as_object() else {
            results.push(json!({"id": index, "status": "Failed", "error": "UserCreateError", "details": "not an object"}));
            continue;
        };
        let external_id = user.get("external_id").and_then(Value::as_str);
        let email = user.get("email").and_then(Value::as_str);
        let existing = ledger
            .users
            .iter()
            .find(|(_, u)| {
                external_id.is_some() && u.get("external_id").and_then(Value::as_str) == external_id
            })
            .or_else(|| {
                ledger.users.iter().find(|(_, u)| {
                    email.is_some() && u.get("email").and_then(Value::as_str) == email
                })
            })
            .map(|(id, _)| *id);
        let creating = existing.is_none();
        let error_kind = if creating {
            "UserCreateError"
        } else {
            "UserUpdateError"
        };
        let rejected = external_id
            .filter(|id| ledger.reject_keys.contains(*id))
            .map(|id| format!("External: '{id}' was rejected (emulator reject_keys)"));
        if let Some(details) = rejected.or_else(|| invalid_user(user, creating)) {
            results.push(
                json!({"id": index, "status": "Failed", "error": error_kind, "details": details}),
            );
            continue;
        }
        if !apply {
            continue;
        }
        let id = existing.unwrap_or_else(|| {
            let id = ledger.next_id;
            ledger.next_id += 1;
            id
        });
        let stored = ledger.users.entry(id).or_default();
        for (k, v) in user {
            if k == "user_fields" {
                let fields = stored.entry("user_fields").or_insert_with(|| json!({}));
                if let (Some(into), Some(from)) = (fields.as_object_mut(), v.as_object()) {
                    into.extend(from.clone());
                }
            } else {
                stored.insert(k.clone(), v.clone());
            }
        }
        stored.insert("id".into(), json!(id));
        let stored_external = stored
            .get("external_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let stored_email = stored.get("email").cloned().unwrap_or(Value::Null);
        results.push(
            json!({"id": id, "status": if creating { "Created" } else { "Updated" },
                            "external_id": stored_external, "email": stored_email}),
        );
        ledger.writes.push(ZendeskWrite {
            operation: if creating { "create" } else { "update" },
            external_id: stored_external,
            body: Value::Object(user.clone()),
        });
    }
    queue_job(ledger, users.len(), results)
}

fn destroy_many(ledger: &mut Ledger, query: &str) -> Reply {
    let ids: Vec<String> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| *name == "external_ids")
        .flat_map(|(_, value)| {
            common::percent_decode(value)
                .split(',')
                .filter(|id| !id.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    if ids.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidPayload",
            "external_ids or ids is required",
        );
    }
    if ids.len() > MAX_USERS {
        return error(
            StatusCode::BAD_REQUEST,
            "TooManyValues",
            "You can pass at most 100 ids",
        );
    }
    let mut results = Vec::new();
    if !ledger.fail_jobs {
        for external_id in &ids {
            let found: Vec<u64> = ledger
                .users
                .iter()
                .filter(|(_, u)| {
                    u.get("external_id").and_then(Value::as_str) == Some(external_id.as_str())
                })
                .map(|(id, _)| *id)
                .collect();
            for id in found {
                ledger.users.remove(&id);
                results.push(
                    json!({"id": id, "action": "delete", "status": "Deleted", "success": true}),
                );
                ledger.writes.push(ZendeskWrite {
                    operation: "delete",
                    external_id: Some(external_id.clone()),
                    body: Value::Null,
                });
            }
        }
    }
    queue_job(ledger, ids.len(), results)
}
