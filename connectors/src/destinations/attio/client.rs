//! The Attio client: a record assert per added or updated record, a query and a delete per
//! deleted record, Attio's answers → outcomes and [`DestinationError`]s, `test()`;
//! [`BoundAction`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use serde_json::{Value, json};

use super::actions::{self, AttioAction};
use super::config::ValidConfig;
use crate::destinations::http::{self, Answer};
use crate::destinations::record_api;

/// Sends requests to one Attio workspace.
#[derive(Debug)]
pub(crate) struct AttioClient {
    http: reqwest::Client,
    config: ValidConfig,
}

/// What a query by the matching attribute found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Exactly one record, by its `record_id`.
    One(String),
    /// None.
    Nothing,
    /// More than one.
    Many,
}

impl AttioClient {
    /// A client for this workspace with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(AttioClient {
            http: http::client(timeout)?,
            config,
        })
    }

    fn request(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<reqwest::Request, DestinationError> {
        let url = record_api::url(&self.config.base_url, segments, query)?;
        let mut builder = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.config.authorization.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.to_string());
        }
        builder.build().map_err(http::classify_send_error)
    }

    /// One request of a delivery, through [`http::exchange`] (traced for test records).
    async fn call(
        &self,
        ctx: &DeliveryContext,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, DestinationError> {
        let request = self.request(method, segments, query, body)?;
        http::exchange(&self.http, request, ctx).await
    }

    /// `PUT /v2/objects/{object}/records?matching_attribute=<attribute>` with the record.
    pub(crate) async fn assert(
        &self,
        ctx: &DeliveryContext,
        payload: &Payload,
    ) -> Result<RecordOutcome, DestinationError> {
        let attribute = &self.config.matching_attribute;
        let body = match actions::assert_body(attribute, payload) {
            Ok((_, body)) => body,
            Err(reason) => return Ok(RecordOutcome::Rejected { reason }),
        };
        let answer = self
            .call(
                ctx,
                Method::PUT,
                &["v2", "objects", &self.config.object, "records"],
                &[("matching_attribute", attribute.as_str())],
                Some(&body),
            )
            .await?;
        record_outcome(&answer)
    }

    /// `POST /v2/objects/{object}/records/query` with `{"filter": {<attribute>: <value>},
    /// "limit": 2}`.
    pub(crate) async fn find(
        &self,
        ctx: &DeliveryContext,
        value: &str,
    ) -> Result<Found, DestinationError> {
        let mut filter = serde_json::Map::new();
        filter.insert(self.config.matching_attribute.clone(), json!(value));
        let body = json!({"filter": filter, "limit": 2});
        let answer = self
            .call(
                ctx,
                Method::POST,
                &["v2", "objects", &self.config.object, "records", "query"],
                &[],
                Some(&body),
            )
            .await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        parse_query(&answer.body)
    }

    /// Deletes the record whose matching attribute holds the record's key: the query, then
    /// `DELETE /v2/objects/{object}/records/{record_id}`; nothing found (or 404) is gone.
    pub(crate) async fn delete(
        &self,
        ctx: &DeliveryContext,
        payload: &Payload,
    ) -> Result<RecordOutcome, DestinationError> {
        let value = match actions::delete_value(payload) {
            Ok(value) => value,
            Err(reason) => return Ok(RecordOutcome::Rejected { reason }),
        };
        let record_id = match self.find(ctx, &value).await? {
            Found::One(id) => id,
            Found::Nothing => return Ok(RecordOutcome::Accepted),
            Found::Many => {
                return Ok(RecordOutcome::Rejected {
                    reason: format!(
                        "several Attio {} records have '{value}' in {}; retl deletes only an unambiguous match",
                        self.config.object, self.config.matching_attribute
                    ),
                });
            }
        };
        let answer = self
            .call(
                ctx,
                Method::DELETE,
                &["v2", "objects", &self.config.object, "records", &record_id],
                &[],
                None,
            )
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(RecordOutcome::Accepted);
        }
        record_outcome(&answer)
    }

    /// `test()`: `GET /v2/self`, which describes the token and changes nothing; an inactive
    /// token is refused.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self.request(Method::GET, &["v2", "self"], &[], None)?;
        let answer = http::fetch(&self.http, request).await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        let me: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if me["active"] != json!(true) {
            return Err(DestinationError::Authentication {
                message: "Attio reports the access token as inactive (GET /v2/self); create a new one in Workspace settings > Developers".to_string(),
            });
        }
        Ok(format!(
            "Attio accepted the access token (GET /v2/self: workspace {}; nothing was written)",
            me["workspace_name"].as_str().unwrap_or("?")
        ))
    }
}

/// The match of a query answer: `{"data": [{"id": {"record_id"}}]}`.
///
/// # Errors
/// When the body is not such an answer (nothing is acknowledged).
pub(crate) fn parse_query(body: &[u8]) -> Result<Found, DestinationError> {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(records) = value["data"].as_array() else {
        return Err(DestinationError::Rejected {
            message: format!(
                "Attio answered a query without a data array: {}",
                http::truncate(&String::from_utf8_lossy(body), http::MAX_QUOTED_BODY)
            ),
        });
    };
    let ids: Vec<String> = records
        .iter()
        .filter_map(|r| r["id"]["record_id"].as_str().map(str::to_string))
        .collect();
    Ok(match ids.as_slice() {
        [] => Found::Nothing,
        [id] => Found::One(id.clone()),
        _ => Found::Many,
    })
}

/// Attio's error (`{"status_code", "type", "code", "message"}`) as `code: message`, or the
/// body.
pub(crate) fn error_text(answer: &Answer) -> String {
    let value: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    match (value["code"].as_str(), value["message"].as_str()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (None, Some(message)) => message.to_string(),
        _ => http::truncate(
            &String::from_utf8_lossy(&answer.body),
            http::MAX_QUOTED_BODY,
        ),
    }
}

/// The outcome of a write: 2xx accepted; client errors other than 401/403/408/413/429
/// reject the record with Attio's error; the rest are the errors of the request (a 429
/// waits for `Retry-After`, an HTTP date in Attio's answers).
pub(crate) fn record_outcome(answer: &Answer) -> Result<RecordOutcome, DestinationError> {
    record_api::outcome(answer, "Attio", error_text, Answer::error)
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: AttioAction,
    /// The destination's client.
    pub(crate) client: Arc<AttioClient>,
}

#[async_trait]
impl Action for BoundAction {
    fn spec(&self) -> &'static ActionSpec {
        self.spec
    }

    /// Delivers one record (Attio's assert takes one record per request); a larger batch is
    /// handed back as too large, so the engine splits it.
    async fn send(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let mut records = Vec::with_capacity(1);
        if let Some(payload) = record_api::single(batch, "Attio's record assert")? {
            records.push(match self.action {
                AttioAction::AssertRecord => self.client.assert(ctx, payload).await?,
                AttioAction::DeleteRecord => self.client.delete(ctx, payload).await?,
            });
        }
        Ok(BatchOutcome { records })
    }
}
