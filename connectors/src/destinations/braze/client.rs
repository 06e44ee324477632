//! The Braze client: one `/users/track` or `/users/delete` request per batch, minor errors
//! as per-record rejections, rate-limit headers, `test()`; [`BoundAction`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
    SyncMode,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::actions::{self, BrazeAction};
use super::config::ValidConfig;
use crate::destinations::http;

/// Braze's documented limit of `external_ids` per `/users/delete` request.
pub(crate) const MAX_DELETES: usize = 50;
/// Braze's documented limit of objects per `/users/track` request.
pub(crate) const MAX_TRACK_OBJECTS: usize = 75;

/// Sends batches to one Braze workspace.
#[derive(Debug)]
pub(crate) struct BrazeClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl BrazeClient {
    /// A client for this workspace with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(BrazeClient {
            http: http::client(timeout)?,
            config,
        })
    }

    fn post(&self, url: &reqwest::Url, body: &Value) -> Result<reqwest::Request, DestinationError> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.config.api_key.expose()))
            .map_err(|_| DestinationError::InvalidConfig {
            field: "api_key".to_string(),
            message: "not a valid HTTP header value".to_string(),
        })?;
        auth.set_sensitive(true);
        self.http
            .post(url.clone())
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.to_string())
            .build()
            .map_err(http::classify_send_error)
    }

    /// Sends one batch in one request and classifies the answer.
    pub(crate) async fn send(
        &self,
        action: BrazeAction,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let limit = match action {
            BrazeAction::DeleteUser => MAX_DELETES,
            _ => MAX_TRACK_OBJECTS,
        };
        if batch.len() > limit {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} records in one request; Braze takes at most {limit} (lower limits.batch_size)",
                    batch.len()
                ),
            });
        }
        let update_only = ctx.sync_mode == Some(SyncMode::Update);
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut sent = Vec::new();
        let mut items = Vec::new();
        for (index, payload) in batch.iter().enumerate() {
            let item = match action {
                BrazeAction::UpdateUserProfile => actions::attributes(spec, payload, update_only),
                BrazeAction::TrackEvent => actions::event(spec, payload),
                BrazeAction::DeleteUser => actions::delete_id(payload).map(Value::String),
            };
            match item {
                Ok(item) => {
                    sent.push(index);
                    items.push(item);
                    outcomes.push(RecordOutcome::Accepted);
                }
                Err(reason) => outcomes.push(RecordOutcome::Rejected { reason }),
            }
        }
        if items.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let (url, body) = match action.input_array() {
            Some(array) => (&self.config.track_url, json!({ array: items })),
            None => (&self.config.delete_url, json!({"external_ids": items})),
        };
        let request = self.post(url, &body)?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        let per_record = outcomes_of(&answer, action, sent.len(), SystemTime::now())?;
        for (index, outcome) in sent.into_iter().zip(per_record) {
            outcomes[index] = outcome;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// `test()`: `POST /users/track` with an empty `attributes` array. Braze checks the key
    /// (and its `users.track` permission) before the body, and an empty request writes
    /// nothing: `401`/`403` refuse the key, `400` ("valid data must be provided") or `2xx`
    /// accept it.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self.post(&self.config.track_url, &json!({"attributes": []}))?;
        let answer = http::fetch(&self.http, request).await?;
        let status = answer.status;
        match status.as_u16() {
            200..=299 | 400 => Ok(format!(
                "Braze accepted the REST API key for /users/track (an empty request was answered HTTP {status}; nothing was written)"
            )),
            _ => Err(answer.error()),
        }
    }
}

/// One minor (per-object) error of a `/users/track` answer.
#[derive(Debug, Deserialize)]
struct MinorError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    input_array: Option<String>,
    index: usize,
}

/// A `/users/track` answer body.
#[derive(Debug, Deserialize)]
struct TrackAnswer {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<Value>,
}

/// The outcome of each sent record from a Braze answer.
///
/// - `/users/track` 2xx `{"message": "success", "errors": [{"type", "input_array", "index"}]}`:
///   the objects named by a minor error are rejected, the others accepted.
/// - `/users/track` 400 with indexed `errors` (every object failed): those are rejected with
///   their error, any other with the fatal `message`.
/// - `/users/delete` 2xx: every id is deleted or was unknown, both success.
/// - 429: throttled, waiting for `Retry-After` or else `X-RateLimit-Reset` (epoch seconds).
/// - Anything else: the error of the whole request.
pub(crate) fn outcomes_of(
    answer: &http::Answer,
    action: BrazeAction,
    sent: usize,
    now: SystemTime,
) -> Result<Vec<RecordOutcome>, DestinationError> {
    let Some(array) = action.input_array() else {
        return if answer.status.is_success() {
            Ok(vec![RecordOutcome::Accepted; sent])
        } else {
            Err(http::error_with_reset(answer, now))
        };
    };
    if !(answer.status.is_success() || answer.status == reqwest::StatusCode::BAD_REQUEST) {
        return Err(http::error_with_reset(answer, now));
    }
    let Ok(parsed) = serde_json::from_slice::<TrackAnswer>(&answer.body) else {
        return if answer.status.is_success() {
            Err(DestinationError::Rejected {
                message: format!(
                    "Braze answered {} with an unreadable body; nothing is acknowledged: {}",
                    answer.status,
                    http::truncate(
                        &String::from_utf8_lossy(&answer.body),
                        http::MAX_QUOTED_BODY
                    )
                ),
            })
        } else {
            Err(answer.error())
        };
    };
    let minor: Vec<MinorError> = parsed
        .errors
        .iter()
        .filter_map(|e| serde_json::from_value(e.clone()).ok())
        .filter(|e: &MinorError| e.input_array.as_deref().is_none_or(|a| a == array))
        .collect();
    let fatal = !answer.status.is_success();
    if fatal && minor.is_empty() {
        return Err(answer.error());
    }
    let message = parsed.message.unwrap_or_default();
    let mut outcomes = if fatal {
        vec![
            RecordOutcome::Rejected {
                reason: format!("Braze refused the request: {message}"),
            };
            sent
        ]
    } else {
        vec![RecordOutcome::Accepted; sent]
    };
    for error in minor {
        let slot = outcomes
            .get_mut(error.index)
            .ok_or_else(|| DestinationError::Rejected {
                message: format!(
                    "Braze named {array} index {} of a request of {sent}; nothing is acknowledged",
                    error.index
                ),
            })?;
        *slot = RecordOutcome::Rejected {
            reason: error
                .kind
                .unwrap_or_else(|| "rejected by Braze".to_string()),
        };
    }
    Ok(outcomes)
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: BrazeAction,
    /// The destination's client.
    pub(crate) client: Arc<BrazeClient>,
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
        self.client.send(self.action, self.spec, ctx, batch).await
    }
}
