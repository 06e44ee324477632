//! Emulator of the Marketing API's Customer File Custom Audience users endpoint:
//! `POST`/`DELETE /{version}/{audience_id}/users` and `GET /{version}/{audience_id}`.
//!
//! # The contract it enforces
//! Checks run in this order; the first that fails answers the request:
//! 1. fault controls: [`FacebookAudiencesEmulator::throttle_next`] (`400` with Graph error
//!    code 80003 and `X-Business-Use-Case-Usage`; the suite's short throttles also carry
//!    `Retry-After`, which Meta does not send), [`FacebookAudiencesEmulator::fail_next`],
//!    [`FacebookAudiencesEmulator::fail_everything`] (`503`);
//! 2. `Authorization: Bearer <token>` (or `?access_token=`); missing or wrong → `400
//!    {"error": {"message": "Invalid OAuth access token - Cannot parse access token", "type":
//!    "OAuthException", "code": 190}}`;
//! 3. an audience other than the emulator's → `400` code 100 ("does not exist");
//! 4. `POST`/`DELETE …/users`: a JSON body with `payload.schema` (known keys: `EMAIL`,
//!    `PHONE`, `FN`, `LN`, `GEN`, `DOBY`, `DOBM`, `DOBD`, `CT`, `ST`, `ZIP`, `COUNTRY`,
//!    `MADID`, `EXTERN_ID`; else `400` code 100) and `payload.data` (rows as long as the
//!    schema; at most [`MAX_USERS`], else `400` code 100 "too many"). A row is an invalid
//!    entry when a hashed column holds anything but `""` or 64 lowercase hex digits, when it
//!    has no value at all, or when its `EXTERN_ID` is in
//!    [`FacebookAudiencesEmulator::reject_keys`]; invalid entries are counted and sampled
//!    (`{"<value>": "<reason>"}`), the others added or removed. Answer `200 {"audience_id",
//!    "session_id", "num_received", "num_invalid_entries", "invalid_entry_samples"}`.
//!    Removing a user the audience does not hold is no error.
//!
//! The ledger: every request, every accepted add and removal, and the members.

use std::collections::{BTreeMap, BTreeSet, HashSet};
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

/// Users per request.
pub const MAX_USERS: usize = 10_000;
/// The schema keys the endpoint knows; all but `MADID` and `EXTERN_ID` are hashed.
pub const SCHEMA_KEYS: &[&str] = &[
    "EMAIL",
    "PHONE",
    "FN",
    "LN",
    "GEN",
    "DOBY",
    "DOBM",
    "DOBD",
    "CT",
    "ST",
    "ZIP",
    "COUNTRY",
    "MADID",
    "EXTERN_ID",
];

/// One accepted add or removal: the row as `schema key → value`.
pub type Entry = BTreeMap<String, String>;

#[derive(Debug, Default)]
struct Ledger {
    token: String,
    audience: String,
    requests: Vec<LoggedRequest>,
    added: Vec<Entry>,
    removed: Vec<Entry>,
    members: Vec<Entry>,
    reject_keys: BTreeSet<String>,
    throttled: Vec<u64>,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct FacebookAudiencesEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl FacebookAudiencesEmulator {
    /// Starts an emulator of audience `audience`, accepting `token`.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(token: &str, audience: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            token: token.to_string(),
            audience: audience.to_string(),
            ..Ledger::default()
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "facebook_audiences").await?;
        Ok(FacebookAudiencesEmulator { addr, shared, task })
    }

    /// The API origin, for the destination's `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every accepted add, duplicates kept.
    pub fn added(&self) -> Vec<Entry> {
        self.lock().added.clone()
    }

    /// Every accepted removal, duplicates kept.
    pub fn removed(&self) -> Vec<Entry> {
        self.lock().removed.clone()
    }

    /// The members of the audience.
    pub fn members(&self) -> Vec<Entry> {
        self.lock().members.clone()
    }

    /// Counts rows with these `EXTERN_ID`s as invalid entries.
    pub fn reject_keys(&self, extern_ids: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(extern_ids);
    }

    /// Answers the next `n` requests as rate limited, to be retried after `seconds`.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock()
            .throttled
            .extend(std::iter::repeat_n(seconds, n));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`FacebookAudiencesEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// The audience loses the members with these `EXTERN_ID`s.
    pub fn forget(&self, extern_ids: &[String]) {
        self.lock()
            .members
            .retain(|m| !m.get("EXTERN_ID").is_some_and(|id| extern_ids.contains(id)));
    }

    /// Ends faults and rejections; forgets requests, adds and removals (not members).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.throttled.clear();
        ledger.reject_keys.clear();
        ledger.requests.clear();
        ledger.added.clear();
        ledger.removed.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for FacebookAudiencesEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn graph_error(code: u32, message: &str, kind: &str) -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        json!({"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AemulatorTrace"}}),
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
    let reply = decide(&mut ledger, &method, &entry, &headers);
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    reply.into_response()
}

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    request: &LoggedRequest,
    headers: &HeaderMap,
) -> Reply {
    if !ledger.throttled.is_empty() {
        let seconds = ledger.throttled.remove(0);
        let mut reply = graph_error(
            80003,
            "There have been too many calls for this ad-account. Wait a bit and try again.",
            "OAuthException",
        );
        let usage = json!({"1234567890": [{"type": "custom_audience", "call_count": 100, "total_cputime": 1, "total_time": 1, "estimated_time_to_regain_access": seconds / 60}]});
        reply
            .headers
            .push(("x-business-use-case-usage", usage.to_string()));
        if seconds < 60 {
            reply.retry_after = Some(seconds);
        }
        return reply;
    }
    if let Some(reply) = ledger.faults.injected(|status| {
        json!({"error": {"message": format!("injected {status}"), "type": "OAuthException", "code": 2}})
    }) {
        return reply;
    }
    let token = common::bearer(headers).or_else(|| request.query.get("access_token").cloned());
    if token.as_deref() != Some(ledger.token.as_str()) {
        return graph_error(
            190,
            "Invalid OAuth access token - Cannot parse access token",
            "OAuthException",
        );
    }
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let (audience, users) = match segments.as_slice() {
        [_version, audience] => (*audience, false),
        [_version, audience, "users"] => (*audience, true),
        _ => return graph_error(100, "Unknown path components", "OAuthException"),
    };
    if audience != ledger.audience {
        return graph_error(
            100,
            &format!(
                "Unsupported request - method type: post. Object with ID '{audience}' does not exist, cannot be loaded due to missing permissions, or does not support this operation"
            ),
            "GraphMethodException",
        );
    }
    match (method, users) {
        (&Method::GET, false) => Reply::json(
            StatusCode::OK,
            json!({"id": ledger.audience, "name": "Emulated audience"}),
        ),
        (&Method::POST, true) => users_request(ledger, &request.body, true),
        (&Method::DELETE, true) => users_request(ledger, &request.body, false),
        _ => graph_error(100, "Unsupported request", "GraphMethodException"),
    }
}

fn is_hash(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn users_request(ledger: &mut Ledger, body: &Value, add: bool) -> Reply {
    let Some(payload) = body.get("payload") else {
        return graph_error(
            100,
            "(#100) The parameter payload is required",
            "OAuthException",
        );
    };
    let schema: Vec<String> = match payload.get("schema") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(keys)) => keys
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => return graph_error(100, "(#100) payload.schema is required", "OAuthException"),
    };
    if schema.is_empty() || schema.iter().any(|k| !SCHEMA_KEYS.contains(&k.as_str())) {
        return graph_error(100, "(#100) Invalid schema field", "OAuthException");
    }
    let Some(data) = payload.get("data").and_then(Value::as_array) else {
        return graph_error(100, "(#100) payload.data is required", "OAuthException");
    };
    if data.len() > MAX_USERS {
        return graph_error(
            100,
            "(#100) Too many users in one request: at most 10000",
            "OAuthException",
        );
    }
    let mut invalid = 0usize;
    let mut samples = Map::new();
    // The identifiers of the members (for adds) and of the removed entries: one pass over
    // the audience per request, not one per entry.
    let mut known: HashSet<(String, String)> = if add {
        ledger.members.iter().flat_map(identifiers).collect()
    } else {
        HashSet::new()
    };
    let mut gone: HashSet<(String, String)> = HashSet::new();
    for row in data {
        let values: Vec<String> = match row {
            Value::Array(cells) => cells
                .iter()
                .map(|c| c.as_str().unwrap_or("").to_string())
                .collect(),
            Value::String(s) if schema.len() == 1 => vec![s.clone()],
            _ => Vec::new(),
        };
        let entry: Entry = schema.iter().cloned().zip(values.iter().cloned()).collect();
        let problem = if values.len() != schema.len() {
            Some(("row".to_string(), "the row does not match the schema"))
        } else if let Some(value) = entry
            .iter()
            .find(|(k, v)| {
                k.as_str() != "MADID" && k.as_str() != "EXTERN_ID" && !v.is_empty() && !is_hash(v)
            })
            .map(|(_, v)| v)
        {
            Some((value.clone(), "not a SHA-256 hash"))
        } else if entry.values().all(String::is_empty) {
            Some((String::new(), "no value"))
        } else {
            entry
                .get("EXTERN_ID")
                .filter(|id| ledger.reject_keys.contains(*id))
                .map(|id| (id.clone(), "invalid entry"))
        };
        if let Some((sample, reason)) = problem {
            invalid += 1;
            samples.insert(sample, json!(reason));
            continue;
        }
        // A member is the same person when any identifier matches.
        if add {
            if !identifiers(&entry).any(|id| known.contains(&id)) {
                known.extend(identifiers(&entry));
                ledger.members.push(entry.clone());
            }
            ledger.added.push(entry);
        } else {
            gone.extend(identifiers(&entry));
            ledger.removed.push(entry);
        }
    }
    if !gone.is_empty() {
        ledger
            .members
            .retain(|m| !identifiers(m).any(|id| gone.contains(&id)));
    }
    Reply::json(
        StatusCode::OK,
        json!({
            "audience_id": ledger.audience,
            "session_id": body.pointer("/session/session_id").cloned().unwrap_or(json!(0)),
            "num_received": data.len(),
            "num_invalid_entries": invalid,
            "invalid_entry_samples": samples,
        }),
    )
}

/// The non-empty identifiers of an entry, as `(schema field, value)` pairs.
fn identifiers(entry: &Entry) -> impl Iterator<Item = (String, String)> + '_ {
    entry
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
}

/// Lowercase hex SHA-256 of `text` (to build expected rows in tests).
pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}
