//! The Mixpanel client: one `/import` or `/engage` request per batch, the answer as a
//! `BatchOutcome`, the credential check of `test()`; [`BoundAction`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
    SyncMode,
};
use serde::Deserialize;
use serde_json::Value;

use super::actions::{self, MixpanelAction};
use super::config::{ImportAuth, ValidConfig};
use crate::destinations::http;

/// Mixpanel's documented limit of an `/import` request: 10 MB uncompressed.
pub(crate) const MAX_IMPORT_BYTES: usize = 10 * 1000 * 1000;

/// Sends batches to one Mixpanel project.
#[derive(Debug)]
pub(crate) struct MixpanelClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl MixpanelClient {
    /// A client for this project with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(MixpanelClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// `POST /import?strict=1` with the import credentials.
    fn import_request(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(self.config.import_url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        match &self.config.import_auth {
            ImportAuth::ServiceAccount {
                username, secret, ..
            } => request.basic_auth(username, Some(secret.expose())),
            ImportAuth::ProjectToken => request.basic_auth(self.config.token.expose(), Some("")),
        }
    }

    /// Sends one batch in one request and classifies the answer. Records that cannot be
    /// encoded are rejected without being sent.
    pub(crate) async fn send(
        &self,
        action: MixpanelAction,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let create_only = ctx.sync_mode == Some(SyncMode::Create);
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut sent = Vec::new();
        let mut items = Vec::new();
        for (index, payload) in batch.iter().enumerate() {
            let item = match action {
                MixpanelAction::TrackEvent => {
                    actions::event(spec, payload, &ctx.idempotency_key(payload))
                }
                _ => actions::profile_update(
                    action,
                    spec,
                    payload,
                    self.config.token.expose(),
                    create_only,
                ),
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
        let body = serde_json::to_vec(&items).map_err(|e| DestinationError::Rejected {
            message: format!("the batch could not be encoded as JSON: {e}"),
        })?;
        let request = if action == MixpanelAction::TrackEvent {
            if body.len() > MAX_IMPORT_BYTES {
                return Err(DestinationError::PayloadTooLarge {
                    message: format!(
                        "the events encode to {} bytes, over Mixpanel's 10 MB per /import request",
                        body.len()
                    ),
                });
            }
            self.import_request(body)
        } else {
            self.http
                .post(self.config.engage_url.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body)
        };
        let request = request.build().map_err(http::classify_send_error)?;
        // Profile updates carry the project token in the body: never in a recorded exchange.
        let answer = http::exchange_redacted(&self.http, request, ctx, redact_tokens).await?;
        let per_record = match action {
            MixpanelAction::TrackEvent => import_outcomes(&answer, sent.len())?,
            _ => engage_outcomes(&answer, sent.len())?,
        };
        for (index, outcome) in sent.into_iter().zip(per_record) {
            outcomes[index] = outcome;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// `test()`: an empty `/import` batch with the import credentials (nothing is imported).
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self
            .import_request(b"[]".to_vec())
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::fetch(&self.http, request).await?;
        let status = answer.status;
        match status.as_u16() {
            200..=299 | 400 => Ok(format!(
                "Mixpanel accepted the /import credentials (an empty batch was answered HTTP {status}; nothing was imported)"
            )),
            _ => Err(answer.error()),
        }
    }
}

/// Replaces the `$token` of every profile update of a recorded body with `"<redacted>"`.
pub(crate) fn redact_tokens(body: &mut Value) {
    if let Value::Array(items) = body {
        for item in items {
            if let Some(token) = item.get_mut("$token") {
                *token = Value::String("<redacted>".to_string());
            }
        }
    }
}

/// One entry of a strict `/import` answer's `failed_records`.
#[derive(Debug, Deserialize)]
struct FailedRecord {
    index: usize,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The body of a `400` to a strict `/import`.
#[derive(Debug, Deserialize)]
struct ImportFailure {
    #[serde(default)]
    failed_records: Option<Vec<FailedRecord>>,
}

/// The outcome of each sent event from an `/import` answer: 200 imports everything; a 400
/// with `failed_records` rejects those events and imported the rest (strict mode); any other
/// answer is an error for the whole request.
pub(crate) fn import_outcomes(
    answer: &http::Answer,
    sent: usize,
) -> Result<Vec<RecordOutcome>, DestinationError> {
    if answer.status.is_success() {
        return Ok(vec![RecordOutcome::Accepted; sent]);
    }
    if answer.status == reqwest::StatusCode::BAD_REQUEST
        && let Ok(ImportFailure {
            failed_records: Some(failed),
        }) = serde_json::from_slice(&answer.body)
        && !failed.is_empty()
    {
        let mut outcomes = vec![RecordOutcome::Accepted; sent];
        for record in failed {
            let slot =
                outcomes
                    .get_mut(record.index)
                    .ok_or_else(|| DestinationError::Rejected {
                        message: format!(
                            "Mixpanel named failed record {} of a batch of {sent}: {}",
                            record.index,
                            http::truncate(
                                &String::from_utf8_lossy(&answer.body),
                                http::MAX_QUOTED_BODY
                            )
                        ),
                    })?;
            let message = record
                .message
                .unwrap_or_else(|| "failed validation".to_string());
            *slot = RecordOutcome::Rejected {
                reason: match record.field {
                    Some(field) if !message.contains(&field) => format!("{field}: {message}"),
                    _ => message,
                },
            };
        }
        return Ok(outcomes);
    }
    Err(answer.error())
}

/// The body of a verbose `/engage` answer.
#[derive(Debug, Deserialize)]
struct EngageAnswer {
    status: Value,
    #[serde(default)]
    error: Option<String>,
}

/// The outcome of each sent update from an `/engage?verbose=1` answer: `{"status": 1}`
/// applies the batch; `{"status": 0, "error": ...}` (also answered with 200) rejects it.
pub(crate) fn engage_outcomes(
    answer: &http::Answer,
    sent: usize,
) -> Result<Vec<RecordOutcome>, DestinationError> {
    if !answer.status.is_success() {
        return Err(answer.error());
    }
    match serde_json::from_slice::<EngageAnswer>(&answer.body) {
        Ok(EngageAnswer { status, .. }) if status == 1 => Ok(vec![RecordOutcome::Accepted; sent]),
        Ok(EngageAnswer { error, .. }) => Err(DestinationError::Rejected {
            message: format!(
                "Mixpanel refused the profile updates: {}",
                error.unwrap_or_else(|| "status 0 without an error".to_string())
            ),
        }),
        Err(_) => Err(DestinationError::Rejected {
            message: format!(
                "Mixpanel answered /engage with an unreadable body: {}",
                http::truncate(
                    &String::from_utf8_lossy(&answer.body),
                    http::MAX_QUOTED_BODY
                )
            ),
        }),
    }
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: MixpanelAction,
    /// The destination's client.
    pub(crate) client: Arc<MixpanelClient>,
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
