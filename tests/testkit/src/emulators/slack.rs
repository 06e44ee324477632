//! Emulator of a Slack incoming webhook (`POST /services/<T>/<B>/<token>`).
//!
//! # The contract it enforces
//! (<https://api.slack.com/messaging/webhooks#handling_errors>; Slack answers in plain text)
//! - a path that is not `/services/<team>/<app>/<token>` of the webhook it serves:
//!   `404 no_service`; the right team and app with another token: `403 invalid_token`; a
//!   method other than `POST`: `405 invalid_method`;
//! - a body that is not a JSON object, or a `Content-Type` other than `application/json`:
//!   `400 invalid_payload`;
//! - no `text` and no `blocks`: `400 no_text`; `blocks` not an array of objects with a
//!   `type`, or more than 50 of them: `400 invalid_blocks`;
//! - [`SlackEmulator::reject_texts`]: a message whose text contains one of these strings is
//!   `400 invalid_payload`;
//! - [`SlackEmulator::archive_channel`]: `410 channel_is_archived`;
//! - [`SlackEmulator::enforce_rate`]: Slack's "1 per second, short bursts allowed", a bucket
//!   of `burst` messages refilled at one per second; over it `429 rate_limited` with
//!   `Retry-After: 1`;
//! - otherwise `200 ok`, the message appended to the ledger ([`SlackEmulator::messages`]).
//!
//! Fault controls come first: `throttle_next` (`429` + `Retry-After`), `fail_next`,
//! `fail_everything` (`503`), `lose_answers` (posted, answered `503`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::common::{self, Faults, LoggedRequest};

/// Slack's documented maximum of blocks in one message.
pub const MAX_BLOCKS: usize = 50;

/// The incoming webhook an emulator serves: `/services/<team>/<app>/<token>`.
#[derive(Debug, Clone)]
pub struct SlackWebhook {
    /// Workspace id (`T...`).
    pub team: String,
    /// App/webhook id (`B...`).
    pub app: String,
    /// The secret token.
    pub token: String,
}

/// One posted message.
#[derive(Debug, Clone, PartialEq)]
pub struct PostedMessage {
    /// `text`, empty when absent.
    pub text: String,
    /// The whole body as received.
    pub body: Value,
    /// Index of the request that carried it.
    pub request_index: usize,
}

#[derive(Debug)]
struct Ledger {
    webhook: SlackWebhook,
    requests: Vec<LoggedRequest>,
    messages: Vec<PostedMessage>,
    reject_texts: BTreeSet<String>,
    archived: bool,
    rate: Option<Bucket>,
    faults: Faults,
}

/// A token bucket: `burst` messages, one more per second.
#[derive(Debug)]
struct Bucket {
    burst: f64,
    tokens: f64,
    at: Instant,
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Slack webhook emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct SlackEmulator {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl SlackEmulator {
    /// Starts an emulator serving `webhook`.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(webhook: SlackWebhook) -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            webhook,
            requests: Vec::new(),
            messages: Vec::new(),
            reject_texts: BTreeSet::new(),
            archived: false,
            rate: None,
            faults: Faults::default(),
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (addr, task) = common::serve(app, "slack").await?;
        Ok(SlackEmulator { addr, shared, task })
    }

    /// The webhook URL, for the destination's `webhook_url`.
    pub fn url(&self) -> String {
        let w = self.lock().webhook.clone();
        self.url_with_token(&w.token)
    }

    /// The URL of the same webhook with another token (refused `403 invalid_token`).
    pub fn url_with_token(&self, token: &str) -> String {
        let ledger = self.lock();
        format!(
            "http://{}/services/{}/{}/{token}",
            self.addr, ledger.webhook.team, ledger.webhook.app
        )
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Every posted message, duplicates kept.
    pub fn messages(&self) -> Vec<PostedMessage> {
        self.lock().messages.clone()
    }

    /// Refuses (`400 invalid_payload`) messages whose text contains one of these strings.
    pub fn reject_texts(&self, parts: impl IntoIterator<Item = String>) {
        self.lock().reject_texts.extend(parts);
    }

    /// The channel is archived: every post is `410 channel_is_archived`.
    pub fn archive_channel(&self) {
        self.lock().archived = true;
    }

    /// Enforces Slack's rate: `burst` messages at once, then one per second.
    pub fn enforce_rate(&self, burst: u32) {
        self.lock().rate = Some(Bucket {
            burst: f64::from(burst),
            tokens: f64::from(burst),
            at: Instant::now(),
        });
    }

    /// Answers the next `n` requests `429 rate_limited` with `Retry-After: seconds`.
    pub fn throttle_next(&self, n: usize, seconds: u64) {
        self.lock().faults.fail_next(n, 429, Some(seconds));
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Answers every request `503` until [`SlackEmulator::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Posts the next `n` messages but answers them `503`.
    pub fn lose_answers(&self, n: usize) {
        self.lock().faults.lose_answers = n;
    }

    /// Ends the faults, rejections, archiving and rate; forgets requests and messages.
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.reject_texts.clear();
        ledger.archived = false;
        ledger.rate = None;
        ledger.requests.clear();
        ledger.messages.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for SlackEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A plain-text answer, as Slack's webhooks give.
struct Answer {
    status: StatusCode,
    text: &'static str,
    retry_after: Option<u64>,
}

fn answer(status: StatusCode, text: &'static str) -> Answer {
    Answer {
        status,
        text,
        retry_after: None,
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
    let reply = reply(&mut ledger, &method, &uri, &headers, &body);
    let reply = if reply.status.is_success() && ledger.faults.take_lost_answer() {
        answer(StatusCode::SERVICE_UNAVAILABLE, "answer lost")
    } else {
        reply
    };
    entry.status = reply.status.as_u16();
    ledger.requests.push(entry);
    let mut response = (reply.status, reply.text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    if let Some(secs) = reply.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn reply(
    ledger: &mut Ledger,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    if let Some(injected) = ledger.faults.injected(|_| Value::Null) {
        let text = if injected.status == StatusCode::TOO_MANY_REQUESTS {
            "rate_limited"
        } else {
            "rollup_error"
        };
        return Answer {
            status: injected.status,
            text,
            retry_after: injected.retry_after,
        };
    }
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let w = &ledger.webhook;
    match segments.as_slice() {
        ["services", team, app, token] if *team == w.team && *app == w.app => {
            if *token != w.token {
                return answer(StatusCode::FORBIDDEN, "invalid_token");
            }
        }
        _ => return answer(StatusCode::NOT_FOUND, "no_service"),
    }
    if method != Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "invalid_method");
    }
    if ledger.archived {
        return answer(StatusCode::GONE, "channel_is_archived");
    }
    if let Some(bucket) = &mut ledger.rate {
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + refill).min(bucket.burst);
        bucket.at = now;
        // 50 ms of tolerance: a client pacing itself at exactly one per second is within the rate.
        if bucket.tokens < 0.95 {
            return Answer {
                status: StatusCode::TOO_MANY_REQUESTS,
                text: "rate_limited",
                retry_after: Some(1),
            };
        }
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(body) else {
        return answer(StatusCode::BAD_REQUEST, "invalid_payload");
    };
    if !json {
        return answer(StatusCode::BAD_REQUEST, "invalid_payload");
    }
    let text = match message.get("text") {
        None | Some(Value::Null) => "",
        Some(Value::String(text)) => text.as_str(),
        Some(_) => return answer(StatusCode::BAD_REQUEST, "invalid_payload"),
    };
    let blocks = match message.get("blocks") {
        None | Some(Value::Null) => None,
        Some(Value::Array(blocks))
            if blocks.len() <= MAX_BLOCKS
                && blocks
                    .iter()
                    .all(|b| b.get("type").and_then(Value::as_str).is_some()) =>
        {
            Some(blocks)
        }
        Some(_) => return answer(StatusCode::BAD_REQUEST, "invalid_blocks"),
    };
    if text.is_empty() && blocks.is_none_or(Vec::is_empty) {
        return answer(StatusCode::BAD_REQUEST, "no_text");
    }
    if ledger.reject_texts.iter().any(|part| text.contains(part)) {
        return answer(StatusCode::BAD_REQUEST, "invalid_payload");
    }
    let posted = PostedMessage {
        text: text.to_string(),
        body: Value::Object(message.clone()),
        request_index: ledger.requests.len(),
    };
    ledger.messages.push(posted);
    answer(StatusCode::OK, "ok")
}
