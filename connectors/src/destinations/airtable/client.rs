//! The Airtable client: upserts (one `PATCH` per batch), deletes (a lookup `GET`, then one
//! `DELETE`), `test()`, and the classification of Airtable's answers; [`BoundAction`], an
//! action bound to it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use serde::Deserialize;
use serde_json::Value;

use super::actions::{self, AirtableAction, MAX_RECORDS};
use super::config::ValidConfig;
use crate::destinations::http::{self, Answer};

/// How long Airtable asks a client to wait after a 429
/// (<https://airtable.com/developers/web/api/rate-limits>), when the answer has no
/// `Retry-After`.
pub(crate) const THROTTLE_WAIT: Duration = Duration::from_secs(30);

/// Talks to one Airtable table.
#[derive(Debug)]
pub(crate) struct AirtableClient {
    http: reqwest::Client,
    config: ValidConfig,
}

/// A page of `GET /v0/{baseId}/{table}`.
#[derive(Debug, Deserialize)]
struct ListPage {
    #[serde(default)]
    records: Vec<ListedRecord>,
    #[serde(default)]
    offset: Option<String>,
}

/// One listed record.
#[derive(Debug, Deserialize)]
struct ListedRecord {
    id: String,
    #[serde(default)]
    fields: BTreeMap<String, Value>,
}

/// The answer of `DELETE /v0/{baseId}/{table}`.
#[derive(Debug, Deserialize)]
struct Deleted {
    #[serde(default)]
    records: Vec<DeletedRecord>,
}

/// One deleted record.
#[derive(Debug, Deserialize)]
struct DeletedRecord {
    id: String,
    #[serde(default)]
    deleted: bool,
}

impl AirtableClient {
    /// A client for this table with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(AirtableClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// One request with the token.
    fn request(
        &self,
        method: Method,
        url: reqwest::Url,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Request, DestinationError> {
        let mut token =
            HeaderValue::from_str(&format!("Bearer {}", self.config.access_token.expose()))
                .map_err(|_| DestinationError::InvalidConfig {
                    field: "access_token".to_string(),
                    message: "not a valid HTTP header value".to_string(),
                })?;
        token.set_sensitive(true);
        let mut builder = self.http.request(method, url).header(AUTHORIZATION, token);
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        builder.build().map_err(http::classify_send_error)
    }

    /// One request of a delivery; the answer whatever its status.
    async fn call(
        &self,
        method: Method,
        url: reqwest::Url,
        body: Option<Vec<u8>>,
        ctx: &DeliveryContext,
    ) -> Result<Answer, DestinationError> {
        let request = self.request(method, url, body)?;
        http::exchange(&self.http, request, ctx).await
    }

    /// Lists at most one record: checks the token, the base and the table without changing
    /// anything.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let mut url = self.config.table_url.clone();
        url.query_pairs_mut()
            .append_pair("maxRecords", "1")
            .append_pair("pageSize", "1");
        let request = self.request(Method::GET, url, None)?;
        let answer = http::fetch(&self.http, request).await?;
        if !answer.status.is_success() {
            return Err(error(&answer));
        }
        Ok("listed at most one record of the table: the token can read the base and the table (nothing was written)".to_string())
    }

    /// Upserts a batch in one `PATCH` with `performUpsert`.
    pub(crate) async fn upsert(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        if batch.len() > MAX_RECORDS {
            return Err(actions::too_many(batch.len()));
        }
        let body =
            actions::upsert_body(&self.config.merge_field, self.config.typecast, batch).to_string();
        let answer = self
            .call(
                Method::PATCH,
                self.config.table_url.clone(),
                Some(body.into_bytes()),
                ctx,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(error(&answer));
        }
        // Airtable applies a request whole (one invalid record fails it with 422), so a 2xx
        // means every record was written; `records` has one entry per record sent.
        let written = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("records").and_then(Value::as_array).map(Vec::len));
        if written != Some(batch.len()) {
            return Err(DestinationError::Rejected {
                message: format!(
                    "Airtable answered {} without one record per record sent ({} sent): {}",
                    answer.status,
                    batch.len(),
                    http::truncate(
                        &String::from_utf8_lossy(&answer.body),
                        http::MAX_QUOTED_BODY
                    )
                ),
            });
        }
        Ok(BatchOutcome::all_accepted(batch.len()))
    }

    /// Deletes a batch: finds the records holding the keys in the merge field (`GET` with
    /// `filterByFormula`), then deletes them in one `DELETE`. A key no record holds is already
    /// gone (accepted); a key several records hold is rejected (which one is meant?).
    pub(crate) async fn delete(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        if batch.len() > MAX_RECORDS {
            return Err(actions::too_many(batch.len()));
        }
        let merge = &self.config.merge_field;
        let keys: Vec<&Value> = batch.iter().map(|p| &p.key).collect();
        let mut url = self.config.table_url.clone();
        url.query_pairs_mut()
            .append_pair("filterByFormula", &actions::lookup_formula(merge, &keys))
            .append_pair("fields[]", merge)
            .append_pair("pageSize", "100");
        let answer = self.call(Method::GET, url, None, ctx).await?;
        if !answer.status.is_success() {
            return Err(error(&answer));
        }
        let page: ListPage =
            serde_json::from_slice(&answer.body).map_err(|e| DestinationError::Rejected {
                message: format!("Airtable's list answer could not be read ({e})"),
            })?;
        if page.offset.is_some() {
            return Err(DestinationError::Rejected {
                message: format!(
                    "more than 100 records hold these {} keys in '{merge}': the merge field does not identify records",
                    batch.len()
                ),
            });
        }
        let mut outcomes = vec![RecordOutcome::Accepted; batch.len()];
        let mut ids: Vec<(usize, String)> = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let found: Vec<&ListedRecord> = page
                .records
                .iter()
                .filter(|r| {
                    r.fields
                        .get(merge)
                        .is_some_and(|cell| actions::matches(cell, key))
                })
                .collect();
            match found.as_slice() {
                [] => {}
                [record] => ids.push((index, record.id.clone())),
                many => {
                    outcomes[index] = RecordOutcome::Rejected {
                        reason: format!(
                            "{} records hold {key} in '{merge}'; retl deletes only a record its key identifies",
                            many.len()
                        ),
                    };
                }
            }
        }
        if ids.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let mut url = self.config.table_url.clone();
        {
            let mut query = url.query_pairs_mut();
            for (_, id) in &ids {
                query.append_pair("records[]", id);
            }
        }
        let answer = self.call(Method::DELETE, url, None, ctx).await?;
        if answer.status == StatusCode::NOT_FOUND {
            // Deleted by someone else between the lookup and the delete: gone all the same.
            return Ok(BatchOutcome { records: outcomes });
        }
        if !answer.status.is_success() {
            return Err(error(&answer));
        }
        let deleted: Deleted =
            serde_json::from_slice(&answer.body).map_err(|e| DestinationError::Rejected {
                message: format!("Airtable's delete answer could not be read ({e})"),
            })?;
        for (index, id) in ids {
            if !deleted.records.iter().any(|r| r.id == id && r.deleted) {
                outcomes[index] = RecordOutcome::Rejected {
                    reason: format!("Airtable did not confirm the deletion of record {id}"),
                };
            }
        }
        Ok(BatchOutcome { records: outcomes })
    }
}

/// The error a non-2xx Airtable answer means: as every HTTP destination, except that a 429
/// without `Retry-After` waits the documented 30 s.
pub(crate) fn error(answer: &Answer) -> DestinationError {
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        return DestinationError::Transient {
            message: format!(
                "HTTP 429: {}; Airtable allows 5 requests per second per base and asks for 30 s of rest after a 429",
                http::truncate(
                    &String::from_utf8_lossy(&answer.body),
                    http::MAX_QUOTED_BODY
                )
            ),
            retry_after: Some(
                http::retry_after(&answer.headers, SystemTime::now()).unwrap_or(THROTTLE_WAIT),
            ),
            throttled: true,
        };
    }
    answer.error()
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: AirtableAction,
    /// The destination's client (shared by its actions).
    pub(crate) client: Arc<AirtableClient>,
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
            AirtableAction::Upsert => self.client.upsert(ctx, batch).await,
            AirtableAction::Delete => self.client.delete(ctx, batch).await,
        }
    }
}
