//! Emulator of Pipedrive's REST API v1 persons and organizations endpoints.
//!
//! # The contract it enforces
//! - The token in the `x-api-token` header or the `api_token` query parameter; anything else
//!   is answered `401` `{"success": false, "error": "unauthorized access", "errorCode": 401,
//!   "error_info": "Please check developers.pipedrive.com"}`.
//! - Burst limits in 2-second windows: 20 requests (the Essential plan's, per token,
//!   [`PipedriveEmulator::set_burst_limit`]) and 10 searches; answers carry
//!   `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset` (seconds left in
//!   the window); over a limit, `429` `{"success": false, "error": "Request over limit"}`
//!   with those headers and no `Retry-After`.
//! - `GET /v1/users/me`.
//! - `GET /v1/{persons|organizations}/search?term&fields&exact_match&limit`: `term` required
//!   (at least 2 characters unless `exact_match=true`), `fields` from the object's searchable
//!   fields (persons: `custom_fields`, `email`, `notes`, `phone`, `name`; organizations:
//!   `address`, `custom_fields`, `notes`, `name`), else `400`. Answers `{"success": true,
//!   "data": {"items": [{"result_score", "item": {"id", "type", "name"}}]}}`, at most
//!   `limit` items.
//! - `POST /v1/{object}`: a `name` is required (`400` "Name must be given."); keys must be
//!   the object's standard fields or custom field keys (40 hexadecimal characters), else
//!   `400`; a record holding a value in [`PipedriveEmulator::reject_keys`] is `400`.
//! - `PUT /v1/{object}/{id}`: the same checks but `name`; unknown id → `404`.
//! - `DELETE /v1/{object}/{id}`: `{"success": true, "data": {"id"}}`; unknown id → `404`.
//! - Fault controls first: [`PipedriveEmulator::throttle_next`], `fail_next`,
//!   `fail_everything` (`503`), `lose_answers`.
//!
//! The ledger: every request, every accepted write ([`PipedriveEmulator::writes`]: add,
//! update, delete) and the records ([`PipedriveEmulator::records`]).

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

const WINDOW: Duration = Duration::from_secs(2);
const SEARCHES_PER_WINDOW: u32 = 10;

const PERSON_FIELDS: [&str; 8] = [
    "name",
    "email",
    "phone",
    "org_id",
    "owner_id",
    "visible_to",
    "label",
    "marketing_status",
];
const ORGANIZATION_FIELDS: [&str; 5] = ["name", "address", "owner_id", "visible_to", "label"];

/// One write the emulator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct PipedriveWrite {
    /// `persons` or `organizations`.
    pub object: String,
    /// `add`, `update` or `delete`.
    pub operation: &'static str,
    /// The record's Pipedrive id.
    pub id: u64,
    /// The body received (for a delete, the record as it was).
    pub body: Value,
}

#[derive(Debug)]
struct Ledger {
    api_token: String,
    requests: Vec<LoggedRequest>,
    writes: Vec<PipedriveWrite>,
    records: BTreeMap<(String, u64), Map<String, Value>>,
    next_id: u64,
    reject_keys: BTreeSet<String>,
    throttled: Vec<u64>,
    faults: Faults,
    burst_limit: u32,
    window_start: SystemTime,
    window_calls: u32,
    window_searches: u32,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Pipedrive emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct PipedriveEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl PipedriveEmulator {
    /// Starts an emulator accepting this API token.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(api_token: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            api_token: api_token.to_string(),
            requests: Vec::new(),
            writes: Vec::new(),
            records: BTreeMap::new(),
            next_id: 1,
            reject_keys: BTreeSet::new(),
            throttled: Vec::new(),
            faults: Faults::default(),
            burst_limit: 20,
            window_start: SystemTime::now(),
            window_calls: 0,
            window_searches: 0,
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "pipedrive").await?;
        Ok(PipedriveEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every accepted write, in order, duplicates kept.
    pub fn writes(&self) -> Vec<PipedriveWrite> {
        self.lock().writes.clone()
    }

    /// The records of `object` (`persons`, `organizations`) by id.
    pub fn records(&self, object: &str) -> BTreeMap<u64, Map<String, Value>> {
        self.lock()
            .records
            .iter()
            .filter(|((o, _), _)| o == object)
            .map(|((_, id), r)| (*id, r.clone()))
            .collect()
    }

    /// The record of `object` whose `field` holds `value`.
    pub fn find(&self, object: &str, field: &str, value: &str) -> Option<Map<String, Value>> {
        self.records(object)
            .into_values()
            .find(|r| r.get(field).is_some_and(|v| text(v) == value))
    }

    /// Adds a record as if created in Pipedrive (not a write of the ledger); returns its id.
    pub fn insert(&self, object: &str, record: Value) -> u64 {
        let mut ledger = self.lock();
        let id = ledger.next_id;
        ledger.next_id += 1;
        let mut record = record.as_object().cloned().unwrap_or_default();
        record.insert("id".into(), json!(id));
        ledger.records.insert((object.to_string(), id), record);
        id
    }

    /// Refuses writes of records holding one of these values in any field.
    pub fn reject_keys(&self, values: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(values);
    }

    /// Requests allowed per 2-second window.
    pub fn set_burst_limit(&self, requests: u32) {
        self.lock().burst_limit = requests;
    }

    /// Answers the next `n` requests `429`, the window resetting in `seconds`.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock()
            .throttled
            .extend(std::iter::repeat_n(seconds, n));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`PipedriveEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Pipedrive loses the records of `object` whose `field` holds one of `values`.
    pub fn forget(&self, object: &str, field: &str, values: &[String]) {
        self.lock().records.retain(|(o, _), r| {
            o != object || !r.get(field).is_some_and(|v| values.contains(&text(v)))
        });
    }

    /// Ends faults and rejections; forgets requests and writes (not records).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.throttled.clear();
        ledger.reject_keys.clear();
        ledger.requests.clear();
        ledger.writes.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for PipedriveEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A value as search text.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn failure(status: StatusCode, error: &str) -> Reply {
    Reply::json(
        status,
        json!({"success": false, "error": error, "errorCode": status.as_u16(), "data": null}),
    )
}

fn is_custom_key(key: &str) -> bool {
    key.len() == 40 && key.chars().all(|c| c.is_ascii_hexdigit())
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
    let reply = decide(&mut ledger, &method, &entry, &body);
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    reply.into_response()
}

fn rate_headers(ledger: &Ledger, limit: u32, used: u32) -> Vec<(&'static str, String)> {
    let left = WINDOW
        .saturating_sub(
            SystemTime::now()
                .duration_since(ledger.window_start)
                .unwrap_or_default(),
        )
        .as_secs()
        .max(1);
    vec![
        ("x-ratelimit-limit", limit.to_string()),
        (
            "x-ratelimit-remaining",
            limit.saturating_sub(used).to_string(),
        ),
        ("x-ratelimit-reset", left.to_string()),
    ]
}

fn decide(ledger: &mut Ledger, method: &Method, request: &LoggedRequest, body: &[u8]) -> Reply {
    if !ledger.throttled.is_empty() {
        let seconds = ledger.throttled.remove(0);
        let mut reply = failure(StatusCode::TOO_MANY_REQUESTS, "Request over limit");
        reply.headers = vec![
            ("x-ratelimit-limit", ledger.burst_limit.to_string()),
            ("x-ratelimit-remaining", "0".to_string()),
            ("x-ratelimit-reset", seconds.to_string()),
        ];
        return reply;
    }
    if let Some(reply) = ledger.faults.injected(|status| {
        json!({"success": false, "error": format!("injected {status}"), "errorCode": status.as_u16()})
    }) {
        return reply;
    }
    let token = request
        .header("x-api-token")
        .map(str::to_string)
        .or_else(|| request.query.get("api_token").cloned());
    if token.as_deref() != Some(ledger.api_token.as_str()) {
        let mut reply = failure(StatusCode::UNAUTHORIZED, "unauthorized access");
        reply.body["error_info"] = json!("Please check developers.pipedrive.com");
        return reply;
    }
    let now = SystemTime::now();
    if now.duration_since(ledger.window_start).unwrap_or_default() >= WINDOW {
        ledger.window_start = now;
        ledger.window_calls = 0;
        ledger.window_searches = 0;
    }
    let segments: Vec<String> = request
        .path
        .trim_start_matches('/')
        .split('/')
        .map(common::percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let search = matches!(segments.as_slice(), ["v1", _, "search"]);
    let over = ledger.window_calls >= ledger.burst_limit
        || (search && ledger.window_searches >= SEARCHES_PER_WINDOW);
    if over {
        let mut reply = failure(StatusCode::TOO_MANY_REQUESTS, "Request over limit");
        reply.headers = rate_headers(ledger, ledger.burst_limit, ledger.window_calls);
        return reply;
    }
    ledger.window_calls += 1;
    if search {
        ledger.window_searches += 1;
    }
    let parsed = || match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(failure(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object",
        )),
    };
    let mut reply = match (method, segments.as_slice()) {
        (&Method::GET, ["v1", "users", "me"]) => Reply::json(
            StatusCode::OK,
            json!({"success": true, "data": {"id": 1, "name": "Emulated User", "email": "user@example.com",
                                            "company_name": "Emulated Company", "company_domain": "emulated"}}),
        ),
        (&Method::GET, ["v1", object @ ("persons" | "organizations"), "search"]) => {
            search_records(ledger, object, &request.query)
        }
        (&Method::POST, ["v1", object @ ("persons" | "organizations")]) => match parsed() {
            Ok(map) => write(ledger, object, None, &map),
            Err(reply) => reply,
        },
        (&Method::PUT, ["v1", object @ ("persons" | "organizations"), id]) => {
            match (parsed(), id.parse::<u64>()) {
                (Ok(map), Ok(id)) => write(ledger, object, Some(id), &map),
                (Err(reply), _) => reply,
                (_, Err(_)) => failure(StatusCode::NOT_FOUND, "Not found"),
            }
        }
        (&Method::DELETE, ["v1", object @ ("persons" | "organizations"), id]) => {
            delete(ledger, object, id)
        }
        _ => failure(StatusCode::NOT_FOUND, "Unknown method ."),
    };
    if reply.status.is_success() && ledger.faults.take_lost_answer() {
        return failure(StatusCode::SERVICE_UNAVAILABLE, "answer lost");
    }
    let used = if search {
        ledger.window_searches
    } else {
        ledger.window_calls
    };
    let limit = if search {
        SEARCHES_PER_WINDOW
    } else {
        ledger.burst_limit
    };
    reply.headers.extend(rate_headers(ledger, limit, used));
    reply
}

fn search_records(ledger: &Ledger, object: &str, query: &BTreeMap<String, String>) -> Reply {
    let term = query
        .get("term")
        .map(|t| common::percent_decode(&t.replace('+', " ")))
        .unwrap_or_default();
    let exact = query.get("exact_match").is_some_and(|v| v == "true");
    let shortest = if exact { 1 } else { 2 };
    if term.len() < shortest {
        return failure(
            StatusCode::BAD_REQUEST,
            "term must be at least 2 characters (1 with exact_match)",
        );
    }
    let allowed: &[&str] = if object == "persons" {
        &["custom_fields", "email", "notes", "phone", "name"]
    } else {
        &["address", "custom_fields", "notes", "name"]
    };
    let fields_raw = query
        .get("fields")
        .map(|f| common::percent_decode(f.as_str()))
        .unwrap_or_else(|| allowed.join(","));
    let fields: Vec<&str> = fields_raw.split(',').collect();
    if let Some(bad) = fields.iter().find(|f| !allowed.contains(f)) {
        return failure(
            StatusCode::BAD_REQUEST,
            &format!("'{bad}' is not a searchable field of {object}"),
        );
    }
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100);
    let matches = |value: &Value| {
        let value = text(value);
        if exact {
            value == term
        } else {
            value.to_lowercase().contains(&term.to_lowercase())
        }
    };
    let items: Vec<Value> = ledger
        .records
        .iter()
        .filter(|((o, _), _)| o == object)
        .filter(|(_, record)| {
            record.iter().any(|(key, value)| {
                let field = if is_custom_key(key) {
                    "custom_fields"
                } else {
                    key.as_str()
                };
                fields.contains(&field) && matches(value)
            })
        })
        .take(limit)
        .map(|((_, id), record)| {
            json!({"result_score": 1.0, "item": {"id": id, "type": object.trim_end_matches('s'),
                                                  "name": record.get("name").cloned().unwrap_or(Value::Null)}})
        })
        .collect();
    Reply::json(
        StatusCode::OK,
        json!({"success": true, "data": {"items": items},
               "additional_data": {"pagination": {"start": 0, "limit": limit, "more_items_in_collection": false}}}),
    )
}

fn write(ledger: &mut Ledger, object: &str, id: Option<u64>, body: &Map<String, Value>) -> Reply {
    let standard: &[&str] = if object == "persons" {
        &PERSON_FIELDS
    } else {
        &ORGANIZATION_FIELDS
    };
    if let Some(bad) = body
        .keys()
        .find(|k| !standard.contains(&k.as_str()) && !is_custom_key(k))
    {
        return failure(
            StatusCode::BAD_REQUEST,
            &format!("'{bad}' is not a field of {object} nor a custom field key"),
        );
    }
    if let Some(value) = body
        .values()
        .map(text)
        .find(|v| ledger.reject_keys.contains(v))
    {
        return failure(
            StatusCode::BAD_REQUEST,
            &format!("'{value}' was rejected (emulator reject_keys)"),
        );
    }
    let (id, operation) = match id {
        Some(id) => {
            if !ledger.records.contains_key(&(object.to_string(), id)) {
                return failure(StatusCode::NOT_FOUND, "Item not found");
            }
            (id, "update")
        }
        None => {
            if body
                .get("name")
                .is_none_or(|n| n.is_null() || text(n).trim().is_empty())
            {
                return failure(StatusCode::BAD_REQUEST, "Name must be given.");
            }
            let id = ledger.next_id;
            ledger.next_id += 1;
            (id, "add")
        }
    };
    let record = ledger.records.entry((object.to_string(), id)).or_default();
    record.extend(body.clone());
    record.insert("id".into(), json!(id));
    let answer = Value::Object(record.clone());
    ledger.writes.push(PipedriveWrite {
        object: object.to_string(),
        operation,
        id,
        body: Value::Object(body.clone()),
    });
    let status = if operation == "add" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Reply::json(status, json!({"success": true, "data": answer}))
}

fn delete(ledger: &mut Ledger, object: &str, id: &str) -> Reply {
    let Some(id) = id.parse::<u64>().ok() else {
        return failure(StatusCode::NOT_FOUND, "Item not found");
    };
    let Some(record) = ledger.records.remove(&(object.to_string(), id)) else {
        return failure(StatusCode::NOT_FOUND, "Item not found");
    };
    ledger.writes.push(PipedriveWrite {
        object: object.to_string(),
        operation: "delete",
        id,
        body: Value::Object(record),
    });
    Reply::json(StatusCode::OK, json!({"success": true, "data": {"id": id}}))
}
