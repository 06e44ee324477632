//! The Elasticsearch client: one `_bulk` request per batch, per-item results, the index
//! mapping (`test()`, fields); [`BoundAction`].

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, FieldInfo, FieldType,
    Payload, RecordOutcome,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::actions::{ElasticsearchAction, Operation, bulk_lines};
use super::config::{Auth, ValidConfig};
use crate::destinations::http;

/// Sends batches to one index of one cluster.
#[derive(Debug)]
pub(crate) struct ElasticsearchClient {
    http: reqwest::Client,
    config: ValidConfig,
}

/// An Elasticsearch error body: `{"error": {"type", "reason"}, "status"}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

/// The `error` object of an answer or of a bulk item.
#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: String,
}

impl ErrorDetail {
    fn text(&self) -> String {
        if self.reason.is_empty() {
            self.kind.clone()
        } else {
            format!("{}: {}", self.kind, self.reason)
        }
    }
}

/// A `_bulk` answer: `{"errors": bool, "items": [{"<op>": {"_id", "status", "error"}}]}`.
#[derive(Debug, Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    items: Vec<Map<String, Value>>,
}

/// One item of a `_bulk` answer.
#[derive(Debug, Deserialize)]
struct Item {
    #[serde(default)]
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

impl ElasticsearchClient {
    /// A client for this index with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(ElasticsearchClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// A request with the configured credentials.
    fn request(
        &self,
        method: Method,
        url: &reqwest::Url,
    ) -> Result<reqwest::RequestBuilder, DestinationError> {
        let builder = self.http.request(method, url.clone());
        Ok(match &self.config.auth {
            Auth::ApiKey(key) => {
                let mut value = HeaderValue::from_str(&format!("ApiKey {}", key.expose()))
                    .map_err(|_| DestinationError::InvalidConfig {
                        field: "api_key".to_string(),
                        message: "not a valid HTTP header value".to_string(),
                    })?;
                value.set_sensitive(true);
                builder.header(AUTHORIZATION, value)
            }
            Auth::Basic { username, password } => {
                builder.basic_auth(username, Some(password.expose()))
            }
            Auth::None => builder,
        })
    }

    /// Sends one batch in one `_bulk` request and reads each item's result.
    pub(crate) async fn send(
        &self,
        operation: Operation,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let mut outcomes = vec![RecordOutcome::Accepted; batch.len()];
        let mut sent = Vec::with_capacity(batch.len());
        let mut body = String::new();
        for (i, payload) in batch.iter().enumerate() {
            match bulk_lines(operation, payload) {
                Ok(lines) => {
                    body.push_str(&lines);
                    sent.push(i);
                }
                Err(reason) => outcomes[i] = RecordOutcome::Rejected { reason },
            }
        }
        if sent.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let request = self
            .request(Method::POST, &self.config.bulk_url)?
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            )
            .body(body)
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        let items = items_of(&answer, operation, sent.len())?;
        for (i, outcome) in sent.into_iter().zip(items) {
            outcomes[i] = outcome;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// `GET /<index>/_mapping`: the index's top-level fields, or `None` when the index does
    /// not exist.
    pub(crate) async fn mapping(&self) -> Result<Option<Map<String, Value>>, DestinationError> {
        let request = self
            .request(Method::GET, &self.config.mapping_url)?
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::fetch(&self.http, request).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(error_of(&answer));
        }
        let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        // `{"<index>": {"mappings": {"properties": {...}}}}`; an alias answers with its
        // indices' names: the first one's mapping.
        let properties = parsed
            .as_object()
            .and_then(|indices| indices.values().next())
            .and_then(|index| index.pointer("/mappings/properties"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(Some(properties))
    }

    /// `test()`: reads the index mapping (side-effect free); a missing index is fine (the
    /// first write creates it, unless the cluster's `action.auto_create_index` forbids it).
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let index = &self.config.index;
        match self.mapping().await? {
            Some(properties) => Ok(format!(
                "Elasticsearch accepted the credentials; index '{index}' exists with {} mapped top-level fields",
                properties.len()
            )),
            None => Ok(format!(
                "Elasticsearch accepted the credentials; index '{index}' does not exist yet: the first write creates it (unless action.auto_create_index forbids it)"
            )),
        }
    }

    /// The index's top-level fields as the upsert action's fields (every field optional).
    pub(crate) async fn fields(&self) -> Result<Option<Vec<FieldInfo>>, DestinationError> {
        let Some(properties) = self.mapping().await? else {
            return Ok(None);
        };
        Ok(Some(
            properties
                .iter()
                .map(|(name, mapping)| {
                    let kind = mapping.get("type").and_then(Value::as_str).unwrap_or(
                        if mapping.get("properties").is_some() {
                            "object"
                        } else {
                            "unknown"
                        },
                    );
                    FieldInfo {
                        name: Cow::Owned(name.clone()),
                        field_type: field_type(kind),
                        required: false,
                        description: Cow::Owned(format!("mapped as {kind}")),
                        children: Vec::new(),
                    }
                })
                .collect(),
        ))
    }
}

/// The field type of an Elasticsearch mapping type.
pub(crate) fn field_type(kind: &str) -> FieldType {
    match kind {
        "long" | "integer" | "short" | "byte" | "unsigned_long" => FieldType::Integer,
        "double" | "float" | "half_float" | "scaled_float" => FieldType::Number,
        "boolean" => FieldType::Boolean,
        "date" | "date_nanos" => FieldType::Datetime,
        "object" | "nested" | "flattened" => FieldType::Object,
        _ => FieldType::String,
    }
}

/// The error of a non-2xx answer, with Elasticsearch's `error.type` and `error.reason` when
/// the body has them. A 429 (`es_rejected_execution_exception`: the cluster's write queue is
/// full) is throttled; Elasticsearch sends no `Retry-After`, so the engine backs off.
pub(crate) fn error_of(answer: &http::Answer) -> DestinationError {
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(&answer.body) else {
        return answer.error();
    };
    let status = answer.status;
    let detail = format!("HTTP {status} {}", parsed.error.text());
    match answer.error() {
        DestinationError::Transient {
            retry_after,
            throttled,
            ..
        } => DestinationError::Transient {
            message: detail,
            retry_after,
            throttled,
        },
        DestinationError::Authentication { .. } => DestinationError::Authentication {
            message: format!(
                "{detail}; check api_key (or username and password) and its privileges on the index (write, view_index_metadata)"
            ),
        },
        DestinationError::PayloadTooLarge { .. } => DestinationError::PayloadTooLarge {
            message: format!(
                "{detail}; the request is over the cluster's http.max_content_length: lower limits.max_batch_bytes"
            ),
        },
        DestinationError::Rejected { .. } => DestinationError::Rejected { message: detail },
        other => other,
    }
}

/// The outcome of each sent record from a `_bulk` answer.
///
/// - 2xx with `items`, one per operation, in order: a 2xx item is accepted; a `delete` item
///   `404` (`not_found`) is accepted (already gone); a `429` item (the shard's write queue is
///   full) or a 5xx item is sent again; any other item is rejected with its
///   `error.type: error.reason`.
/// - Anything else: the error of the whole request ([`error_of`]).
pub(crate) fn items_of(
    answer: &http::Answer,
    operation: Operation,
    sent: usize,
) -> Result<Vec<RecordOutcome>, DestinationError> {
    if !answer.status.is_success() {
        return Err(error_of(answer));
    }
    let unreadable = |why: &str| DestinationError::Rejected {
        message: format!(
            "Elasticsearch answered {} with {why}; nothing is acknowledged: {}",
            answer.status,
            http::truncate(
                &String::from_utf8_lossy(&answer.body),
                http::MAX_QUOTED_BODY
            )
        ),
    };
    let parsed: BulkAnswer =
        serde_json::from_slice(&answer.body).map_err(|_| unreadable("an unreadable body"))?;
    if parsed.items.len() != sent {
        return Err(unreadable(&format!(
            "{} items for {sent} operations",
            parsed.items.len()
        )));
    }
    parsed
        .items
        .iter()
        .map(|item| {
            let result = item
                .get(operation.name())
                .cloned()
                .ok_or_else(|| unreadable(&format!("an item without '{}'", operation.name())))?;
            let item: Item = serde_json::from_value(result)
                .map_err(|_| unreadable("an item without a status"))?;
            let reason = || {
                item.error
                    .as_ref()
                    .and_then(|e| serde_json::from_value::<ErrorDetail>(e.clone()).ok())
                    .map_or_else(|| format!("status {}", item.status), |e| e.text())
            };
            Ok(match (operation, item.status) {
                (_, 200..=299) | (Operation::Delete, 404) => RecordOutcome::Accepted,
                (_, 429 | 500..=599) => RecordOutcome::Retry {
                    reason: format!("Elasticsearch could not take the document now: {}", reason()),
                    after: None,
                },
                (Operation::Update, 404) => RecordOutcome::Rejected {
                    reason: format!(
                        "no document has this _id ({}); sync mode update only changes existing documents (use upsert to create it)",
                        reason()
                    ),
                },
                (Operation::Create, 409) => RecordOutcome::Rejected {
                    reason: format!(
                        "a document with this _id exists already ({}); sync mode create never changes existing documents (use upsert to update it)",
                        reason()
                    ),
                },
                _ => RecordOutcome::Rejected {
                    reason: format!("Elasticsearch refused the document: {}", reason()),
                },
            })
        })
        .collect()
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`super::actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: ElasticsearchAction,
    /// The destination's client.
    pub(crate) client: Arc<ElasticsearchClient>,
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
        let operation = Operation::of(self.action, ctx.sync_mode);
        self.client.send(operation, ctx, batch).await
    }
}
