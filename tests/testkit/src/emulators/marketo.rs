//! Emulator of Marketo's identity endpoint and REST API lead endpoints.
//!
//! # The contract it enforces
//! - `POST /identity/oauth/token` (form body or query: `grant_type=client_credentials`,
//!   `client_id`, `client_secret`): the configured pair answers `{"access_token",
//!   "token_type": "bearer", "expires_in", "scope"}`; anything else `401` `{"error":
//!   "invalid_client", "error_description": "Bad client credentials"}`.
//! - REST calls need `Authorization: Bearer <token>` with a token it issued: a missing or
//!   unknown token answers HTTP 200 `{"success": false, "errors": [{"code": "601", "message":
//!   "Access token invalid"}]}`, an expired one (see [`MarketoEmulator::expire_tokens`])
//!   `602` "Access token expired", as Marketo does.
//! - Limits, answered with HTTP 200 and an error code: over 100 calls in 20 s → `606` "Max
//!   rate limit '100' exceeded with in '20' secs"; over the daily quota
//!   ([`MarketoEmulator::set_daily_quota`]) → `607`; over 300 records → `1003`.
//! - `POST /rest/v1/leads.json`: `{"action": "createOrUpdate"|"createOnly"|"updateOnly",
//!   "lookupField", "input": [...]}`; every lead needs its lookup field; `result[i]` is
//!   `{"id", "status": "created"|"updated"}` or `{"status": "skipped", "reasons": [{"code",
//!   "message"}]}` (1005 lead exists for createOnly, 1004 not found for updateOnly, 1006 for
//!   a value in [`MarketoEmulator::reject_keys`]).
//! - `GET /rest/v1/leads.json?filterType&filterValues&fields`: the leads whose field holds
//!   one of the values (case-insensitive), at most 300 values.
//! - `POST /rest/v1/leads/delete.json`: `{"input": [{"id"}]}`; `result[i]` `deleted` or
//!   `skipped` with reason 1004 "Lead not found".
//! - `GET /rest/v1/stats/usage.json`: today's call count.
//! - Fault controls first: [`MarketoEmulator::throttle_next`] (`606`), `fail_next`,
//!   `fail_everything` (HTTP `503`), `lose_answers`.
//!
//! The ledger: every request, every accepted write ([`MarketoEmulator::writes`]) and the
//! leads ([`MarketoEmulator::leads`]).

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

/// Records per call.
pub const MAX_RECORDS: usize = 300;
/// Calls per 20-second window.
pub const CALLS_PER_WINDOW: u32 = 100;
const WINDOW: Duration = Duration::from_secs(20);

/// One write the emulator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketoWrite {
    /// `created`, `updated` or `deleted`.
    pub status: &'static str,
    /// The lead's Marketo id.
    pub id: i64,
    /// The lead object received (for a delete, the lead as it was).
    pub lead: Map<String, Value>,
}

#[derive(Debug)]
struct Ledger {
    client_id: String,
    client_secret: String,
    tokens: BTreeMap<String, bool>,
    next_token: u64,
    requests: Vec<LoggedRequest>,
    codes: Vec<Option<String>>,
    writes: Vec<MarketoWrite>,
    leads: BTreeMap<i64, Map<String, Value>>,
    next_id: i64,
    reject_keys: BTreeSet<String>,
    throttled: usize,
    faults: Faults,
    window_start: SystemTime,
    window_calls: u32,
    daily_calls: u64,
    daily_quota: u64,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Marketo emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct MarketoEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl MarketoEmulator {
    /// Starts an emulator accepting this client id and secret.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(client_id: &str, client_secret: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            tokens: BTreeMap::new(),
            next_token: 1,
            requests: Vec::new(),
            codes: Vec::new(),
            writes: Vec::new(),
            leads: BTreeMap::new(),
            next_id: 1,
            reject_keys: BTreeSet::new(),
            throttled: 0,
            faults: Faults::default(),
            window_start: SystemTime::now(),
            window_calls: 0,
            daily_calls: 0,
            daily_quota: 50_000,
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "marketo").await?;
        Ok(MarketoEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// The Marketo error code each request was answered with (HTTP 200 `success: false`),
    /// parallel to [`MarketoEmulator::requests`].
    pub fn codes(&self) -> Vec<Option<String>> {
        self.lock().codes.clone()
    }

    /// Every accepted write, in order, duplicates kept.
    pub fn writes(&self) -> Vec<MarketoWrite> {
        self.lock().writes.clone()
    }

    /// The leads by Marketo id.
    pub fn leads(&self) -> BTreeMap<i64, Map<String, Value>> {
        self.lock().leads.clone()
    }

    /// The lead whose `field` holds `value` (case-insensitive).
    pub fn lead(&self, field: &str, value: &str) -> Option<Map<String, Value>> {
        self.lock()
            .leads
            .values()
            .find(|l| {
                l.get(field)
                    .is_some_and(|v| text(v).eq_ignore_ascii_case(value))
            })
            .cloned()
    }

    /// Every token issued so far answers `602` (expired) from now on.
    pub fn expire_tokens(&self) {
        for expired in self.lock().tokens.values_mut() {
            *expired = true;
        }
    }

    /// Calls allowed today.
    pub fn set_daily_quota(&self, calls: u64) {
        self.lock().daily_quota = calls;
    }

    /// Skips leads whose lookup value is one of these (reason 1006).
    pub fn reject_keys(&self, values: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(values);
    }

    /// Answers the next `n` REST calls with error `606` (rate limit).
    pub fn throttle_next(&self, n: usize) {
        self.lock().throttled += n;
    }

    /// Answers the next `n` requests with HTTP `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request HTTP `503` until [`MarketoEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Marketo loses the leads whose `field` holds one of `values`.
    pub fn forget(&self, field: &str, values: &[String]) {
        self.lock().leads.retain(|_, l| {
            !l.get(field)
                .is_some_and(|v| values.iter().any(|x| text(v).eq_ignore_ascii_case(x)))
        });
    }

    /// Ends faults and rejections; forgets requests and writes (not leads or tokens).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.throttled = 0;
        ledger.reject_keys.clear();
        ledger.requests.clear();
        ledger.codes.clear();
        ledger.writes.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for MarketoEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An HTTP 200 answer carrying Marketo error `code`.
fn failure(code: &str, message: &str) -> Reply {
    Reply::json(
        StatusCode::OK,
        json!({"requestId": "emu#1", "success": false, "errors": [{"code": code, "message": message}]}),
    )
}

fn success(result: Vec<Value>) -> Reply {
    Reply::json(
        StatusCode::OK,
        json!({"requestId": "emu#1", "success": true, "result": result}),
    )
}

fn skipped(code: &str, message: &str) -> Value {
    json!({"status": "skipped", "reasons": [{"code": code, "message": message}]})
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
    let reply = decide(&mut ledger, &method, &entry, &headers, &body);
    entry.status = reply.status.as_u16();
    let code = (reply.body["success"] == json!(false))
        .then(|| reply.body["errors"][0]["code"].as_str().map(str::to_string))
        .flatten();
    ledger.requests.push(entry);
    ledger.codes.push(code);
    reply.into_response()
}

/// `name=value&...` pairs, decoded.
fn form(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            (
                common::percent_decode(&k.replace('+', " ")),
                common::percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    request: &LoggedRequest,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    if let Some(reply) = ledger
        .faults
        .injected(|status| json!({"error": format!("injected {status}")}))
    {
        return reply;
    }
    if request.path == "/identity/oauth/token" {
        let mut params = form(&String::from_utf8_lossy(body));
        for (k, v) in &request.query {
            params.insert(k.clone(), common::percent_decode(v));
        }
        let valid = params.get("grant_type").map(String::as_str) == Some("client_credentials")
            && params.get("client_id") == Some(&ledger.client_id)
            && params.get("client_secret") == Some(&ledger.client_secret);
        if !valid {
            return Reply::json(
                StatusCode::UNAUTHORIZED,
                json!({"error": "invalid_client", "error_description": "Bad client credentials"}),
            );
        }
        let token = format!("emu-token-{}:ab", ledger.next_token);
        ledger.next_token += 1;
        ledger.tokens.insert(token.clone(), false);
        return Reply::json(
            StatusCode::OK,
            json!({"access_token": token, "token_type": "bearer", "expires_in": 3599,
                   "scope": "api-user@example.com"}),
        );
    }
    match common::bearer(headers).and_then(|t| ledger.tokens.get(&t).copied()) {
        None => return failure("601", "Access token invalid"),
        Some(true) => return failure("602", "Access token expired"),
        Some(false) => {}
    }
    if ledger.throttled > 0 {
        ledger.throttled -= 1;
        return failure("606", "Max rate limit '100' exceeded with in '20' secs");
    }
    let now = SystemTime::now();
    if now.duration_since(ledger.window_start).unwrap_or_default() >= WINDOW {
        ledger.window_start = now;
        ledger.window_calls = 0;
    }
    if ledger.window_calls >= CALLS_PER_WINDOW {
        return failure("606", "Max rate limit '100' exceeded with in '20' secs");
    }
    if ledger.daily_calls >= ledger.daily_quota {
        return failure("607", "Daily quota reached");
    }
    ledger.window_calls += 1;
    ledger.daily_calls += 1;
    let parsed = || match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(failure("609", "Invalid JSON")),
    };
    let reply = match (method, request.path.as_str()) {
        (&Method::POST, "/rest/v1/leads.json") => match parsed() {
            Ok(map) => sync_leads(ledger, &map),
            Err(reply) => reply,
        },
        (&Method::GET, "/rest/v1/leads.json") => filter_leads(ledger, &request.query),
        (&Method::POST, "/rest/v1/leads/delete.json") => match parsed() {
            Ok(map) => delete_leads(ledger, &map),
            Err(reply) => reply,
        },
        (&Method::GET, "/rest/v1/stats/usage.json") => success(vec![
            json!({"date": "2026-01-01", "total": ledger.daily_calls, "users": []}),
        ]),
        _ => Reply::json(
            StatusCode::NOT_FOUND,
            json!({"errors": [{"code": "404", "message": "Not found"}]}),
        ),
    };
    if reply.status.is_success() && ledger.faults.take_lost_answer() {
        return Reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "answer lost"}),
        );
    }
    reply
}

fn sync_leads(ledger: &mut Ledger, body: &Map<String, Value>) -> Reply {
    let action = body
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("createOrUpdate");
    if !matches!(action, "createOrUpdate" | "createOnly" | "updateOnly") {
        return failure("1003", &format!("Invalid action '{action}'"));
    }
    let lookup = body
        .get("lookupField")
        .and_then(Value::as_str)
        .unwrap_or("email")
        .to_string();
    let Some(input) = body.get("input").and_then(Value::as_array) else {
        return failure("1003", "input is required");
    };
    if input.len() > MAX_RECORDS {
        return failure("1003", "Batch size over the limit of 300 records");
    }
    let mut result = Vec::with_capacity(input.len());
    for lead in input {
        let Some(lead) = lead.as_object() else {
            result.push(skipped("1003", "Lead is not an object"));
            continue;
        };
        let Some(value) = lead.get(&lookup).filter(|v| !v.is_null()).map(text) else {
            result.push(skipped(
                "1006",
                &format!("Lookup field '{lookup}' is missing"),
            ));
            continue;
        };
        if ledger.reject_keys.contains(&value) {
            result.push(skipped(
                "1006",
                &format!("Field '{lookup}' value '{value}' not valid (emulator reject_keys)"),
            ));
            continue;
        }
        let existing = ledger
            .leads
            .iter()
            .find(|(_, l)| {
                l.get(&lookup)
                    .is_some_and(|v| text(v).eq_ignore_ascii_case(&value))
            })
            .map(|(id, _)| *id);
        let (id, status) = match (existing, action) {
            (Some(_), "createOnly") => {
                result.push(skipped("1005", "Lead already exists"));
                continue;
            }
            (None, "updateOnly") => {
                result.push(skipped("1004", "Lead not found"));
                continue;
            }
            (Some(id), _) => (id, "updated"),
            (None, _) => {
                let id = ledger.next_id;
                ledger.next_id += 1;
                (id, "created")
            }
        };
        let stored = ledger.leads.entry(id).or_default();
        stored.extend(lead.clone());
        stored.insert("id".into(), json!(id));
        ledger.writes.push(MarketoWrite {
            status,
            id,
            lead: lead.clone(),
        });
        result.push(json!({"id": id, "status": status}));
    }
    success(result)
}

fn filter_leads(ledger: &Ledger, query: &BTreeMap<String, String>) -> Reply {
    let Some(filter_type) = query
        .get("filterType")
        .map(|f| common::percent_decode(f.as_str()))
    else {
        return failure("1003", "filterType is required");
    };
    let values: Vec<String> = query
        .get("filterValues")
        .map(|v| common::percent_decode(&v.replace('+', " ")))
        .unwrap_or_default()
        .split(',')
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    if values.is_empty() {
        return failure("1003", "filterValues is required");
    }
    if values.len() > MAX_RECORDS {
        return failure("1003", "More than 300 filterValues");
    }
    let fields: Vec<String> = query
        .get("fields")
        .map(|f| common::percent_decode(f.as_str()))
        .unwrap_or_else(|| "id,email".to_string())
        .split(',')
        .map(str::to_string)
        .collect();
    let result = ledger
        .leads
        .values()
        .filter(|l| {
            l.get(&filter_type)
                .is_some_and(|v| values.iter().any(|x| text(v).eq_ignore_ascii_case(x)))
        })
        .map(|l| {
            let mut out = Map::new();
            for f in &fields {
                out.insert(f.clone(), l.get(f).cloned().unwrap_or(Value::Null));
            }
            Value::Object(out)
        })
        .collect();
    success(result)
}

fn delete_leads(ledger: &mut Ledger, body: &Map<String, Value>) -> Reply {
    let Some(input) = body.get("input").and_then(Value::as_array) else {
        return failure("1003", "input is required");
    };
    if input.len() > MAX_RECORDS {
        return failure("1003", "Batch size over the limit of 300 records");
    }
    let mut result = Vec::with_capacity(input.len());
    for item in input {
        let Some(id) = item.get("id").and_then(Value::as_i64) else {
            result.push(skipped("1003", "id is required"));
            continue;
        };
        match ledger.leads.remove(&id) {
            Some(lead) => {
                ledger.writes.push(MarketoWrite {
                    status: "deleted",
                    id,
                    lead,
                });
                result.push(json!({"id": id, "status": "deleted"}));
            }
            None => {
                let mut entry = skipped("1004", "Lead not found");
                entry["id"] = json!(id);
                result.push(entry);
            }
        }
    }
    success(result)
}
