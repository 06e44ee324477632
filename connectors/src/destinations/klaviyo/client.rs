//! The Klaviyo client: one bulk import job per profile batch (a `400` naming profiles by
//! JSON pointer rejects those and re-sends the rest), one paced request per event and per
//! deletion, `test()`; [`BoundAction`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DeliveryLimits, DestinationError, Payload,
    RecordOutcome,
};
use serde_json::{Value, json};

use super::actions::{self, KlaviyoAction};
use super::config::ValidConfig;
use crate::destinations::http;
use crate::destinations::invalid_config;
use crate::destinations::per_record::{self, Pacer};

/// The API revision retl is written against (the `revision` header).
pub(crate) const REVISION: &str = "2024-10-15";
/// Klaviyo's documented limit of profiles per bulk import job.
pub(crate) const MAX_PROFILES: usize = 10_000;
/// Klaviyo's documented payload limit of a bulk import job (5 MB).
pub(crate) const MAX_IMPORT_BYTES: usize = 5_000_000;
/// `/api/events`'s documented steady rate: 3,500 requests per minute.
const EVENTS_PER_SECOND: f64 = 3500.0 / 60.0;
/// `/api/data-privacy-deletion-jobs`'s documented steady rate: 60 requests per minute.
const DELETIONS_PER_SECOND: f64 = 1.0;
/// The JSON:API media type of requests and answers.
const JSON_API: &str = "application/vnd.api+json";

/// Sends batches to one Klaviyo account.
#[derive(Debug)]
pub(crate) struct KlaviyoClient {
    http: reqwest::Client,
    config: ValidConfig,
    events: Pacer,
    deletions: Pacer,
}

impl KlaviyoClient {
    /// A client for this account with these limits.
    pub(crate) fn new(
        config: ValidConfig,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        Ok(KlaviyoClient {
            http: http::client(limits.timeout())?,
            config,
            events: Pacer::at_rate(EVENTS_PER_SECOND, limits.timeout()),
            deletions: Pacer::at_rate(DELETIONS_PER_SECOND, limits.timeout()),
        })
    }

    fn request(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<reqwest::Request, DestinationError> {
        let mut auth =
            HeaderValue::from_str(&format!("Klaviyo-API-Key {}", self.config.api_key.expose()))
                .map_err(|_| invalid_config("api_key", "not a valid HTTP header value"))?;
        auth.set_sensitive(true);
        let mut builder = self
            .http
            .request(method, url.clone())
            .header(AUTHORIZATION, auth)
            .header(HeaderName::from_static("revision"), REVISION)
            .header(ACCEPT, HeaderValue::from_static(JSON_API));
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static(JSON_API))
                .body(body.to_string());
        }
        builder.build().map_err(http::classify_send_error)
    }

    /// Sends one batch and classifies the answer.
    pub(crate) async fn send(
        &self,
        action: KlaviyoAction,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        match action {
            KlaviyoAction::UpsertProfile => self.import(spec, ctx, batch).await,
            KlaviyoAction::TrackEvent => {
                per_record::send_each(&self.events, batch, |p| async move {
                    match actions::event(spec, ctx, p) {
                        Ok(body) => {
                            self.post_one(ctx, &self.config.events_url, &body, false)
                                .await
                        }
                        Err(reason) => Ok(RecordOutcome::Rejected { reason }),
                    }
                })
                .await
            }
            KlaviyoAction::DeleteProfile => {
                per_record::send_each(&self.deletions, batch, |p| async move {
                    match actions::deletion(p) {
                        Ok(body) => {
                            self.post_one(ctx, &self.config.deletion_url, &body, true)
                                .await
                        }
                        Err(reason) => Ok(RecordOutcome::Rejected { reason }),
                    }
                })
                .await
            }
        }
    }

    /// One bulk import job with the batch's profiles.
    async fn import(
        &self,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        if batch.len() > MAX_PROFILES {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} profiles in one import job; Klaviyo takes at most {MAX_PROFILES} (lower limits.batch_size)",
                    batch.len()
                ),
            });
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut sent = Vec::new();
        let mut profiles = Vec::new();
        for (index, payload) in batch.iter().enumerate() {
            match actions::profile(spec, payload) {
                Ok(profile) => {
                    sent.push(index);
                    profiles.push(profile);
                    outcomes.push(RecordOutcome::Accepted);
                }
                Err(reason) => outcomes.push(RecordOutcome::Rejected { reason }),
            }
        }
        if profiles.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let mut job = json!({"data": {"type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": profiles}}}});
        if let Some(list) = &self.config.list_id {
            job["data"]["relationships"] =
                json!({"lists": {"data": [{"type": "list", "id": list}]}});
        }
        let request = self.request(Method::POST, &self.config.import_url, Some(&job))?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        let per_record = import_outcomes(&answer, sent.len())?;
        for (index, outcome) in sent.into_iter().zip(per_record) {
            outcomes[index] = outcome;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// One `POST` of a single-record endpoint: 2xx accepted (and `404` when `gone_ok`: a
    /// deletion of what is not there), a `400` rejects the record, else its error.
    async fn post_one(
        &self,
        ctx: &DeliveryContext,
        url: &Url,
        body: &Value,
        gone_ok: bool,
    ) -> Result<RecordOutcome, DestinationError> {
        let request = self.request(Method::POST, url, Some(body))?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        if answer.status.is_success() || (gone_ok && answer.status == StatusCode::NOT_FOUND) {
            return Ok(RecordOutcome::Accepted);
        }
        match answer.error() {
            DestinationError::Rejected { .. } => Ok(RecordOutcome::Rejected {
                reason: format!("Klaviyo refused it: {}", errors_text(&answer)),
            }),
            other => Err(throttle_default(other)),
        }
    }

    /// `test()`: `GET /api/accounts`, a read: `401` refuses the key; `403` means the key is
    /// valid but lacks the `accounts:read` scope (its write scopes cannot be checked without
    /// writing).
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self.request(Method::GET, &self.config.accounts_url, None)?;
        let answer = http::fetch(&self.http, request).await?;
        match answer.status {
            s if s.is_success() => Ok(
                "Klaviyo accepted the private API key (GET /api/accounts; nothing was written)"
                    .to_string(),
            ),
            StatusCode::FORBIDDEN => Ok(
                "Klaviyo accepted the private API key, which lacks the accounts:read scope (GET /api/accounts answered 403; nothing was written)"
                    .to_string(),
            ),
            _ => Err(answer.error()),
        }
    }
}

/// The `detail`s (or `title`s) of a JSON:API `errors` answer, joined; the raw body when it
/// has none.
pub(crate) fn errors_text(answer: &http::Answer) -> String {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let details: Vec<String> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["detail"].as_str().or_else(|| e["title"].as_str()))
        .map(str::to_string)
        .collect();
    if details.is_empty() {
        http::truncate(
            &String::from_utf8_lossy(&answer.body),
            http::MAX_QUOTED_BODY,
        )
    } else {
        http::truncate(&details.join("; "), http::MAX_QUOTED_BODY)
    }
}

/// The index of the profile a JSON pointer names (`/data/attributes/profiles/data/3/...`).
fn profile_index(pointer: &str) -> Option<usize> {
    pointer
        .strip_prefix("/data/attributes/profiles/data/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// The outcome of each sent profile from the answer to a bulk import job.
///
/// - **2xx** (`202` with the job): every profile is accepted for import. Klaviyo processes
///   the job later; errors it finds then are not read (see `# Not covered`).
/// - **400** whose `errors` point at profiles (`source.pointer`
///   `/data/attributes/profiles/data/<i>/...`): the job was not created; the profiles named
///   are rejected with the error's `detail`, the others are retried without them.
/// - **429**: throttled with `Retry-After` (Klaviyo sends it; one second when missing, the
///   burst window). Anything else: the error of the whole request.
pub(crate) fn import_outcomes(
    answer: &http::Answer,
    sent: usize,
) -> Result<Vec<RecordOutcome>, DestinationError> {
    if answer.status.is_success() {
        return Ok(vec![RecordOutcome::Accepted; sent]);
    }
    if answer.status == StatusCode::BAD_REQUEST {
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let mut named: Vec<(usize, String)> = Vec::new();
        for error in body["errors"].as_array().into_iter().flatten() {
            let Some(index) = error["source"]["pointer"].as_str().and_then(profile_index) else {
                return Err(answer.error());
            };
            if index >= sent {
                return Err(DestinationError::Rejected {
                    message: format!(
                        "Klaviyo named profile {index} of a job of {sent}; nothing is acknowledged"
                    ),
                });
            }
            let detail = error["detail"]
                .as_str()
                .or_else(|| error["title"].as_str())
                .unwrap_or("invalid");
            named.push((index, detail.to_string()));
        }
        if named.is_empty() {
            return Err(answer.error());
        }
        let mut outcomes = vec![
            RecordOutcome::Retry {
                reason: "the import job was refused for other profiles; sent again without them"
                    .to_string(),
                after: None,
            };
            sent
        ];
        for (index, detail) in named {
            outcomes[index] = RecordOutcome::Rejected {
                reason: format!("Klaviyo refused the profile: {detail}"),
            };
        }
        return Ok(outcomes);
    }
    Err(throttle_default(answer.error()))
}

/// A `429` without `Retry-After` waits one second (Klaviyo's burst window).
fn throttle_default(error: DestinationError) -> DestinationError {
    match error {
        DestinationError::Transient {
            message,
            retry_after: None,
            throttled: true,
        } => DestinationError::Transient {
            message,
            retry_after: Some(Duration::from_secs(1)),
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
    pub(crate) action: KlaviyoAction,
    /// The destination's client.
    pub(crate) client: Arc<KlaviyoClient>,
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
