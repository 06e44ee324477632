//! Emulator of Attio's REST API v2 record endpoints.
//!
//! # The contract it enforces
//! - `Authorization: Bearer <access token>`; anything else is answered `401`
//!   `{"status_code": 401, "type": "auth_error", "code": "invalid_authorization", "message":
//!   "Invalid access token."}`.
//! - Rate limits per clock second: 25 writes (`PUT`, `DELETE`, and `POST` but queries) and
//!   100 reads (`GET`, queries); over a limit, `429` `{"status_code": 429, "type":
//!   "rate_limit_error", "code": "rate_limit_exceeded", ...}` with `Retry-After` as an HTTP
//!   date (the next second), as Attio documents.
//! - `GET /v2/self`: `{"active": true, "workspace_name", ...}`.
//! - Objects and their attributes are declared when the emulator starts
//!   ([`AttioObject`]); an unknown object is `404`, an unknown attribute `400
//!   validation_type` "Cannot find attribute with slug/ID …".
//! - `PUT /v2/objects/{object}/records?matching_attribute={slug}`: `{"data": {"values":
//!   {...}}}`; the matching attribute must be unique (else `400`) and among the values; the
//!   record whose attribute holds the value is updated, else one is created; answers
//!   `{"data": {"id": {"workspace_id", "object_id", "record_id"}, "values"}}`. A value in
//!   [`AttioEmulator::reject_keys`] is `400 validation_type`.
//! - `POST /v2/objects/{object}/records/query`: `{"filter": {<slug>: <value>}, "limit"}`,
//!   answers `{"data": [records]}`.
//! - `DELETE /v2/objects/{object}/records/{record_id}`: `{}`; unknown id → `404 not_found`.
//! - Fault controls first: [`AttioEmulator::throttle_next`] (`429` + a `Retry-After` date at
//!   least the given seconds away),
//!   `fail_next`, `fail_everything` (`503`), `lose_answers`.
//!
//! The ledger: every request, every accepted write ([`AttioEmulator::writes`]: create,
//! update, delete) and the records ([`AttioEmulator::records`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest, Reply};

/// Writes per second.
pub const WRITES_PER_SECOND: u32 = 25;
/// Reads per second.
pub const READS_PER_SECOND: u32 = 100;

/// An object the emulated workspace has: its slug and attributes `(slug, unique)`.
#[derive(Debug, Clone)]
pub struct AttioObject {
    /// The object's slug, e.g. `people`.
    pub slug: String,
    /// Its attributes: slug and whether values are unique.
    pub attributes: Vec<(String, bool)>,
}

/// One write the emulator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct AttioWrite {
    /// `create`, `update` or `delete`.
    pub operation: &'static str,
    /// The object's slug.
    pub object: String,
    /// The record's id.
    pub record_id: String,
    /// The values received (for a delete, the record's values as they were).
    pub values: Map<String, Value>,
}

#[derive(Debug)]
struct Ledger {
    access_token: String,
    objects: Vec<AttioObject>,
    requests: Vec<LoggedRequest>,
    writes: Vec<AttioWrite>,
    /// (object, record id) → values.
    records: BTreeMap<(String, String), Map<String, Value>>,
    next_id: u64,
    reject_keys: BTreeSet<String>,
    throttled: Vec<u64>,
    faults: Faults,
    second: u64,
    writes_this_second: u32,
    reads_this_second: u32,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Attio emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct AttioEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl AttioEmulator {
    /// Starts an emulator accepting this access token, with these objects.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(access_token: &str, objects: Vec<AttioObject>) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            access_token: access_token.to_string(),
            objects,
            requests: Vec::new(),
            writes: Vec::new(),
            records: BTreeMap::new(),
            next_id: 1,
            reject_keys: BTreeSet::new(),
            throttled: Vec::new(),
            faults: Faults::default(),
            second: 0,
            writes_this_second: 0,
            reads_this_second: 0,
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "attio").await?;
        Ok(AttioEmulator { addr, shared, task })
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
    pub fn writes(&self) -> Vec<AttioWrite> {
        self.lock().writes.clone()
    }

    /// The records of `object` by id.
    pub fn records(&self, object: &str) -> BTreeMap<String, Map<String, Value>> {
        self.lock()
            .records
            .iter()
            .filter(|((o, _), _)| o == object)
            .map(|((_, id), values)| (id.clone(), values.clone()))
            .collect()
    }

    /// The record of `object` whose `attribute` holds `value`.
    pub fn find(&self, object: &str, attribute: &str, value: &str) -> Option<Map<String, Value>> {
        self.records(object)
            .into_values()
            .find(|values| holds(values.get(attribute), value))
    }

    /// Refuses writes whose matching value is one of these.
    pub fn reject_keys(&self, values: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(values);
    }

    /// Answers the next `n` requests `429`, `Retry-After` `seconds` from now.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock()
            .throttled
            .extend(std::iter::repeat_n(seconds, n));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`AttioEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Attio loses the records of `object` whose `attribute` holds one of `values`.
    pub fn forget(&self, object: &str, attribute: &str, values: &[String]) {
        self.lock().records.retain(|(o, _), v| {
            o != object || !values.iter().any(|value| holds(v.get(attribute), value))
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

impl Drop for AttioEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether an attribute's value (a single value or an array of them) holds `value`.
fn holds(attribute: Option<&Value>, value: &str) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match attribute {
        Some(Value::Array(items)) => items.iter().any(|i| text(i) == value),
        Some(v) => text(v) == value,
        None => false,
    }
}

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"status_code": status.as_u16(), "type": kind, "code": code, "message": message}),
    )
}

fn invalid(message: &str) -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "validation_type",
        message,
    )
}

/// A `429` whose `Retry-After` is the HTTP date `seconds` after the next clock second (so at
/// least `seconds` away).
fn throttled(seconds: u64) -> Reply {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let at = UNIX_EPOCH + Duration::from_secs(now + seconds + 1);
    let mut reply = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "rate_limit_exceeded",
        "Rate limit exceeded, please try again later",
    );
    reply.headers = vec![("retry-after", http_date(at))];
    reply
}

/// An IMF-fixdate (`Tue, 23 May 2023 14:42:01 GMT`).
fn http_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {month_name} {year} {hour:02}:{minute:02}:{second:02} GMT")
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
    ledger.requests.push(entry);
    reply.into_response()
}

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    request: &LoggedRequest,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    if !ledger.throttled.is_empty() {
        let seconds = ledger.throttled.remove(0);
        return throttled(seconds);
    }
    if let Some(reply) = ledger.faults.injected(|status| {
        json!({"status_code": status.as_u16(), "type": "api_error", "code": "unavailable", "message": format!("injected {status}")})
    }) {
        return reply;
    }
    if common::bearer(headers).as_deref() != Some(ledger.access_token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "auth_error",
            "invalid_authorization",
            "Invalid access token.",
        );
    }
    let segments: Vec<String> = request
        .path
        .trim_start_matches('/')
        .split('/')
        .map(common::percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let read = *method == Method::GET || segments.last() == Some(&"query");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if now != ledger.second {
        ledger.second = now;
        ledger.writes_this_second = 0;
        ledger.reads_this_second = 0;
    }
    let (used, limit) = if read {
        (&mut ledger.reads_this_second, READS_PER_SECOND)
    } else {
        (&mut ledger.writes_this_second, WRITES_PER_SECOND)
    };
    if *used >= limit {
        return throttled(0);
    }
    *used += 1;
    let parsed = || match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid("Body must be a JSON object.")),
    };
    let reply = match (method, segments.as_slice()) {
        (&Method::GET, ["v2", "self"]) => Reply::json(
            StatusCode::OK,
            json!({"active": true, "workspace_id": "00000000-0000-4000-8000-000000000001",
                   "workspace_name": "Emulated Workspace", "workspace_slug": "emulated",
                   "scope": "record_permission:read-write object_configuration:read"}),
        ),
        (&Method::PUT, ["v2", "objects", object, "records"]) => match parsed() {
            Ok(map) => assert_record(
                ledger,
                object,
                request.query.get("matching_attribute").map(String::as_str),
                &map,
            ),
            Err(reply) => reply,
        },
        (&Method::POST, ["v2", "objects", object, "records", "query"]) => match parsed() {
            Ok(map) => query(ledger, object, &map),
            Err(reply) => reply,
        },
        (&Method::DELETE, ["v2", "objects", object, "records", id]) => delete(ledger, object, id),
        _ => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            "Route not found.",
        ),
    };
    if reply.status.is_success() && ledger.faults.take_lost_answer() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "unavailable",
            "answer lost",
        );
    }
    reply
}

fn object_of<'a>(ledger: &'a Ledger, object: &str) -> Result<&'a AttioObject, Reply> {
    ledger
        .objects
        .iter()
        .find(|o| o.slug == object)
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "not_found",
                &format!("Object with slug/ID \"{object}\" not found."),
            )
        })
}

fn record_json(object: &str, id: &str, values: &Map<String, Value>) -> Value {
    json!({"id": {"workspace_id": "00000000-0000-4000-8000-000000000001", "object_id": object,
                  "record_id": id}, "values": values})
}

fn assert_record(
    ledger: &mut Ledger,
    object: &str,
    matching: Option<&str>,
    body: &Map<String, Value>,
) -> Reply {
    let definition = match object_of(ledger, object) {
        Ok(definition) => definition.clone(),
        Err(reply) => return reply,
    };
    let Some(matching) = matching else {
        return invalid("matching_attribute is required.");
    };
    if !definition
        .attributes
        .iter()
        .any(|(slug, unique)| slug == matching && *unique)
    {
        return invalid(&format!(
            "Cannot use attribute \"{matching}\" as a matching attribute: it must exist and be unique."
        ));
    }
    let Some(values) = body
        .get("data")
        .and_then(|d| d.get("values"))
        .and_then(Value::as_object)
    else {
        return invalid("Body must be {\"data\": {\"values\": {...}}}.");
    };
    if let Some(unknown) = values
        .keys()
        .find(|k| !definition.attributes.iter().any(|(slug, _)| slug == *k))
    {
        return invalid(&format!(
            "Cannot find attribute with slug/ID \"{unknown}\"."
        ));
    }
    let Some(key) = values.get(matching).filter(|v| !v.is_null()) else {
        return invalid(&format!(
            "The matching attribute \"{matching}\" must have a value."
        ));
    };
    let key = match key {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .first()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .unwrap_or_default(),
        other => other.to_string(),
    };
    if ledger.reject_keys.contains(&key) {
        return invalid(&format!("'{key}' was rejected (emulator reject_keys)"));
    }
    let existing = ledger
        .records
        .iter()
        .find(|((o, _), v)| o == object && holds(v.get(matching), &key))
        .map(|((_, id), _)| id.clone());
    let (id, operation) = match existing {
        Some(id) => (id, "update"),
        None => {
            let id = format!("00000000-0000-4000-8000-{:012x}", ledger.next_id);
            ledger.next_id += 1;
            (id, "create")
        }
    };
    let stored = ledger
        .records
        .entry((object.to_string(), id.clone()))
        .or_default();
    stored.extend(values.clone());
    let answer = record_json(object, &id, stored);
    ledger.writes.push(AttioWrite {
        operation,
        object: object.to_string(),
        record_id: id,
        values: values.clone(),
    });
    Reply::json(StatusCode::OK, json!({"data": answer}))
}

fn query(ledger: &Ledger, object: &str, body: &Map<String, Value>) -> Reply {
    let definition = match object_of(ledger, object) {
        Ok(definition) => definition,
        Err(reply) => return reply,
    };
    let filter = body
        .get("filter")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for slug in filter.keys() {
        if !definition.attributes.iter().any(|(s, _)| s == slug) {
            return invalid(&format!("Cannot find attribute with slug/ID \"{slug}\"."));
        }
    }
    let limit = body
        .get("limit")
        .and_then(Value::as_u64)
        .map_or(500, |l| l as usize);
    let data: Vec<Value> = ledger
        .records
        .iter()
        .filter(|((o, _), _)| o == object)
        .filter(|(_, values)| {
            filter.iter().all(|(slug, wanted)| {
                let wanted = wanted
                    .as_str()
                    .map_or_else(|| wanted.to_string(), str::to_string);
                holds(values.get(slug), &wanted)
            })
        })
        .take(limit)
        .map(|((_, id), values)| record_json(object, id, values))
        .collect();
    Reply::json(StatusCode::OK, json!({"data": data}))
}

fn delete(ledger: &mut Ledger, object: &str, id: &str) -> Reply {
    if let Err(reply) = object_of(ledger, object) {
        return reply;
    }
    let Some(values) = ledger.records.remove(&(object.to_string(), id.to_string())) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            &format!("Record with ID \"{id}\" not found."),
        );
    };
    ledger.writes.push(AttioWrite {
        operation: "delete",
        object: object.to_string(),
        record_id: id.to_string(),
        values,
    });
    Reply::json(StatusCode::OK, json!({}))
}
