//! The Salesforce client: authenticated calls (a new token and one retry on
//! `INVALID_SESSION_ID`), the requests of each mode, collection results → per-record outcomes,
//! Salesforce's error bodies → [`DestinationError`]; [`BoundAction`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
    SyncMode,
};
use serde::Deserialize;
use serde_json::Value;

use super::actions::{self, Prepared, SalesforceAction};
use super::auth::{self, TokenSource};
use super::config::ValidConfig;
use crate::destinations::http::{self, Answer};

/// How long to wait after `REQUEST_LIMIT_EXCEEDED` when no `Retry-After` came (Salesforce
/// documents none).
pub(crate) const LIMIT_WAIT: Duration = Duration::from_secs(2);

/// Sends requests to one org.
#[derive(Debug)]
pub(crate) struct SalesforceClient {
    http: reqwest::Client,
    config: ValidConfig,
    tokens: TokenSource,
}

/// Salesforce's error entry: `[{"message": "...", "errorCode": "..."}]`.
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(default, rename = "errorCode")]
    error_code: String,
}

fn api_errors(body: &[u8]) -> Vec<ApiError> {
    serde_json::from_slice(body).unwrap_or_default()
}

/// The error a non-2xx answer means, with Salesforce's `errorCode` and message.
pub(crate) fn error(answer: &Answer) -> DestinationError {
    let errors = api_errors(&answer.body);
    if errors.is_empty() {
        return answer.error();
    }
    let summary = errors
        .iter()
        .map(|e| format!("{}: {}", e.error_code, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    if errors
        .iter()
        .any(|e| e.error_code == "REQUEST_LIMIT_EXCEEDED")
    {
        return DestinationError::Transient {
            message: format!(
                "HTTP {}: {summary}; the org's API request limit is reached",
                answer.status.as_u16()
            ),
            retry_after: Some(
                http::retry_after(&answer.headers, SystemTime::now()).unwrap_or(LIMIT_WAIT),
            ),
            throttled: true,
        };
    }
    http::classify_status(answer.status, &answer.headers, &summary)
}

fn session_expired(answer: &Answer) -> bool {
    answer.status == StatusCode::UNAUTHORIZED
        && api_errors(&answer.body)
            .iter()
            .any(|e| e.error_code == "INVALID_SESSION_ID")
}

/// One entry of a collection's results: `{"id", "success", "errors": [{"statusCode",
/// "message", "fields"}]}`.
#[derive(Debug, Deserialize)]
struct SaveResult {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<SaveError>,
}

#[derive(Debug, Deserialize)]
struct SaveError {
    #[serde(default, rename = "statusCode")]
    status_code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<String>,
}

/// Status codes meaning a delete's record is already gone.
const GONE: [&str; 2] = ["ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"];

/// The outcome of each sent record from a collection's results (same order as the records).
/// `deleting`: an error saying the record is already gone is success.
pub(crate) fn parse_results(
    body: &[u8],
    sent: usize,
    deleting: bool,
) -> Result<Vec<RecordOutcome>, DestinationError> {
    let results: Vec<SaveResult> =
        serde_json::from_slice(body).map_err(|e| DestinationError::Rejected {
            message: format!(
                "Salesforce answered 200 with unreadable results ({e}): {}",
                http::truncate(&String::from_utf8_lossy(body), http::MAX_QUOTED_BODY)
            ),
        })?;
    if results.len() != sent {
        let reason = format!(
            "Salesforce answered {} results for {sent} records, so no record's result is known; it is sent again by the next run",
            results.len()
        );
        return Ok(vec![RecordOutcome::Rejected { reason }; sent]);
    }
    Ok(results
        .into_iter()
        .map(|r| {
            if r.success
                || (deleting
                    && r.errors
                        .iter()
                        .any(|e| GONE.contains(&e.status_code.as_str())))
            {
                return RecordOutcome::Accepted;
            }
            let reason = r
                .errors
                .iter()
                .map(|e| {
                    let fields = if e.fields.is_empty() {
                        String::new()
                    } else {
                        format!(" (fields: {})", e.fields.join(", "))
                    };
                    format!("{}: {}{fields}", e.status_code, e.message)
                })
                .collect::<Vec<_>>()
                .join("; ");
            RecordOutcome::Rejected {
                reason: if reason.is_empty() {
                    "Salesforce did not save the record".to_string()
                } else {
                    reason
                },
            }
        })
        .collect())
}

/// One outcome per record: the refused ones as decided, the sent ones from the answer.
fn finish(prepared: Prepared, sent_outcomes: Vec<RecordOutcome>) -> BatchOutcome {
    let mut outcomes = prepared.outcomes;
    for ((index, _, _), outcome) in prepared.sent.iter().zip(sent_outcomes) {
        if let Some(slot) = outcomes.get_mut(*index) {
            *slot = Some(outcome);
        }
    }
    BatchOutcome {
        records: outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| RecordOutcome::Rejected {
                    reason: "Salesforce's answer did not cover this record".to_string(),
                })
            })
            .collect(),
    }
}

impl SalesforceClient {
    /// A client with this request timeout (no network access).
    pub(crate) fn new(
        config: ValidConfig,
        flow: auth::Flow,
        timeout: Duration,
    ) -> Result<Self, DestinationError> {
        Ok(SalesforceClient {
            http: http::client(timeout)?,
            tokens: TokenSource::new(config.login_url.clone(), flow),
            config,
        })
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &ValidConfig {
        &self.config
    }

    /// `/services/data/vNN.N`.
    fn data(&self) -> String {
        format!("/services/data/{}", self.config.api_version)
    }

    /// One authenticated request; on `401 INVALID_SESSION_ID` a new token is fetched and the
    /// request sent once more. Traced through [`http::exchange`] when `ctx` is given.
    async fn call(
        &self,
        ctx: Option<&DeliveryContext>,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Answer, DestinationError> {
        let mut rejected: Option<String> = None;
        for attempt in 0..2 {
            let token = self.tokens.token(&self.http, rejected.as_deref()).await?;
            let base = self
                .config
                .instance_url
                .as_deref()
                .unwrap_or(&token.instance_url);
            let mut builder = self
                .http
                .request(method.clone(), format!("{base}{path_and_query}"))
                .header(AUTHORIZATION, format!("Bearer {}", token.access_token));
            if let Some(body) = body {
                let bytes = serde_json::to_vec(body).map_err(|e| DestinationError::Rejected {
                    message: format!("the batch could not be encoded as JSON: {e}"),
                })?;
                builder = builder.header(CONTENT_TYPE, "application/json").body(bytes);
            }
            let request = builder.build().map_err(http::classify_send_error)?;
            let answer = match ctx {
                Some(ctx) => http::exchange(&self.http, request, ctx).await?,
                None => {
                    let response = self
                        .http
                        .execute(request)
                        .await
                        .map_err(http::classify_send_error)?;
                    let status = response.status();
                    let headers = response.headers().clone();
                    let body = response
                        .bytes()
                        .await
                        .map_err(http::classify_send_error)?
                        .to_vec();
                    Answer {
                        status,
                        headers,
                        body,
                    }
                }
            };
            if attempt == 0 && session_expired(&answer) {
                rejected = Some(token.access_token);
                continue;
            }
            return Ok(answer);
        }
        Err(DestinationError::Authentication {
            message: "Salesforce refused a freshly issued token (INVALID_SESSION_ID); check the connected app's policies and the user's API access".to_string(),
        })
    }

    /// A call whose non-2xx answer is an error.
    pub(crate) async fn call_ok(
        &self,
        ctx: Option<&DeliveryContext>,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Answer, DestinationError> {
        let answer = self.call(ctx, method, path_and_query, body).await?;
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(error(&answer))
        }
    }

    /// Salesforce record ids by external id value: `GET .../query?q=SELECT Id, <ext> FROM
    /// <object> WHERE <ext> IN (...)`.
    async fn lookup(
        &self,
        ctx: &DeliveryContext,
        values: &[&str],
    ) -> Result<HashMap<String, String>, DestinationError> {
        let config = &self.config;
        let soql = actions::lookup_query(&config.object, &config.external_id_field, values);
        let path = format!("{}/query?q={}", self.data(), auth::encode_component(&soql));
        let answer = self.call_ok(Some(ctx), Method::GET, &path, None).await?;
        let parsed: Value =
            serde_json::from_slice(&answer.body).map_err(|e| DestinationError::Rejected {
                message: format!("Salesforce's query answer could not be read: {e}"),
            })?;
        let mut ids = HashMap::new();
        for record in parsed["records"].as_array().into_iter().flatten() {
            let value = match &record[&config.external_id_field] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if let Some(id) = record["Id"].as_str() {
                ids.insert(value, id.to_string());
            }
        }
        Ok(ids)
    }

    /// Writes added/updated records in the mapping's mode (one collection request; update
    /// first looks the record ids up).
    pub(crate) async fn write(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let config = &self.config;
        let prepared = actions::prepare_writes(&config.external_id_field, batch);
        if prepared.sent.is_empty() {
            return Ok(finish(prepared, Vec::new()));
        }
        let collection = format!("{}/composite/sobjects", self.data());
        let outcomes = match ctx.sync_mode.unwrap_or(SyncMode::Upsert) {
            SyncMode::Create => {
                let records = prepared
                    .sent
                    .iter()
                    .map(|(_, _, f)| actions::sobject(&config.object, f, None))
                    .collect();
                let answer = self
                    .call_ok(
                        Some(ctx),
                        Method::POST,
                        &collection,
                        Some(&actions::collection(records)),
                    )
                    .await?;
                parse_results(&answer.body, prepared.sent.len(), false)?
            }
            SyncMode::Update => {
                let values: Vec<&str> = prepared.sent.iter().map(|(_, v, _)| v.as_str()).collect();
                let ids = self.lookup(ctx, &values).await?;
                let mut records = Vec::new();
                let mut outcomes = Vec::new();
                for (_, value, fields) in &prepared.sent {
                    match ids.get(value) {
                        Some(id) => {
                            let mut fields = fields.clone();
                            fields.remove(&config.external_id_field);
                            records.push(actions::sobject(&config.object, &fields, Some(id)));
                            outcomes.push(None);
                        }
                        None => outcomes.push(Some(RecordOutcome::Rejected {
                            reason: format!(
                                "no {} has {} = {value} (update-only mode does not create records)",
                                config.object, config.external_id_field
                            ),
                        })),
                    }
                }
                let mut results = Vec::new().into_iter();
                if !records.is_empty() {
                    let n = records.len();
                    let answer = self
                        .call_ok(
                            Some(ctx),
                            Method::PATCH,
                            &collection,
                            Some(&actions::collection(records)),
                        )
                        .await?;
                    results = parse_results(&answer.body, n, false)?.into_iter();
                }
                outcomes
                    .into_iter()
                    .map(|o| {
                        o.or_else(|| results.next())
                            .unwrap_or(RecordOutcome::Rejected {
                                reason: "no result".to_string(),
                            })
                    })
                    .collect()
            }
            _ => {
                let records = prepared
                    .sent
                    .iter()
                    .map(|(_, _, f)| actions::sobject(&config.object, f, None))
                    .collect();
                let path = format!(
                    "{collection}/{}/{}",
                    config.object, config.external_id_field
                );
                let answer = self
                    .call_ok(
                        Some(ctx),
                        Method::PATCH,
                        &path,
                        Some(&actions::collection(records)),
                    )
                    .await?;
                parse_results(&answer.body, prepared.sent.len(), false)?
            }
        };
        Ok(finish(prepared, outcomes))
    }

    /// Deletes records: their ids are looked up by external id (SOQL), then
    /// `DELETE .../composite/sobjects?ids=...&allOrNone=false`. A key no record has, and an id
    /// answered `ENTITY_IS_DELETED` / `INVALID_CROSS_REFERENCE_KEY`, is already gone: success.
    pub(crate) async fn delete(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let prepared = actions::prepare_deletes(batch);
        if prepared.sent.is_empty() {
            return Ok(finish(prepared, Vec::new()));
        }
        let values: Vec<&str> = prepared.sent.iter().map(|(_, v, _)| v.as_str()).collect();
        let ids = self.lookup(ctx, &values).await?;
        let found: Vec<&String> = prepared
            .sent
            .iter()
            .filter_map(|(_, v, _)| ids.get(v))
            .collect();
        let mut results = Vec::new().into_iter();
        if !found.is_empty() {
            let list: Vec<&str> = found.iter().map(|s| s.as_str()).collect();
            let path = format!(
                "{}/composite/sobjects?ids={}&allOrNone=false",
                self.data(),
                list.join(",")
            );
            let answer = self.call_ok(Some(ctx), Method::DELETE, &path, None).await?;
            results = parse_results(&answer.body, found.len(), true)?.into_iter();
        }
        let outcomes = prepared
            .sent
            .iter()
            .map(|(_, v, _)| match ids.get(v) {
                Some(_) => results.next().unwrap_or(RecordOutcome::Rejected {
                    reason: "no result".to_string(),
                }),
                None => RecordOutcome::Accepted,
            })
            .collect();
        Ok(finish(prepared, outcomes))
    }
}

/// An action bound to a destination's client.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: SalesforceAction,
    /// The destination's client.
    pub(crate) client: Arc<SalesforceClient>,
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
            SalesforceAction::Upsert => self.client.write(ctx, batch).await,
            SalesforceAction::Delete => self.client.delete(ctx, batch).await,
        }
    }
}
