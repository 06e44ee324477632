//! Emulator of Google's Data Manager API audience endpoints, `POST
//! /v1/audienceMembers:ingest` and `POST /v1/audienceMembers:remove`, served with the shared
//! OAuth token endpoint ([`GoogleOAuth`], `POST /token` on the same origin).
//!
//! # The contract it enforces
//! Checks run in this order; the first that fails answers the request, in Google's error JSON
//! (`{"error": {"code", "message", "status", "details": [ErrorInfo, BadRequest?,
//! RequestInfo]}}`, domain `datamanager.googleapis.com`):
//! 1. fault controls: [`GoogleDataManagerEmulator::throttle_next`] (`429 RESOURCE_EXHAUSTED`,
//!    with `Retry-After` for the suite's short waits, which Google does not document),
//!    [`GoogleDataManagerEmulator::fail_next`], [`GoogleDataManagerEmulator::fail_everything`]
//!    (`503 UNAVAILABLE`);
//! 2. the path and method: `POST` of one of the two endpoints (else `404 NOT_FOUND`);
//! 3. `Authorization: Bearer <a token the endpoint issued and that has not expired>` (else
//!    `401 UNAUTHENTICATED`, [`GoogleOAuth::check_bearer`]);
//! 4. the project quota: more than [`GoogleDataManagerEmulator::set_requests_per_minute`]
//!    requests (default 300) in the last minute → `429 RESOURCE_EXHAUSTED` with
//!    `quota_limit: IngestionMutateRequestsPerMinutePerProject`, no `Retry-After`;
//! 5. a body over [`GoogleDataManagerEmulator::set_max_body_bytes`] (default 10 MiB; Google
//!    documents no figure) → `400 INVALID_ARGUMENT` "Request payload size exceeds the limit";
//! 6. one to ten `destinations`, each with `operatingAccount` `{accountType: GOOGLE_ADS,
//!    accountId: <the emulator's account>}` (another account → `403 PERMISSION_DENIED`) and a
//!    `productDestinationId` of a known audience (else `400 INVALID_USER_LIST_ID`);
//! 7. one to [`MAX_MEMBERS`] `audienceMembers` (more → `400 TOO_MANY_AUDIENCE_MEMBERS`);
//!    ingest: `termsOfService.customerMatchTermsOfServiceStatus: ACCEPTED` (else `400
//!    TERMS_AND_CONDITIONS_NOT_SIGNED`); `encoding` `HEX` or `BASE64`;
//! 8. every member: `userData.userIdentifiers`, 1 to 10, each exactly one of `emailAddress`,
//!    `phoneNumber` (a SHA-256 digest: 64 lowercase hex digits for HEX, 32 bytes of Base64
//!    for BASE64) or `address` (`givenName` and `familyName` digests, a two-letter
//!    `regionCode`, a `postalCode`); `consent` values `CONSENT_GRANTED`/`CONSENT_DENIED`; a
//!    member holding an identifier of [`GoogleDataManagerEmulator::reject_identifiers`] is
//!    invalid. Any invalid member fails the whole request (fast-fail): `400 INVALID_ARGUMENT`
//!    with a `BadRequest` naming each `audience_members[i]…` and its reason;
//! 9. `validateOnly: true` → `200 {}`, nothing written.
//!
//! Then ingest adds each member to the audience (members sharing an identifier with one of
//! the request are replaced) and remove drops every member sharing an identifier (removing someone
//! it does not hold is no error); answer `200 {"requestId"}`.
//!
//! The ledger: every request, every accepted ingested and removed member, the members of
//! each audience.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use self::checks::{destinations, member_violations};
use super::common::{self, Faults, LoggedRequest, Reply};
use super::google_oauth::{GoogleOAuth, GoogleOAuthOptions};

mod checks;

/// Audience members per request.
pub const MAX_MEMBERS: usize = 10_000;
/// User identifiers per member.
pub const MAX_IDENTIFIERS: usize = 10;
/// The scope the token endpoint requires.
pub const SCOPE: &str = "https://www.googleapis.com/auth/datamanager";

#[derive(Debug)]
struct Ledger {
    account: String,
    audiences: BTreeMap<String, Vec<Value>>,
    requests: Vec<LoggedRequest>,
    ingested: Vec<Value>,
    removed: Vec<Value>,
    reject: BTreeSet<String>,
    throttled: Vec<u64>,
    faults: Faults,
    per_minute: usize,
    recent: Vec<Instant>,
    max_body_bytes: usize,
    next_request: u64,
}

type Shared = Arc<Mutex<Ledger>>;

#[derive(Clone)]
struct AppState {
    shared: Shared,
    oauth: GoogleOAuth,
}

/// A running emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct GoogleDataManagerEmulator {
    addr: SocketAddr,
    shared: Shared,
    oauth: GoogleOAuth,
    task: JoinHandle<()>,
}

impl GoogleDataManagerEmulator {
    /// Starts an emulator of Google Ads account `account` (ten digits) holding the empty
    /// audience `audience`, with a token endpoint for `options` (its scope set to
    /// [`SCOPE`]).
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(
        mut options: GoogleOAuthOptions,
        account: &str,
        audience: &str,
    ) -> std::io::Result<Self> {
        options.required_scope = SCOPE.to_string();
        let oauth = GoogleOAuth::new(options);
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            account: account.to_string(),
            audiences: BTreeMap::from([(audience.to_string(), Vec::new())]),
            requests: Vec::new(),
            ingested: Vec::new(),
            removed: Vec::new(),
            reject: BTreeSet::new(),
            throttled: Vec::new(),
            faults: Faults::default(),
            per_minute: 300,
            recent: Vec::new(),
            max_body_bytes: 10 * 1024 * 1024,
            next_request: 0,
        }));
        let state = AppState {
            shared: Arc::clone(&shared),
            oauth: oauth.clone(),
        };
        let app = oauth
            .router()
            .merge(Router::new().fallback(handle).with_state(state));
        let (addr, task) = common::serve(app, "google_data_manager").await?;
        Ok(GoogleDataManagerEmulator {
            addr,
            shared,
            oauth,
            task,
        })
    }

    /// The API origin, for the destination's `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token endpoint, for the destination's `token_uri`.
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.url())
    }

    /// The token endpoint's handle (token requests, expiry, faults).
    pub fn oauth(&self) -> &GoogleOAuth {
        &self.oauth
    }

    /// Every API request so far (token requests are in [`GoogleOAuth::token_requests`]).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every accepted ingested member (`validateOnly` excluded), duplicates kept.
    pub fn ingested(&self) -> Vec<Value> {
        self.lock().ingested.clone()
    }

    /// Every accepted removed member, duplicates kept.
    pub fn removed(&self) -> Vec<Value> {
        self.lock().removed.clone()
    }

    /// The members of `audience`.
    pub fn members(&self, audience: &str) -> Vec<Value> {
        self.lock()
            .audiences
            .get(audience)
            .cloned()
            .unwrap_or_default()
    }

    /// A member with one of these identifier values (digests as sent) is invalid.
    pub fn reject_identifiers(&self, values: impl IntoIterator<Item = String>) {
        self.lock().reject.extend(values);
    }

    /// Answers the next `n` requests `429 RESOURCE_EXHAUSTED` with `Retry-After: seconds`.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock()
            .throttled
            .extend(std::iter::repeat_n(seconds, n));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`GoogleDataManagerEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// The project's per-minute request quota (default 300).
    pub fn set_requests_per_minute(&self, n: usize) {
        self.lock().per_minute = n;
    }

    /// The largest body accepted (default 10 MiB).
    pub fn set_max_body_bytes(&self, n: usize) {
        self.lock().max_body_bytes = n;
    }

    /// `audience` loses its members holding one of these identifier values.
    pub fn forget(&self, audience: &str, values: &[String]) {
        if let Some(members) = self.lock().audiences.get_mut(audience) {
            members.retain(|m| !identifier_values(m).iter().any(|v| values.contains(v)));
        }
    }

    /// Ends faults and rejections; forgets requests, ingests and removals (not members).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.throttled.clear();
        ledger.reject.clear();
        ledger.requests.clear();
        ledger.ingested.clear();
        ledger.removed.clear();
        ledger.recent.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for GoogleDataManagerEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every identifier value of a member: digests, and an address as `given|family|region|postal`.
pub fn identifier_values(member: &Value) -> Vec<String> {
    member
        .pointer("/userData/userIdentifiers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|id| {
            if let Some(v) = id.get("emailAddress").or_else(|| id.get("phoneNumber")) {
                return v.as_str().map(str::to_string);
            }
            let a = id.get("address")?;
            let part = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            Some(
                ["givenName", "familyName", "regionCode", "postalCode"]
                    .map(part)
                    .join("|"),
            )
        })
        .collect()
}

/// A Google error answer: `google.rpc.Status` with `ErrorInfo`, the field violations as a
/// `BadRequest` (when any) and `RequestInfo`.
fn google_error(
    status: StatusCode,
    message: &str,
    reason: &str,
    violations: Vec<Value>,
    metadata: Value,
) -> Reply {
    let name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let mut details = vec![json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "datamanager.googleapis.com",
        "metadata": metadata,
    })];
    if !violations.is_empty() {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": violations,
        }));
    }
    details.push(json!({
        "@type": "type.googleapis.com/google.rpc.RequestInfo",
        "requestId": "emulated-error-request",
    }));
    Reply::json(
        status,
        json!({"error": {"code": status.as_u16(), "message": message, "status": name, "details": details}}),
    )
}

fn bad(message: &str, reason: &str, field: &str) -> Reply {
    let violation = json!({"field": field, "description": message, "reason": reason});
    google_error(
        StatusCode::BAD_REQUEST,
        message,
        reason,
        vec![violation],
        json!({}),
    )
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut ledger = lock(&state.shared);
    let mut entry = common::log_entry(&method, &uri, &headers, &body);
    let reply = decide(
        &mut ledger,
        &state.oauth,
        &method,
        &entry,
        &headers,
        body.len(),
    );
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    reply.into_response()
}

fn decide(
    ledger: &mut Ledger,
    oauth: &GoogleOAuth,
    method: &Method,
    request: &LoggedRequest,
    headers: &HeaderMap,
    body_bytes: usize,
) -> Reply {
    if !ledger.throttled.is_empty() {
        let seconds = ledger.throttled.remove(0);
        let mut reply = google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Quota exceeded for quota metric 'Ingestion mutate requests' and limit 'Ingestion mutate requests per minute per project'.",
            "RATE_LIMIT_EXCEEDED",
            Vec::new(),
            json!({"quota_limit": "IngestionMutateRequestsPerMinutePerProject"}),
        );
        reply.retry_after = Some(seconds);
        return reply;
    }
    if let Some(reply) = ledger.faults.injected(|status| {
        let status_name = if status.as_u16() == 503 { "UNAVAILABLE" } else { "INTERNAL" };
        json!({"error": {"code": status.as_u16(), "message": format!("injected {status}"), "status": status_name}})
    }) {
        return reply;
    }
    let remove = match (method, request.path.as_str()) {
        (&Method::POST, "/v1/audienceMembers:ingest") => false,
        (&Method::POST, "/v1/audienceMembers:remove") => true,
        _ => {
            return google_error(
                StatusCode::NOT_FOUND,
                &format!("Method not found: {method} {}", request.path),
                "NOT_FOUND",
                Vec::new(),
                json!({}),
            );
        }
    };
    if let Err(reply) = oauth.check_bearer(headers) {
        return reply;
    }
    let now = Instant::now();
    ledger
        .recent
        .retain(|t| now.duration_since(*t) < Duration::from_secs(60));
    if ledger.recent.len() >= ledger.per_minute {
        return google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Quota exceeded for quota metric 'Ingestion mutate requests' and limit 'Ingestion mutate requests per minute per project'.",
            "RATE_LIMIT_EXCEEDED",
            Vec::new(),
            json!({"quota_limit": "IngestionMutateRequestsPerMinutePerProject"}),
        );
    }
    ledger.recent.push(now);
    if body_bytes > ledger.max_body_bytes {
        return google_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Request payload size exceeds the limit: {} bytes.",
                ledger.max_body_bytes
            ),
            "INVALID_ARGUMENT",
            Vec::new(),
            json!({}),
        );
    }
    let body = &request.body;
    if !body.is_object() {
        return bad("Invalid JSON payload received.", "INVALID_ARGUMENT", "");
    }
    let audiences = match destinations(ledger, body) {
        Ok(audiences) => audiences,
        Err(reply) => return reply,
    };
    let members = body
        .get("audienceMembers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if members.is_empty() {
        return bad(
            "audience_members is required.",
            "REQUIRED_FIELD_MISSING",
            "audience_members",
        );
    }
    if members.len() > MAX_MEMBERS {
        return bad(
            "Maximum number of audience members allowed per request is 10,000.",
            "TOO_MANY_AUDIENCE_MEMBERS",
            "audience_members",
        );
    }
    if !remove
        && body.pointer("/termsOfService/customerMatchTermsOfServiceStatus")
            != Some(&json!("ACCEPTED"))
    {
        return bad(
            "Required terms and conditions are not accepted.",
            "TERMS_AND_CONDITIONS_NOT_SIGNED",
            "terms_of_service.customer_match_terms_of_service_status",
        );
    }
    let base64 = match body.get("encoding").and_then(Value::as_str) {
        Some("HEX") => false,
        Some("BASE64") => true,
        _ => {
            return bad(
                "encoding is required for UserData uploads: HEX or BASE64.",
                "REQUIRED_FIELD_MISSING",
                "encoding",
            );
        }
    };
    let violations: Vec<Value> = members
        .iter()
        .enumerate()
        .flat_map(|(i, m)| member_violations(i, m, base64, &ledger.reject))
        .collect();
    if !violations.is_empty() {
        let message = "Request contains an invalid argument.";
        return google_error(
            StatusCode::BAD_REQUEST,
            message,
            "INVALID_ARGUMENT",
            violations,
            json!({}),
        );
    }
    if body.get("validateOnly") == Some(&json!(true)) {
        return Reply::json(StatusCode::OK, json!({}));
    }
    let ids: BTreeSet<String> = members.iter().flat_map(identifier_values).collect();
    for audience in audiences {
        let held = ledger.audiences.entry(audience).or_default();
        held.retain(|m| !identifier_values(m).iter().any(|v| ids.contains(v)));
        if !remove {
            held.extend(members.iter().cloned());
        }
    }
    if remove {
        ledger.removed.extend(members);
    } else {
        ledger.ingested.extend(members);
    }
    ledger.next_request += 1;
    Reply::json(
        StatusCode::OK,
        json!({"requestId": format!("emulated-{:08}", ledger.next_request)}),
    )
}

/// Lowercase hex SHA-256 of `text` (to build expected members in tests).
pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}
