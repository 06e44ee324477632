//! The HubSpot client: the requests of each action, the answer of a batch endpoint →
//! per-record outcomes, HubSpot's error bodies → [`DestinationError`]; [`BoundAction`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
    SyncMode,
};
use serde::Deserialize;
use serde_json::Value;

use super::actions::{self, Encoded, HubSpotAction, ObjectType};
use super::config::ValidConfig;
use crate::destinations::http::{self, Answer};

/// Sends requests to one HubSpot account.
#[derive(Debug)]
pub(crate) struct HubSpotClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl HubSpotClient {
    /// A client with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(HubSpotClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &ValidConfig {
        &self.config
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Request, DestinationError> {
        let url = format!(
            "{}{path}",
            self.config.base_url.as_str().trim_end_matches('/')
        );
        let mut builder = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.config.authorization.clone());
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|e| DestinationError::Rejected {
                message: format!("the batch could not be encoded as JSON: {e}"),
            })?;
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(bytes);
        }
        builder.build().map_err(http::classify_send_error)
    }

    /// `POST <path>` with a JSON body, through [`http::exchange`] (traced for test records).
    async fn post(
        &self,
        ctx: &DeliveryContext,
        path: &str,
        body: &Value,
    ) -> Result<Answer, DestinationError> {
        let request = self.request(Method::POST, path, Some(body))?;
        http::exchange(&self.http, request, ctx).await
    }

    /// `GET <path>` outside a delivery (test, field discovery).
    pub(crate) async fn get(&self, path: &str) -> Result<Answer, DestinationError> {
        let request = self.request(Method::GET, path, None)?;
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
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Writes added/updated records: one `POST /crm/v3/objects/{objectType}/batch/{upsert,
    /// update, create}`.
    pub(crate) async fn write(
        &self,
        object_type: ObjectType,
        id_property: &str,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let mode = ctx.sync_mode.unwrap_or(SyncMode::Upsert);
        let encoded = actions::encode_write(mode, id_property, batch);
        if encoded.sent.is_empty() {
            return Ok(finish(encoded.outcomes, Vec::new(), &[]));
        }
        let path = format!(
            "/crm/v3/objects/{}/batch/{}",
            object_type.path(),
            actions::write_endpoint(mode)
        );
        let answer = self.post(ctx, &path, &encoded.body).await?;
        if !answer.status.is_success() {
            return Err(error(&answer));
        }
        let sent_outcomes = parse_write(&answer.body, &encoded, id_property)?;
        Ok(finish(encoded.outcomes, sent_outcomes, &encoded.sent))
    }

    /// Deletes records: `POST .../batch/read` by the id property finds the record ids, then
    /// `POST .../batch/archive` archives those found (HubSpot archives by record id only). A
    /// key no record has is already gone: success.
    pub(crate) async fn delete(
        &self,
        object_type: ObjectType,
        id_property: &str,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let encoded = actions::encode_lookup(id_property, batch);
        if encoded.sent.is_empty() {
            return Ok(finish(encoded.outcomes, Vec::new(), &[]));
        }
        let read = format!(
            "/crm/v3/objects/{}/batch/read?archived=false",
            object_type.path()
        );
        let answer = self.post(ctx, &read, &encoded.body).await?;
        if !answer.status.is_success() {
            return Err(error(&answer));
        }
        let lookup = parse_lookup(&answer.body, &encoded, id_property)?;
        let found: Vec<String> = lookup.iter().filter_map(Found::object_id).collect();
        if !found.is_empty() {
            let archive = format!("/crm/v3/objects/{}/batch/archive", object_type.path());
            let answer = self
                .post(ctx, &archive, &actions::encode_archive(&found))
                .await?;
            if !answer.status.is_success() {
                return Err(error(&answer));
            }
        }
        let sent_outcomes = lookup
            .into_iter()
            .map(|found| match found {
                Found::Object(_) | Found::Gone => RecordOutcome::Accepted,
                Found::Error(reason) => RecordOutcome::Rejected { reason },
            })
            .collect();
        Ok(finish(encoded.outcomes, sent_outcomes, &encoded.sent))
    }
}

/// One outcome per record: the refused ones as decided, the sent ones from the answer.
fn finish(
    mut outcomes: Vec<Option<RecordOutcome>>,
    sent_outcomes: Vec<RecordOutcome>,
    sent: &[(usize, String)],
) -> BatchOutcome {
    for ((index, _), outcome) in sent.iter().zip(sent_outcomes) {
        if let Some(slot) = outcomes.get_mut(*index) {
            *slot = Some(outcome);
        }
    }
    BatchOutcome {
        records: outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| RecordOutcome::Rejected {
                    reason: "HubSpot's answer did not cover this record".to_string(),
                })
            })
            .collect(),
    }
}

/// The body of a batch answer (`BatchResponse...WithErrors`): only what retl reads.
#[derive(Debug, Default, Deserialize)]
struct BatchResponse {
    #[serde(default)]
    results: Vec<Value>,
    #[serde(default)]
    errors: Vec<BatchError>,
}

/// One entry of `errors`: `{"status", "category", "message", "context": {name: [values]}}`.
#[derive(Debug, Deserialize)]
struct BatchError {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    context: BTreeMap<String, Value>,
}

impl BatchError {
    fn reason(&self) -> String {
        format!(
            "HubSpot {}: {}",
            self.category.as_deref().unwrap_or("error"),
            self.message.as_deref().unwrap_or("(no message)")
        )
    }

    /// The strings of `context[name]` (HubSpot sends lists of strings).
    fn context(&self, name: &str) -> Vec<String> {
        match self.context.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }
}

fn parse_batch(body: &[u8]) -> Result<BatchResponse, DestinationError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(BatchResponse::default());
    }
    serde_json::from_slice(body).map_err(|e| DestinationError::Rejected {
        message: format!(
            "HubSpot answered 2xx with an unreadable body ({e}): {}",
            http::truncate(&String::from_utf8_lossy(body), http::MAX_QUOTED_BODY)
        ),
    })
}

/// Whether two id property values are the same record (emails are case-insensitive).
fn same_id(id_property: &str, a: &str, b: &str) -> bool {
    a == b || (id_property == "email" && a.eq_ignore_ascii_case(b))
}

/// The inputs an error names: by `objectWriteTraceId` (the input's position), else by the id
/// values in `ids`/`id`.
fn inputs_named(error: &BatchError, sent: &[(usize, String)], id_property: &str) -> Vec<usize> {
    let traces: Vec<usize> = error
        .context("objectWriteTraceId")
        .iter()
        .filter_map(|t| t.parse::<usize>().ok())
        .filter(|t| *t < sent.len())
        .collect();
    if !traces.is_empty() {
        return traces;
    }
    let ids: Vec<String> = [error.context("ids"), error.context("id")].concat();
    (0..sent.len())
        .filter(|i| ids.iter().any(|id| same_id(id_property, &sent[*i].1, id)))
        .collect()
}

/// The outcome of each sent input of a write answered 2xx (200/201, or 207 with `errors`).
///
/// An error that names no input (no `objectWriteTraceId`, no known id) leaves HubSpot's
/// answer about the other records unknown, so they are rejected rather than acknowledged;
/// the same holds when fewer results than inputs come back.
pub(crate) fn parse_write(
    body: &[u8],
    encoded: &Encoded,
    id_property: &str,
) -> Result<Vec<RecordOutcome>, DestinationError> {
    let response = parse_batch(body)?;
    let mut outcomes = vec![RecordOutcome::Accepted; encoded.sent.len()];
    let mut failed = vec![false; encoded.sent.len()];
    let mut unattributed = Vec::new();
    for error in &response.errors {
        let named = inputs_named(error, &encoded.sent, id_property);
        if named.is_empty() {
            unattributed.push(error.reason());
        }
        for i in named {
            failed[i] = true;
            outcomes[i] = RecordOutcome::Rejected {
                reason: error.reason(),
            };
        }
    }
    let failures = failed.iter().filter(|f| **f).count();
    if response.results.len() + failures < encoded.sent.len() && unattributed.is_empty() {
        unattributed.push(format!(
            "{} results and {failures} errors for {} inputs",
            response.results.len(),
            encoded.sent.len()
        ));
    }
    if !unattributed.is_empty() {
        let reason = format!(
            "HubSpot's answer does not say whether this record was written ({}); it is sent again by the next run",
            http::truncate(&unattributed.join("; "), http::MAX_QUOTED_BODY)
        );
        for (i, outcome) in outcomes.iter_mut().enumerate() {
            if !failed[i] {
                *outcome = RecordOutcome::Rejected {
                    reason: reason.clone(),
                };
            }
        }
    }
    Ok(outcomes)
}

/// What the lookup of a deleted record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// The record with this id: to archive.
    Object(String),
    /// No record has this value: already deleted.
    Gone,
    /// HubSpot refused the lookup of this record.
    Error(String),
}

impl Found {
    fn object_id(&self) -> Option<String> {
        match self {
            Found::Object(id) => Some(id.clone()),
            _ => None,
        }
    }
}

/// The answer of batch/read by the id property: the record id of each sent key, or `Gone`
/// (HubSpot lists missing values as `OBJECT_NOT_FOUND` errors, or leaves them out).
pub(crate) fn parse_lookup(
    body: &[u8],
    encoded: &Encoded,
    id_property: &str,
) -> Result<Vec<Found>, DestinationError> {
    let response = parse_batch(body)?;
    let mut found = vec![Found::Gone; encoded.sent.len()];
    let mut by_value: HashMap<String, String> = HashMap::new();
    for result in &response.results {
        let object_id = result.get("id").and_then(Value::as_str);
        let value = result
            .get("properties")
            .and_then(|p| p.get(id_property))
            .and_then(Value::as_str);
        if let (Some(object_id), Some(value)) = (object_id, value) {
            by_value.insert(value.to_string(), object_id.to_string());
        }
    }
    for (i, (_, id)) in encoded.sent.iter().enumerate() {
        let hit = by_value
            .iter()
            .find(|(value, _)| same_id(id_property, value, id));
        if let Some((_, object_id)) = hit {
            found[i] = Found::Object(object_id.clone());
        }
    }
    for error in &response.errors {
        if error.category.as_deref() == Some("OBJECT_NOT_FOUND") {
            continue;
        }
        for i in inputs_named(error, &encoded.sent, id_property) {
            if found[i] == Found::Gone {
                found[i] = Found::Error(error.reason());
            }
        }
    }
    Ok(found)
}

/// HubSpot's error body: `{"status":"error","message","correlationId","category"}`, and for
/// 429 also `errorType: "RATE_LIMIT"` and `policyName` (`TEN_SECONDLY_ROLLING`, `DAILY`, ...).
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default, rename = "policyName")]
    policy_name: Option<String>,
    #[serde(default, rename = "correlationId")]
    correlation_id: Option<String>,
}

/// The error a non-2xx answer means, with HubSpot's category, message and (for 429) policy.
pub(crate) fn error(answer: &Answer) -> DestinationError {
    let parsed: ErrorBody = serde_json::from_slice(&answer.body).unwrap_or_default();
    let Some(message) = parsed.message.as_deref() else {
        return answer.error();
    };
    let mut summary = format!(
        "{}: {message}",
        parsed
            .category
            .as_deref()
            .or(parsed.policy_name.as_deref())
            .unwrap_or("error")
    );
    if let Some(id) = &parsed.correlation_id {
        summary.push_str(&format!(" (correlationId {id})"));
    }
    match (answer.status, parsed.policy_name.as_deref()) {
        (StatusCode::TOO_MANY_REQUESTS, Some("DAILY")) => summary.push_str(
            "; the account's daily API limit is used up (it resets at midnight in the account's time zone)",
        ),
        (StatusCode::TOO_MANY_REQUESTS, Some(policy)) => {
            summary.push_str(&format!("; rate limit policy {policy}"))
        }
        (StatusCode::FORBIDDEN, _) => summary.push_str(
            "; the private app may lack a scope (crm.objects.<type>.write, crm.schemas.<type>.read)",
        ),
        _ => {}
    }
    http::classify_status(answer.status, &answer.headers, &summary)
}

/// An action bound to a destination's client and its id property.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: HubSpotAction,
    /// The unique property records are matched by.
    pub(crate) id_property: String,
    /// The destination's client.
    pub(crate) client: Arc<HubSpotClient>,
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
            HubSpotAction::Upsert(object_type) => {
                self.client
                    .write(object_type, &self.id_property, ctx, batch)
                    .await
            }
            HubSpotAction::Delete(object_type) => {
                self.client
                    .delete(object_type, &self.id_property, ctx, batch)
                    .await
            }
        }
    }
}
