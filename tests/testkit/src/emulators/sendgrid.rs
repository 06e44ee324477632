//! Emulator of Twilio SendGrid's v3 Marketing Campaigns contacts endpoints: `PUT
//! /v3/marketing/contacts`, `POST /v3/marketing/contacts/search/emails`, `DELETE
//! /v3/marketing/contacts?ids=` and `GET /v3/scopes`.
//!
//! # The contract it enforces
//! - `Authorization: Bearer <API key>`; a missing or unknown key is answered `401`
//!   `{"errors": [{"field": null, "message": "The provided authorization grant is invalid,
//!   expired, or revoked"}]}`.
//! - Upsert: `{"list_ids"?, "contacts": [...]}`, 1 to [`MAX_CONTACTS`] contacts (else `400`),
//!   a body of at most [`MAX_BODY_BYTES`] (else `413`). Each contact needs an `email` with
//!   an `@`; `custom_fields` must be an object; an email in [`SendgridEmulator::reject_emails`]
//!   is refused. Any refused contact makes the answer `400` `{"errors": [{"field":
//!   "contacts[<i>].email", "message"}]}` and **nothing** is queued. Otherwise `202
//!   {"job_id"}`; the emulator applies the upsert at once (by lower-cased email, fields
//!   merged).
//! - Lookup: `{"emails": [...]}`, at most [`MAX_SEARCH`] (else `400`); `200 {"result": {...}}`
//!   when any matched (unmatched emails get `{"error": "contact not found"}`), `404` when none
//!   did.
//! - Delete: `ids` (comma-separated) or `delete_all_contacts=true` (refused here: `400`);
//!   `202 {"job_id"}`; unknown ids are ignored.
//! - `GET /v3/scopes`: `200 {"scopes": [...]}`.
//! - Fault controls first: [`SendgridEmulator::throttle_next`] (`429` `too many requests` with
//!   `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset` in UTC epoch seconds,
//!   no `Retry-After`), `fail_next`, `fail_everything` (`503`), `lose_answers`.
//!
//! The ledger: every queued contact ([`SendgridEmulator::upserted`], duplicates kept), every
//! deleted contact's email ([`SendgridEmulator::deleted`]) and the contacts
//! ([`SendgridEmulator::contact`]).

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

/// Contacts per upsert request.
pub const MAX_CONTACTS: usize = 30_000;
/// Body bytes per upsert request (6 MB).
pub const MAX_BODY_BYTES: usize = 6_000_000;
/// Emails per lookup request.
pub const MAX_SEARCH: usize = 100;

#[derive(Debug, Default)]
struct Ledger {
    api_key: String,
    requests: Vec<LoggedRequest>,
    upserted: Vec<Value>,
    deleted: Vec<String>,
    contacts: BTreeMap<String, Map<String, Value>>,
    reject_emails: BTreeSet<String>,
    throttled: Vec<u64>,
    jobs: usize,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running SendGrid emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct SendgridEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl SendgridEmulator {
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
        let (addr, task) = common::serve(app, "sendgrid").await?;
        Ok(SendgridEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every queued contact as received, duplicates kept.
    pub fn upserted(&self) -> Vec<Value> {
        self.lock().upserted.clone()
    }

    /// The email of every deleted contact.
    pub fn deleted(&self) -> Vec<String> {
        self.lock().deleted.clone()
    }

    /// The contact with this email (its `id` included), if it exists.
    pub fn contact(&self, email: &str) -> Option<Map<String, Value>> {
        self.lock().contacts.get(&email.to_lowercase()).cloned()
    }

    /// Refuses upserts holding contacts with these emails.
    pub fn reject_emails(&self, emails: impl IntoIterator<Item = String>) {
        self.lock()
            .reject_emails
            .extend(emails.into_iter().map(|e| e.to_lowercase()));
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

    /// Answers every request `503` until [`SendgridEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// SendGrid loses these contacts (deleted on its side).
    pub fn forget(&self, emails: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        for email in emails {
            ledger.contacts.remove(&email.to_lowercase());
        }
    }

    /// Ends faults and rejections; forgets requests, upserts and deletes (not contacts).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.throttled.clear();
        ledger.reject_emails.clear();
        ledger.requests.clear();
        ledger.upserted.clear();
        ledger.deleted.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for SendgridEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn errors(status: StatusCode, field: Option<&str>, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"errors": [{"field": field, "message": message}]}),
    )
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
    let query = entry.query.clone();
    let reply = decide(&mut ledger, &method, uri.path(), &query, &headers, &body);
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    reply.into_response()
}

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
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
        let mut reply = errors(StatusCode::TOO_MANY_REQUESTS, None, "too many requests");
        reply.headers = vec![
            ("x-ratelimit-limit", "150".to_string()),
            ("x-ratelimit-remaining", "0".to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ];
        return reply;
    }
    if let Some(reply) = ledger.faults.injected(
        |status| json!({"errors": [{"field": null, "message": format!("injected {status}")}]}),
    ) {
        return reply;
    }
    if common::bearer(headers).as_deref() != Some(ledger.api_key.as_str()) {
        return errors(
            StatusCode::UNAUTHORIZED,
            None,
            "The provided authorization grant is invalid, expired, or revoked",
        );
    }
    let reply = match (method, path) {
        (&Method::GET, "/v3/scopes") => Reply::json(
            StatusCode::OK,
            json!({"scopes": ["marketing.read", "marketing.contacts.create", "marketing.contacts.delete", "marketing.contacts.update"]}),
        ),
        (&Method::PUT, "/v3/marketing/contacts") => upsert(ledger, body),
        (&Method::POST, "/v3/marketing/contacts/search/emails") => search(ledger, body),
        (&Method::DELETE, "/v3/marketing/contacts") => delete(ledger, query),
        _ => errors(StatusCode::NOT_FOUND, None, "resource not found"),
    };
    if reply.status.is_success() && method != Method::GET && ledger.faults.take_lost_answer() {
        return errors(StatusCode::SERVICE_UNAVAILABLE, None, "answer lost");
    }
    reply
}

fn next_job(ledger: &mut Ledger) -> String {
    ledger.jobs += 1;
    format!("job-{:08}", ledger.jobs)
}

fn upsert(ledger: &mut Ledger, body: &[u8]) -> Reply {
    if body.len() > MAX_BODY_BYTES {
        return errors(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            "request body exceeds 6MB",
        );
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return errors(StatusCode::BAD_REQUEST, None, "invalid JSON");
    };
    let Some(contacts) = parsed["contacts"].as_array() else {
        return errors(
            StatusCode::BAD_REQUEST,
            Some("contacts"),
            "contacts is required",
        );
    };
    if contacts.is_empty() || contacts.len() > MAX_CONTACTS {
        return errors(
            StatusCode::BAD_REQUEST,
            Some("contacts"),
            "between 1 and 30000 contacts are accepted per request",
        );
    }
    let mut refused = Vec::new();
    for (i, contact) in contacts.iter().enumerate() {
        let email = contact["email"].as_str().unwrap_or("");
        if !email.contains('@') {
            refused.push(
                json!({"field": format!("contacts[{i}].email"), "message": "email is invalid"}),
            );
        } else if ledger.reject_emails.contains(&email.to_lowercase()) {
            refused.push(json!({"field": format!("contacts[{i}].email"), "message": format!("'{email}' was rejected (emulator reject_emails)")}));
        } else if contact.get("custom_fields").is_some_and(|c| !c.is_object()) {
            refused.push(json!({"field": format!("contacts[{i}].custom_fields"), "message": "custom_fields must be an object"}));
        }
    }
    if !refused.is_empty() {
        return Reply::json(StatusCode::BAD_REQUEST, json!({ "errors": refused }));
    }
    for contact in contacts {
        let email = contact["email"].as_str().unwrap_or("").to_lowercase();
        let next_id = format!("c-{:06}", ledger.contacts.len() + ledger.deleted.len() + 1);
        let stored = ledger.contacts.entry(email.clone()).or_default();
        stored.entry("id").or_insert_with(|| Value::String(next_id));
        for (k, v) in contact.as_object().into_iter().flatten() {
            if k == "email" {
                stored.insert(k.clone(), json!(email));
            } else {
                stored.insert(k.clone(), v.clone());
            }
        }
        ledger.upserted.push(contact.clone());
    }
    let job = next_job(ledger);
    Reply::json(StatusCode::ACCEPTED, json!({ "job_id": job }))
}

fn search(ledger: &mut Ledger, body: &[u8]) -> Reply {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return errors(StatusCode::BAD_REQUEST, None, "invalid JSON");
    };
    let Some(emails) = parsed["emails"].as_array() else {
        return errors(
            StatusCode::BAD_REQUEST,
            Some("emails"),
            "emails is required",
        );
    };
    if emails.len() > MAX_SEARCH {
        return errors(
            StatusCode::BAD_REQUEST,
            Some("emails"),
            "at most 100 emails per request",
        );
    }
    let mut result = Map::new();
    let mut found = false;
    for email in emails
        .iter()
        .filter_map(Value::as_str)
        .filter(|e| !e.is_empty())
    {
        let key = email.to_lowercase();
        match ledger.contacts.get(&key) {
            Some(contact) => {
                found = true;
                result.insert(key, json!({ "contact": contact }));
            }
            None => {
                result.insert(key, json!({"error": "contact not found"}));
            }
        }
    }
    if !found {
        return errors(StatusCode::NOT_FOUND, None, "contacts not found");
    }
    Reply::json(StatusCode::OK, json!({ "result": result }))
}

fn delete(ledger: &mut Ledger, query: &BTreeMap<String, String>) -> Reply {
    if query.contains_key("delete_all_contacts") {
        return errors(
            StatusCode::BAD_REQUEST,
            Some("delete_all_contacts"),
            "the emulator does not delete all contacts",
        );
    }
    let Some(ids) = query.get("ids").filter(|ids| !ids.is_empty()) else {
        return errors(
            StatusCode::BAD_REQUEST,
            Some("ids"),
            "ids or delete_all_contacts is required",
        );
    };
    let ids: BTreeSet<String> = common::percent_decode(ids)
        .split(',')
        .map(str::to_string)
        .collect();
    let gone: Vec<String> = ledger
        .contacts
        .iter()
        .filter(|(_, c)| {
            c.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| ids.contains(id))
        })
        .map(|(email, _)| email.clone())
        .collect();
    for email in gone {
        ledger.contacts.remove(&email);
        ledger.deleted.push(email);
    }
    let job = next_job(ledger);
    Reply::json(StatusCode::ACCEPTED, json!({ "job_id": job }))
}
