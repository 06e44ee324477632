//! The ActiveCampaign client: one paced `contact/sync` request per record, a paced lookup
//! and `DELETE` per deleted record, `test()`; [`BoundAction`].

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DeliveryLimits, DestinationError, Payload,
    RecordOutcome,
};
use serde_json::Value;

use super::actions::{self, ActiveCampaignAction};
use super::config::ValidConfig;
use crate::destinations::http;
use crate::destinations::invalid_config;
use crate::destinations::per_record::{self, Pacer};

/// Sends records to one ActiveCampaign account.
#[derive(Debug)]
pub(crate) struct ActiveCampaignClient {
    http: reqwest::Client,
    config: ValidConfig,
    pacer: Pacer,
}

impl ActiveCampaignClient {
    /// A client for this account with these limits.
    pub(crate) fn new(
        config: ValidConfig,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        Ok(ActiveCampaignClient {
            http: http::client(limits.timeout())?,
            config,
            pacer: Pacer::new(limits),
        })
    }

    fn request(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<reqwest::Request, DestinationError> {
        let mut token = HeaderValue::from_str(self.config.api_key.expose())
            .map_err(|_| invalid_config("api_key", "not a valid HTTP header value"))?;
        token.set_sensitive(true);
        let mut builder = self
            .http
            .request(method, url)
            .header(HeaderName::from_static("api-token"), token);
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.to_string());
        }
        builder.build().map_err(http::classify_send_error)
    }

    /// Sends one batch, one request (two for a delete) per record, and collects the outcomes.
    pub(crate) async fn send(
        &self,
        action: ActiveCampaignAction,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        match action {
            ActiveCampaignAction::SyncContact => {
                per_record::send_each(&self.pacer, batch, |p| self.sync(spec, ctx, p)).await
            }
            ActiveCampaignAction::DeleteContact => {
                per_record::send_each(&self.pacer, batch, |p| self.delete(ctx, p)).await
            }
        }
    }

    /// One `POST /api/3/contact/sync`.
    async fn sync(
        &self,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        payload: &Payload,
    ) -> Result<RecordOutcome, DestinationError> {
        let body = match actions::sync_body(spec, payload) {
            Ok(body) => body,
            Err(reason) => return Ok(RecordOutcome::Rejected { reason }),
        };
        let request = self.request(Method::POST, self.config.sync_url.clone(), Some(&body))?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        outcome_of(&answer)
    }

    /// The contact's id looked up by email (`GET /api/3/contacts?email=`), then its `DELETE`;
    /// no contact, or a `404` on delete, is already gone.
    async fn delete(
        &self,
        ctx: &DeliveryContext,
        payload: &Payload,
    ) -> Result<RecordOutcome, DestinationError> {
        let email = match actions::delete_email(payload) {
            Ok(email) => email,
            Err(reason) => return Ok(RecordOutcome::Rejected { reason }),
        };
        let mut url = self.config.contacts_url.clone();
        url.query_pairs_mut().append_pair("email", &email);
        let answer = http::exchange(&self.http, self.request(Method::GET, url, None)?, ctx).await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let ids: Vec<String> = body["contacts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["email"]
                    .as_str()
                    .is_none_or(|e| e.eq_ignore_ascii_case(&email))
            })
            .filter_map(|c| match &c["id"] {
                Value::String(id) => Some(id.clone()),
                Value::Number(id) => Some(id.to_string()),
                _ => None,
            })
            .collect();
        for id in ids {
            self.pacer.wait().await;
            let request = self.request(Method::DELETE, self.config.contact_url(&id)?, None)?;
            let answer = http::exchange(&self.http, request, ctx).await?;
            if !(answer.status.is_success() || answer.status == StatusCode::NOT_FOUND) {
                return Err(answer.error());
            }
        }
        Ok(RecordOutcome::Accepted)
    }

    /// `test()`: `GET /api/3/users/me`, a read: `401`/`403` refuse the key.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self.request(Method::GET, self.config.me_url.clone(), None)?;
        let answer = http::fetch(&self.http, request).await?;
        if answer.status.is_success() {
            Ok(
                "ActiveCampaign accepted the API key (GET /api/3/users/me; nothing was written)"
                    .to_string(),
            )
        } else {
            Err(answer.error())
        }
    }
}

/// The outcome of one `contact/sync` answer: **2xx** accepted; **422** `{"errors": [{"title",
/// "detail", "code", "source"}]}` (or another 4xx but `401`/`403`/`413`) rejects the record
/// with the titles; anything else is the error of the request (`429` with `Retry-After`).
pub(crate) fn outcome_of(answer: &http::Answer) -> Result<RecordOutcome, DestinationError> {
    if answer.status.is_success() {
        return Ok(RecordOutcome::Accepted);
    }
    match answer.error() {
        DestinationError::Rejected { message } => {
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            let titles: Vec<&str> = body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["title"].as_str())
                .collect();
            let reason = if titles.is_empty() {
                message
            } else {
                format!("ActiveCampaign refused the contact: {}", titles.join("; "))
            };
            Ok(RecordOutcome::Rejected { reason })
        }
        other => Err(other),
    }
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: ActiveCampaignAction,
    /// The destination's client.
    pub(crate) client: Arc<ActiveCampaignClient>,
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
