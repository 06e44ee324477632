//! The Marketo client: the OAuth token (fetched with the client credentials, cached, renewed
//! before it expires and on error 601/602), one leads sync per batch (a look-up and a delete
//! for deletes), Marketo's `success`/`errors`/`result` answers → outcomes, `test()`;
//! [`BoundAction`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use serde_json::{Value, json};

use super::actions::{self, MarketoAction};
use super::config::ValidConfig;
use crate::destinations::http;
use crate::destinations::record_api;

/// Marketo's documented limit of records per leads sync, delete and filter.
pub(crate) const MAX_LEADS: usize = 300;
/// The wait after error 606 (over 100 calls in 20 s): the length of the window.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(20);
/// The wait after error 615 (over 10 concurrent calls).
pub(crate) const CONCURRENCY_WAIT: Duration = Duration::from_secs(1);
/// A token this close to its expiry is renewed before use.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Token {
    value: String,
    expires: Instant,
}

/// Sends requests to one Marketo instance.
#[derive(Debug)]
pub(crate) struct MarketoClient {
    http: reqwest::Client,
    config: ValidConfig,
    token: Mutex<Option<Token>>,
}

impl MarketoClient {
    /// A client for this instance with this request timeout (no request is sent).
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(MarketoClient {
            http: http::client(timeout)?,
            config,
            token: Mutex::new(None),
        })
    }

    fn cached(&self) -> Option<String> {
        let guard = self
            .token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard
            .as_ref()
            .filter(|t| t.expires > Instant::now() + TOKEN_MARGIN)
            .map(|t| t.value.clone())
    }

    /// An access token: the cached one unless `renew`, else a new one from
    /// `POST /identity/oauth/token` (client credentials in the form body; never traced).
    async fn token(&self, renew: bool) -> Result<String, DestinationError> {
        if !renew && let Some(token) = self.cached() {
            return Ok(token);
        }
        let url = record_api::url(&self.config.base_url, &["identity", "oauth", "token"], &[])?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose()),
        ];
        // The form body is encoded as a query string is (application/x-www-form-urlencoded).
        let encoded = record_api::url(&self.config.base_url, &[], &form)?;
        let body = encoded.query().unwrap_or_default().to_string();
        let request = self
            .http
            .post(url)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .body(body)
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::fetch(&self.http, request).await?;
        let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if !answer.status.is_success() {
            if matches!(answer.status.as_u16(), 400 | 401) {
                return Err(DestinationError::Authentication {
                    message: format!(
                        "Marketo refused the client credentials: {} ({}); check client_id and client_secret",
                        parsed["error"].as_str().unwrap_or("error"),
                        parsed["error_description"]
                            .as_str()
                            .unwrap_or("no description")
                    ),
                });
            }
            return Err(answer.error());
        }
        let Some(value) = parsed["access_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(DestinationError::Authentication {
                message: "Marketo's identity endpoint answered without an access_token".to_string(),
            });
        };
        let lifetime = Duration::from_secs(parsed["expires_in"].as_u64().unwrap_or(0));
        let token = Token {
            value: value.to_string(),
            expires: Instant::now() + lifetime,
        };
        *self
            .token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token);
        Ok(value.to_string())
    }

    /// One REST call with the token: on error 601/602 (token invalid or expired) the token is
    /// renewed and the call sent once more. Returns the parsed `success: true` body.
    async fn call(
        &self,
        ctx: &DeliveryContext,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, DestinationError> {
        let mut renew = false;
        loop {
            let token = self.token(renew).await?;
            let url = record_api::url(&self.config.base_url, segments, query)?;
            let mut authorization =
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    DestinationError::Rejected {
                        message: "Marketo issued an access token that cannot be sent in a header"
                            .to_string(),
                    }
                })?;
            authorization.set_sensitive(true);
            let mut builder = self
                .http
                .request(method.clone(), url)
                .header(AUTHORIZATION, authorization)
                .header(ACCEPT, HeaderValue::from_static("application/json"));
            if let Some(body) = body {
                builder = builder
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(body.to_string());
            }
            let request = builder.build().map_err(http::classify_send_error)?;
            let answer = http::exchange(&self.http, request, ctx).await?;
            if !answer.status.is_success() {
                return Err(answer.error());
            }
            let parsed: Value = serde_json::from_slice(&answer.body).map_err(|e| {
                DestinationError::Rejected {
                    message: format!(
                        "Marketo answered {} with a body that is not JSON ({e}); nothing is acknowledged",
                        answer.status
                    ),
                }
            })?;
            match classify(&parsed) {
                Ok(()) => return Ok(parsed),
                Err(Failure::TokenExpired) if !renew => renew = true,
                Err(Failure::TokenExpired) => {
                    return Err(DestinationError::Authentication {
                        message: format!(
                            "Marketo refused a freshly issued access token: {}",
                            error_text(&parsed)
                        ),
                    });
                }
                Err(Failure::Error(error)) => return Err(error),
            }
        }
    }

    /// Sends one batch.
    pub(crate) async fn send(
        &self,
        action: MarketoAction,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        if batch.len() > MAX_LEADS {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} records in one request; Marketo takes at most {MAX_LEADS} (lower limits.batch_size)",
                    batch.len()
                ),
            });
        }
        match action {
            MarketoAction::UpsertLead => self.upsert(ctx, batch).await,
            MarketoAction::DeleteLead => self.delete(ctx, batch).await,
        }
    }

    async fn upsert(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let mut outcomes = vec![RecordOutcome::Accepted; batch.len()];
        let mut sent = Vec::new();
        let mut input = Vec::new();
        for (index, payload) in batch.iter().enumerate() {
            match actions::lead(&self.config.lookup_field, payload) {
                Ok(lead) => {
                    sent.push(index);
                    input.push(lead);
                }
                Err(reason) => outcomes[index] = RecordOutcome::Rejected { reason },
            }
        }
        if input.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let body = json!({
            "action": actions::sync_action(ctx.sync_mode),
            "lookupField": self.config.lookup_field,
            "input": input,
        });
        let answer = self
            .call(
                ctx,
                Method::POST,
                &["rest", "v1", "leads.json"],
                &[],
                Some(&body),
            )
            .await?;
        for (index, outcome) in sent.into_iter().zip(sync_outcomes(&answer, input.len())) {
            outcomes[index] = outcome;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    async fn delete(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let mut outcomes = vec![RecordOutcome::Accepted; batch.len()];
        let mut values: Vec<(usize, String)> = Vec::new();
        for (index, payload) in batch.iter().enumerate() {
            match actions::lookup_value(&payload.key, "the record's key") {
                Ok(value) => values.push((index, value)),
                Err(reason) => outcomes[index] = RecordOutcome::Rejected { reason },
            }
        }
        if values.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let lookup = self.config.lookup_field.as_str();
        let filter: Vec<&str> = values.iter().map(|(_, v)| v.as_str()).collect();
        let joined = filter.join(",");
        let fields = format!("id,{lookup}");
        let found = self
            .call(
                ctx,
                Method::GET,
                &["rest", "v1", "leads.json"],
                &[
                    ("filterType", lookup),
                    ("filterValues", joined.as_str()),
                    ("fields", fields.as_str()),
                ],
                None,
            )
            .await?;
        // Marketo id → the batch indexes whose value it holds.
        let mut owners: HashMap<i64, Vec<usize>> = HashMap::new();
        for lead in found["result"].as_array().into_iter().flatten() {
            let (Some(id), Some(value)) = (lead["id"].as_i64(), lead.get(lookup)) else {
                continue;
            };
            let value = event_fields_text(value);
            for (index, wanted) in &values {
                if wanted.eq_ignore_ascii_case(&value) {
                    owners.entry(id).or_default().push(*index);
                }
            }
        }
        if owners.is_empty() {
            // No lead holds any of the values: all already gone.
            return Ok(BatchOutcome { records: outcomes });
        }
        let mut ids: Vec<i64> = owners.keys().copied().collect();
        ids.sort_unstable();
        let input: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
        let answer = self
            .call(
                ctx,
                Method::POST,
                &["rest", "v1", "leads", "delete.json"],
                &[],
                Some(&json!({ "input": input })),
            )
            .await?;
        for (id, outcome) in ids.iter().zip(delete_outcomes(&answer, ids.len())) {
            for index in owners.get(id).into_iter().flatten() {
                outcomes[*index] = outcome.clone();
            }
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// `test()`: a token from the client credentials, then `GET /rest/v1/stats/usage.json`
    /// (today's API calls; reads only).
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let ctx = DeliveryContext {
            destination_id: retl_engine::id::DestinationId::new("test"),
            mapping_id: retl_engine::id::MappingId::new("test"),
            run_id: retl_engine::id::RunId::new("test"),
            sync_mode: None,
            trace: None,
        };
        let usage = self
            .call(
                &ctx,
                Method::GET,
                &["rest", "v1", "stats", "usage.json"],
                &[],
                None,
            )
            .await?;
        let total: u64 = usage["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["total"].as_u64())
            .sum();
        Ok(format!(
            "Marketo issued an access token for the client credentials (GET /rest/v1/stats/usage.json: {total} API calls today; nothing was written)"
        ))
    }
}

fn event_fields_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Why a `success: false` answer failed.
#[derive(Debug)]
enum Failure {
    /// 601/602: renew the token and send again.
    TokenExpired,
    /// Any other error code.
    Error(DestinationError),
}

/// Marketo's `errors` as `code: message; ...`.
pub(crate) fn error_text(body: &Value) -> String {
    let errors: Vec<String> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}: {}",
                e["code"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("(no message)")
            )
        })
        .collect();
    if errors.is_empty() {
        "no error given".to_string()
    } else {
        errors.join("; ")
    }
}

/// A body with `success: true` is fine; otherwise its error codes (sent with HTTP 200):
/// 601/602 → renew the token; 603 → authentication; 606 (over 100 calls in 20 s) and 615
/// (over 10 concurrent calls) → throttled; 607 (daily quota) and 611 (system error) →
/// transient; any other → the batch is rejected.
fn classify(body: &Value) -> Result<(), Failure> {
    if body["success"] == json!(true) {
        return Ok(());
    }
    let codes: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["code"].as_str())
        .collect();
    let text = error_text(body);
    let has = |code: &str| codes.contains(&code);
    let error = if has("601") || has("602") {
        return Err(Failure::TokenExpired);
    } else if has("603") {
        DestinationError::Authentication {
            message: format!("Marketo denied access: {text}; check the API-only user's role"),
        }
    } else if has("606") || has("615") {
        DestinationError::Transient {
            message: format!("Marketo throttled the call: {text}"),
            retry_after: Some(if has("606") {
                RATE_WINDOW
            } else {
                CONCURRENCY_WAIT
            }),
            throttled: true,
        }
    } else if has("607") || has("611") || has("604") || has("608") || has("713") {
        DestinationError::Transient {
            message: format!("Marketo could not serve the call now: {text}"),
            retry_after: None,
            throttled: false,
        }
    } else {
        DestinationError::Rejected {
            message: format!("Marketo refused the request: {text}"),
        }
    };
    Err(Failure::Error(error))
}

/// The reasons of a result entry as `code: message; ...`.
fn reasons(entry: &Value) -> String {
    let reasons: Vec<String> = entry["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}: {}",
                r["code"].as_str().unwrap_or("?"),
                r["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    reasons.join("; ")
}

/// The outcome of each sent lead from a leads sync's `result` (one entry per input, in order):
/// `created`/`updated` accepted, `skipped`/`failed` rejected with their reasons; a `result`
/// that does not match the input acknowledges nothing.
pub(crate) fn sync_outcomes(body: &Value, sent: usize) -> Vec<RecordOutcome> {
    let results = body["result"].as_array().cloned().unwrap_or_default();
    if results.len() != sent {
        return vec![
            RecordOutcome::Rejected {
                reason: format!(
                    "Marketo answered {} results for {sent} leads; nothing is acknowledged",
                    results.len()
                ),
            };
            sent
        ];
    }
    results
        .iter()
        .map(|entry| match entry["status"].as_str() {
            Some("created" | "updated") => RecordOutcome::Accepted,
            status => RecordOutcome::Rejected {
                reason: format!(
                    "Marketo {}: {}",
                    status.unwrap_or("unknown status"),
                    reasons(entry)
                ),
            },
        })
        .collect()
}

/// The outcome of each deleted id from a delete's `result` (in order): `deleted`, or skipped
/// with reason 1004 (lead not found), accepted; other reasons rejected.
pub(crate) fn delete_outcomes(body: &Value, sent: usize) -> Vec<RecordOutcome> {
    let results = body["result"].as_array().cloned().unwrap_or_default();
    if results.len() != sent {
        return vec![
            RecordOutcome::Rejected {
                reason: format!(
                    "Marketo answered {} results for {sent} deletes; nothing is acknowledged",
                    results.len()
                ),
            };
            sent
        ];
    }
    results
        .iter()
        .map(|entry| {
            let not_found = entry["reasons"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["code"] == json!("1004")));
            match entry["status"].as_str() {
                Some("deleted") => RecordOutcome::Accepted,
                _ if not_found => RecordOutcome::Accepted,
                status => RecordOutcome::Rejected {
                    reason: format!(
                        "Marketo {}: {}",
                        status.unwrap_or("unknown status"),
                        reasons(entry)
                    ),
                },
            }
        })
        .collect()
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: MarketoAction,
    /// The destination's client.
    pub(crate) client: Arc<MarketoClient>,
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
