//! The Facebook Custom Audiences client: one `POST` or `DELETE` of `/{audience_id}/users` per
//! batch, Graph API errors classified by their `code`, and the answer's invalid entries
//! mapped back to records; [`BoundAction`], an action bound to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::actions::{self, AudienceAction, MAX_USERS};
use super::config::ValidConfig;
use crate::destinations::http::{self, Answer};

/// Graph API error codes meaning a rate limit (<https://developers.facebook.com/docs/graph-api/overview/rate-limiting/>,
/// <https://developers.facebook.com/docs/marketing-api/error-reference>).
const THROTTLE_CODES: &[i64] = &[4, 17, 32, 613, 80003, 80004];
/// Graph API error codes meaning the token or its permissions are refused.
const AUTH_CODES: &[i64] = &[10, 102, 190, 200, 294];

/// Sends batches to one audience.
#[derive(Debug)]
pub(crate) struct AudienceClient {
    http: reqwest::Client,
    config: ValidConfig,
    batch_seq: AtomicU64,
}

impl AudienceClient {
    /// A client for this audience with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(AudienceClient {
            http: http::client(timeout)?,
            config,
            batch_seq: AtomicU64::new(0),
        })
    }

    fn token(&self) -> Result<HeaderValue, DestinationError> {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", self.config.access_token.expose()))
                .map_err(|_| DestinationError::InvalidConfig {
                    field: "access_token".to_string(),
                    message: "not a valid HTTP header value".to_string(),
                })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Reads the audience (`GET /{audience_id}?fields=id,name`): checks the token and the id,
    /// changes nothing.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let mut url = self.config.users_url.clone();
        url.path_segments_mut()
            .map_err(|()| DestinationError::Internal {
                message: "the audience URL has no path".to_string(),
            })?
            .pop();
        url.query_pairs_mut().append_pair("fields", "id,name");
        let response = self
            .http
            .get(url)
            .header(AUTHORIZATION, self.token()?)
            .send()
            .await
            .map_err(http::classify_send_error)?;
        let answer = Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response
                .bytes()
                .await
                .map_err(http::classify_send_error)?
                .to_vec(),
        };
        if !answer.status.is_success() {
            return Err(error(&answer));
        }
        let name = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        Ok(format!(
            "the token can read the audience '{name}' (nothing was changed)"
        ))
    }

    /// Sends one batch in one request.
    pub(crate) async fn send(
        &self,
        action: AudienceAction,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        if batch.len() > MAX_USERS {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} users in one request; Meta takes at most {MAX_USERS}: lower limits.batch_size",
                    batch.len()
                ),
            });
        }
        let encoded = actions::encode(
            action,
            batch,
            self.config.default_phone_country_code.as_deref(),
        );
        let mut outcomes = vec![RecordOutcome::Accepted; batch.len()];
        for (index, reason) in &encoded.refused {
            outcomes[*index] = RecordOutcome::Rejected {
                reason: reason.clone(),
            };
        }
        if encoded.rows.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let method = if action == AudienceAction::Add {
            Method::POST
        } else {
            Method::DELETE
        };
        let body = json!({
            "session": {
                "session_id": session_id(ctx, action),
                "batch_seq": self.batch_seq.fetch_add(1, Ordering::Relaxed) + 1,
                "last_batch_flag": false,
            },
            "payload": encoded.payload,
        });
        let request = self
            .http
            .request(method, self.config.users_url.clone())
            .header(AUTHORIZATION, self.token()?)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.to_string())
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        if !answer.status.is_success() {
            return Err(error(&answer));
        }
        let value: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        for (row, index) in invalid_rows(&value, &encoded.sent) {
            if let Some(&record) = encoded.rows.get(row) {
                outcomes[record] = RecordOutcome::Rejected {
                    reason: format!("Meta counted this entry invalid: {index}"),
                };
            }
        }
        Ok(BatchOutcome { records: outcomes })
    }
}

/// A session id stable for one run and action (Meta groups the batches of an upload by it).
fn session_id(ctx: &DeliveryContext, action: AudienceAction) -> u64 {
    let digest = Sha256::digest(format!(
        "{}/{}/{action:?}",
        ctx.mapping_id.as_str(),
        ctx.run_id.as_str()
    ));
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // Below 2^53 so that every JSON reader keeps it exact.
    u64::from_be_bytes(bytes) >> 11
}

/// The rows the answer's `invalid_entry_samples` names (a sample is one of the values sent in
/// a row, or a whole row), with the reason. Samples are examples, not a complete list:
/// entries Meta counts invalid without a sample cannot be told apart and stay accepted (Meta
/// received them; sending them again would not change the count).
pub(crate) fn invalid_rows(answer: &Value, sent: &[Vec<String>]) -> Vec<(usize, String)> {
    let samples: Vec<(String, String)> = match answer.get("invalid_entry_samples") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (text, "listed in invalid_entry_samples".to_string())
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut rows = Vec::new();
    for (row, values) in sent.iter().enumerate() {
        let joined = values.join(",");
        if let Some((_, reason)) = samples.iter().find(|(sample, _)| {
            *sample == joined || values.iter().any(|v| !v.is_empty() && v == sample)
        }) {
            rows.push((row, reason.clone()));
        }
    }
    rows
}

/// The error a non-2xx Graph API answer means, by its `error.code`: rate limits are
/// throttles (waiting `estimated_time_to_regain_access` minutes of the business use case
/// header when given), token and permission codes are authentication errors, the rest follow
/// the status.
pub(crate) fn error(answer: &Answer) -> DestinationError {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let code = body.pointer("/error/code").and_then(Value::as_i64);
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map_or_else(
            || {
                http::truncate(
                    &String::from_utf8_lossy(&answer.body),
                    http::MAX_QUOTED_BODY,
                )
            },
            str::to_string,
        );
    match code {
        Some(code) if THROTTLE_CODES.contains(&code) => DestinationError::Transient {
            message: format!("HTTP {} (Graph API code {code}): {message}", answer.status),
            retry_after: regain_access(&answer.headers)
                .filter(|wait| !wait.is_zero())
                .or_else(|| http::retry_after(&answer.headers, SystemTime::now())),
            throttled: true,
        },
        Some(code) if AUTH_CODES.contains(&code) => DestinationError::Authentication {
            message: format!(
                "HTTP {} (Graph API code {code}): {message}; check the access token and its ads_management permission on the audience's ad account",
                answer.status
            ),
        },
        _ => answer.error(),
    }
}

/// The longest `estimated_time_to_regain_access` (minutes) of `X-Business-Use-Case-Usage`.
fn regain_access(headers: &HeaderMap) -> Option<Duration> {
    let usage: Value =
        serde_json::from_str(headers.get("x-business-use-case-usage")?.to_str().ok()?).ok()?;
    let minutes = usage
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|u| {
            u.get("estimated_time_to_regain_access")
                .and_then(Value::as_u64)
        })
        .max()?;
    Some(Duration::from_secs(minutes * 60))
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: AudienceAction,
    /// The destination's client (shared by its actions).
    pub(crate) client: Arc<AudienceClient>,
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
