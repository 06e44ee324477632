//! Emulator of Intercom's REST API contacts endpoints (API version 2.13).
//!
//! # The contract it enforces
//! - `Authorization: Bearer <access token>`; a missing or unknown token is answered `401`
//!   `{"type": "error.list", "request_id", "errors": [{"code": "unauthorized", "message":
//!   "Access Token Invalid"}]}`.
//! - Rate limit: calls are counted in 10-second windows (Intercom distributes its 10,000 calls
//!   per minute per app into 10-s windows: 1,666 per window by default,
//!   [`IntercomEmulator::set_window_limit`]); every answer carries `X-RateLimit-Limit`,
//!   `X-RateLimit-Remaining` and `X-RateLimit-Reset` (UNIX seconds of the window's end); a
//!   call over the limit is answered `429` `rate_limit_exceeded` with those headers and no
//!   `Retry-After`, as Intercom documents.
//! - `GET /me`: the admin of the token.
//! - `POST /contacts`: one contact; `role` `user` (default) or `lead`; a user needs an
//!   `external_id` or an `email`; only the documented attributes (`role`, `external_id`,
//!   `email`, `phone`, `name`, `avatar`, `signed_up_at`, `last_seen_at`, `owner_id`,
//!   `unsubscribed_from_emails`, `custom_attributes`) are taken, else `400
//!   parameter_invalid`; times must be UNIX seconds (integers); `custom_attributes` an object
//!   of scalars. A contact whose `external_id` another contact has (archived or not) is `409
//!   conflict` "A contact matching those details already exists with id=…". Answers the
//!   contact (`{"type": "contact", "id", ...}`).
//! - `GET /contacts/find_by_external_id/{external_id}`: the user contact with that id (archived
//!   contacts are not found: the emulator's choice), else `404 not_found` "User Not Found".
//! - `PUT /contacts/{id}`: updates the attributes given (custom attributes merged); unknown id
//!   → `404 not_found`; the same checks as a create.
//! - `POST /contacts/{id}/archive`: `{"id", "external_id", "type": "contact", "archived":
//!   true}`; unknown id → `404`.
//! - A write whose `external_id` is in [`IntercomEmulator::reject_keys`] is `400
//!   parameter_invalid`.
//! - Fault controls first: [`IntercomEmulator::throttle_next`] (a `429` whose window resets
//!   `seconds` from now), `fail_next`, `fail_everything` (`503`), `lose_answers`.
//!
//! The ledger: every request ([`IntercomEmulator::requests`]), every accepted write
//! ([`IntercomEmulator::writes`]: create, update, archive, duplicates kept) and the contacts
//! ([`IntercomEmulator::contact`]).

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

use self::contacts::{archive, create, update};
use super::common::{self, Faults, LoggedRequest, Reply};

mod contacts;

/// Calls per 10-second window per app (10,000 per minute).
pub const CALLS_PER_WINDOW: u32 = 1_666;

/// The length of a rate-limit window.
const WINDOW: Duration = Duration::from_secs(10);

/// The attributes `POST /contacts` and `PUT /contacts/{id}` take.
const ATTRIBUTES: [&str; 11] = [
    "role",
    "external_id",
    "email",
    "phone",
    "name",
    "avatar",
    "signed_up_at",
    "last_seen_at",
    "owner_id",
    "unsubscribed_from_emails",
    "custom_attributes",
];

/// One contact the emulator holds.
#[derive(Debug, Clone, PartialEq)]
pub struct IntercomContact {
    /// Intercom's id.
    pub id: String,
    /// `user` or `lead`.
    pub role: String,
    /// The `external_id`, if any.
    pub external_id: Option<String>,
    /// The standard attributes (neither `role` nor `external_id`).
    pub attributes: Map<String, Value>,
    /// The custom attributes.
    pub custom_attributes: Map<String, Value>,
    /// Whether it is archived.
    pub archived: bool,
}

impl IntercomContact {
    fn to_json(&self) -> Value {
        let mut body = self.attributes.clone();
        body.insert("type".into(), json!("contact"));
        body.insert("id".into(), json!(self.id));
        body.insert("role".into(), json!(self.role));
        body.insert("external_id".into(), json!(self.external_id));
        body.insert(
            "custom_attributes".into(),
            Value::Object(self.custom_attributes.clone()),
        );
        Value::Object(body)
    }
}

/// One write the emulator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct IntercomWrite {
    /// `create`, `update` or `archive`.
    pub operation: &'static str,
    /// The contact's Intercom id.
    pub id: String,
    /// The contact's `external_id` after the write.
    pub external_id: Option<String>,
    /// The request body (`Null` for an archive).
    pub body: Value,
}

#[derive(Debug)]
struct Ledger {
    access_token: String,
    requests: Vec<LoggedRequest>,
    writes: Vec<IntercomWrite>,
    contacts: BTreeMap<String, IntercomContact>,
    /// Every id ever assigned → its external id (kept after `forget`).
    external_ids: BTreeMap<String, Option<String>>,
    next_id: u64,
    reject_keys: BTreeSet<String>,
    throttled: Vec<u64>,
    faults: Faults,
    window_limit: u32,
    window_start: SystemTime,
    window_calls: u32,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Intercom emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct IntercomEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl IntercomEmulator {
    /// Starts an emulator accepting this access token.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(access_token: &str) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            access_token: access_token.to_string(),
            requests: Vec::new(),
            writes: Vec::new(),
            contacts: BTreeMap::new(),
            external_ids: BTreeMap::new(),
            next_id: 1,
            reject_keys: BTreeSet::new(),
            throttled: Vec::new(),
            faults: Faults::default(),
            window_limit: CALLS_PER_WINDOW,
            window_start: SystemTime::now(),
            window_calls: 0,
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "intercom").await?;
        Ok(IntercomEmulator { addr, shared, task })
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
    pub fn writes(&self) -> Vec<IntercomWrite> {
        self.lock().writes.clone()
    }

    /// The contact (archived or not) with this `external_id`.
    pub fn contact(&self, external_id: &str) -> Option<IntercomContact> {
        self.lock()
            .contacts
            .values()
            .find(|c| c.external_id.as_deref() == Some(external_id))
            .cloned()
    }

    /// Every contact held, archived or not.
    pub fn contacts(&self) -> Vec<IntercomContact> {
        self.lock().contacts.values().cloned().collect()
    }

    /// The `external_id` the contact with Intercom id `id` had (also after [`Self::forget`]).
    pub fn external_id_of(&self, id: &str) -> Option<String> {
        self.lock().external_ids.get(id).cloned().flatten()
    }

    /// Adds a contact as if created in Intercom (not a write of the ledger); returns its id.
    pub fn insert(&self, role: &str, external_id: Option<&str>, attributes: Value) -> String {
        let mut ledger = self.lock();
        let id = ledger.assign_id(external_id.map(str::to_string));
        let contact = IntercomContact {
            id: id.clone(),
            role: role.to_string(),
            external_id: external_id.map(str::to_string),
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            custom_attributes: Map::new(),
            archived: false,
        };
        ledger.contacts.insert(id.clone(), contact);
        id
    }

    /// Answers writes of contacts with these external ids `400 parameter_invalid`.
    pub fn reject_keys(&self, external_ids: impl IntoIterator<Item = String>) {
        self.lock().reject_keys.extend(external_ids);
    }

    /// Calls allowed per 10-second window.
    pub fn set_window_limit(&self, calls: u32) {
        self.lock().window_limit = calls;
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

    /// Answers every request `503` until [`IntercomEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Processes the next `n` requests but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Intercom loses the contacts with these external ids (deleted on its side).
    pub fn forget(&self, external_ids: impl IntoIterator<Item = String>) {
        let mut ledger = self.lock();
        for id in external_ids {
            ledger
                .contacts
                .retain(|_, c| c.external_id.as_deref() != Some(id.as_str()));
        }
    }

    /// Ends faults and rejections; forgets requests and writes (not contacts).
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

impl Drop for IntercomEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An `error.list` answer.
fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"type": "error.list", "request_id": "emulated-request",
               "errors": [{"code": code, "message": message}]}),
    )
}

fn epoch_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Ledger {
    fn assign_id(&mut self, external_id: Option<String>) -> String {
        let id = format!("{:024x}", 0x6500_0000_0000_u64 + self.next_id);
        self.next_id += 1;
        self.external_ids.insert(id.clone(), external_id);
        id
    }

    /// Counts this call in the current window; `Err` when over the limit. Returns the
    /// rate-limit headers either way.
    fn count_call(&mut self) -> (Vec<(&'static str, String)>, bool) {
        let now = SystemTime::now();
        if now.duration_since(self.window_start).unwrap_or_default() >= WINDOW {
            self.window_start = now;
            self.window_calls = 0;
        }
        let over = self.window_calls >= self.window_limit;
        if !over {
            self.window_calls += 1;
        }
        let reset = epoch_secs(self.window_start + WINDOW);
        let headers = vec![
            ("x-ratelimit-limit", self.window_limit.to_string()),
            (
                "x-ratelimit-remaining",
                (self.window_limit - self.window_calls.min(self.window_limit)).to_string(),
            ),
            ("x-ratelimit-reset", reset.to_string()),
        ];
        (headers, over)
    }
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
    let reply = decide(&mut ledger, &method, uri.path(), &headers, &body);
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    reply.into_response()
}

fn throttled(headers: Vec<(&'static str, String)>) -> Reply {
    let mut reply = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        "Rate Limit Exceeded",
    );
    reply.headers = headers;
    reply
}

fn decide(
    ledger: &mut Ledger,
    method: &Method,
    path: &str,
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
        return throttled(vec![
            ("x-ratelimit-limit", ledger.window_limit.to_string()),
            ("x-ratelimit-remaining", "0".to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ]);
    }
    if let Some(reply) = ledger.faults.injected(|status| {
        json!({"type": "error.list", "errors": [{"code": "server_error", "message": format!("injected {status}")}]})
    }) {
        return reply;
    }
    if common::bearer(headers).as_deref() != Some(ledger.access_token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Access Token Invalid",
        );
    }
    let (rate_headers, over) = ledger.count_call();
    if over {
        return throttled(rate_headers);
    }
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(common::percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let parsed = || match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "The request body must be a JSON object",
        )),
    };
    let mut reply = match (method, segments.as_slice()) {
        (&Method::GET, ["me"]) => Reply::json(
            StatusCode::OK,
            json!({"type": "admin", "id": "991", "email": "admin@example.com",
                   "name": "Emulated Admin",
                   "app": {"type": "app", "id_code": "emu123", "name": "Emulated Workspace"}}),
        ),
        (&Method::POST, ["contacts"]) => match parsed() {
            Ok(map) => create(ledger, &map),
            Err(reply) => reply,
        },
        (&Method::GET, ["contacts", "find_by_external_id", external_id]) => ledger
            .contacts
            .values()
            .find(|c| {
                !c.archived && c.role == "user" && c.external_id.as_deref() == Some(*external_id)
            })
            .map_or_else(
                || error(StatusCode::NOT_FOUND, "not_found", "User Not Found"),
                |c| Reply::json(StatusCode::OK, c.to_json()),
            ),
        (&Method::PUT, ["contacts", id]) => match parsed() {
            Ok(map) => update(ledger, id, &map),
            Err(reply) => reply,
        },
        (&Method::POST, ["contacts", id, "archive"]) => archive(ledger, id),
        _ => error(StatusCode::NOT_FOUND, "not_found", "Resource Not Found"),
    };
    if reply.status.is_success() && ledger.faults.take_lost_answer() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "answer lost",
        );
    }
    reply.headers.extend(rate_headers);
    reply
}
