//! The Segment client: one `POST /v1/batch` per batch, the answer as a `BatchOutcome`, the
//! write key check of `test()`; [`BoundAction`], an action bound to it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use serde_json::{Value, json};

use super::actions::{self, SegmentAction};
use super::config::ValidConfig;
use crate::destinations::http;

/// Segment's documented limit of one message in a batch: 32 KB.
pub(crate) const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Segment's documented limit of one batch request: 500 KB.
pub(crate) const MAX_REQUEST_BYTES: usize = 500 * 1024;

/// Sends batches to one Segment source.
#[derive(Debug)]
pub(crate) struct SegmentClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl SegmentClient {
    /// A client for this source with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(SegmentClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// Sends one batch in one `POST /v1/batch` and classifies the answer. Records that cannot
    /// be sent (no identity, over 32 KB) are rejected without being sent; when none is left no
    /// request is made.
    pub(crate) async fn send(
        &self,
        action: SegmentAction,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let (messages, mut outcomes) = encode(action, spec, ctx, batch);
        let sent: Vec<usize> = messages.iter().map(|(i, _)| *i).collect();
        if sent.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let body = serde_json::to_vec(&json!({
            "batch": messages.into_iter().map(|(_, m)| m).collect::<Vec<_>>()
        }))
        .map_err(|e| DestinationError::Rejected {
            message: format!("the batch could not be encoded as JSON: {e}"),
        })?;
        if body.len() > MAX_REQUEST_BYTES {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "the batch encodes to {} bytes, over Segment's 500 KB per request; lower limits.max_batch_bytes",
                    body.len()
                ),
            });
        }
        let request = self
            .http
            .post(self.config.batch_url.clone())
            .basic_auth(self.config.write_key.expose(), Some(""))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        // Segment answers a valid batch with 200 {"success": true} and no per-record results.
        for index in sent {
            outcomes[index] = RecordOutcome::Accepted;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// `test()`: an empty batch to the Tracking API (nothing is recorded), then the source
    /// settings the write key names, when the settings endpoint is known.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self
            .http
            .post(self.config.batch_url.clone())
            .basic_auth(self.config.write_key.expose(), Some(""))
            .json(&json!({"batch": []}))
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::fetch(&self.http, request).await?;
        let status = answer.status;
        // 2xx, or 400 from a collector that refuses an empty batch: reachable either way.
        if !status.is_success() && status != reqwest::StatusCode::BAD_REQUEST {
            return Err(answer.error());
        }
        let Some(settings_endpoint) = &self.config.settings_endpoint else {
            return Ok(format!(
                "the collector answered an empty batch with HTTP {status}; the write key was not checked: the Tracking API accepts any key, and no settings_endpoint is configured"
            ));
        };
        let settings = http::join_url(
            "settings_endpoint",
            settings_endpoint,
            &format!("/v1/projects/{}/settings", self.config.write_key.expose()),
        )?;
        let request = self
            .http
            .get(settings)
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::fetch(&self.http, request).await?;
        match answer.status.as_u16() {
            200..=299 => Ok(format!(
                "the Tracking API answered an empty batch with HTTP {status} and Segment knows the write key (its source settings are served)"
            )),
            404 => Err(DestinationError::Authentication {
                message: "Segment serves no source settings for this write key (HTTP 404): the key is wrong or its source was deleted; copy it again from the source's settings".to_string(),
            }),
            other => {
                Err(match answer.error() {
                    DestinationError::Rejected { message } => DestinationError::Transient {
                        message: format!("the write key check answered HTTP {other}: {message}"),
                        retry_after: None,
                        throttled: false,
                    },
                    error => error,
                })
            }
        }
    }
}

/// The messages of a batch with their positions, and the outcomes so far: records that cannot
/// be sent are `Rejected`, the others provisionally `Retry` until the answer.
pub(crate) fn encode(
    action: SegmentAction,
    spec: &ActionSpec,
    ctx: &DeliveryContext,
    batch: &[Payload],
) -> (Vec<(usize, Value)>, Vec<RecordOutcome>) {
    let mut messages = Vec::with_capacity(batch.len());
    let mut outcomes = Vec::with_capacity(batch.len());
    for (index, payload) in batch.iter().enumerate() {
        let message_id = ctx.idempotency_key(payload);
        let encoded = actions::message(action, spec, payload, &message_id).and_then(|m| {
            let size = serde_json::to_vec(&m).map_or(0, |b| b.len());
            if size > MAX_MESSAGE_BYTES {
                Err(format!(
                    "the {} message is {size} bytes, over Segment's 32 KB per message; map fewer or smaller fields",
                    action.message_type()
                ))
            } else {
                Ok(m)
            }
        });
        match encoded {
            Ok(message) => {
                messages.push((index, message));
                outcomes.push(RecordOutcome::Retry {
                    reason: "not sent".to_string(),
                    after: None,
                });
            }
            Err(reason) => outcomes.push(RecordOutcome::Rejected { reason }),
        }
    }
    (messages, outcomes)
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: SegmentAction,
    /// The destination's client (shared by its actions).
    pub(crate) client: Arc<SegmentClient>,
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
