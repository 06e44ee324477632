//! The Slack client: one `POST` to the incoming webhook per batch (of one record), the answer
//! as a `BatchOutcome`; [`BoundAction`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};

use super::actions::{self, SlackAction};
use super::config::ValidConfig;
use crate::destinations::http;

/// Posts messages to one incoming webhook.
#[derive(Debug)]
pub(crate) struct SlackClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl SlackClient {
    /// A client for this webhook with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(SlackClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// The webhook URL with its token hidden.
    pub(crate) fn shown_url(&self) -> &str {
        &self.config.shown_url
    }

    /// Posts the batch's one record as one message and classifies the answer. A batch of more
    /// than one record is refused as too large before anything is sent (the engine halves it):
    /// an incoming webhook takes one message per request.
    pub(crate) async fn send(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let [payload] = batch else {
            if batch.is_empty() {
                return Ok(BatchOutcome {
                    records: Vec::new(),
                });
            }
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} records in one batch; a Slack incoming webhook takes one message per request (set limits.batch_size to 1)",
                    batch.len()
                ),
            });
        };
        let body = match actions::message(payload) {
            Ok(body) => body,
            Err(reason) => {
                return Ok(BatchOutcome {
                    records: vec![RecordOutcome::Rejected { reason }],
                });
            }
        };
        let body = serde_json::to_vec(&body).map_err(|e| DestinationError::Rejected {
            message: format!("the message could not be encoded as JSON: {e}"),
        })?;
        let request = self
            .http
            .post(self.config.webhook_url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .build()
            .map_err(http::classify_send_error)?;
        let answer =
            http::exchange_secret_url(&self.http, request, ctx, &self.config.shown_url).await?;
        let outcome = classify(&answer)?;
        Ok(BatchOutcome {
            records: vec![outcome],
        })
    }
}

/// The outcome of the one message of a request, or the error that concerns every message.
///
/// Slack's answers (<https://api.slack.com/messaging/webhooks#handling_errors>): `200 ok`;
/// `400` for a message it cannot take (`invalid_payload`, `no_text`, `invalid_blocks`,
/// `too_many_attachments`, `user_not_found`): that record alone is rejected; `403`
/// (`invalid_token`, `action_prohibited`, `posting_to_general_channel_denied`): the webhook
/// may not post, the run stops; `404` (`no_service`, `channel_not_found`, `no_team`,
/// `team_disabled`) and `410` (`channel_is_archived`): the webhook or its channel is gone,
/// the run stops; `429`, `5xx` (`rollup_error`): transient.
pub(crate) fn classify(answer: &http::Answer) -> Result<RecordOutcome, DestinationError> {
    let status = answer.status;
    if status.is_success() {
        return Ok(RecordOutcome::Accepted);
    }
    let said = http::truncate(
        String::from_utf8_lossy(&answer.body).trim(),
        http::MAX_QUOTED_BODY,
    );
    match status.as_u16() {
        400 => Ok(RecordOutcome::Rejected {
            reason: format!("Slack refused the message (HTTP 400): {said}"),
        }),
        401 | 403 => Err(DestinationError::Authentication {
            message: format!(
                "Slack refused the webhook (HTTP {}): {said}; the webhook URL is revoked, mistyped or not allowed to post here: create a new incoming webhook and set webhook_url",
                status.as_u16()
            ),
        }),
        404 | 410 => Err(crate::destinations::invalid_config(
            "webhook_url",
            format!(
                "Slack answered HTTP {}: {said}; the webhook was removed or its channel deleted or archived: create a new incoming webhook",
                status.as_u16()
            ),
        )),
        _ => Err(answer.error()),
    }
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: SlackAction,
    /// The destination's client.
    pub(crate) client: Arc<SlackClient>,
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
        match self.action {
            SlackAction::SendMessage => self.client.send(ctx, batch).await,
        }
    }
}
