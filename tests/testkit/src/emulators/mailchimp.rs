//! Emulator of Mailchimp's Marketing API 3.0 audience member endpoints: batch subscribe
//! (`POST /3.0/lists/{list_id}`), archive (`DELETE /3.0/lists/{list_id}/members/{hash}`) and
//! `GET /3.0/ping`.
//!
//! # The contract it enforces
//! - HTTP Basic auth, any user name, the API key as the password; a missing or unknown key is
//!   answered `401` `{"type", "title": "API Key Invalid", "status": 401, "detail": "Your API
//!   key may be invalid, or you've attempted to access the wrong datacenter.", "instance"}`.
//!   An unknown list id is `404` `Resource Not Found`.
//! - Batch subscribe: `{"members": [...], "update_existing"}`, at most [`MAX_MEMBERS`] members
//!   (more → `400` `Invalid Resource`). Each member needs an `email_address` with an `@`, a
//!   valid `status` or `status_if_new`; `merge_fields` must be an object. An invalid member, or
//!   one whose email is in [`MailchimpEmulator::reject_emails`], is listed in `errors`
//!   (`{"email_address", "error", "error_code", "field", "field_message"}`), the others are
//!   processed: `200 {"new_members", "updated_members", "errors", "total_created",
//!   "total_updated", "error_count"}`. An existing member with `update_existing: false` is an
//!   error `ERROR_CONTACT_EXISTS`.
//! - Archive: `204` for a member of the list (archived: it leaves the ledger of members),
//!   `404` for a subscriber hash the list does not hold.
//! - At most [`MAX_CONNECTIONS`] requests in progress at once; more are answered `429`
//!   (`Too Many Requests`, no `Retry-After`, as Mailchimp answers).
//! - Fault controls first: [`MailchimpEmulator::throttle_next`] (`429`), `fail_next`,
//!   `fail_everything` (`503`), `lose_answers`.
//!
//! The ledger: every processed member ([`MailchimpEmulator::upserted`], duplicates kept),
//! every archived email ([`MailchimpEmulator::archived`]) and the members
//! ([`MailchimpEmulator::member`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest, Reply};

/// Members per batch subscribe request.
pub const MAX_MEMBERS: usize = 500;
/// Simultaneous connections (requests in progress) per account.
pub const MAX_CONNECTIONS: usize = 10;

const STATUSES: [&str; 5] = [
    "subscribed",
    "unsubscribed",
    "cleaned",
    "pending",
    "transactional",
];

/// The subscriber hash of an email: MD5 of its lower-cased form, in hex.
pub fn subscriber_hash(email: &str) -> String {
    hex::encode(Md5::digest(email.to_lowercase().as_bytes()))
}

#[derive(Debug, Default)]
struct Ledger {
    api_key: String,
    list_id: String,
    requests: Vec<LoggedRequest>,
    upserted: Vec<Value>,
    archived: Vec<String>,
    members: BTreeMap<String, Map<String, Value>>,
    reject_emails: BTreeSet<String>,
    throttled: usize,
    delay: Duration,
    faults: Faults,
}

struct Inner {
    ledger: Mutex<Ledger>,
    in_progress: AtomicUsize,
}

type Shared = Arc<Inner>;

/// A running Mailchimp emulator on `127.0.0.1`; stops when dropped.
pub struct MailchimpEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MailchimpEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailchimpEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MailchimpEmulator {
    /// Starts an emulator of one audience, `list_id`, accepting this API key.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(api_key: &str, list_id: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Inner {
            ledger: Mutex::new(Ledger {
                api_key: api_key.to_string(),
                list_id: list_id.to_string(),
                ..Ledger::default()
            }),
            in_progress: AtomicUsize::new(0),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "mailchimp").await?;
        Ok(MailchimpEmulator { addr, shared, task })
    }

    /// The API root, for the destination's `endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every processed member as received, duplicates kept.
    pub fn upserted(&self) -> Vec<Value> {
        self.lock().upserted.clone()
    }

    /// The (lower-cased) email of every archived member.
    pub fn archived(&self) -> Vec<String> {
        self.lock().archived.clone()
    }

    /// The member with this email, if the list holds it.
    pub fn member(&self, email: &str) -> Option<Map<String, Value>> {
        self.lock().members.get(&subscriber_hash(email)).cloned()
    }

    /// Lists members with these emails in `errors`.
    pub fn reject_emails(&self, emails: impl IntoIterator<Item = String>) {
        self.lock()
            .reject_emails
            .extend(emails.into_iter().map(|e| e.to_lowercase()));
    }

    /// Answers the next `n` requests `429`.
    pub fn throttle_next(&self, n: usize) {
        self.lock().throttled += n;
    }

    /// Holds every request this long before answering (to observe concurrency).
    pub fn delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`MailchimpEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// The list loses these members (removed on Mailchimp's side).
    pub fn forget(&self, emails: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        for email in emails {
            ledger.members.remove(&subscriber_hash(&email));
        }
    }

    /// Ends faults and rejections; forgets requests, upserts and archives (not members).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.throttled = 0;
        ledger.delay = Duration::ZERO;
        ledger.reject_emails.clear();
        ledger.requests.clear();
        ledger.upserted.clear();
        ledger.archived.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for MailchimpEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Reply {
    Reply::json(
        status,
        json!({"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": title,
               "status": status.as_u16(), "detail": detail, "instance": "00000000-0000-0000-0000-000000000000"}),
    )
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let concurrent = shared.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
    let delay = lock(&shared).delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut ledger = lock(&shared);
    let mut entry = common::log_entry(&method, &uri, &headers, &body);
    let reply = if concurrent > MAX_CONNECTIONS {
        problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "You have exceeded the limit of 10 simultaneous connections.",
        )
    } else {
        decide(&mut ledger, &method, uri.path(), &headers, &body)
    };
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    drop(ledger);
    shared.in_progress.fetch_sub(1, Ordering::SeqCst);
    if reply.status == StatusCode::NO_CONTENT {
        return axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT);
    }
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
        return problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "You have exceeded the limit of 10 simultaneous connections.",
        );
    }
    if let Some(reply) = ledger.faults.injected(|status| {
        json!({"type": "about:blank", "title": "Injected", "status": status.as_u16(), "detail": format!("injected {status}")})
    }) {
        return reply;
    }
    let key = common::basic_auth(headers).map(|(_, password)| password);
    if key.as_deref() != Some(ledger.api_key.as_str()) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "API Key Invalid",
            "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
        );
    }
    if method == Method::GET && path == "/3.0/ping" {
        return Reply::json(
            StatusCode::OK,
            json!({"health_status": "Everything's Chimpy!"}),
        );
    }
    let list_path = format!("/3.0/lists/{}", ledger.list_id);
    let reply = if method == Method::POST && path == list_path {
        batch(ledger, body)
    } else if let Some(hash) = path
        .strip_prefix(&list_path)
        .and_then(|rest| rest.strip_prefix("/members/"))
        .filter(|_| method == Method::DELETE)
    {
        archive(ledger, hash)
    } else {
        problem(
            StatusCode::NOT_FOUND,
            "Resource Not Found",
            "The requested resource could not be found.",
        )
    };
    if reply.status.is_success() && ledger.faults.take_lost_answer() {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "answer lost",
        );
    }
    reply
}

fn member_error(email: &str, error: &str, code: &str, field: &str) -> Value {
    json!({"email_address": email, "error": error, "error_code": code, "field": field, "field_message": ""})
}

fn batch(ledger: &mut Ledger, body: &[u8]) -> Reply {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "JSON Parse Error",
            "We encountered an unspecified JSON parsing error.",
        );
    };
    let Some(members) = parsed["members"].as_array() else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Invalid Resource",
            "The resource submitted could not be validated: members is required.",
        );
    };
    if members.len() > MAX_MEMBERS {
        return problem(
            StatusCode::BAD_REQUEST,
            "Invalid Resource",
            "A maximum of 500 members may be added or updated per request.",
        );
    }
    let update_existing = parsed["update_existing"] == json!(true);
    let (mut created, mut updated, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for member in members {
        let email = member["email_address"].as_str().unwrap_or("");
        let status = member["status"]
            .as_str()
            .or_else(|| member["status_if_new"].as_str())
            .unwrap_or("");
        if !email.contains('@') {
            errors.push(member_error(
                email,
                "Invalid email address",
                "ERROR_GENERIC",
                "email_address",
            ));
            continue;
        }
        if !STATUSES.contains(&status) {
            errors.push(member_error(
                email,
                "Invalid status",
                "ERROR_GENERIC",
                "status",
            ));
            continue;
        }
        if member.get("merge_fields").is_some_and(|m| !m.is_object()) {
            errors.push(member_error(
                email,
                "merge_fields must be an object",
                "ERROR_GENERIC",
                "merge_fields",
            ));
            continue;
        }
        if ledger.reject_emails.contains(&email.to_lowercase()) {
            errors.push(member_error(
                email,
                &format!("{email} was rejected (emulator reject_emails)"),
                "ERROR_GENERIC",
                "email_address",
            ));
            continue;
        }
        let hash = subscriber_hash(email);
        let exists = ledger.members.contains_key(&hash);
        if exists && !update_existing {
            errors.push(member_error(
                email,
                &format!("{email} is already a list member."),
                "ERROR_CONTACT_EXISTS",
                "email_address",
            ));
            continue;
        }
        let stored = ledger.members.entry(hash.clone()).or_default();
        stored.insert("email_address".into(), json!(email.to_lowercase()));
        let status = if exists {
            member["status"].as_str().map(str::to_string)
        } else {
            Some(status.to_string())
        };
        if let Some(status) = status {
            stored.insert("status".into(), json!(status));
        }
        let merge = stored.entry("merge_fields").or_insert_with(|| json!({}));
        for (k, v) in member["merge_fields"].as_object().into_iter().flatten() {
            merge[k] = v.clone();
        }
        let record =
            json!({"id": hash, "email_address": email.to_lowercase(), "status": stored["status"]});
        if exists {
            updated.push(record);
        } else {
            created.push(record);
        }
        ledger.upserted.push(member.clone());
    }
    Reply::json(
        StatusCode::OK,
        json!({"new_members": created, "updated_members": updated, "errors": errors,
               "total_created": created.len(), "total_updated": updated.len(),
               "error_count": errors.len()}),
    )
}

fn archive(ledger: &mut Ledger, hash: &str) -> Reply {
    match ledger.members.remove(hash) {
        Some(member) => {
            let email = member["email_address"].as_str().unwrap_or_default();
            ledger.archived.push(email.to_string());
            Reply::json(StatusCode::NO_CONTENT, Value::Null)
        }
        None => problem(
            StatusCode::NOT_FOUND,
            "Resource Not Found",
            "The requested resource could not be found.",
        ),
    }
}
