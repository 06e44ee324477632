//! The Mailchimp client: one batch subscribe request per upsert batch with per-member errors,
//! one paced `DELETE` per archived member, `test()`; [`BoundAction`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DeliveryLimits, DestinationError, Payload,
    RecordOutcome,
};
use serde_json::{Value, json};

use super::actions::{self, MailchimpAction};
use super::config::ValidConfig;
use crate::destinations::http;
use crate::destinations::per_record::{self, Pacer};

/// Mailchimp's documented limit of members per batch subscribe request.
pub(crate) const MAX_MEMBERS: usize = 500;
/// How long to wait after a `429`: Mailchimp sends no `Retry-After` and documents no window.
const THROTTLE_WAIT: Duration = Duration::from_secs(1);

/// Sends batches to one Mailchimp audience.
#[derive(Debug)]
pub(crate) struct MailchimpClient {
    http: reqwest::Client,
    config: ValidConfig,
    pacer: Pacer,
}

impl MailchimpClient {
    /// A client for this audience with these limits.
    pub(crate) fn new(
        config: ValidConfig,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        Ok(MailchimpClient {
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
        // HTTP Basic with any user name and the key as the password.
        let mut builder = self
            .http
            .request(method, url)
            .basic_auth("retl", Some(self.config.api_key.expose()));
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.to_string());
        }
        let mut request = builder.build().map_err(http::classify_send_error)?;
        if let Some(auth) = request
            .headers_mut()
            .get_mut(reqwest::header::AUTHORIZATION)
        {
            auth.set_sensitive(true);
        }
        Ok(request)
    }

    /// Sends one batch and classifies the answer.
    pub(crate) async fn send(
        &self,
        action: MailchimpAction,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        match action {
            MailchimpAction::UpsertMember => self.upsert(spec, ctx, batch).await,
            MailchimpAction::ArchiveMember => {
                per_record::send_each(&self.pacer, batch, |p| self.archive(ctx, p)).await
            }
        }
    }

    async fn upsert(
        &self,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        if batch.len() > MAX_MEMBERS {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} members in one request; Mailchimp takes at most {MAX_MEMBERS} (lower limits.batch_size)",
                    batch.len()
                ),
            });
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut sent = Vec::new();
        let mut members = Vec::new();
        for (index, payload) in batch.iter().enumerate() {
            match actions::member(spec, payload, &self.config.status_if_new) {
                Ok((member, email)) => {
                    sent.push((index, email));
                    members.push(member);
                    outcomes.push(RecordOutcome::Accepted);
                }
                Err(reason) => outcomes.push(RecordOutcome::Rejected { reason }),
            }
        }
        if members.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let body = json!({"members": members, "update_existing": true});
        let request = self.request(Method::POST, self.config.list_url.clone(), Some(&body))?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        let emails: Vec<String> = sent.iter().map(|(_, e)| e.clone()).collect();
        let per_record = batch_outcomes(&answer, &emails)?;
        for ((index, _), outcome) in sent.into_iter().zip(per_record) {
            outcomes[index] = outcome;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// One `DELETE /3.0/lists/{list_id}/members/{hash}`: `204` archived, `404` not there.
    async fn archive(
        &self,
        ctx: &DeliveryContext,
        payload: &Payload,
    ) -> Result<RecordOutcome, DestinationError> {
        let hash = match actions::archive_hash(payload) {
            Ok(hash) => hash,
            Err(reason) => return Ok(RecordOutcome::Rejected { reason }),
        };
        let request = self.request(Method::DELETE, self.config.member_url(&hash)?, None)?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
            Ok(RecordOutcome::Accepted)
        } else {
            Err(error_of(&answer))
        }
    }

    /// `test()`: `GET /3.0/ping`, a health check that needs a valid key: `401` refuses it.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self.request(Method::GET, self.config.ping_url.clone(), None)?;
        let answer = http::fetch(&self.http, request).await?;
        if answer.status.is_success() {
            Ok("Mailchimp accepted the API key (GET /3.0/ping; nothing was written)".to_string())
        } else {
            Err(error_of(&answer))
        }
    }
}

/// The error of a non-2xx answer; a `429` (no `Retry-After` from Mailchimp) waits one second.
pub(crate) fn error_of(answer: &http::Answer) -> DestinationError {
    http::error_with_throttle_wait(answer, Some(THROTTLE_WAIT))
}

/// The outcome of each sent member from a batch subscribe answer.
///
/// - **200** `{"new_members", "updated_members", "errors": [{"email_address", "error",
///   "error_code", "field", "field_message"}], "error_count", ...}`: a member named in
///   `errors` is rejected with its `error` (and `field_message`), the others accepted. When
///   `error_count` is larger than the members found in `errors`, the unnamed ones are sent
///   again rather than acknowledged.
/// - Anything else (`400` for a malformed request, `401`, `429`, `5xx`): the error of the
///   whole request.
pub(crate) fn batch_outcomes(
    answer: &http::Answer,
    emails: &[String],
) -> Result<Vec<RecordOutcome>, DestinationError> {
    if !answer.status.is_success() {
        return Err(error_of(answer));
    }
    let body: Value =
        serde_json::from_slice(&answer.body).map_err(|_| DestinationError::Rejected {
            message: format!(
                "Mailchimp answered {} with an unreadable body; nothing is acknowledged",
                answer.status
            ),
        })?;
    let mut errors = BTreeMap::new();
    for error in body["errors"].as_array().into_iter().flatten() {
        let Some(email) = error["email_address"].as_str() else {
            continue;
        };
        let mut reason = error["error"].as_str().unwrap_or("refused").to_string();
        if let Some(detail) = error["field_message"].as_str().filter(|d| !d.is_empty()) {
            reason = format!(
                "{reason} ({}: {detail})",
                error["field"].as_str().unwrap_or("")
            );
        }
        errors.insert(email.to_lowercase(), reason);
    }
    let mut named = 0u64;
    let mut outcomes: Vec<RecordOutcome> = emails
        .iter()
        .map(|email| match errors.get(email) {
            Some(reason) => {
                named += 1;
                RecordOutcome::Rejected {
                    reason: format!("Mailchimp refused the member: {reason}"),
                }
            }
            None => RecordOutcome::Accepted,
        })
        .collect();
    let counted = body["error_count"].as_u64().unwrap_or(named);
    if counted > named {
        for outcome in &mut outcomes {
            if *outcome == RecordOutcome::Accepted {
                *outcome = RecordOutcome::Retry {
                    reason: format!(
                        "Mailchimp counted {counted} errors but named {named}; sent again as it may not have been accepted"
                    ),
                    after: None,
                };
            }
        }
    }
    Ok(outcomes)
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: MailchimpAction,
    /// The destination's client.
    pub(crate) client: Arc<MailchimpClient>,
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
