//! Emulator of ActiveCampaign's v3 API contact endpoints: `POST /api/3/contact/sync`, `GET
//! /api/3/contacts?email=`, `DELETE /api/3/contacts/{id}` and `GET /api/3/users/me`.
//!
//! # The contract it enforces
//! - `Api-Token: <key>`; a missing or unknown key is answered `403 {"message":
//!   "Forbidden"}`.
//! - Contact sync: `{"contact": {"email", "firstName"?, "lastName"?, "phone"?,
//!   "fieldValues"?: [{"field", "value"}]}}`, one contact per request. An email without `@`,
//!   or one in [`ActiveCampaignEmulator::reject_emails`], is `422 {"errors": [{"title",
//!   "detail", "code", "error", "source": {"pointer"}}]}`; `fieldValues` entries need a
//!   `field` and a text `value` (else `422`). Otherwise `201` (created) or `200` (updated by
//!   email) with `{"contact": {..., "id"}, "fieldValues": [...]}`. Field ids are not checked
//!   against field definitions.
//! - Lookup: `{"contacts": [...], "meta": {"total"}}`, the contacts with that email.
//! - Delete: `200 {}`, or `404 {"message": "No Result found for Subscriber with id <id>"}`.
//! - `GET /api/3/users/me`: `200 {"user": {...}}`.
//! - Fault controls first: [`ActiveCampaignEmulator::throttle_next`] (`429` with
//!   `Retry-After`, `RateLimit-Limit: 5`, `RateLimit-Remaining: 0`), `fail_next`,
//!   `fail_everything` (`503`), `lose_answers`.
//!
//! The ledger: every synced contact body ([`ActiveCampaignEmulator::synced`], duplicates
//! kept), every deleted contact's email ([`ActiveCampaignEmulator::deleted`]) and the
//! contacts ([`ActiveCampaignEmulator::contact`]).

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

#[derive(Debug, Default)]
struct Ledger {
    api_key: String,
    requests: Vec<LoggedRequest>,
    synced: Vec<Value>,
    deleted: Vec<String>,
    /// Contacts by id.
    contacts: BTreeMap<u64, Map<String, Value>>,
    next_id: u64,
    reject_emails: BTreeSet<String>,
    throttled: Vec<u64>,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running ActiveCampaign emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct ActiveCampaignEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl ActiveCampaignEmulator {
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
        let (addr, task) = common::serve(app, "activecampaign").await?;
        Ok(ActiveCampaignEmulator { addr, shared, task })
    }

    /// The account's API URL, for the destination's `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every synced contact body as received, duplicates kept.
    pub fn synced(&self) -> Vec<Value> {
        self.lock().synced.clone()
    }

    /// The (lower-cased) email of every deleted contact.
    pub fn deleted(&self) -> Vec<String> {
        self.lock().deleted.clone()
    }

    /// The contact with this email, if the account holds it.
    pub fn contact(&self, email: &str) -> Option<Map<String, Value>> {
        let ledger = self.lock();
        find(&ledger, email).and_then(|id| ledger.contacts.get(&id).cloned())
    }

    /// Refuses syncs of contacts with these emails (`422`).
    pub fn reject_emails(&self, emails: impl IntoIterator<Item = String>) {
        self.lock()
            .reject_emails
            .extend(emails.into_iter().map(|e| e.to_lowercase()));
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

    /// Answers every request `503` until [`ActiveCampaignEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// The account loses these contacts (deleted on its side).
    pub fn forget(&self, emails: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        for email in emails {
            if let Some(id) = find(&ledger, &email) {
                ledger.contacts.remove(&id);
            }
        }
    }

    /// Ends faults and rejections; forgets requests, syncs and deletes (not contacts).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.throttled.clear();
        ledger.reject_emails.clear();
        ledger.requests.clear();
        ledger.synced.clear();
        ledger.deleted.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for ActiveCampaignEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The id of the contact with this email (case-insensitive).
fn find(ledger: &Ledger, email: &str) -> Option<u64> {
    let email = email.to_lowercase();
    ledger
        .contacts
        .iter()
        .find(|(_, c)| c.get("email").and_then(Value::as_str) == Some(email.as_str()))
        .map(|(id, _)| *id)
}

fn message(status: StatusCode, text: &str) -> Reply {
    Reply::json(status, json!({ "message": text }))
}

fn unprocessable(title: &str, code: &str, pointer: &str) -> Reply {
    Reply::json(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"errors": [{"title": title, "detail": "", "code": code, "error": code,
                           "source": {"pointer": pointer}}]}),
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
        let mut reply = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        reply.retry_after = Some(seconds);
        reply.headers = vec![
            ("ratelimit-limit", "5".to_string()),
            ("ratelimit-remaining", "0".to_string()),
        ];
        return reply;
    }
    if let Some(reply) = ledger
        .faults
        .injected(|status| json!({"message": format!("injected {status}")}))
    {
        return reply;
    }
    let token = headers.get("api-token").and_then(|v| v.to_str().ok());
    if token != Some(ledger.api_key.as_str()) {
        return message(StatusCode::FORBIDDEN, "Forbidden");
    }
    let reply = match (method, path) {
        (&Method::GET, "/api/3/users/me") => Reply::json(
            StatusCode::OK,
            json!({"user": {"id": "1", "username": "admin", "email": "admin@example.com"}}),
        ),
        (&Method::POST, "/api/3/contact/sync") => sync(ledger, body),
        (&Method::GET, "/api/3/contacts") => {
            let email = common::percent_decode(query.get("email").map_or("", String::as_str));
            let contacts: Vec<Value> = find(ledger, &email)
                .and_then(|id| ledger.contacts.get(&id))
                .map(|c| Value::Object(c.clone()))
                .into_iter()
                .collect();
            let total = contacts.len().to_string();
            Reply::json(
                StatusCode::OK,
                json!({"contacts": contacts, "meta": {"total": total}}),
            )
        }
        (&Method::DELETE, _) if path.starts_with("/api/3/contacts/") => {
            let raw = &path["/api/3/contacts/".len()..];
            match raw
                .parse::<u64>()
                .ok()
                .and_then(|id| ledger.contacts.remove(&id))
            {
                Some(contact) => {
                    let email = contact["email"].as_str().unwrap_or_default().to_string();
                    ledger.deleted.push(email);
                    Reply::json(StatusCode::OK, json!({}))
                }
                None => message(
                    StatusCode::NOT_FOUND,
                    &format!("No Result found for Subscriber with id {raw}"),
                ),
            }
        }
        _ => message(StatusCode::NOT_FOUND, "Not Found"),
    };
    if reply.status.is_success() && method != Method::GET && ledger.faults.take_lost_answer() {
        return message(StatusCode::SERVICE_UNAVAILABLE, "answer lost");
    }
    reply
}

fn sync(ledger: &mut Ledger, body: &[u8]) -> Reply {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return message(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    let contact = &parsed["contact"];
    let email = contact["email"].as_str().unwrap_or("").to_lowercase();
    if !email.contains('@') {
        return unprocessable(
            "Email address is not valid.",
            "email_invalid",
            "/data/attributes/email",
        );
    }
    if ledger.reject_emails.contains(&email) {
        return unprocessable(
            "The contact was rejected (emulator reject_emails).",
            "rejected",
            "/data/attributes/email",
        );
    }
    let values = contact["fieldValues"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if values
        .iter()
        .any(|v| v["field"].as_str().is_none_or(str::is_empty) || !v["value"].is_string())
    {
        return unprocessable(
            "Field values need a field id and a text value.",
            "field_invalid",
            "/data/attributes/fieldValues",
        );
    }
    let (id, status) = match find(ledger, &email) {
        Some(id) => (id, StatusCode::OK),
        None => {
            ledger.next_id += 1;
            (ledger.next_id, StatusCode::CREATED)
        }
    };
    let stored = ledger.contacts.entry(id).or_default();
    stored.insert("id".into(), json!(id.to_string()));
    stored.insert("email".into(), json!(email));
    for attribute in ["firstName", "lastName", "phone"] {
        if let Some(value) = contact.get(attribute) {
            stored.insert(attribute.into(), value.clone());
        }
    }
    let fields = stored.entry("fieldValues").or_insert_with(|| json!({}));
    for value in &values {
        if let (Some(field), Some(v)) = (value["field"].as_str(), value.get("value")) {
            fields[field] = v.clone();
        }
    }
    let answer = json!({"contact": Value::Object(stored.clone()), "fieldValues": values});
    ledger.synced.push(contact.clone());
    Reply::json(status, answer)
}
