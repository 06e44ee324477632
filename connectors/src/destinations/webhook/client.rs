//! The webhook client: signs and sends one batch, and turns the answer into a `BatchOutcome`;
//! [`BoundAction`], an action bound to it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use retl_engine::secret::Secret;
use serde::Deserialize;
use sha2::Sha256;

use super::actions::{self, WebhookAction};
use super::config::ValidConfig;
use crate::destinations::http;

/// The signature header (`X-Retl-Signature`): `sha256=<hex HMAC-SHA256 of the body>`.
pub(crate) const SIGNATURE_HEADER: &str = "x-retl-signature";
/// The header naming the mapping (`X-Retl-Mapping`).
pub(crate) const MAPPING_HEADER: &str = "x-retl-mapping";
/// The header naming the run (`X-Retl-Run`).
pub(crate) const RUN_HEADER: &str = "x-retl-run";
/// The idempotency header (`Idempotency-Key`), stable across retries of one batch.
pub(crate) const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Sends batches to one webhook endpoint.
#[derive(Debug)]
pub(crate) struct WebhookClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl WebhookClient {
    /// A client for this endpoint with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(WebhookClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// `host:port` of the endpoint.
    pub(crate) fn authority(&self) -> Result<(String, u16), DestinationError> {
        let url = &self.config.url;
        match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => Ok((host.to_string(), port)),
            _ => Err(DestinationError::InvalidConfig {
                field: "url".to_string(),
                message: "the URL has no host or port".to_string(),
            }),
        }
    }

    /// Sends one batch in one `POST` and classifies the answer.
    pub(crate) async fn send(
        &self,
        action: WebhookAction,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let body = actions::encode(action, ctx, batch)?;
        let headers = self.request_headers(action, ctx, batch, &body)?;
        let request = self
            .http
            .post(self.config.url.clone())
            .headers(headers)
            .body(body)
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        if already_gone(action, answer.status, &answer.headers) {
            return Ok(BatchOutcome::all_accepted(batch.len()));
        }
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        let retry_after = http::retry_after(&answer.headers, SystemTime::now());
        let bytes = answer.body;
        parse_response(&bytes, batch.len(), retry_after)
    }

    /// Every header of one request: static, credential, retl's own, and the signature.
    fn request_headers(
        &self,
        action: WebhookAction,
        ctx: &DeliveryContext,
        batch: &[Payload],
        body: &[u8],
    ) -> Result<HeaderMap, DestinationError> {
        let mut headers = self.config.headers.clone();
        if let Some((name, value)) = &self.config.auth {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut put = |name: &'static str, value: &str| -> Result<(), DestinationError> {
            let value = HeaderValue::from_str(value).map_err(|_| DestinationError::Rejected {
                message: format!("'{value}' is not a valid value for header {name}"),
            })?;
            headers.insert(HeaderName::from_static(name), value);
            Ok(())
        };
        put(MAPPING_HEADER, ctx.mapping_id.as_str())?;
        put(RUN_HEADER, ctx.run_id.as_str())?;
        put(
            IDEMPOTENCY_HEADER,
            &actions::idempotency_key(action, ctx, batch),
        )?;
        if let Some(secret) = &self.config.signing_secret {
            put(SIGNATURE_HEADER, &signature(secret, body))?;
        }
        Ok(headers)
    }
}

/// Whether the answer says the records of a delete are already gone: a `404` to a `delete`
/// with a JSON body, the receiver's own answer (a delete re-sent after a crash finds nothing,
/// which is what it asked for). A `404` page of a web server for a wrong path is not JSON and
/// stays a rejection.
pub(crate) fn already_gone(
    action: WebhookAction,
    status: reqwest::StatusCode,
    headers: &HeaderMap,
) -> bool {
    action == WebhookAction::Delete
        && status == reqwest::StatusCode::NOT_FOUND
        && http::is_json(headers)
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` keyed with `secret`.
pub(crate) fn signature(secret: &Secret, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail for SHA-256.
    match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// The optional per-record part of a 2xx answer.
#[derive(Debug, Default, Deserialize)]
struct ResponseBody {
    /// Records rejected permanently.
    #[serde(default)]
    errors: Vec<IndexedEntry>,
    /// Records to send again.
    #[serde(default)]
    retry: Vec<IndexedEntry>,
}

/// One entry of `errors` or `retry`.
#[derive(Debug, Deserialize)]
struct IndexedEntry {
    /// Position of the record in the request's `records`.
    index: usize,
    /// Why.
    #[serde(default)]
    message: Option<String>,
    /// Seconds to wait before the retry (`retry` entries only); else the answer's
    /// `Retry-After`.
    #[serde(default)]
    retry_after: Option<f64>,
}

/// Turns a 2xx body into one outcome per record.
///
/// An empty or non-JSON body, or a JSON body without `errors`/`retry`, means every record was
/// accepted. An `errors` or `retry` list that cannot be read, or that names an index outside the
/// batch, is a broken answer: the whole batch is [`DestinationError::Rejected`] rather than
/// acknowledged, so nothing is reported accepted that the receiver may have refused.
pub(crate) fn parse_response(
    body: &[u8],
    batch_len: usize,
    retry_after: Option<Duration>,
) -> Result<BatchOutcome, DestinationError> {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => serde_json::Value::Object(map),
        // Not an object: nothing per record to report.
        _ => return Ok(BatchOutcome::all_accepted(batch_len)),
    };
    let parsed = ResponseBody::deserialize(&value).map_err(|e| DestinationError::Rejected {
        message: format!(
            "the webhook answered 2xx with unreadable per-record results ({e}): {}",
            http::truncate(&value.to_string(), http::MAX_QUOTED_BODY)
        ),
    })?;
    let mut outcomes = vec![RecordOutcome::Accepted; batch_len];
    let out_of_range = |index: usize| DestinationError::Rejected {
        message: format!(
            "the webhook answered 2xx naming record index {index}, but the batch has {batch_len} records"
        ),
    };
    for entry in parsed.retry {
        let slot = outcomes
            .get_mut(entry.index)
            .ok_or_else(|| out_of_range(entry.index))?;
        let after = entry
            .retry_after
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .or(retry_after);
        *slot = RecordOutcome::Retry {
            reason: entry
                .message
                .unwrap_or_else(|| "the webhook asked for a retry".to_string()),
            after,
        };
    }
    // A record both rejected and retried is rejected.
    for entry in parsed.errors {
        let slot = outcomes
            .get_mut(entry.index)
            .ok_or_else(|| out_of_range(entry.index))?;
        *slot = RecordOutcome::Rejected {
            reason: entry
                .message
                .unwrap_or_else(|| "rejected by the webhook".to_string()),
        };
    }
    Ok(BatchOutcome { records: outcomes })
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: WebhookAction,
    /// The destination's client (shared by its actions).
    pub(crate) client: Arc<WebhookClient>,
}

#[async_trait]
impl Action for BoundAction {
    fn spec(&self) -> &'static ActionSpec {
        self.spec
    }

    async fn send(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        self.client.send(self.action, ctx, batch).await
    }
}
