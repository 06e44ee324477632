//! The Google Analytics 4 client: one `/mp/collect` request per batch of one client's
//! events, the validation server call of `test()`; [`BoundAction`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::actions::{self, Encoded, GoogleAnalyticsAction, limits};
use super::config::ValidConfig;
use crate::destinations::http;

/// Sends batches to one Google Analytics 4 web stream.
#[derive(Debug)]
pub(crate) struct GoogleAnalyticsClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl GoogleAnalyticsClient {
    /// A client for this stream with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(GoogleAnalyticsClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// `url` with `measurement_id` and `api_secret` in the query (recorded exchanges and
    /// error messages never show a query).
    fn with_credentials(&self, url: &Url) -> Url {
        let mut url = url.clone();
        url.query_pairs_mut()
            .append_pair("measurement_id", &self.config.measurement_id)
            .append_pair("api_secret", self.config.api_secret.expose());
        url
    }

    /// Sends one batch in one request. Records that break a documented limit are rejected
    /// without being sent. A request carries one client's events: a batch mixing clients
    /// (or users, times or user properties) is returned as too large, so the engine splits
    /// it, before anything is sent.
    pub(crate) async fn send(
        &self,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut encoded: Vec<Encoded> = Vec::new();
        for payload in batch {
            match actions::encode(spec, payload) {
                Ok(event) => {
                    encoded.push(event);
                    outcomes.push(RecordOutcome::Accepted);
                }
                Err(reason) => outcomes.push(RecordOutcome::Rejected { reason }),
            }
        }
        let Some(first) = encoded.first() else {
            return Ok(BatchOutcome { records: outcomes });
        };
        if encoded.iter().any(|e| e.request != first.request) {
            return Err(DestinationError::PayloadTooLarge {
                message: "the batch holds events of several clients (or users, timestamps or user properties), and a Measurement Protocol request carries one client's".to_string(),
            });
        }
        if encoded.len() > limits::EVENTS {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} events, over the Measurement Protocol's 25 per request; lower limits.batch_size",
                    encoded.len()
                ),
            });
        }
        let mut body = first.request.clone();
        let events: Vec<Value> = encoded.iter().map(|e| e.event.clone()).collect();
        let sent = events.len();
        body.insert("events".into(), Value::Array(events));
        let body = serde_json::to_vec(&body).map_err(|e| DestinationError::Rejected {
            message: format!("the batch could not be encoded as JSON: {e}"),
        })?;
        if body.len() >= limits::BODY_BYTES {
            if sent > 1 {
                return Err(DestinationError::PayloadTooLarge {
                    message: format!(
                        "the events encode to {} bytes, over the Measurement Protocol's 130 kB per request",
                        body.len()
                    ),
                });
            }
            for outcome in &mut outcomes {
                if *outcome == RecordOutcome::Accepted {
                    *outcome = RecordOutcome::Rejected {
                        reason: format!(
                            "the event encodes to {} bytes, over the Measurement Protocol's 130 kB per request",
                            body.len()
                        ),
                    };
                }
            }
            return Ok(BatchOutcome { records: outcomes });
        }
        let request = self
            .http
            .post(self.with_credentials(&self.config.collect_url))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        // A 2xx is all the production endpoint says: it reports no invalid event.
        Ok(BatchOutcome { records: outcomes })
    }

    /// `test()`: a sample event to the validation server (`/debug/mp/collect`), which
    /// records nothing and lists what is wrong with the request.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self
            .http
            .post(self.with_credentials(&self.config.debug_url))
            .json(&json!({
                "client_id": "retl.connection-test",
                "events": [{"name": "retl_connection_test", "params": {}}],
            }))
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::fetch(&self.http, request).await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        let body = String::from_utf8_lossy(&answer.body);
        let messages =
            validation_messages(&body).map_err(|message| DestinationError::Rejected { message })?;
        if messages.is_empty() {
            Ok("the Measurement Protocol validation server accepted a sample event (nothing was recorded); it does not check the api_secret, which Google Analytics never reports as wrong".to_string())
        } else {
            Err(DestinationError::Rejected {
                message: format!(
                    "the validation server refused a sample event: {}",
                    messages.join("; ")
                ),
            })
        }
    }
}

/// One message of the validation server.
#[derive(Debug, Deserialize)]
struct ValidationMessage {
    #[serde(default, rename = "fieldPath")]
    field_path: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "validationCode")]
    validation_code: Option<String>,
}

/// The validation server's answer.
#[derive(Debug, Deserialize)]
struct ValidationAnswer {
    #[serde(default, rename = "validationMessages")]
    validation_messages: Vec<ValidationMessage>,
}

/// The messages of a validation server answer, as `CODE at path: description`.
///
/// # Errors
/// When the body is not the validation server's JSON.
pub(crate) fn validation_messages(body: &str) -> Result<Vec<String>, String> {
    let answer: ValidationAnswer = serde_json::from_str(body).map_err(|e| {
        format!(
            "the validation server's answer is not its JSON ({e}): {}",
            http::truncate(body, http::MAX_QUOTED_BODY)
        )
    })?;
    Ok(answer
        .validation_messages
        .into_iter()
        .map(|m| {
            format!(
                "{} at {}: {}",
                m.validation_code.unwrap_or_else(|| "INVALID".to_string()),
                m.field_path.unwrap_or_else(|| "(request)".to_string()),
                m.description.unwrap_or_default()
            )
        })
        .collect())
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action (there is one).
    pub(crate) action: GoogleAnalyticsAction,
    /// The destination's client.
    pub(crate) client: Arc<GoogleAnalyticsClient>,
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
            GoogleAnalyticsAction::SendEvent => self.client.send(self.spec, ctx, batch).await,
        }
    }
}
