//! Emulator of Elasticsearch's document APIs that retl's `elasticsearch` destination uses:
//! `_bulk` (NDJSON) and `GET /<index>/_mapping`, plus `GET /` (cluster info).
//!
//! # The contract it enforces
//! - Authentication when configured: `Authorization: ApiKey <encoded>` or `Basic`; missing or
//!   wrong credentials are answered `401` with a `security_exception` body (`missing
//!   authentication credentials for REST request [...]` or `unable to authenticate with
//!   provided credentials and anonymous access is not allowed for this request`) and a
//!   `WWW-Authenticate` header, as Elasticsearch answers.
//! - `POST`/`PUT` `/_bulk` and `/<index>/_bulk`: `Content-Type` `application/x-ndjson` or
//!   `application/json` (else `406`); a body over `http.max_content_length` (100 MB unless
//!   set lower with [`ElasticsearchOptions::max_content_length`]) → `413` without body; a body
//!   not ending with a newline → `400 illegal_argument_exception`; no operation → `400
//!   action_request_validation_exception`; an unreadable line → `400
//!   x_content_parse_exception`. Operations `index`, `create`, `update` (`doc`,
//!   `doc_as_upsert`) and `delete`, each answered by an item `{"<op>": {"_index", "_id",
//!   "_version", "result", "status", "error"}}` in order, with `"errors": true` when any
//!   item failed: `create` of an existing document → `409 version_conflict_engine_exception`;
//!   `update` of a missing document without `doc_as_upsert` → `404
//!   document_missing_exception`; `delete` of a missing document → `404` `"result":
//!   "not_found"` (no error); ids in [`ElasticsearchEmulator::reject_keys`] → `400
//!   document_parsing_exception`; ids in [`ElasticsearchEmulator::busy_keys`] → `429
//!   es_rejected_execution_exception` once.
//! - `GET /<index>/_mapping`: `{"<index>": {"mappings": {"properties": ...}}}` for an index
//!   created with [`ElasticsearchEmulator::create_index`] or by a write (dynamic mapping:
//!   `long`, `float`, `boolean`, `text`, `object`), else `404 index_not_found_exception`.
//! - Fault controls, after authentication: [`ElasticsearchEmulator::throttle_next`] (`429
//!   es_rejected_execution_exception` for the whole request, without `Retry-After`, as
//!   Elasticsearch answers), `fail_next`, `fail_everything` (`503`), `lose_answers`.
//!
//! The ledger: every request ([`ElasticsearchEmulator::requests`], a bulk request's body as the
//! array of its parsed lines), every operation that succeeded
//! ([`ElasticsearchEmulator::operations`], duplicates kept), and the documents.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest, Reply};

/// Elasticsearch's default `http.max_content_length`: 100 MB.
pub const DEFAULT_MAX_CONTENT_LENGTH: usize = 100 * 1024 * 1024;

/// What the emulator accepts.
#[derive(Debug, Clone)]
pub struct ElasticsearchOptions {
    /// The encoded API key accepted in `Authorization: ApiKey`.
    pub api_key: Option<String>,
    /// The user and password accepted in `Authorization: Basic`.
    pub basic: Option<(String, String)>,
    /// The largest request body (`http.max_content_length`).
    pub max_content_length: usize,
}

impl ElasticsearchOptions {
    /// Accepts this API key; default limits.
    pub fn api_key(key: &str) -> Self {
        ElasticsearchOptions {
            api_key: Some(key.to_string()),
            basic: None,
            max_content_length: DEFAULT_MAX_CONTENT_LENGTH,
        }
    }
}

/// One `_bulk` operation that succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct EsOperation {
    /// `index`, `create`, `update` or `delete`.
    pub op: String,
    /// The index.
    pub index: String,
    /// The document `_id`.
    pub id: String,
    /// The source line as received (`Null` for a delete).
    pub source: Value,
    /// The item's status (a delete of a missing document: 404).
    pub status: u16,
}

#[derive(Debug, Default)]
struct Ledger {
    api_key: Option<String>,
    basic: Option<(String, String)>,
    max_content_length: usize,
    requests: Vec<LoggedRequest>,
    operations: Vec<EsOperation>,
    indices: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    mappings: BTreeMap<String, Map<String, Value>>,
    reject_keys: BTreeSet<String>,
    busy_keys: BTreeSet<String>,
    throttled: usize,
    faults: Faults,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Elasticsearch emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct ElasticsearchEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl ElasticsearchEmulator {
    /// Starts an emulator with these options.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(options: ElasticsearchOptions) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            api_key: options.api_key,
            basic: options.basic,
            max_content_length: options.max_content_length,
            ..Ledger::default()
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "elasticsearch").await?;
        Ok(ElasticsearchEmulator { addr, shared, task })
    }

    /// The base URL, for the destination's `url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every operation that succeeded, in order, duplicates kept.
    pub fn operations(&self) -> Vec<EsOperation> {
        self.lock().operations.clone()
    }

    /// The document `id` of `index`, if it exists.
    pub fn document(&self, index: &str, id: &str) -> Option<Map<String, Value>> {
        self.lock().indices.get(index)?.get(id).cloned()
    }

    /// The number of documents of `index`.
    pub fn count(&self, index: &str) -> usize {
        self.lock().indices.get(index).map_or(0, BTreeMap::len)
    }

    /// Creates `index` with these mapped `properties` (as `PUT /<index>` with mappings).
    pub fn create_index(&self, index: &str, properties: Value) {
        let mut ledger = self.lock();
        ledger.indices.entry(index.to_string()).or_default();
        ledger.mappings.insert(
            index.to_string(),
            properties.as_object().cloned().unwrap_or_default(),
        );
    }

    /// Answers operations on these ids with `400 document_parsing_exception`.
    pub fn reject_keys(&self, ids: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(ids);
    }

    /// Answers the next operation on each of these ids with `429
    /// es_rejected_execution_exception` (once per id).
    pub fn busy_keys(&self, ids: impl IntoIterator<Item = String>) {
        self.lock().busy_keys.extend(ids);
    }

    /// Answers the next `n` requests `429 es_rejected_execution_exception` (no
    /// `Retry-After`).
    pub fn throttle_next(&self, n: usize) {
        self.lock().throttled += n;
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`ElasticsearchEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// The cluster loses these documents of `index` (deleted on its side).
    pub fn forget(&self, index: &str, ids: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        if let Some(documents) = ledger.indices.get_mut(index) {
            for id in ids {
                documents.remove(&id);
            }
        }
    }

    /// Ends faults and rejections; forgets requests and operations (not documents).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.throttled = 0;
        ledger.reject_keys.clear();
        ledger.busy_keys.clear();
        ledger.requests.clear();
        ledger.operations.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for ElasticsearchEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Elasticsearch's error body: `{"error": {"root_cause": [..], "type", "reason"}, "status"}`.
fn error(status: StatusCode, kind: &str, reason: &str) -> Reply {
    let cause = json!({"type": kind, "reason": reason});
    Reply::json(
        status,
        json!({"error": {"root_cause": [cause], "type": kind, "reason": reason}, "status": status.as_u16()}),
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
    if uri.path().ends_with("/_bulk") {
        entry.body = Value::Array(
            String::from_utf8_lossy(&body)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
                .collect(),
        );
    }
    let reply = decide(&mut ledger, &method, uri.path(), &headers, &body);
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    reply.into_response()
}

/// The answer to missing or wrong credentials, `None` when they are accepted.
fn authenticate(ledger: &Ledger, path: &str, headers: &HeaderMap) -> Option<Reply> {
    if ledger.api_key.is_none() && ledger.basic.is_none() {
        return None;
    }
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let accepted = match value {
        Some(v) if v.starts_with("ApiKey ") => {
            ledger.api_key.as_deref() == v.strip_prefix("ApiKey ").map(str::trim)
        }
        Some(_) => ledger
            .basic
            .as_ref()
            .is_some_and(|b| common::basic_auth(headers).as_ref() == Some(b)),
        None => false,
    };
    if accepted {
        return None;
    }
    let reason = if value.is_none() {
        format!("missing authentication credentials for REST request [{path}]")
    } else {
        "unable to authenticate with provided credentials and anonymous access is not allowed for this request".to_string()
    };
    let mut reply = error(StatusCode::UNAUTHORIZED, "security_exception", &reason);
    reply.headers = vec![(
        "www-authenticate",
        "Basic realm=\"security\" charset=\"UTF-8\", ApiKey".to_string(),
    )];
    Some(reply)
}

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    if let Some(reply) = authenticate(ledger, path, headers) {
        return reply;
    }
    if body.len() > ledger.max_content_length {
        return Reply::json(StatusCode::PAYLOAD_TOO_LARGE, Value::Null);
    }
    if ledger.throttled > 0 {
        ledger.throttled -= 1;
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=0]",
        );
    }
    if let Some(reply) = ledger
        .faults
        .injected(|status| error(status, "unavailable_shards_exception", "injected failure").body)
    {
        return reply;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reply = match (method, segments.as_slice()) {
        (&Method::GET, [""]) => Reply::json(
            StatusCode::OK,
            json!({"name": "emulator", "cluster_name": "retl-emulator",
                   "version": {"number": "8.15.0", "build_flavor": "default"},
                   "tagline": "You Know, for Search"}),
        ),
        (&Method::GET, [index, "_mapping"]) => mapping(ledger, index),
        (&Method::POST | &Method::PUT, ["_bulk"]) => bulk(ledger, None, headers, body),
        (&Method::POST | &Method::PUT, [index, "_bulk"]) => {
            bulk(ledger, Some(*index), headers, body)
        }
        _ => Reply::json(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("no handler found for uri [{path}] and method [{method}]"), "status": 400}),
        ),
    };
    if reply.status.is_success() && ledger.faults.take_lost_answer() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable_shards_exception",
            "answer lost",
        );
    }
    reply
}

/// The dynamic mapping type of a value.
fn dynamic_type(value: &Value) -> Value {
    match value {
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(n) if n.is_f64() => json!({"type": "float"}),
        Value::Number(_) => json!({"type": "long"}),
        Value::Object(_) => json!({"properties": {}}),
        _ => {
            json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}})
        }
    }
}

fn mapping(ledger: &Ledger, index: &str) -> Reply {
    let Some(documents) = ledger.indices.get(index) else {
        return error(
            StatusCode::NOT_FOUND,
            "index_not_found_exception",
            &format!("no such index [{index}]"),
        );
    };
    let mut properties = ledger.mappings.get(index).cloned().unwrap_or_default();
    for document in documents.values() {
        for (name, value) in document {
            if !value.is_null() && !properties.contains_key(name) {
                properties.insert(name.clone(), dynamic_type(value));
            }
        }
    }
    Reply::json(
        StatusCode::OK,
        json!({ index: {"mappings": {"properties": properties}} }),
    )
}

fn bulk(ledger: &mut Ledger, path_index: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Reply {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media != "application/x-ndjson" && media != "application/json" {
        return Reply::json(
            StatusCode::NOT_ACCEPTABLE,
            json!({"error": format!("Content-Type header [{content_type}] is not supported"), "status": 406}),
        );
    }
    let text = String::from_utf8_lossy(body);
    if !text.is_empty() && !text.ends_with('\n') {
        return error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        );
    }
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut operations: Vec<(String, String, String, Value)> = Vec::new();
    while let Some(line) = lines.next() {
        let parse_error = || {
            error(
                StatusCode::BAD_REQUEST,
                "x_content_parse_exception",
                &format!(
                    "[1:1] malformed action/metadata line [{}]",
                    operations.len() + 1
                ),
            )
        };
        let Ok(Value::Object(action)) = serde_json::from_str::<Value>(line) else {
            return parse_error();
        };
        let Some((op, meta)) = action.iter().next() else {
            return parse_error();
        };
        if !matches!(op.as_str(), "index" | "create" | "update" | "delete") {
            return error(
                StatusCode::BAD_REQUEST,
                "illegal_argument_exception",
                &format!(
                    "Malformed action/metadata line [{}], expected one of [create, delete, index, update] but found [{op}]",
                    operations.len() + 1
                ),
            );
        }
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(path_index)
            .unwrap_or("");
        let Some(id) = meta.get("_id").and_then(Value::as_str) else {
            return error(
                StatusCode::BAD_REQUEST,
                "action_request_validation_exception",
                "Validation Failed: 1: an id is required;",
            );
        };
        if index.is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;",
            );
        }
        let source = if op == "delete" {
            Value::Null
        } else {
            match lines.next().map(serde_json::from_str::<Value>) {
                Some(Ok(source @ Value::Object(_))) => source,
                _ => return parse_error(),
            }
        };
        operations.push((op.clone(), index.to_string(), id.to_string(), source));
    }
    if operations.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        );
    }
    let mut errors = false;
    let items: Vec<Value> = operations
        .into_iter()
        .map(|(op, index, id, source)| {
            let item = apply(ledger, &op, &index, &id, &source);
            errors |= item.get("error").is_some();
            json!({ op: item })
        })
        .collect();
    Reply::json(
        StatusCode::OK,
        json!({"took": 1, "errors": errors, "items": items}),
    )
}

/// Applies one operation; its answer item.
fn apply(ledger: &mut Ledger, op: &str, index: &str, id: &str, source: &Value) -> Value {
    let failed = |status: u16, kind: &str, reason: String| {
        json!({"_index": index, "_id": id, "status": status,
               "error": {"type": kind, "reason": reason, "index": index}})
    };
    if op != "delete" && ledger.reject_keys.contains(id) {
        return failed(
            400,
            "document_parsing_exception",
            format!("[1:2] failed to parse: document [{id}] rejected (emulator reject_keys)"),
        );
    }
    if ledger.busy_keys.remove(id) {
        return failed(
            429,
            "es_rejected_execution_exception",
            "rejected execution of primary operation".to_string(),
        );
    }
    let documents = ledger.indices.entry(index.to_string()).or_default();
    let exists = documents.contains_key(id);
    let fields = |value: &Value| value.as_object().cloned().unwrap_or_default();
    let (status, result) = match op {
        "index" => {
            documents.insert(id.to_string(), fields(source));
            if exists {
                (200, "updated")
            } else {
                (201, "created")
            }
        }
        "create" if exists => {
            return failed(
                409,
                "version_conflict_engine_exception",
                format!("[{id}]: version conflict, document already exists (current version [1])"),
            );
        }
        "create" => {
            documents.insert(id.to_string(), fields(source));
            (201, "created")
        }
        "update" => {
            let Some(doc) = source.get("doc").and_then(Value::as_object) else {
                return failed(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: script or doc is missing;".to_string(),
                );
            };
            match documents.get_mut(id) {
                Some(document) => {
                    let before = document.clone();
                    document.extend(doc.clone());
                    if *document == before {
                        (200, "noop")
                    } else {
                        (200, "updated")
                    }
                }
                None if source.get("doc_as_upsert") == Some(&Value::Bool(true)) => {
                    documents.insert(id.to_string(), doc.clone());
                    (201, "created")
                }
                None => {
                    return failed(
                        404,
                        "document_missing_exception",
                        format!("[{id}]: document missing"),
                    );
                }
            }
        }
        _ => {
            if documents.remove(id).is_some() {
                (200, "deleted")
            } else {
                (404, "not_found")
            }
        }
    };
    ledger.operations.push(EsOperation {
        op: op.to_string(),
        index: index.to_string(),
        id: id.to_string(),
        source: source.clone(),
        status,
    });
    json!({"_index": index, "_id": id, "_version": 1, "result": result, "status": status})
}
