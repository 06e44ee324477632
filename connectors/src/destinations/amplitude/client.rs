//! The Amplitude client: one `/2/httpapi` or `/identify` request per batch, the answer as a
//! `BatchOutcome` (per-event results of a `400`), the key check of `test()`; [`BoundAction`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
    SyncMode,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::actions::{self, AmplitudeAction};
use super::config::ValidConfig;
use crate::destinations::http;

/// Amplitude's documented limit of an HTTP V2 request: under 1 MB.
pub(crate) const MAX_REQUEST_BYTES: usize = 1000 * 1000;
/// How long Amplitude asks to pause a throttled user or device: 30 s for events
/// (<https://amplitude.com/docs/faq/api-choice>), 15 s for the Identify API
/// (<https://amplitude.com/docs/apis/analytics/identify>), when no `Retry-After` is sent.
const EVENTS_THROTTLE_PAUSE: Duration = Duration::from_secs(30);
const IDENTIFY_THROTTLE_PAUSE: Duration = Duration::from_secs(15);

/// Sends batches to one Amplitude project.
#[derive(Debug)]
pub(crate) struct AmplitudeClient {
    http: reqwest::Client,
    config: ValidConfig,
}

impl AmplitudeClient {
    /// A client for this project with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(AmplitudeClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// Sends one batch in one request and classifies the answer. Records that cannot be
    /// encoded are rejected without being sent; when none is left no request is made.
    pub(crate) async fn send(
        &self,
        action: AmplitudeAction,
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
                AmplitudeAction::TrackEvent => {
                    actions::event(spec, payload, &ctx.idempotency_key(payload))
                }
                AmplitudeAction::IdentifyUser => {
                    actions::identification(spec, payload, create_only)
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
        let per_record = match action {
            AmplitudeAction::TrackEvent => self.track(ctx, items).await?,
            AmplitudeAction::IdentifyUser => self.identify(ctx, items).await?,
        };
        for (index, outcome) in sent.into_iter().zip(per_record) {
            outcomes[index] = outcome;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// `POST /2/httpapi` with `{"api_key", "events", "options"?}`.
    async fn track(
        &self,
        ctx: &DeliveryContext,
        events: Vec<Value>,
    ) -> Result<Vec<RecordOutcome>, DestinationError> {
        let count = events.len();
        let mut body = json!({"api_key": self.config.api_key.expose(), "events": events});
        if let Some(min) = self.config.min_id_length {
            body["options"] = json!({"min_id_length": min});
        }
        let body = serde_json::to_vec(&body).map_err(|e| DestinationError::Rejected {
            message: format!("the batch could not be encoded as JSON: {e}"),
        })?;
        if body.len() >= MAX_REQUEST_BYTES {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "the events encode to {} bytes, over Amplitude's 1 MB per request",
                    body.len()
                ),
            });
        }
        let request = self
            .http
            .post(self.config.events_url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .build()
            .map_err(http::classify_send_error)?;
        let answer = self.exchange(ctx, request).await?;
        self.events_outcomes(&answer, count)
    }

    /// `POST /identify` with the form `api_key=...&identification=[...]`.
    async fn identify(
        &self,
        ctx: &DeliveryContext,
        identifications: Vec<Value>,
    ) -> Result<Vec<RecordOutcome>, DestinationError> {
        let count = identifications.len();
        let identification = Value::Array(identifications).to_string();
        let body = form(&[
            ("api_key", self.config.api_key.expose()),
            ("identification", &identification),
        ]);
        let request = self
            .http
            .post(self.config.identify_url.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(body)
            .build()
            .map_err(http::classify_send_error)?;
        let answer = self.exchange(ctx, request).await?;
        if answer.status.is_success() {
            return Ok(vec![RecordOutcome::Accepted; count]);
        }
        Err(self.error(&answer, IDENTIFY_THROTTLE_PAUSE))
    }

    /// One exchange; the API key (in the body) never appears in a recorded one.
    async fn exchange(
        &self,
        ctx: &DeliveryContext,
        request: reqwest::Request,
    ) -> Result<http::Answer, DestinationError> {
        let key = self.config.api_key.expose();
        http::exchange_redacted(&self.http, request, ctx, |body| redact_value(body, key)).await
    }

    /// The outcome of each sent event from a `/2/httpapi` answer.
    pub(crate) fn events_outcomes(
        &self,
        answer: &http::Answer,
        sent: usize,
    ) -> Result<Vec<RecordOutcome>, DestinationError> {
        if answer.status.is_success() {
            return Ok(vec![RecordOutcome::Accepted; sent]);
        }
        if answer.status == StatusCode::BAD_REQUEST
            && let Some(outcomes) = invalid_events(&answer.body, sent)
        {
            return outcomes;
        }
        Err(self.error(answer, EVENTS_THROTTLE_PAUSE))
    }

    /// The error of a failed answer, the API key removed from any quoted body.
    fn error(&self, answer: &http::Answer, throttle_pause: Duration) -> DestinationError {
        let key = self.config.api_key.expose();
        let body = redact(&String::from_utf8_lossy(&answer.body), key);
        if answer.status == StatusCode::BAD_REQUEST && body.contains("Invalid API key") {
            return DestinationError::Authentication {
                message: format!(
                    "HTTP 400 Invalid API key: Amplitude does not know the api_key; copy it again from the project's settings ({})",
                    http::truncate(&body, http::MAX_QUOTED_BODY)
                ),
            };
        }
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after =
                http::retry_after(&answer.headers, SystemTime::now()).unwrap_or(throttle_pause);
            return DestinationError::Transient {
                message: format!(
                    "HTTP 429: Amplitude throttled users or devices of the batch: {}",
                    http::truncate(&body, http::MAX_QUOTED_BODY)
                ),
                retry_after: Some(retry_after),
                throttled: true,
            };
        }
        http::classify_status(answer.status, &answer.headers, &body)
    }

    /// `test()`: an empty events batch with the API key (nothing is ingested).
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let response = self
            .http
            .post(self.config.events_url.clone())
            .json(&json!({"api_key": self.config.api_key.expose(), "events": []}))
            .send()
            .await
            .map_err(http::classify_send_error)?;
        let answer = http::Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response
                .bytes()
                .await
                .map_err(http::classify_send_error)?
                .to_vec(),
        };
        match answer.status.as_u16() {
            200..=299 => Ok("Amplitude accepted the API key (an empty batch; nothing was ingested)".to_string()),
            400 => match self.error(&answer, EVENTS_THROTTLE_PAUSE) {
                DestinationError::Rejected { .. } => Ok(
                    "Amplitude answered an empty batch with HTTP 400 without refusing the API key; nothing was ingested"
                        .to_string(),
                ),
                error => Err(error),
            },
            _ => Err(self.error(&answer, EVENTS_THROTTLE_PAUSE)),
        }
    }
}

/// The body of a `400` from `/2/httpapi`.
#[derive(Debug, Deserialize)]
struct InvalidRequest {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    events_with_invalid_fields: BTreeMap<String, Vec<usize>>,
    #[serde(default)]
    events_with_missing_fields: BTreeMap<String, Vec<usize>>,
    #[serde(default)]
    events_with_invalid_id_lengths: BTreeMap<String, Vec<usize>>,
}

/// The outcomes of a `400` that names events: those are rejected with the field, and the
/// others were not ingested and must be sent again
/// (<https://amplitude.com/docs/apis/analytics/http-api-batching-retries>). `None` when the
/// answer names no event.
fn invalid_events(
    body: &[u8],
    sent: usize,
) -> Option<Result<Vec<RecordOutcome>, DestinationError>> {
    let answer: InvalidRequest = serde_json::from_slice(body).ok()?;
    let mut reasons: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (what, map) in [
        ("invalid", &answer.events_with_invalid_fields),
        ("missing", &answer.events_with_missing_fields),
        ("too short", &answer.events_with_invalid_id_lengths),
    ] {
        for (field, indexes) in map {
            for index in indexes {
                reasons
                    .entry(*index)
                    .or_default()
                    .push(format!("{field} {what}"));
            }
        }
    }
    if reasons.is_empty() {
        return None;
    }
    let error = answer.error.unwrap_or_else(|| "invalid event".to_string());
    let mut outcomes = vec![
        RecordOutcome::Retry {
            reason: format!(
                "not ingested: Amplitude refused the request for other events ({error})"
            ),
            after: None,
        };
        sent
    ];
    for (index, fields) in reasons {
        let Some(slot) = outcomes.get_mut(index) else {
            return Some(Err(DestinationError::Rejected {
                message: format!("Amplitude named event {index} of a batch of {sent}: {error}"),
            }));
        };
        let hint = if fields.iter().any(|f| f.ends_with("too short")) {
            "; set min_id_length in the destination's config for shorter ids"
        } else {
            ""
        };
        *slot = RecordOutcome::Rejected {
            reason: format!("Amplitude: {} ({error}){hint}", fields.join(", ")),
        };
    }
    Some(Ok(outcomes))
}

/// `pairs` as an `application/x-www-form-urlencoded` body.
pub(crate) fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    // The URL parser's query serializer is the x-www-form-urlencoded one.
    match reqwest::Url::parse("http://form.invalid/") {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.query().unwrap_or_default().as_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// `text` with every occurrence of `key` replaced by `<redacted>`.
pub(crate) fn redact(text: &str, key: &str) -> String {
    if key.is_empty() {
        text.to_string()
    } else {
        text.replace(key, "<redacted>")
    }
}

/// Every string of a recorded body with `key` replaced by `<redacted>`.
fn redact_value(value: &mut Value, key: &str) {
    match value {
        Value::String(text) => *text = redact(text, key),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, key)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_value(v, key)),
        _ => {}
    }
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: AmplitudeAction,
    /// The destination's client.
    pub(crate) client: Arc<AmplitudeClient>,
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
