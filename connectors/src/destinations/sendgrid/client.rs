//! The SendGrid client: one `PUT /v3/marketing/contacts` per upsert batch (a `400` naming
//! contacts rejects those and re-sends the rest), a lookup by email and one `DELETE` per
//! delete batch, `test()`; [`BoundAction`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DeliveryLimits, DestinationError, Payload,
    RecordOutcome,
};
use serde_json::{Value, json};

use super::actions::{self, SendgridAction};
use super::config::ValidConfig;
use crate::destinations::http;
use crate::destinations::invalid_config;

/// SendGrid's documented limit of contacts per upsert request.
pub(crate) const MAX_CONTACTS: usize = 30_000;
/// SendGrid's documented payload limit of an upsert request (6 MB).
pub(crate) const MAX_UPSERT_BYTES: usize = 6_000_000;
/// SendGrid's documented limit of emails per "Get Contacts by Emails" request.
pub(crate) const MAX_SEARCH: usize = 100;

/// Sends batches to one SendGrid account.
#[derive(Debug)]
pub(crate) struct SendgridClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl SendgridClient {
    /// A client for this account with these limits.
    pub(crate) fn new(
        config: ValidConfig,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        Ok(SendgridClient {
            http: http::client(limits.timeout())?,
            config,
        })
    }

    fn request(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<reqwest::Request, DestinationError> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.config.api_key.expose()))
            .map_err(|_| invalid_config("api_key", "not a valid HTTP header value"))?;
        auth.set_sensitive(true);
        let mut builder = self.http.request(method, url).header(AUTHORIZATION, auth);
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.to_string());
        }
        builder.build().map_err(http::classify_send_error)
    }

    /// Sends one batch and classifies the answer.
    pub(crate) async fn send(
        &self,
        action: SendgridAction,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        match action {
            SendgridAction::UpsertContact => self.upsert(spec, ctx, batch).await,
            SendgridAction::DeleteContact => self.delete(ctx, batch).await,
        }
    }

    async fn upsert(
        &self,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        if batch.len() > MAX_CONTACTS {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} contacts in one request; SendGrid takes at most {MAX_CONTACTS} (lower limits.batch_size)",
                    batch.len()
                ),
            });
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut sent = Vec::new();
        let mut contacts = Vec::new();
        for (index, payload) in batch.iter().enumerate() {
            match actions::contact(spec, payload) {
                Ok(contact) => {
                    sent.push(index);
                    contacts.push(contact);
                    outcomes.push(RecordOutcome::Accepted);
                }
                Err(reason) => outcomes.push(RecordOutcome::Rejected { reason }),
            }
        }
        if contacts.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let mut body = json!({ "contacts": contacts });
        if let Some(list) = &self.config.list_id {
            body["list_ids"] = json!([list]);
        }
        let request = self.request(Method::PUT, self.config.contacts_url.clone(), Some(&body))?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        let per_record = upsert_outcomes(&answer, sent.len(), SystemTime::now())?;
        for (index, outcome) in sent.into_iter().zip(per_record) {
            outcomes[index] = outcome;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// Looks the batch's emails up (`POST .../search/emails`), then deletes the contacts found
    /// in one `DELETE ?ids=`; an email with no contact is already gone (success).
    async fn delete(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        if batch.len() > MAX_SEARCH {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} deletes in one batch; SendGrid looks up at most {MAX_SEARCH} emails per request",
                    batch.len()
                ),
            });
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut emails = Vec::new();
        for payload in batch {
            match actions::delete_email(payload) {
                Ok(email) => {
                    emails.push(email);
                    outcomes.push(RecordOutcome::Accepted);
                }
                Err(reason) => outcomes.push(RecordOutcome::Rejected { reason }),
            }
        }
        if emails.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let search = json!({ "emails": emails });
        let request = self.request(Method::POST, self.config.search_url.clone(), Some(&search))?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        let ids = contact_ids(&answer, SystemTime::now())?;
        if ids.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let mut url = self.config.contacts_url.clone();
        let joined: Vec<&str> = ids.values().map(String::as_str).collect();
        url.query_pairs_mut().append_pair("ids", &joined.join(","));
        let request = self.request(Method::DELETE, url, None)?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        if answer.status.is_success() {
            Ok(BatchOutcome { records: outcomes })
        } else {
            Err(http::error_with_reset(&answer, SystemTime::now()))
        }
    }

    /// `test()`: `GET /v3/scopes`, a read every key may make: `401`/`403` refuse the key.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self.request(Method::GET, self.config.scopes_url.clone(), None)?;
        let answer = http::fetch(&self.http, request).await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        let scopes: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let marketing = scopes["scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|s| s.starts_with("marketing"));
        Ok(if marketing {
            "SendGrid accepted the API key, which has Marketing scopes (GET /v3/scopes; nothing was written)".to_string()
        } else {
            "SendGrid accepted the API key, but it lists no Marketing scope: upserts and deletes will be refused (GET /v3/scopes; nothing was written)".to_string()
        })
    }
}

/// The index of the contact a SendGrid error `field` names (`contacts[3].email`).
fn contact_index(field: &str) -> Option<usize> {
    field
        .strip_prefix("contacts[")?
        .split(']')
        .next()?
        .parse()
        .ok()
}

/// The outcome of each sent contact from the answer to `PUT /v3/marketing/contacts`.
///
/// - **2xx** (`202 {"job_id"}`): every contact is queued for the upsert. SendGrid processes
///   the job later; its result is not read (see `# Not covered`).
/// - **400** `{"errors": [{"field": "contacts[<i>]...", "message"}]}`: nothing was queued;
///   the contacts named are rejected with the message, the others are sent again without
///   them. A `400` naming no contact rejects the batch.
/// - **429**: throttled until `X-RateLimit-Reset`. Anything else: the error of the request.
pub(crate) fn upsert_outcomes(
    answer: &http::Answer,
    sent: usize,
    now: SystemTime,
) -> Result<Vec<RecordOutcome>, DestinationError> {
    if answer.status.is_success() {
        return Ok(vec![RecordOutcome::Accepted; sent]);
    }
    if answer.status != StatusCode::BAD_REQUEST {
        return Err(http::error_with_reset(answer, now));
    }
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let mut named = Vec::new();
    for error in body["errors"].as_array().into_iter().flatten() {
        let Some(index) = error["field"].as_str().and_then(contact_index) else {
            return Err(answer.error());
        };
        if index >= sent {
            return Err(DestinationError::Rejected {
                message: format!(
                    "SendGrid named contact {index} of a request of {sent}; nothing is acknowledged"
                ),
            });
        }
        let message = error["message"].as_str().unwrap_or("invalid").to_string();
        named.push((index, message));
    }
    if named.is_empty() {
        return Err(answer.error());
    }
    let mut outcomes = vec![
        RecordOutcome::Retry {
            reason: "the request was refused for other contacts; sent again without them"
                .to_string(),
            after: None,
        };
        sent
    ];
    for (index, message) in named {
        outcomes[index] = RecordOutcome::Rejected {
            reason: format!("SendGrid refused the contact: {message}"),
        };
    }
    Ok(outcomes)
}

/// The contact id of each email found, from the answer to "Get Contacts by Emails":
/// **200** `{"result": {"<email>": {"contact": {"id", ...}} | {"error": "..."}}}`; **404**
/// when no email matched (an empty map).
pub(crate) fn contact_ids(
    answer: &http::Answer,
    now: SystemTime,
) -> Result<BTreeMap<String, String>, DestinationError> {
    if answer.status == StatusCode::NOT_FOUND {
        return Ok(BTreeMap::new());
    }
    if !answer.status.is_success() {
        return Err(http::error_with_reset(answer, now));
    }
    let body: Value =
        serde_json::from_slice(&answer.body).map_err(|_| DestinationError::Rejected {
            message: "SendGrid answered the email lookup with an unreadable body".to_string(),
        })?;
    Ok(body["result"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(email, found)| {
            let id = found["contact"]["id"].as_str()?;
            Some((email.to_lowercase(), id.to_string()))
        })
        .collect())
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: SendgridAction,
    /// The destination's client.
    pub(crate) client: Arc<SendgridClient>,
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
