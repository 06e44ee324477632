//! Emulator of the subset of HubSpot's CRM v3 API that retl's `hubspot` destination uses.
//!
//! # The contract it enforces
//! Every request needs `Authorization: Bearer <access token>`, else `401` with HubSpot's body
//! (`{"status":"error","message":"Authentication credentials not found...","category":
//! "INVALID_AUTHENTICATION",...}`). Then, in order: injected failures
//! ([`HubSpotEmulator::fail_next`], [`HubSpotEmulator::throttle_next`]: `429` with
//! `{"errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING",...}` and `Retry-After`);
//! the route; a JSON body with `inputs`; at most 100 inputs (else `400 VALIDATION_ERROR`).
//!
//! Routes (`{type}` is `contacts` or `companies`):
//! - `GET /crm/v3/objects/{type}?limit=n`: the first records.
//! - `GET /crm/v3/properties/{type}`: the account's properties (defaults plus
//!   [`HubSpotOptions::properties`]), `hs_object_id` and `createdate` read-only.
//! - `POST /crm/v3/objects/{type}/batch/upsert` and `/batch/update`: inputs `{"idProperty",
//!   "id", "properties", "objectWriteTraceId"?}`; `idProperty` must be a property with unique
//!   values (else the batch is `400`). `update` of a value no record has: `OBJECT_NOT_FOUND`
//!   with `context.ids`.
//! - `POST .../batch/create`: inputs `{"properties", "objectWriteTraceId"?}`; a unique property
//!   value another record has: `CONFLICT`.
//! - `POST .../batch/read`: `{"idProperty", "inputs": [{"id"}], "properties"}`; values no record
//!   has are `OBJECT_NOT_FOUND` errors with `context.ids` (answer `207`).
//! - `POST .../batch/archive`: `{"inputs": [{"id": <record id>}]}`; `204` whatever the state of
//!   each record (archiving a missing record succeeds).
//!
//! Per input, property values must be strings and name existing, writable properties
//! (`VALIDATION_ERROR` / `PROPERTY_DOESNT_EXIST`), and an id value in
//! [`HubSpotEmulator::reject_keys`] is refused (`VALIDATION_ERROR`). A per-input error is an
//! entry of `errors` (answer `207`) with `context.objectWriteTraceId` when the input has one;
//! without it the whole batch fails (`400`, `409` for a conflict), as HubSpot does for clients
//! that do not opt in to multi-status answers. Nothing of a batch answered with a 4xx is
//! written.
//!
//! The ledger ([`HubSpotEmulator::records`]) holds every input the emulator wrote, and every
//! record it archived (with its properties at that time).

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::hubspot_api::{self, Account, Answer};
use super::webhook::ReceivedRequest;

/// The largest number of inputs of one batch request.
pub const MAX_INPUTS: usize = 100;

/// How a HubSpot emulator starts.
#[derive(Debug, Clone)]
pub struct HubSpotOptions {
    /// The private app's access token every request must carry.
    pub access_token: String,
    /// Custom properties: `(object type, name, unique values)`.
    pub properties: Vec<(String, String, bool)>,
}

/// One record the emulator wrote or archived.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSpotRecord {
    /// `upsert`, `update`, `create` or `archive`.
    pub operation: String,
    /// `contacts` or `companies`.
    pub object_type: String,
    /// The record's id (`hs_object_id`).
    pub object_id: String,
    /// The input's `idProperty` (upsert and update).
    pub id_property: Option<String>,
    /// The input's `id` (upsert and update).
    pub id: Option<String>,
    /// The properties the input carried; for an archive, the record's properties.
    pub properties: Map<String, Value>,
    /// Index of the request in [`HubSpotEmulator::requests`] that wrote it.
    pub request_index: usize,
}

/// An injected answer for the next `remaining` requests.
#[derive(Debug, Clone)]
struct Injected {
    remaining: usize,
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

/// Everything the emulator knows; behind one mutex.
#[derive(Debug)]
pub(super) struct Ledger {
    pub(super) requests: Vec<ReceivedRequest>,
    pub(super) records: Vec<HubSpotRecord>,
    pub(super) account: Account,
    access_token: String,
    injected: VecDeque<Injected>,
    pub(super) reject_keys: BTreeSet<String>,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running HubSpot emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct HubSpotEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl HubSpotEmulator {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(options: HubSpotOptions) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let mut account = Account::default();
        for (object_type, name, unique) in &options.properties {
            account.add_property(object_type, name, *unique);
        }
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            requests: Vec::new(),
            records: Vec::new(),
            account,
            access_token: options.access_token,
            injected: VecDeque::new(),
            reject_keys: BTreeSet::new(),
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "hubspot emulator stopped");
            }
        });
        Ok(HubSpotEmulator { addr, shared, task })
    }

    /// The URL to configure as the destination's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.lock().requests.clone()
    }

    /// Every record written or archived, in order (duplicates kept).
    pub fn records(&self) -> Vec<HubSpotRecord> {
        self.lock().records.clone()
    }

    /// The records of an object type the account holds now: `(record id, properties)`.
    pub fn objects(&self, object_type: &str) -> Vec<(String, Map<String, Value>)> {
        self.lock().account.objects(object_type)
    }

    /// Refuses inputs whose id value (or a unique property value, for creates) is one of these.
    pub fn reject_keys(&self, values: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(values);
    }

    /// Answers the next `n` requests with `status` and a HubSpot error body.
    pub fn fail_next(&self, n: usize, status: u16) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({
            "status": "error",
            "message": "internal error",
            "correlationId": "00000000-0000-0000-0000-000000000000",
            "category": "INTERNAL_ERROR",
        });
        self.lock().injected.push_back(Injected {
            remaining: n,
            status,
            retry_after: None,
            body,
        });
    }

    /// Answers the next request with HubSpot's 429 (`policyName` `TEN_SECONDLY_ROLLING`) and
    /// `Retry-After: <seconds>` when given.
    pub fn throttle_next(&self, retry_after: Option<u64>) {
        self.lock().injected.push_back(Injected {
            remaining: 1,
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after,
            body: json!({
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": "00000000-0000-0000-0000-000000000429",
                "policyName": "TEN_SECONDLY_ROLLING",
            }),
        });
    }

    /// HubSpot loses the records of `object_type` whose `property` has one of these values.
    pub fn forget(&self, object_type: &str, property: &str, values: &[String]) {
        self.lock()
            .account
            .remove_where(object_type, property, values);
    }

    /// Forgets every request and ledger record and ends the fault controls; the account's
    /// records and properties stay.
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.requests.clear();
        ledger.records.clear();
        ledger.injected.clear();
        ledger.reject_keys.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for HubSpotEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut ledger = lock(&shared);
    let request_index = ledger.requests.len();
    let answer = decide(&mut ledger, &method, &uri, &headers, &body, request_index);
    ledger.requests.push(ReceivedRequest {
        method: method.to_string(),
        path: uri.to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw_body: body.to_vec(),
        received_at: SystemTime::now(),
        status: answer.status.as_u16(),
    });
    drop(ledger);
    let mut response = match answer.body {
        Some(body) => (answer.status, axum::Json(body)).into_response(),
        None => answer.status.into_response(),
    };
    if let Some(secs) = answer.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    request_index: usize,
) -> Answer {
    let expected = format!("Bearer {}", ledger.access_token);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(expected.as_str()) {
        return Answer::error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        );
    }
    if let Some(injected) = ledger.injected.front_mut() {
        injected.remaining = injected.remaining.saturating_sub(1);
        let answer = Answer {
            status: injected.status,
            retry_after: injected.retry_after,
            body: Some(injected.body.clone()),
        };
        if injected.remaining == 0 {
            ledger.injected.pop_front();
        }
        return answer;
    }
    let path = uri.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["crm", "v3", "objects", object_type]) => {
            let limit = uri
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit=")))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(10);
            hubspot_api::list(&ledger.account, object_type, limit)
        }
        (&Method::GET, ["crm", "v3", "properties", object_type]) => {
            hubspot_api::properties(&ledger.account, object_type)
        }
        (&Method::POST, ["crm", "v3", "objects", object_type, "batch", operation]) => {
            let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
                return Answer::error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "Invalid input JSON on line 1",
                );
            };
            let Some(inputs) = parsed.get("inputs").and_then(Value::as_array) else {
                return Answer::error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "Invalid input JSON: 'inputs' is required",
                );
            };
            if inputs.len() > MAX_INPUTS {
                return Answer::error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    &format!(
                        "Too many inputs: {} inputs were given, the limit is {MAX_INPUTS}",
                        inputs.len()
                    ),
                );
            }
            if !ledger.account.has_type(object_type) {
                return Answer::error(
                    StatusCode::BAD_REQUEST,
                    "OBJECT_TYPE_NOT_FOUND",
                    &format!("Unable to infer object type from: {object_type}"),
                );
            }
            hubspot_api::batch(
                ledger,
                object_type,
                operation,
                &parsed,
                inputs,
                request_index,
            )
        }
        _ => Answer::error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("no route for {method} {path}"),
        ),
    }
}
