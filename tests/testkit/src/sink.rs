//! [`HttpSink`]: a fast, counting receiver of retl's `webhook` contract, for benchmarks.
//!
//! Unlike [`WebhookEmulator`](crate::WebhookEmulator), which records every request and record
//! so tests can inspect them, the sink keeps **counters only** (requests, accepted requests,
//! throttled requests, records, body bytes, the time of the first and last accepted request),
//! so its cost and memory stay flat however many records it receives.
//!
//! # The contract it speaks
//! - Any path; `POST` with a JSON body holding a `records` array (the webhook connector's
//!   `{"action", "mapping", "run", "records": [...]}`). The records are counted, not kept: the
//!   body is parsed with a visitor that skips every value (so a malformed body is still a `400`).
//! - With a rate limit ([`SinkOptions::rate_limit`]): a token bucket of `requests` tokens,
//!   refilled at `requests` per `per` and full at start; an empty bucket answers `429` with
//!   `Retry-After` in whole seconds (at least 1), like the HubSpot-style emulators.
//! - Otherwise `200` with an empty body: every record accepted.
//! - Not `POST` → `405`; not JSON or no `records` array → `400`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use tokio::task::JoinHandle;

/// A rate limit: `requests` per `per`, as a token bucket that starts full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period (also the bucket's capacity).
    pub requests: u32,
    /// The period.
    pub per: Duration,
}

/// How a sink starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinkOptions {
    /// Answer `429` + `Retry-After` above this rate; `None` accepts everything.
    pub rate_limit: Option<RateLimit>,
}

/// Counters of a sink, read with [`HttpSink::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SinkStats {
    /// Requests received (any answer).
    pub requests: u64,
    /// Requests answered `200`.
    pub accepted_requests: u64,
    /// Requests answered `429`.
    pub throttled_requests: u64,
    /// Requests answered `400` or `405`.
    pub bad_requests: u64,
    /// Records in the accepted requests.
    pub records: u64,
    /// Body bytes of the accepted requests.
    pub bytes: u64,
    /// Seconds from the first to the last accepted request (0 with fewer than two).
    pub accepted_span_secs: f64,
}

impl SinkStats {
    /// Accepted requests per second between the first and the last accepted request:
    /// `(accepted - 1) / span`, the rate the sender achieved (0 when undefined).
    pub fn accepted_rate(&self) -> f64 {
        if self.accepted_requests < 2 || self.accepted_span_secs <= 0.0 {
            return 0.0;
        }
        (self.accepted_requests - 1) as f64 / self.accepted_span_secs
    }
}

/// A token bucket: `capacity` tokens, refilled at one per `per_token`.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    tokens: f64,
    per_token: f64,
    last: Instant,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        let requests = limit.requests.max(1);
        Bucket {
            capacity: f64::from(requests),
            tokens: f64::from(requests),
            per_token: limit.per.as_secs_f64() / f64::from(requests),
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is available.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.per_token > 0.0 {
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed / self.per_token).min(self.capacity);
        } else {
            self.tokens = self.capacity;
        }
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) * self.per_token,
            ))
        }
    }
}

/// The first and last accepted request.
#[derive(Debug, Default)]
struct Span {
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Everything the handler shares: atomic counters, and two small mutexes (the bucket, the span).
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    accepted_requests: AtomicU64,
    throttled_requests: AtomicU64,
    bad_requests: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    bucket: Mutex<Option<Bucket>>,
    span: Mutex<Span>,
}

/// Locks a mutex; a panic in another holder does not make the counters unreadable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running sink on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct HttpSink {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl HttpSink {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(options: SinkOptions) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters {
            bucket: Mutex::new(options.rate_limit.map(Bucket::new)),
            ..Counters::default()
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&counters));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "http sink stopped");
            }
        });
        Ok(HttpSink {
            addr,
            counters,
            task,
        })
    }

    /// The URL to configure as the webhook destination's `url`.
    pub fn url(&self) -> String {
        format!("http://{}/sink", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters so far.
    pub fn stats(&self) -> SinkStats {
        let c = &self.counters;
        let span = lock(&c.span);
        let accepted_span_secs = match (span.first, span.last) {
            (Some(first), Some(last)) => last.saturating_duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        SinkStats {
            requests: c.requests.load(Ordering::Relaxed),
            accepted_requests: c.accepted_requests.load(Ordering::Relaxed),
            throttled_requests: c.throttled_requests.load(Ordering::Relaxed),
            bad_requests: c.bad_requests.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            accepted_span_secs,
        }
    }

    /// Sets every counter back to zero and refills the bucket (the rate limit stays).
    pub fn reset(&self) {
        let c = &self.counters;
        for counter in [
            &c.requests,
            &c.accepted_requests,
            &c.throttled_requests,
            &c.bad_requests,
            &c.records,
            &c.bytes,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        *lock(&c.span) = Span::default();
        if let Some(bucket) = lock(&c.bucket).as_mut() {
            bucket.tokens = bucket.capacity;
            bucket.last = Instant::now();
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The part of a body the sink reads: the number of elements of `records`.
#[derive(Deserialize)]
struct Body {
    /// Counted, never kept.
    records: RecordCount,
}

/// The length of a JSON array whose elements are skipped.
struct RecordCount(u64);

impl<'de> Deserialize<'de> for RecordCount {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Counts the elements of a sequence.
        struct CountVisitor;
        impl<'de> Visitor<'de> for CountVisitor {
            type Value = RecordCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RecordCount, A::Error> {
                let mut n = 0u64;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(RecordCount(n))
            }
        }
        deserializer.deserialize_seq(CountVisitor)
    }
}

async fn handle(State(c): State<Arc<Counters>>, method: Method, body: Bytes) -> Response {
    c.requests.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let throttled = lock(&c.bucket)
        .as_mut()
        .and_then(|bucket| bucket.take(now).err());
    if let Some(wait) = throttled {
        c.throttled_requests.fetch_add(1, Ordering::Relaxed);
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return response;
    }
    if method != Method::POST {
        c.bad_requests.fetch_add(1, Ordering::Relaxed);
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Ok(parsed) = serde_json::from_slice::<Body>(&body) else {
        c.bad_requests.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::BAD_REQUEST,
            "body must be JSON with a records array",
        )
            .into_response();
    };
    c.records.fetch_add(parsed.records.0, Ordering::Relaxed);
    c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    c.accepted_requests.fetch_add(1, Ordering::Relaxed);
    {
        let mut span = lock(&c.span);
        span.first.get_or_insert(now);
        span.last = Some(now);
    }
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_records_without_keeping_them() {
        let body: Body = serde_json::from_slice(
            br#"{"action":"upsert","records":[{"key":1,"fields":{"a":[1,2]}},{"key":2}]}"#,
        )
        .unwrap();
        assert_eq!(body.records.0, 2);
        assert!(serde_json::from_slice::<Body>(br#"{"records": 3}"#).is_err());
        assert!(serde_json::from_slice::<Body>(b"not json").is_err());
    }

    #[test]
    fn bucket_throttles_above_the_rate() {
        let mut b = Bucket::new(RateLimit {
            requests: 2,
            per: Duration::from_secs(1),
        });
        let t = Instant::now();
        assert!(b.take(t).is_ok());
        assert!(b.take(t).is_ok());
        assert!(b.take(t).is_err());
        assert!(b.take(t + Duration::from_millis(600)).is_ok());
    }

    #[test]
    fn accepted_rate_is_requests_over_span() {
        let s = SinkStats {
            accepted_requests: 11,
            accepted_span_secs: 2.0,
            ..SinkStats::default()
        };
        assert!((s.accepted_rate() - 5.0).abs() < 1e-9);
    }
}
