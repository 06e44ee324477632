//! What the SaaS emulators (`segment`, `mixpanel`, `braze`) share: the request log, the fault
//! controls, HTTP Basic decoding and the server task.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::SystemTime;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::task::JoinHandle;

/// One request as an emulator received it, with the status it answered.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Query parameters (a repeated name keeps its last value).
    pub query: BTreeMap<String, String>,
    /// Headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, `Value::Null` when it was not JSON.
    pub body: Value,
    /// Body size in bytes.
    pub body_bytes: usize,
    /// When it arrived.
    pub received_at: SystemTime,
    /// The status answered.
    pub status: u16,
}

impl LoggedRequest {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The user name of its `Authorization: Basic` header.
    pub fn basic_user(&self) -> Option<String> {
        basic_credentials(self.header("authorization")?).map(|(user, _)| user)
    }
}

/// An emulator's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// `Retry-After` seconds, when sent.
    pub retry_after: Option<u64>,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Value,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: StatusCode, body: Value) -> Self {
        Reply {
            status,
            retry_after: None,
            headers: Vec::new(),
            body,
        }
    }

    /// As an axum response.
    pub fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// An injected failure: the next `remaining` requests get `status`.
#[derive(Debug, Clone)]
struct Injected {
    remaining: usize,
    status: StatusCode,
    retry_after: Option<u64>,
}

/// The fault controls every SaaS emulator offers.
#[derive(Debug, Default)]
pub struct Faults {
    injected: VecDeque<Injected>,
    /// Every request answers 503 until cleared.
    pub fail_everything: bool,
    /// This many requests are processed (records accepted) but answered 503: the answer is
    /// lost, as when a client times out after the server committed.
    pub lose_answers: usize,
}

impl Faults {
    /// Queues `n` answers with `status` (and `Retry-After` when given).
    pub fn fail_next(&mut self, n: usize, status: u16, retry_after: Option<u64>) {
        self.injected.push_back(Injected {
            remaining: n,
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            retry_after,
        });
    }

    /// The injected answer for this request, if any (`body` is the API's error body).
    pub fn injected(&mut self, body: impl Fn(StatusCode) -> Value) -> Option<Reply> {
        if self.fail_everything {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            return Some(Reply::json(status, body(status)));
        }
        let failure = self.injected.front_mut()?;
        failure.remaining = failure.remaining.saturating_sub(1);
        let (status, retry_after) = (failure.status, failure.retry_after);
        if failure.remaining == 0 {
            self.injected.pop_front();
        }
        let mut reply = Reply::json(status, body(status));
        reply.retry_after = retry_after;
        Some(reply)
    }

    /// Whether this processed request's answer is lost (answered 503 instead).
    pub fn take_lost_answer(&mut self) -> bool {
        if self.lose_answers > 0 {
            self.lose_answers -= 1;
            true
        } else {
            false
        }
    }

    /// Ends every fault.
    pub fn clear(&mut self) {
        *self = Faults::default();
    }
}

/// `(user, password)` of an `Authorization: Basic` header.
pub fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    basic_credentials(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// `(user, password)` of an `Authorization: Basic` header value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The bearer token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_string)
}

/// Standard base64 (with or without padding) decoded.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            acc |= value(*b)? << (18 - 6 * i);
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.push(a);
        if chunk.len() > 2 {
            out.push(b);
        }
        if chunk.len() > 3 {
            out.push(c);
        }
        if chunk.len() == 1 {
            return None;
        }
    }
    Some(out)
}

/// `%XX` escapes of a URL path segment or query value decoded (`+` is left as it is).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request's parts in the log's form (status filled in later).
pub fn log_entry(
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> LoggedRequest {
    LoggedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        body_bytes: body.len(),
        received_at: SystemTime::now(),
        status: 0,
    }
}

/// Binds `127.0.0.1:0` and serves `app` on a spawned task.
///
/// # Errors
/// When the listener cannot be bound.
pub async fn serve(
    app: Router,
    name: &'static str,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, emulator = name, "emulator stopped");
        }
    });
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_decode("d2s6").unwrap(), b"wk:");
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert!(base64_decode("*").is_none());
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("a%40b.c%2Cd"), "a@b.c,d");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
