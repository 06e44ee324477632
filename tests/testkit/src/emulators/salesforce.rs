//! Emulator of the subset of Salesforce's OAuth 2.0 token endpoint and REST API that retl's
//! `salesforce` destination uses.
//!
//! # The contract it enforces
//! - `POST /services/oauth2/token` (form): `grant_type=client_credentials` with the configured
//!   `client_id`/`client_secret`, or `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//!   with an `assertion` whose RS256 signature verifies with the configured key and whose
//!   claims are `iss` = client id, `sub` = username, `aud` = this emulator's URL, `exp` in the
//!   future. Answers `{"access_token", "instance_url", "token_type": "Bearer", ...}`, else `400`
//!   `{"error": "invalid_client" | "invalid_grant", "error_description"}`.
//! - Every other request needs `Authorization: Bearer <a token it issued>` (not expired with
//!   [`SalesforceEmulator::expire_tokens`]), else `401 [{"errorCode": "INVALID_SESSION_ID"}]`;
//!   then injected failures ([`SalesforceEmulator::throttle_next`]: `403
//!   REQUEST_LIMIT_EXCEEDED`, no `Retry-After` as Salesforce sends none;
//!   [`SalesforceEmulator::fail_next`]); paths under `/services/data/vNN.N` with NN ≥ 46.
//! - `GET .../sobjects/{Object}/describe`, `GET .../query?q=SELECT Id, F FROM O WHERE F IN
//!   ('a',...)`.
//! - `PATCH .../composite/sobjects/{Object}/{ExternalIdField}` (upsert), `POST
//!   .../composite/sobjects` (create), `PATCH .../composite/sobjects` (update by `id`),
//!   `DELETE .../composite/sobjects?ids=...&allOrNone=false`: at most 200 records (else `400
//!   EXCEEDED_ID_LIMIT`), `attributes.type` on every record, fields the object has (else `400
//!   INVALID_FIELD`); answers `200` with one `{"id", "success", "errors", "created"?}` per
//!   record in order. Per record: an external id in [`SalesforceEmulator::reject_keys`] →
//!   `FIELD_CUSTOM_VALIDATION_EXCEPTION`; a create of an existing external id →
//!   `DUPLICATE_VALUE`; a delete of a deleted id → `ENTITY_IS_DELETED`, of an unknown id →
//!   `INVALID_CROSS_REFERENCE_KEY`. `allOrNone: true` with any failure rolls everything back.
//!
//! The ledger ([`SalesforceEmulator::records`]) holds every record written or deleted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::salesforce_api;
use super::webhook::ReceivedRequest;

/// An RSA key (PKCS#8 PEM) for tests of the JWT bearer flow; never used outside tests.
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("salesforce_test_key.pem");

/// The largest number of records of one collection request.
pub const MAX_RECORDS: usize = 200;

/// How a Salesforce emulator starts.
#[derive(Debug, Clone)]
pub struct SalesforceOptions {
    /// The connected app's consumer key.
    pub client_id: String,
    /// Its consumer secret (client credentials flow).
    pub client_secret: String,
    /// The user of the JWT bearer flow.
    pub username: String,
    /// The PEM private key whose public half verifies JWT assertions; `None` refuses the flow.
    pub jwt_key_pem: Option<String>,
    /// The object, e.g. `Contact`.
    pub object: String,
    /// Its fields besides `Id`: `(API name, Salesforce type)`.
    pub fields: Vec<(String, String)>,
    /// Its external id field (one of `fields`).
    pub external_id_field: String,
}

/// One record the emulator wrote or deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct SalesforceRecord {
    /// `upsert`, `create`, `update` or `delete`.
    pub operation: String,
    /// The record's Id.
    pub id: String,
    /// Its external id value.
    pub external_id: Option<String>,
    /// The fields the request carried (without `attributes`); for a delete, the record's.
    pub fields: Map<String, Value>,
    /// Index of the request in [`SalesforceEmulator::requests`].
    pub request_index: usize,
}

#[derive(Debug, Clone)]
struct Injected {
    remaining: usize,
    status: StatusCode,
    body: Value,
}

/// Everything the emulator knows; behind one mutex.
#[derive(Debug)]
pub(super) struct Ledger {
    pub(super) options: SalesforceOptions,
    pub(super) base_url: String,
    pub(super) requests: Vec<ReceivedRequest>,
    /// The body answered to each request of `requests`.
    answers: Vec<Value>,
    pub(super) records: Vec<SalesforceRecord>,
    pub(super) tokens: BTreeSet<String>,
    pub(super) issued: u64,
    injected: VecDeque<Injected>,
    pub(super) reject_keys: BTreeSet<String>,
    /// Id → fields of the records the org holds.
    pub(super) store: BTreeMap<String, Map<String, Value>>,
    /// Ids deleted so far.
    pub(super) deleted: BTreeSet<String>,
    pub(super) next_id: u64,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Salesforce emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct SalesforceEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl SalesforceEmulator {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(options: SalesforceOptions) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            options,
            base_url: format!("http://{addr}"),
            requests: Vec::new(),
            answers: Vec::new(),
            records: Vec::new(),
            tokens: BTreeSet::new(),
            issued: 0,
            injected: VecDeque::new(),
            reject_keys: BTreeSet::new(),
            store: BTreeMap::new(),
            deleted: BTreeSet::new(),
            next_id: 1,
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "salesforce emulator stopped");
            }
        });
        Ok(SalesforceEmulator { addr, shared, task })
    }

    /// The URL of both the token endpoint's host (`login_url`) and the instance.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far (token requests included), in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.lock().requests.clone()
    }

    /// The body answered to each request of [`SalesforceEmulator::requests`], in the same
    /// order.
    pub fn answers(&self) -> Vec<Value> {
        self.lock().answers.clone()
    }

    /// Every record written or deleted, in order.
    pub fn records(&self) -> Vec<SalesforceRecord> {
        self.lock().records.clone()
    }

    /// The records the org holds: `(Id, fields)`.
    pub fn objects(&self) -> Vec<(String, Map<String, Value>)> {
        self.lock()
            .store
            .iter()
            .map(|(id, f)| (id.clone(), f.clone()))
            .collect()
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> u64 {
        self.lock().issued
    }

    /// Every token issued so far expires: the next call with one gets `INVALID_SESSION_ID`.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Refuses records with these external id values (per record).
    pub fn reject_keys(&self, values: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(values);
    }

    /// Answers the next request `403 REQUEST_LIMIT_EXCEEDED`.
    pub fn throttle_next(&self) {
        self.lock().injected.push_back(Injected {
            remaining: 1,
            status: StatusCode::FORBIDDEN,
            body: json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
        });
    }

    /// Answers the next `n` authenticated requests with `status` (`SERVER_UNAVAILABLE`).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.lock().injected.push_back(Injected {
            remaining: n,
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            body: json!([{"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}]),
        });
    }

    /// The org loses the records with these external id values (deleted on its side).
    pub fn forget(&self, values: &[String]) {
        let mut ledger = self.lock();
        let field = ledger.options.external_id_field.clone();
        let gone: Vec<String> = ledger
            .store
            .iter()
            .filter(|(_, f)| {
                f.get(&field)
                    .and_then(Value::as_str)
                    .is_some_and(|v| values.iter().any(|x| x == v))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            ledger.store.remove(&id);
            ledger.deleted.insert(id);
        }
    }

    /// Forgets every request and ledger record and ends the fault controls; the org's records
    /// and valid tokens stay.
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.requests.clear();
        ledger.answers.clear();
        ledger.records.clear();
        ledger.injected.clear();
        ledger.reject_keys.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for SalesforceEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An answer: status and JSON body.
pub(super) type Answer = (StatusCode, Value);

/// Salesforce's error list.
pub(super) fn api_error(status: StatusCode, code: &str, message: &str) -> Answer {
    (status, json!([{ "message": message, "errorCode": code }]))
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
    let (status, answer) = decide(&mut ledger, &method, &uri, &headers, &body, request_index);
    ledger.requests.push(ReceivedRequest {
        method: method.to_string(),
        path: uri.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw_body: body.to_vec(),
        received_at: SystemTime::now(),
        status: status.as_u16(),
    });
    ledger.answers.push(answer.clone());
    (status, axum::Json(answer)).into_response()
}

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    request_index: usize,
) -> Answer {
    if uri.path() == "/services/oauth2/token" && method == Method::POST {
        return salesforce_api::token(ledger, body);
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|t| ledger.tokens.contains(t)) {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        );
    }
    if let Some(injected) = ledger.injected.front_mut() {
        injected.remaining = injected.remaining.saturating_sub(1);
        let answer = (injected.status, injected.body.clone());
        if injected.remaining == 0 {
            ledger.injected.pop_front();
        }
        return answer;
    }
    salesforce_api::data(ledger, method, uri, body, request_index)
}
