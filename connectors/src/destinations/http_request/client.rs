//! The HTTP Request client: renders and sends one request per batch, and turns the answer into
//! a `BatchOutcome` (per-record errors at the configured JSON pointer, configured throttle and
//! "already gone" statuses); [`BoundAction`], an action bound to it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use serde_json::Value;

use super::actions::{self, HttpRequestAction};
use super::config::{ErrorsAt, ValidConfig};
use crate::destinations::http;

/// Sends batches as configured.
#[derive(Debug)]
pub(crate) struct HttpRequestClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl HttpRequestClient {
    /// A client for this config with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(HttpRequestClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// `host`, `port` of the upsert URL.
    pub(crate) fn authority(&self) -> &(String, u16) {
        &self.config.authority
    }

    /// Whether the delete action is configured.
    pub(crate) fn has_delete(&self) -> bool {
        self.config.delete.is_some()
    }

    /// Renders one batch into one request, sends it and classifies the answer.
    pub(crate) async fn send(
        &self,
        action: HttpRequestAction,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let template = match action {
            HttpRequestAction::Upsert => &self.config.upsert,
            HttpRequestAction::Delete => {
                self.config
                    .delete
                    .as_ref()
                    .ok_or_else(|| DestinationError::InvalidConfig {
                        field: "delete_url".to_string(),
                        message: "the delete action needs delete_url (and usually delete_method, delete_body)".to_string(),
                    })?
            }
        };
        let rendered = match actions::render(&self.config, template, action, ctx, batch) {
            Ok(rendered) => rendered,
            Err(reason) => return Ok(rejected_all(batch.len(), &reason)),
        };
        let mut builder = self
            .http
            .request(template.method.clone(), rendered.url)
            .headers(self.config.headers.clone());
        if let Some(body) = rendered.body {
            if !self.config.headers.contains_key(CONTENT_TYPE) {
                builder =
                    builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            builder = builder.body(body);
        }
        let request = builder.build().map_err(http::classify_send_error)?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        let status = answer.status.as_u16();
        if action == HttpRequestAction::Delete && self.config.delete_gone_statuses.contains(&status)
        {
            return Ok(BatchOutcome::all_accepted(batch.len()));
        }
        if self.config.throttle_statuses.contains(&status) {
            return Err(DestinationError::Transient {
                message: format!(
                    "HTTP {}: throttled (a status listed in throttle_statuses){}",
                    answer.status,
                    quoted(&answer.body)
                ),
                retry_after: http::retry_after(&answer.headers, SystemTime::now()),
                throttled: true,
            });
        }
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        match &self.config.errors {
            None => Ok(BatchOutcome::all_accepted(batch.len())),
            Some(at) => parse_errors(at, &answer.body, batch.len()),
        }
    }
}

/// `": <body>"`, truncated, or nothing.
fn quoted(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", http::truncate(text, http::MAX_QUOTED_BODY))
    }
}

/// Every record rejected for `reason`.
fn rejected_all(n: usize, reason: &str) -> BatchOutcome {
    BatchOutcome {
        records: vec![
            RecordOutcome::Rejected {
                reason: reason.to_string(),
            };
            n
        ],
    }
}

/// Reads the per-record errors of a 2xx answer: the array at `at.pointer`, each entry an
/// object with the record's index (or the index itself, a number). No array there (or an
/// empty or non-JSON body) means every record was accepted. Something at the pointer that is
/// not an array of such entries, or an index outside the batch, is a broken answer: the batch
/// is [`DestinationError::Rejected`] rather than acknowledged.
pub(crate) fn parse_errors(
    at: &ErrorsAt,
    body: &[u8],
    batch_len: usize,
) -> Result<BatchOutcome, DestinationError> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Ok(BatchOutcome::all_accepted(batch_len));
    };
    let broken = |what: String| DestinationError::Rejected {
        message: format!(
            "the API answered 2xx, but {what} (errors_pointer '{}'): {}",
            at.pointer,
            http::truncate(&value.to_string(), http::MAX_QUOTED_BODY)
        ),
    };
    let entries = match value.pointer(&at.pointer) {
        None | Some(Value::Null) => return Ok(BatchOutcome::all_accepted(batch_len)),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(broken("the value there is not an array".to_string())),
    };
    let mut outcomes = vec![RecordOutcome::Accepted; batch_len];
    for entry in entries {
        let index = match entry {
            Value::Number(n) => n.as_u64(),
            Value::Object(map) => map.get(&at.index_field).and_then(|i| match i {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }),
            _ => None,
        };
        let Some(index) = index.and_then(|i| usize::try_from(i).ok()) else {
            return Err(broken(format!(
                "an error entry has no record index in '{}': {}",
                at.index_field,
                http::truncate(&entry.to_string(), 200)
            )));
        };
        let slot = outcomes.get_mut(index).ok_or_else(|| {
            broken(format!(
                "an error names record index {index} of a batch of {batch_len}"
            ))
        })?;
        let reason = match entry.get(&at.message_field) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => format!(
                "rejected by the API: {}",
                http::truncate(&entry.to_string(), 200)
            ),
        };
        *slot = RecordOutcome::Rejected { reason };
    }
    Ok(BatchOutcome { records: outcomes })
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: HttpRequestAction,
    /// The destination's client (shared by its actions).
    pub(crate) client: Arc<HttpRequestClient>,
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
