//! HTTP pieces every HTTP destination shares: the client builder, [`exchange`] (one request,
//! its whole answer, recorded when the delivery is traced for a test record), the
//! classification of an answer into a [`DestinationError`], and `Retry-After` parsing.
//!
//! # Classification (one request = one batch)
//! | answer | result |
//! |---|---|
//! | 2xx | the connector parses the body into a `BatchOutcome` |
//! | 408, 425, 429, 5xx | [`DestinationError::Transient`] with `Retry-After`; `throttled` for 429 |
//! | timeout, connection refused/reset, body cut short | [`DestinationError::Transient`] |
//! | 401, 403 | [`DestinationError::Authentication`] |
//! | 413 | [`DestinationError::PayloadTooLarge`]: the engine splits the batch and sends the halves |
//! | 3xx (redirects are not followed: a redirected `POST` would be re-sent as `GET`) | [`DestinationError::Rejected`] naming the `Location` |
//! | other 4xx | [`DestinationError::Rejected`] with the (truncated) response body |
//!
//! Messages never contain the request URL: webhook URLs often embed a token.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use retl_engine::destination::{DeliveryContext, DestinationError, Exchange};

/// How much of a response body is quoted in an error message.
pub(crate) const MAX_QUOTED_BODY: usize = 512;

/// The longest connect phase, whatever the request timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the client a destination keeps for its lifetime (connection pooling).
///
/// `timeout` bounds a whole request (the engine applies the same bound around `send`); redirects
/// are not followed.
///
/// # Errors
/// [`DestinationError::Internal`] when the TLS backend cannot be initialised.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, DestinationError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("retl/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DestinationError::Internal {
            message: format!("could not build the HTTP client: {}", error_chain(&e)),
        })
}

/// `base` (config field `field`) parsed as an http(s) URL without query, with `path` appended
/// to its path; e.g. `https://api.segment.io` + `/v1/batch`.
///
/// # Errors
/// [`DestinationError::InvalidConfig`] naming `field`.
pub(crate) fn join_url(
    field: &str,
    base: &str,
    path: &str,
) -> Result<reqwest::Url, DestinationError> {
    let invalid = |message: String| DestinationError::InvalidConfig {
        field: field.to_string(),
        message,
    };
    let url = reqwest::Url::parse(base).map_err(|e| {
        invalid(format!(
            "not a valid URL ({e}); expected e.g. https://api.example.com"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "must be an http or https URL with a host".to_string(),
        ));
    }
    if url.query().is_some() {
        return Err(invalid("must not have a query string".to_string()));
    }
    let joined = format!("{}{path}", url.as_str().trim_end_matches('/'));
    reqwest::Url::parse(&joined).map_err(|e| invalid(format!("cannot append {path}: {e}")))
}

/// Whether an answer says its body is JSON (`application/json` or `+json`): the receiver's own
/// answer rather than a web server's error page.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"))
}

/// Whether a retry of the same request may succeed after this status.
pub(crate) fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429) || status.is_server_error()
}

/// Classifies a non-2xx answer. `body` is the response body (it is truncated here).
pub(crate) fn classify_status(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> DestinationError {
    let quoted = quote_body(body);
    if is_transient(status) {
        return DestinationError::Transient {
            message: format!("HTTP {status}{quoted}"),
            retry_after: retry_after(headers, SystemTime::now()),
            throttled: status == StatusCode::TOO_MANY_REQUESTS,
        };
    }
    match status.as_u16() {
        413 => DestinationError::PayloadTooLarge {
            message: format!(
                "HTTP {status}{quoted}; lower the destination's limits.batch_size or limits.max_batch_bytes to avoid the split"
            ),
        },
        401 | 403 => DestinationError::Authentication {
            message: format!(
                "HTTP {status}{quoted}; check the credentials in the destination's config"
            ),
        },
        300..=399 => {
            let location = headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(no Location header)");
            DestinationError::Rejected {
                message: format!(
                    "HTTP {status}: the endpoint redirects to {location}; configure the final URL"
                ),
            }
        }
        _ => DestinationError::Rejected {
            message: format!("HTTP {status}{quoted}"),
        },
    }
}

/// A whole HTTP answer: status, headers and body bytes.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The status.
    pub(crate) status: StatusCode,
    /// The headers.
    pub(crate) headers: HeaderMap,
    /// The body.
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The error a non-2xx answer means ([`classify_status`]).
    pub(crate) fn error(&self) -> DestinationError {
        classify_status(
            self.status,
            &self.headers,
            &String::from_utf8_lossy(&self.body),
        )
    }
}

/// Sends `request` and reads its whole answer. When `ctx` is traced (a test record), records
/// the method, the URL without its query (which may carry a key), the body sent, and the
/// answer or the transport error; headers are never recorded (they carry credentials).
///
/// # Errors
/// A request that got no readable answer ([`classify_send_error`]); the status is not judged.
pub(crate) async fn exchange(
    client: &reqwest::Client,
    request: reqwest::Request,
    ctx: &DeliveryContext,
) -> Result<Answer, DestinationError> {
    exchange_redacted(client, request, ctx, |_| {}).await
}

/// Sends `request` outside a delivery (a `TestDestination` call, a field listing) and reads
/// its whole answer; nothing is recorded.
///
/// # Errors
/// A request that got no readable answer ([`classify_send_error`]); the status is not judged.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    request: reqwest::Request,
) -> Result<Answer, DestinationError> {
    let response = client.execute(request).await.map_err(classify_send_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(classify_send_error)?
        .to_vec();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// [`exchange`] for an API that takes a credential in the body (e.g. Mixpanel's `$token`):
/// `redact` replaces it in the recorded copy of the body with `"<redacted>"`; the request
/// itself is sent unchanged.
///
/// # Errors
/// As [`exchange`].
pub(crate) async fn exchange_redacted(
    client: &reqwest::Client,
    request: reqwest::Request,
    ctx: &DeliveryContext,
    redact: impl FnOnce(&mut serde_json::Value),
) -> Result<Answer, DestinationError> {
    exchange_described(client, request, ctx, redact, None).await
}

/// [`exchange`] for a request whose URL is itself a credential (e.g. a Slack incoming webhook
/// URL): the recorded exchange shows `shown_url` instead of the URL.
///
/// # Errors
/// As [`exchange`].
pub(crate) async fn exchange_secret_url(
    client: &reqwest::Client,
    request: reqwest::Request,
    ctx: &DeliveryContext,
    shown_url: &str,
) -> Result<Answer, DestinationError> {
    exchange_described(client, request, ctx, |_| {}, Some(shown_url)).await
}

/// [`exchange_redacted`], the recorded URL replaced by `shown_url` when given.
async fn exchange_described(
    client: &reqwest::Client,
    request: reqwest::Request,
    ctx: &DeliveryContext,
    redact: impl FnOnce(&mut serde_json::Value),
    shown_url: Option<&str>,
) -> Result<Answer, DestinationError> {
    let described = ctx.trace.as_ref().map(|_| {
        let mut url = request.url().clone();
        url.set_query(None);
        let url = shown_url.map_or_else(|| url.to_string(), str::to_string);
        let mut body = request
            .body()
            .and_then(|b| b.as_bytes())
            .map_or(serde_json::Value::Null, Exchange::body_value);
        redact(&mut body);
        (format!("{} {url}", request.method()), body)
    });
    let result: Result<Answer, DestinationError> = async {
        let response = client.execute(request).await.map_err(classify_send_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(classify_send_error)?
            .to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
    .await;
    if let Some((request, request_body)) = described {
        ctx.record(|| match &result {
            Ok(answer) => Exchange {
                request,
                request_body,
                status: Some(answer.status.as_u16()),
                response_body: Exchange::body_value(&answer.body),
            },
            Err(error) => Exchange {
                request,
                request_body,
                status: None,
                response_body: serde_json::Value::String(error.to_string()),
            },
        });
    }
    result
}

/// Classifies a request that got no answer (or whose answer could not be read).
pub(crate) fn classify_send_error(error: reqwest::Error) -> DestinationError {
    // Host and port only: the path or query may carry a token.
    let target = error
        .url()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| "the destination".to_string());
    let error = error.without_url();
    let detail = error_chain(&error);
    if error.is_builder() {
        // An invalid header value or URL: the same request would fail again.
        return DestinationError::Rejected {
            message: format!("the request could not be built: {detail}"),
        };
    }
    let message = if error.is_timeout() {
        format!("the request to {target} timed out: {detail}")
    } else if error.is_connect() {
        format!("could not connect to {target}: {detail}")
    } else {
        format!("the request to {target} failed: {detail}")
    };
    DestinationError::Transient {
        message,
        retry_after: None,
        throttled: false,
    }
}

/// The `Retry-After` header as a delay from `now`, if present and valid.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
}

/// The wait until `X-RateLimit-Reset` (UTC epoch seconds), if the header is there: the reset
/// time Braze and Intercom send with a 429 instead of (or beside) `Retry-After`.
pub(crate) fn rate_limit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let reset: u64 = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let reset = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
    Some(reset.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses a `Retry-After` value: delay-seconds (`120`, also fractional `1.5` as some APIs send)
/// or an HTTP-date (a date in the past means "now", i.e. zero).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The error of a non-2xx answer ([`Answer::error`]); a `429` without `Retry-After` waits
/// until `X-RateLimit-Reset` (UTC epoch seconds) when the API sends it (Braze, SendGrid).
pub(crate) fn error_with_reset(answer: &Answer, now: SystemTime) -> DestinationError {
    error_with_throttle_wait(answer, rate_limit_reset(&answer.headers, now))
}

/// The error of a non-2xx answer ([`Answer::error`]); a throttled answer without
/// `Retry-After` waits `wait`, the API's own documented (or retl's chosen) pause.
pub(crate) fn error_with_throttle_wait(
    answer: &Answer,
    wait: Option<Duration>,
) -> DestinationError {
    match answer.error() {
        DestinationError::Transient {
            message,
            retry_after: None,
            throttled: true,
        } => DestinationError::Transient {
            retry_after: wait,
            message,
            throttled: true,
        },
        other => other,
    }
}

/// `": <body>"` truncated to [`MAX_QUOTED_BODY`] bytes, or nothing for an empty body.
fn quote_body(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(": {}", truncate(body, MAX_QUOTED_BODY))
    }
}

/// `text` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// An error and its sources, joined by `": "` (reqwest's own message is often just
/// "error sending request").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(&headers(&[("content-type", "application/json")])));
        assert!(is_json(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )])));
        assert!(is_json(&headers(&[(
            "content-type",
            "application/problem+json"
        )])));
        assert!(!is_json(&headers(&[("content-type", "text/html")])));
        assert!(!is_json(&headers(&[])));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::from_secs(0)));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn transient_statuses_carry_retry_after() {
        for code in [408u16, 425, 429, 500, 502, 503, 504] {
            let status = StatusCode::from_u16(code).unwrap();
            match classify_status(status, &headers(&[("retry-after", "7")]), "busy") {
                DestinationError::Transient {
                    retry_after,
                    throttled,
                    message,
                } => {
                    assert_eq!(retry_after, Some(Duration::from_secs(7)), "{code}");
                    assert_eq!(throttled, code == 429, "{code}");
                    assert!(message.contains("busy"), "{message}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn auth_and_rejections() {
        for code in [401u16, 403] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(matches!(
                classify_status(status, &HeaderMap::new(), ""),
                DestinationError::Authentication { .. }
            ));
        }
        let long = "x".repeat(10_000);
        match classify_status(StatusCode::UNPROCESSABLE_ENTITY, &HeaderMap::new(), &long) {
            DestinationError::Rejected { message } => {
                assert!(message.starts_with("HTTP 422"), "{message}");
                assert!(message.len() < MAX_QUOTED_BODY + 64, "{}", message.len());
            }
            other => panic!("{other:?}"),
        }
        match classify_status(
            StatusCode::MOVED_PERMANENTLY,
            &headers(&[("location", "https://new.example/hook")]),
            "",
        ) {
            DestinationError::Rejected { message } => {
                assert!(message.contains("https://new.example/hook"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("hello", 5), "hello");
        assert_eq!(truncate("hello", 3), "hel…");
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        // Bind then drop a listener to get a port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = client(Duration::from_secs(2)).unwrap();
        let error = client
            .post(format!("http://{addr}/secret-token"))
            .send()
            .await
            .unwrap_err();
        match classify_send_error(error) {
            DestinationError::Transient { message, .. } => {
                assert!(!message.contains("secret-token"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
