//! Emulator of Iterable's REST API user and event endpoints: `/api/users/bulkUpdate`,
//! `/api/events/trackBulk`, `DELETE /api/users/byUserId/{userId}` and `GET /api/channels`.
//!
//! # The contract it enforces
//! - `Api-Key: <key>`; a missing or unknown key is answered `401` `{"msg": "Invalid API key",
//!   "code": "BadApiKey", "params": {...}}`.
//! - `POST /api/users/bulkUpdate`: `{"users": [...]}`, at most [`MAX_USERS`] users (more →
//!   `400` `BadParams`), a body of at most [`MAX_BODY_BYTES`] (more → `413`). Each user needs a
//!   `userId` or an `email`; `dataFields` must be an object and `preferUserId` a boolean (else
//!   `400` `{"msg": "[/api/users/bulkUpdate] Invalid JSON body", "code": "BadJsonBody",
//!   "params": {...}}` for the whole request, as Iterable answers). An email without `@` is
//!   listed in `invalidEmails`; a user whose `userId` is in [`IterableEmulator::reject_keys`]
//!   in `failedUpdates.invalidDataUserIds`. A user with `preferUserId: false` and an unknown
//!   `userId` (and no email) is listed in `failedUpdates.notFoundUserIds`. Answer `200`
//!   `{"successCount", "failCount", "invalidEmails", "invalidUserIds", "filteredOutFields",
//!   "createdFields", "noOpEmails", "noOpUserIds", "failedUpdates": {...}}`.
//! - `POST /api/events/trackBulk`: `{"events": [...]}`, at most [`MAX_EVENTS`] events; each
//!   needs `eventName` and a `userId` or `email`; `createdAt` must be a number and
//!   `dataFields` an object (else `400 BadJsonBody`); an event with an `id` already recorded
//!   replaces it. Failures are listed as for users; the answer also has
//!   `disallowedEventNames`.
//! - `DELETE /api/users/byUserId/{userId}`: `200` `{"msg", "code": "Success"}`, or `404`
//!   `{"code": "NotFound"}` for a user that is not there.
//! - `GET /api/channels`: `200` `{"channels": [...]}` (a read, used by `TestDestination`).
//! - Fault controls first: [`IterableEmulator::throttle_next`] (`429` `{"code":
//!   "RateLimitExceeded"}` without `Retry-After`, as Iterable documents none), `fail_next`,
//!   `fail_everything` (`503`), `lose_answers`.
//!
//! The ledger: every accepted user update and event ([`IterableEmulator::objects`],
//! duplicates kept), every delete request's user id ([`IterableEmulator::deleted`]) and the
//! users ([`IterableEmulator::user`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest, Reply};

/// Users per `bulkUpdate` request.
pub const MAX_USERS: usize = 1000;
/// Events per `trackBulk` request.
pub const MAX_EVENTS: usize = 8000;
/// Body bytes per bulk request.
pub const MAX_BODY_BYTES: usize = 4_000_000;

/// One user update or event Iterable accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct IterableObject {
    /// `users` or `events`.
    pub kind: String,
    /// Its `userId` (empty when it had only an email).
    pub user_id: String,
    /// The object as received.
    pub body: Value,
}

#[derive(Debug, Default)]
struct Ledger {
    api_key: String,
    requests: Vec<LoggedRequest>,
    objects: Vec<IterableObject>,
    deleted: Vec<String>,
    users: BTreeMap<String, Map<String, Value>>,
    event_ids: BTreeSet<String>,
    reject_keys: BTreeSet<String>,
    throttled: usize,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Iterable emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct IterableEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl IterableEmulator {
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
        let (addr, task) = common::serve(app, "iterable").await?;
        Ok(IterableEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every accepted user update and event, duplicates kept.
    pub fn objects(&self) -> Vec<IterableObject> {
        self.lock().objects.clone()
    }

    /// The user id of every processed delete request, known or not.
    pub fn deleted(&self) -> Vec<String> {
        self.lock().deleted.clone()
    }

    /// The data fields (and email) of user `user_id`, if the user exists.
    pub fn user(&self, user_id: &str) -> Option<Map<String, Value>> {
        self.lock().users.get(user_id).cloned()
    }

    /// Lists users and events with these user ids as failed (`invalidDataUserIds`).
    pub fn reject_keys(&self, user_ids: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(user_ids);
    }

    /// Answers the next `n` requests `429`.
    pub fn throttle_next(&self, n: usize) {
        self.lock().throttled += n;
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`IterableEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Iterable loses these users (deleted on its side).
    pub fn forget(&self, user_ids: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        for id in user_ids {
            ledger.users.remove(&id);
        }
    }

    /// Ends faults and rejections; forgets requests, objects and deletes (not users).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.throttled = 0;
        ledger.reject_keys.clear();
        ledger.requests.clear();
        ledger.objects.clear();
        ledger.deleted.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for IterableEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error(status: StatusCode, code: &str, msg: &str, params: Value) -> Reply {
    Reply::json(status, json!({"msg": msg, "code": code, "params": params}))
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
    if ledger.throttled > 0 {
        ledger.throttled -= 1;
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimitExceeded",
            "Rate limit exceeded",
            Value::Null,
        );
    }
    if let Some(reply) = ledger.faults.injected(|status| {
        json!({"msg": format!("injected {status}"), "code": "GenericError", "params": null})
    }) {
        return reply;
    }
    let key = headers.get("api-key").and_then(|v| v.to_str().ok());
    if key != Some(ledger.api_key.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "BadApiKey",
            "Invalid API key",
            json!({"ip": "127.0.0.1", "endpoint": path}),
        );
    }
    let reply = match (method, path) {
        (&Method::GET, "/api/channels") => Reply::json(
            StatusCode::OK,
            json!({"channels": [{"id": 1, "name": "Marketing", "channelType": "Marketing", "messageMedium": "Email"}]}),
        ),
        (&Method::POST, "/api/users/bulkUpdate") => bulk(ledger, path, body, "users", MAX_USERS),
        (&Method::POST, "/api/events/trackBulk") => bulk(ledger, path, body, "events", MAX_EVENTS),
        (&Method::DELETE, _) if path.starts_with("/api/users/byUserId/") => {
            let raw = &path["/api/users/byUserId/".len()..];
            let id = common::percent_decode(raw);
            delete(ledger, &id)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Route not found",
            Value::Null,
        ),
    };
    if reply.status.is_success() && method != Method::GET && ledger.faults.take_lost_answer() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "GenericError",
            "answer lost",
            Value::Null,
        );
    }
    reply
}

/// Why the whole request is malformed (`BadJsonBody`), naming the path of the bad value.
fn malformed(kind: &str, index: usize, object: &Value) -> Option<(String, &'static str)> {
    let at = |field: &str| format!("obj.{kind}[{index}].{field}");
    if !object.is_object() {
        return Some((format!("obj.{kind}[{index}]"), "Object expected"));
    }
    if object.get("dataFields").is_some_and(|v| !v.is_object()) {
        return Some((at("dataFields"), "Object value expected"));
    }
    if object.get("preferUserId").is_some_and(|v| !v.is_boolean()) {
        return Some((at("preferUserId"), "Boolean value expected"));
    }
    if object.get("createdAt").is_some_and(|v| !v.is_number()) {
        return Some((at("createdAt"), "Number value expected"));
    }
    for field in ["userId", "email", "eventName", "id"] {
        if object.get(field).is_some_and(|v| !v.is_string()) {
            return Some((at(field), "String value expected"));
        }
    }
    None
}

fn bulk(ledger: &mut Ledger, path: &str, body: &[u8], kind: &str, max: usize) -> Reply {
    if body.len() > MAX_BODY_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLarge",
            "Request body too large",
            Value::Null,
        );
    }
    let bad_json = |params: Value| {
        error(
            StatusCode::BAD_REQUEST,
            "BadJsonBody",
            &format!("[{path}] Invalid JSON body"),
            params,
        )
    };
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return bad_json(json!({"body": "Invalid JSON"}));
    };
    let Some(objects) = parsed.get(kind).and_then(Value::as_array) else {
        return bad_json(json!({format!("obj.{kind}"): "Array value expected"}));
    };
    if objects.len() > max {
        return error(
            StatusCode::BAD_REQUEST,
            "BadParams",
            &format!("At most {max} {kind} per request"),
            Value::Null,
        );
    }
    for (index, object) in objects.iter().enumerate() {
        if let Some((at, why)) = malformed(kind, index, object) {
            return bad_json(json!({at: why}));
        }
    }
    let mut failed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut invalid_emails = Vec::new();
    let mut success = 0usize;
    for object in objects {
        let text = |f: &str| {
            object
                .get(f)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let (user_id, email) = (text("userId"), text("email"));
        if user_id.is_none() && email.is_none() {
            return error(
                StatusCode::BAD_REQUEST,
                "BadParams",
                "Either email or userId must be provided",
                Value::Null,
            );
        }
        if kind == "events" && text("eventName").is_none() {
            return error(
                StatusCode::BAD_REQUEST,
                "BadParams",
                "eventName is required",
                Value::Null,
            );
        }
        if let Some(email) = email.filter(|e| !e.contains('@')) {
            invalid_emails.push(email.to_string());
            continue;
        }
        if let Some(id) = user_id.filter(|id| ledger.reject_keys.contains(*id)) {
            failed
                .entry("invalidDataUserIds")
                .or_default()
                .push(id.to_string());
            continue;
        }
        let id = user_id.unwrap_or_default().to_string();
        if kind == "users" {
            let prefer = object["preferUserId"] == json!(true);
            if !prefer && email.is_none() && !ledger.users.contains_key(&id) {
                failed.entry("notFoundUserIds").or_default().push(id);
                continue;
            }
            let key = if id.is_empty() {
                email.unwrap_or_default().to_string()
            } else {
                id.clone()
            };
            let user = ledger.users.entry(key).or_default();
            if let Some(email) = email {
                user.insert("email".into(), json!(email));
            }
            for (k, v) in object["dataFields"].as_object().into_iter().flatten() {
                user.insert(k.clone(), v.clone());
            }
        } else {
            if let Some(event_id) = text("id")
                && !ledger.event_ids.insert(event_id.to_string())
            {
                ledger
                    .objects
                    .retain(|o| o.body.get("id") != object.get("id"));
            }
            ledger.users.entry(id.clone()).or_default();
        }
        success += 1;
        ledger.objects.push(IterableObject {
            kind: kind.to_string(),
            user_id: id,
            body: object.clone(),
        });
    }
    let list = |name: &str| json!(failed.get(name).cloned().unwrap_or_default());
    let mut answer = json!({
        "successCount": success,
        "failCount": objects.len() - success,
        "invalidEmails": invalid_emails,
        "invalidUserIds": [],
        "filteredOutFields": [],
        "createdFields": [],
        "failedUpdates": {
            "invalidEmails": invalid_emails,
            "invalidUserIds": [],
            "notFoundEmails": [],
            "notFoundUserIds": list("notFoundUserIds"),
            "forgottenEmails": [],
            "forgottenUserIds": [],
            "conflictEmails": [],
            "conflictUserIds": [],
            "invalidDataEmails": [],
            "invalidDataUserIds": list("invalidDataUserIds"),
        },
    });
    if kind == "events" {
        answer["disallowedEventNames"] = json!([]);
    } else {
        answer["noOpEmails"] = json!([]);
        answer["noOpUserIds"] = json!([]);
    }
    Reply::json(StatusCode::OK, answer)
}

fn delete(ledger: &mut Ledger, user_id: &str) -> Reply {
    ledger.deleted.push(user_id.to_string());
    if ledger.users.remove(user_id).is_some() {
        Reply::json(
            StatusCode::OK,
            json!({"msg": format!("User with userId {user_id} deleted"), "code": "Success", "params": null}),
        )
    } else {
        error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("User with userId {user_id} does not exist"),
            Value::Null,
        )
    }
}
