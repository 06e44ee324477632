//! The Pipedrive client: per record a search by the match field, then an add, update or
//! delete; Pipedrive's answers → outcomes and [`DestinationError`]s, `test()`;
//! [`BoundAction`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use serde_json::Value;

use super::actions::{self, Object, PipedriveAction};
use super::config::{MatchField, ValidConfig};
use crate::destinations::http::{self, Answer};
use crate::destinations::record_api;

/// Sends requests to one Pipedrive company.
#[derive(Debug)]
pub(crate) struct PipedriveClient {
    http: reqwest::Client,
    config: ValidConfig,
}

/// What a search by the match field found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Exactly one record, by its Pipedrive id.
    One(String),
    /// None.
    Nothing,
    /// More than one: the match is ambiguous.
    Many,
}

impl PipedriveClient {
    /// A client for this company with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(PipedriveClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// The match field of an object type.
    pub(crate) fn matching(&self, object: Object) -> &MatchField {
        match object {
            Object::Persons => &self.config.person_match,
            Object::Organizations => &self.config.organization_match,
        }
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
            .header(
                HeaderName::from_static("x-api-token"),
                self.config.api_token.clone(),
            )
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

    /// `GET /v1/{object}/search?term=<value>&fields=<field>&exact_match=true&limit=2`.
    pub(crate) async fn search(
        &self,
        ctx: &DeliveryContext,
        object: Object,
        value: &str,
    ) -> Result<Found, DestinationError> {
        let matching = self.matching(object);
        let answer = self
            .call(
                ctx,
                Method::GET,
                &["v1", object.path(), "search"],
                &[
                    ("term", value),
                    ("fields", matching.search),
                    ("exact_match", "true"),
                    ("limit", "2"),
                ],
                None,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(error(&answer));
        }
        parse_search(&answer.body)
    }

    /// Delivers one added or updated record: the search, then `PUT /v1/{object}/{id}` when
    /// one record matches or `POST /v1/{object}` when none does; several matches reject it.
    pub(crate) async fn upsert(
        &self,
        object: Object,
        ctx: &DeliveryContext,
        payload: &Payload,
    ) -> Result<RecordOutcome, DestinationError> {
        let (value, body) = match actions::record(self.matching(object), payload) {
            Ok(record) => record,
            Err(reason) => return Ok(RecordOutcome::Rejected { reason }),
        };
        let answer = match self.search(ctx, object, &value).await? {
            Found::One(id) => {
                self.call(
                    ctx,
                    Method::PUT,
                    &["v1", object.path(), &id],
                    &[],
                    Some(&body),
                )
                .await?
            }
            Found::Nothing => {
                self.call(ctx, Method::POST, &["v1", object.path()], &[], Some(&body))
                    .await?
            }
            Found::Many => return Ok(ambiguous(object, self.matching(object), &value)),
        };
        record_outcome(&answer)
    }

    /// Deletes the record whose match value is the record's key: the search, then
    /// `DELETE /v1/{object}/{id}`; nothing found (or a 404) is already gone.
    pub(crate) async fn delete(
        &self,
        object: Object,
        ctx: &DeliveryContext,
        payload: &Payload,
    ) -> Result<RecordOutcome, DestinationError> {
        let value = match actions::delete_value(payload) {
            Ok(value) => value,
            Err(reason) => return Ok(RecordOutcome::Rejected { reason }),
        };
        let id = match self.search(ctx, object, &value).await? {
            Found::One(id) => id,
            Found::Nothing => return Ok(RecordOutcome::Accepted),
            Found::Many => return Ok(ambiguous(object, self.matching(object), &value)),
        };
        let answer = self
            .call(ctx, Method::DELETE, &["v1", object.path(), &id], &[], None)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(RecordOutcome::Accepted);
        }
        record_outcome(&answer)
    }

    /// `test()`: `GET /v1/users/me`, which reads the token's user and changes nothing.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self.request(Method::GET, &["v1", "users", "me"], &[], None)?;
        let answer = http::fetch(&self.http, request).await?;
        if !answer.status.is_success() {
            return Err(error(&answer));
        }
        let me: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let data = &me["data"];
        Ok(format!(
            "Pipedrive accepted the API token (GET /v1/users/me: {} of {}; nothing was written)",
            data["email"].as_str().unwrap_or("?"),
            data["company_name"].as_str().unwrap_or("?")
        ))
    }
}

fn ambiguous(object: Object, matching: &MatchField, value: &str) -> RecordOutcome {
    RecordOutcome::Rejected {
        reason: format!(
            "several Pipedrive {} have '{value}' in {} (the match field '{}'); retl updates or deletes only an unambiguous match",
            object.path(),
            matching.search,
            matching.key
        ),
    }
}

/// The match of a search answer: `{"success": true, "data": {"items": [{"item": {"id"}}]}}`.
///
/// # Errors
/// When the body is not such an answer (nothing is acknowledged).
pub(crate) fn parse_search(body: &[u8]) -> Result<Found, DestinationError> {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(items) = value["data"]["items"].as_array() else {
        return Err(DestinationError::Rejected {
            message: format!(
                "Pipedrive answered a search without data.items: {}",
                http::truncate(&String::from_utf8_lossy(body), http::MAX_QUOTED_BODY)
            ),
        });
    };
    let ids: Vec<String> = items
        .iter()
        .filter_map(|i| match &i["item"]["id"] {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
        .collect();
    Ok(match ids.as_slice() {
        [] => Found::Nothing,
        [id] => Found::One(id.clone()),
        _ => Found::Many,
    })
}

/// Pipedrive's error of an answer (`{"success": false, "error", "error_info"}`), or its body.
pub(crate) fn error_text(answer: &Answer) -> String {
    let value: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    match value["error"].as_str() {
        Some(error) => match value["error_info"].as_str() {
            Some(info) => format!("{error} ({info})"),
            None => error.to_string(),
        },
        None => http::truncate(
            &String::from_utf8_lossy(&answer.body),
            http::MAX_QUOTED_BODY,
        ),
    }
}

/// The outcome of a write: 2xx accepted; client errors other than 401/403/408/413/429
/// reject the record with Pipedrive's error; the rest are the errors of the request.
pub(crate) fn record_outcome(answer: &Answer) -> Result<RecordOutcome, DestinationError> {
    record_api::outcome(answer, "Pipedrive", error_text, error)
}

/// The error of a non-2xx answer; a 429 without `Retry-After` waits `x-ratelimit-reset`
/// seconds (the rest of Pipedrive's 2-second window).
pub(crate) fn error(answer: &Answer) -> DestinationError {
    match answer.error() {
        DestinationError::Transient {
            message,
            retry_after: None,
            throttled: true,
        } => DestinationError::Transient {
            retry_after: answer
                .headers
                .get("x-ratelimit-reset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64),
            message,
            throttled: true,
        },
        other => other,
    }
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: PipedriveAction,
    /// The destination's client.
    pub(crate) client: Arc<PipedriveClient>,
}

#[async_trait]
impl Action for BoundAction {
    fn spec(&self) -> &'static ActionSpec {
        self.spec
    }

    /// Delivers one record (Pipedrive's persons and organizations endpoints take one record
    /// per request); a larger batch is handed back as too large, so the engine splits it.
    async fn send(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let mut records = Vec::with_capacity(1);
        if let Some(payload) =
            record_api::single(batch, "Pipedrive's persons and organizations endpoints")?
        {
            records.push(match self.action {
                PipedriveAction::Upsert(object) => self.client.upsert(object, ctx, payload).await?,
                PipedriveAction::Delete(object) => self.client.delete(object, ctx, payload).await?,
            });
        }
        Ok(BatchOutcome { records })
    }
}
