//! The Customer.io client: one `POST /api/v2/batch` per batch, per-entry errors of a `207`
//! or `400`, the credential check of `test()`; [`BoundAction`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::actions::{self, CustomerioAction};
use super::config::ValidConfig;
use crate::destinations::http;

/// Customer.io's documented limit of a v2 batch request: smaller than 500 KB.
pub(crate) const MAX_BATCH_BYTES: usize = 500 * 1024;
/// Customer.io's documented limit of one batch entry: smaller than 32 KB.
pub(crate) const MAX_ENTRY_BYTES: usize = 32 * 1024;

/// Sends batches to one Customer.io workspace.
#[derive(Debug)]
pub(crate) struct CustomerioClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl CustomerioClient {
    /// A client for this workspace with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(CustomerioClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// Sends one batch in one request and classifies the answer. Entries that cannot be sent
    /// (invalid, over 32 KB) are rejected without being sent; when none is left no request
    /// is made.
    pub(crate) async fn send(
        &self,
        action: CustomerioAction,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut sent = Vec::new();
        let mut entries = Vec::new();
        for (index, payload) in batch.iter().enumerate() {
            let entry = actions::entry(action, spec, payload).and_then(|entry| {
                let size = serde_json::to_vec(&entry).map_or(0, |b| b.len());
                if size >= MAX_ENTRY_BYTES {
                    Err(format!(
                        "the entry is {size} bytes, over Customer.io's 32 KB per entry; map fewer or smaller fields"
                    ))
                } else {
                    Ok(entry)
                }
            });
            match entry {
                Ok(entry) => {
                    sent.push(index);
                    entries.push(entry);
                    outcomes.push(RecordOutcome::Accepted);
                }
                Err(reason) => outcomes.push(RecordOutcome::Rejected { reason }),
            }
        }
        if entries.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let body = serde_json::to_vec(&json!({"batch": entries})).map_err(|e| {
            DestinationError::Rejected {
                message: format!("the batch could not be encoded as JSON: {e}"),
            }
        })?;
        if body.len() >= MAX_BATCH_BYTES {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "the batch encodes to {} bytes, over Customer.io's 500 KB per request",
                    body.len()
                ),
            });
        }
        let request = self
            .http
            .post(self.config.batch_url.clone())
            .basic_auth(&self.config.site_id, Some(self.config.api_key.expose()))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        for (index, outcome) in sent.iter().zip(batch_outcomes(&answer, sent.len())?) {
            outcomes[*index] = outcome;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// `test()`: `GET /api/v1/accounts/region` with the credentials (reads the workspace's
    /// region, changes nothing).
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self
            .http
            .get(self.config.region_url.clone())
            .basic_auth(&self.config.site_id, Some(self.config.api_key.expose()))
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::fetch(&self.http, request).await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        let region = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("region").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| "unknown".to_string());
        Ok(format!(
            "Customer.io accepted the Track API credentials (workspace region: {region})"
        ))
    }
}

/// One error of a `207`/`400` answer.
#[derive(Debug, Deserialize)]
struct EntryError {
    #[serde(default)]
    batch_index: Option<usize>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The body of a `207`/`400` answer.
#[derive(Debug, Deserialize)]
struct ErrorsAnswer {
    #[serde(default)]
    errors: Vec<EntryError>,
}

/// The outcome of each sent entry: `200` applies all; `207` rejects the entries its
/// `errors` name (the others were applied); a `400` naming entries rejects those and sends
/// the others again (they were not applied); any other answer is an error for the request.
pub(crate) fn batch_outcomes(
    answer: &http::Answer,
    sent: usize,
) -> Result<Vec<RecordOutcome>, DestinationError> {
    let multi_status = answer.status == StatusCode::MULTI_STATUS;
    if answer.status.is_success() && !multi_status {
        return Ok(vec![RecordOutcome::Accepted; sent]);
    }
    if multi_status || answer.status == StatusCode::BAD_REQUEST {
        let errors = serde_json::from_slice::<ErrorsAnswer>(&answer.body)
            .map(|a| a.errors)
            .unwrap_or_default();
        if errors.iter().any(|e| e.batch_index.is_some()) {
            let others = if multi_status {
                RecordOutcome::Accepted
            } else {
                RecordOutcome::Retry {
                    reason: "not applied: Customer.io refused the request for other entries"
                        .to_string(),
                    after: None,
                }
            };
            let mut outcomes = vec![others; sent];
            for error in errors {
                let Some(index) = error.batch_index else {
                    continue;
                };
                let slot = outcomes
                    .get_mut(index)
                    .ok_or_else(|| DestinationError::Rejected {
                        message: format!(
                            "Customer.io named entry {index} of a batch of {sent}: {}",
                            http::truncate(
                                &String::from_utf8_lossy(&answer.body),
                                http::MAX_QUOTED_BODY
                            )
                        ),
                    })?;
                let detail = [error.reason, error.field, error.message]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                *slot = RecordOutcome::Rejected {
                    reason: format!("Customer.io refused the entry: {detail}"),
                };
            }
            return Ok(outcomes);
        }
        if multi_status {
            return Err(DestinationError::Rejected {
                message: format!(
                    "Customer.io answered 207 without naming entries: {}",
                    http::truncate(
                        &String::from_utf8_lossy(&answer.body),
                        http::MAX_QUOTED_BODY
                    )
                ),
            });
        }
    }
    Err(answer.error())
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: CustomerioAction,
    /// The destination's client.
    pub(crate) client: Arc<CustomerioClient>,
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
