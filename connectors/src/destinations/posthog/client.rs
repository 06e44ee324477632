//! The PostHog client: one `/batch/` or persons `bulk_delete` request per batch, the answer
//! as a `BatchOutcome`, the key checks of `test()`; [`BoundAction`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
    SyncMode,
};
use serde_json::{Value, json};

use super::actions::{self, PosthogAction};
use super::config::{PersonsApi, ValidConfig};
use crate::destinations::http;

/// PostHog's documented limit of a `/batch/` request body: less than 20 MB.
pub(crate) const MAX_BATCH_BYTES: usize = 20 * 1000 * 1000;
/// PostHog's documented limit of a persons `bulk_delete`: 1,000 distinct ids.
pub(crate) const MAX_DELETE_IDS: usize = 1000;

/// Sends batches to one PostHog project.
#[derive(Debug)]
pub(crate) struct PosthogClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl PosthogClient {
    /// A client for this project with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(PosthogClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// Whether the persons API is configured (the `delete_person` action needs it).
    pub(crate) fn has_persons_api(&self) -> bool {
        self.config.persons.is_some()
    }

    /// Sends one batch in one request and classifies the answer. Records that cannot be
    /// encoded are rejected without being sent; when none is left no request is made.
    pub(crate) async fn send(
        &self,
        action: PosthogAction,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let create_only = ctx.sync_mode == Some(SyncMode::Create);
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut sent = Vec::new();
        let mut items = Vec::new();
        for (index, payload) in batch.iter().enumerate() {
            let item = match action {
                PosthogAction::DeletePerson => actions::delete_id(payload).map(Value::String),
                _ => {
                    let uuid = actions::uuid_of(&ctx.idempotency_key(payload));
                    actions::capture(action, spec, payload, &uuid, create_only)
                }
            };
            match item {
                Ok(item) => {
                    sent.push(index);
                    items.push(item);
                    outcomes.push(RecordOutcome::Accepted);
                }
                Err(reason) => outcomes.push(RecordOutcome::Rejected { reason }),
            }
        }
        if items.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let answer = match action {
            PosthogAction::DeletePerson => self.bulk_delete(ctx, items).await?,
            _ => self.capture(ctx, items).await?,
        };
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        // Both endpoints answer for the whole request: no per-record results.
        Ok(BatchOutcome { records: outcomes })
    }

    /// `POST /batch/` with `{"api_key", "historical_migration": false, "batch"}`.
    async fn capture(
        &self,
        ctx: &DeliveryContext,
        events: Vec<Value>,
    ) -> Result<http::Answer, DestinationError> {
        let body = serde_json::to_vec(&json!({
            "api_key": self.config.project_api_key.expose(),
            "historical_migration": false,
            "batch": events,
        }))
        .map_err(|e| DestinationError::Rejected {
            message: format!("the batch could not be encoded as JSON: {e}"),
        })?;
        if body.len() >= MAX_BATCH_BYTES {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "the events encode to {} bytes, over PostHog's 20 MB per /batch/ request",
                    body.len()
                ),
            });
        }
        let request = self
            .http
            .post(self.config.batch_url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .build()
            .map_err(http::classify_send_error)?;
        // The project API key travels in the body: never in a recorded exchange.
        http::exchange_redacted(&self.http, request, ctx, redact_api_key).await
    }

    /// `POST <app_host>/api/projects/<id>/persons/bulk_delete/` with `{"distinct_ids"}`.
    async fn bulk_delete(
        &self,
        ctx: &DeliveryContext,
        ids: Vec<Value>,
    ) -> Result<http::Answer, DestinationError> {
        let persons = self.persons()?;
        if ids.len() > MAX_DELETE_IDS {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} distinct ids, over PostHog's 1,000 per bulk_delete; lower limits.batch_size",
                    ids.len()
                ),
            });
        }
        let request = self
            .http
            .post(persons.bulk_delete_url.clone())
            .bearer_auth(persons.personal_api_key.expose())
            .json(&json!({"distinct_ids": ids}))
            .build()
            .map_err(http::classify_send_error)?;
        http::exchange(&self.http, request, ctx).await
    }

    /// The persons API, or the config error naming what to set.
    fn persons(&self) -> Result<&PersonsApi, DestinationError> {
        self.config.persons.as_ref().ok_or_else(|| {
            crate::destinations::invalid_config(
                "personal_api_key",
                "the delete_person action deletes through PostHog's persons API: set personal_api_key (a phx_ key with person:write) and project_id",
            )
        })
    }

    /// `test()`: the project API key on `/flags` (evaluates flags, captures nothing), then,
    /// when configured, the personal API key on a one-person read of the persons API.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self
            .http
            .post(self.config.flags_url.clone())
            .json(&json!({
                "api_key": self.config.project_api_key.expose(),
                "distinct_id": "retl-connection-test",
            }))
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::fetch(&self.http, request).await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        let Some(persons) = &self.config.persons else {
            return Ok(
                "PostHog knows the project API key (/flags answered; nothing was captured); no personal API key is configured, so delete_person is unavailable".to_string(),
            );
        };
        let request = self
            .http
            .get(persons.persons_url.clone())
            .bearer_auth(persons.personal_api_key.expose())
            .build()
            .map_err(http::classify_send_error)?;
        let answer = http::fetch(&self.http, request).await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        Ok(
            "PostHog knows the project API key (/flags answered; nothing was captured) and the personal API key reads the project's persons".to_string(),
        )
    }
}

/// Replaces the `api_key` of a recorded `/batch/` body with `"<redacted>"`.
pub(crate) fn redact_api_key(body: &mut Value) {
    if let Some(key) = body.get_mut("api_key") {
        *key = Value::String("<redacted>".to_string());
    }
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: PosthogAction,
    /// The destination's client.
    pub(crate) client: Arc<PosthogClient>,
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
