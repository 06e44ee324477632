//! Emulator of Airtable's Web API records endpoints for one base:
//! `PATCH /v0/{baseId}/{table}` (update/upsert), `GET` (list with `filterByFormula`),
//! `DELETE` (by record ids).
//!
//! # The contract it enforces
//! Checks run in this order; the first that fails answers the request:
//! 1. fault controls: [`AirtableEmulator::fail_next`] (e.g. `429` with `Retry-After`, as
//!    the conformance suite injects), [`AirtableEmulator::fail_everything`] (`503`);
//! 2. `Authorization: Bearer <token>`; missing or wrong → `401 {"error": {"type":
//!    "AUTHENTICATION_REQUIRED", "message": "Authentication required"}}`;
//! 3. the rate limit, 5 requests per second per base (a token bucket): over it → `429
//!    {"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try
//!    again later"}]}` without `Retry-After` (Airtable documents a 30 s wait instead);
//! 4. a base other than the emulator's, or a table it does not hold → `403 {"error": {"type":
//!    "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", ...}}`;
//! 5. the endpoints (a request is applied whole: any invalid record fails it with `422`
//!    `{"error": {"type", "message"}}` and nothing is written):
//!    - `PATCH` with `records` (1 to 10, else `422 INVALID_RECORDS`); with `performUpsert.
//!      fieldsToMergeOn` (1 to 3 names) each record needs those fields and is created or
//!      updated by them (several matches → `422`); without it each record needs an `id`.
//!      A record whose first merge value is in [`AirtableEmulator::reject_keys`] fails the
//!      request with `422 INVALID_VALUE_FOR_COLUMN`. Answer `200 {"records": [{"id",
//!      "createdTime", "fields"}], "createdRecords": [ids], "updatedRecords": [ids]}`.
//!    - `GET` with optional `filterByFormula` (this subset: `OR(t,…)` or one `t`, each `t`
//!      being `{Field}=<number or "string">`), `maxRecords`, `pageSize` (≤ 100): `200
//!      {"records": [...]}` (no `offset`: one page).
//!    - `DELETE` with `records[]` (1 to 10): every id must exist, else `404 {"error":
//!      "NOT_FOUND"}` and nothing is deleted; `200 {"records": [{"id", "deleted": true}]}`.
//!
//! The ledger: every request ([`AirtableEmulator::requests`], query pairs decoded), every
//! record written ([`AirtableEmulator::written`]) or deleted ([`AirtableEmulator::deleted`]),
//! and the table ([`AirtableEmulator::rows`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use self::records::{delete, list, write};
use super::common::{self, Faults, Reply};

mod records;

/// Records per write or delete request.
pub const MAX_RECORDS: usize = 10;
/// Requests per second per base.
pub const REQUESTS_PER_SECOND: u32 = 5;
/// How long Airtable asks for after a 429 (for tests that check the client's wait).
pub const THROTTLE_WAIT: Duration = Duration::from_secs(30);

/// One request as the emulator received it.
#[derive(Debug, Clone)]
pub struct AirtableRequest {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Query pairs, decoded, in order (repeated names kept).
    pub query: Vec<(String, String)>,
    /// The body parsed as JSON (`Value::Null` when absent or not JSON).
    pub body: Value,
    /// When it arrived.
    pub received_at: SystemTime,
    /// The status answered.
    pub status: u16,
}

impl AirtableRequest {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `rec…`.
    pub id: String,
    /// The cells.
    pub fields: Map<String, Value>,
}

#[derive(Debug)]
struct Ledger {
    token: String,
    base: String,
    tables: BTreeMap<String, Vec<Row>>,
    requests: Vec<AirtableRequest>,
    written: Vec<Row>,
    deleted: Vec<Row>,
    reject_keys: BTreeSet<String>,
    faults: Faults,
    next_id: u64,
    bucket: (f64, Instant),
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Airtable emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct AirtableEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl AirtableEmulator {
    /// Starts an emulator of base `base` holding empty tables `tables`, accepting `token`.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(token: &str, base: &str, tables: &[&str]) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            token: token.to_string(),
            base: base.to_string(),
            tables: tables.iter().map(|t| (t.to_string(), Vec::new())).collect(),
            requests: Vec::new(),
            written: Vec::new(),
            deleted: Vec::new(),
            reject_keys: BTreeSet::new(),
            faults: Faults::default(),
            next_id: 0,
            bucket: (f64::from(REQUESTS_PER_SECOND), Instant::now()),
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "airtable").await?;
        Ok(AirtableEmulator { addr, shared, task })
    }

    /// The API origin, for the destination's `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<AirtableRequest> {
        self.lock().requests.clone()
    }

    /// Every record written (created or updated), as written, duplicates kept.
    pub fn written(&self) -> Vec<Row> {
        self.lock().written.clone()
    }

    /// Every record deleted, as it was.
    pub fn deleted(&self) -> Vec<Row> {
        self.lock().deleted.clone()
    }

    /// The rows of `table`.
    pub fn rows(&self, table: &str) -> Vec<Row> {
        self.lock().tables.get(table).cloned().unwrap_or_default()
    }

    /// Fails a write request holding a record whose first merge value (as text) is one of
    /// these, with `422 INVALID_VALUE_FOR_COLUMN`.
    pub fn reject_keys(&self, keys: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(keys);
    }

    /// Answers the next `n` requests with `status` (and `Retry-After` when given).
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`AirtableEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Airtable loses the rows of `table` whose `field` holds one of `values` (as text).
    pub fn forget(&self, table: &str, field: &str, values: &[String]) {
        let mut ledger = self.lock();
        if let Some(rows) = ledger.tables.get_mut(table) {
            rows.retain(|r| {
                !r.fields
                    .get(field)
                    .is_some_and(|v| values.contains(&text(v)))
            });
        }
    }

    /// Ends faults and rejections; forgets requests, writes and deletes (not rows).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.reject_keys.clear();
        ledger.requests.clear();
        ledger.written.clear();
        ledger.deleted.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for AirtableEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A cell or key as text: a string as is, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"type": kind, "message": message}}))
}

/// Percent-decodes a query component (`+` is a space).
fn decode(component: &str) -> String {
    let bytes = component.as_bytes();
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

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut ledger = lock(&shared);
    let query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = decide(&mut ledger, &method, uri.path(), &query, &headers, &parsed);
    ledger.requests.push(AirtableRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query,
        body: parsed,
        received_at: SystemTime::now(),
        status: reply.status.as_u16(),
    });
    reply.into_response()
}

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &Value,
) -> Reply {
    if let Some(reply) = ledger.faults.injected(
        |status| json!({"error": {"type": "INJECTED", "message": format!("injected {status}")}}),
    ) {
        return reply;
    }
    if common::bearer(headers).as_deref() != Some(ledger.token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_REQUIRED",
            "Authentication required",
        );
    }
    let now = Instant::now();
    let (tokens, last) = ledger.bucket;
    let rate = f64::from(REQUESTS_PER_SECOND);
    let tokens = (tokens + now.duration_since(last).as_secs_f64() * rate).min(rate);
    if tokens < 1.0 {
        ledger.bucket = (tokens, now);
        return Reply::json(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]}),
        );
    }
    ledger.bucket = (tokens - 1.0, now);
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let table = match segments.as_slice() {
        [v0, base, table]
            if v0 == "v0" && *base == ledger.base && ledger.tables.contains_key(table) =>
        {
            table.clone()
        }
        _ => {
            return error(
                StatusCode::FORBIDDEN,
                "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
                "Invalid permissions, or the requested model was not found. Check that both your user and your token have the required permissions, and that the model names and/or ids are correct.",
            );
        }
    };
    match *method {
        Method::PATCH => write(ledger, &table, body).unwrap_or_else(|reply| reply),
        Method::GET => list(ledger, &table, query).unwrap_or_else(|reply| reply),
        Method::DELETE => delete(ledger, &table, query),
        _ => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Could not find what you are looking for",
        ),
    }
}
