//! The Iterable client: one `bulkUpdate` or `trackBulk` request per batch with per-record
//! failures read from the answer's lists, one paced `DELETE` per record, `test()`;
//! [`BoundAction`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DeliveryLimits, DestinationError, Payload,
    RecordOutcome,
};
use serde_json::{Value, json};

use super::actions::{self, IterableAction, Sent};
use super::config::ValidConfig;
use crate::destinations::http;
use crate::destinations::invalid_config;
use crate::destinations::per_record::{self, Pacer};

/// The most users (or events) retl puts in one `bulkUpdate` (`trackBulk`) request.
pub(crate) const MAX_BULK: usize = 1000;

/// How long to wait after a `429` without `Retry-After`: Iterable's limits are per second.
pub(crate) const THROTTLE_WAIT: Duration = Duration::from_secs(1);

/// The answer's lists of user ids that failed, with the list's name as the reason.
const USER_ID_LISTS: [&str; 6] = [
    "invalidUserIds",
    "failedUpdates.invalidUserIds",
    "failedUpdates.notFoundUserIds",
    "failedUpdates.forgottenUserIds",
    "failedUpdates.conflictUserIds",
    "failedUpdates.invalidDataUserIds",
];

/// The answer's lists of emails that failed.
const EMAIL_LISTS: [&str; 6] = [
    "invalidEmails",
    "failedUpdates.invalidEmails",
    "failedUpdates.notFoundEmails",
    "failedUpdates.forgottenEmails",
    "failedUpdates.conflictEmails",
    "failedUpdates.invalidDataEmails",
];

/// Sends batches to one Iterable project.
#[derive(Debug)]
pub(crate) struct IterableClient {
    http: reqwest::Client,
    config: ValidConfig,
    pacer: Pacer,
}

impl IterableClient {
    /// A client for this project with these limits.
    pub(crate) fn new(
        config: ValidConfig,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        Ok(IterableClient {
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
        let mut key = HeaderValue::from_str(self.config.api_key.expose())
            .map_err(|_| invalid_config("api_key", "not a valid HTTP header value"))?;
        key.set_sensitive(true);
        let mut builder = self
            .http
            .request(method, url)
            .header(HeaderName::from_static("api-key"), key);
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
        action: IterableAction,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        if action == IterableAction::DeleteUser {
            return per_record::send_each(&self.pacer, batch, |p| self.delete(ctx, p)).await;
        }
        if batch.len() > MAX_BULK {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} records in one request; retl sends at most {MAX_BULK} (lower limits.batch_size)",
                    batch.len()
                ),
            });
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut sent = Vec::new();
        let mut items = Vec::new();
        for (index, payload) in batch.iter().enumerate() {
            let item = match action {
                IterableAction::UpsertUser => actions::user(spec, payload),
                _ => actions::event(spec, ctx, payload),
            };
            match item {
                Ok((item, who)) => {
                    sent.push((index, who));
                    items.push(item);
                    outcomes.push(RecordOutcome::Accepted);
                }
                Err(reason) => outcomes.push(RecordOutcome::Rejected { reason }),
            }
        }
        if items.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let (url, body) = match action {
            IterableAction::UpsertUser => (&self.config.bulk_update_url, json!({"users": items})),
            _ => (&self.config.track_bulk_url, json!({"events": items})),
        };
        let request = self.request(Method::POST, url.clone(), Some(&body))?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        let who: Vec<Sent> = sent.iter().map(|(_, w)| w.clone()).collect();
        let per_record = outcomes_of(&answer, &who)?;
        for ((index, _), outcome) in sent.into_iter().zip(per_record) {
            outcomes[index] = outcome;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// One `DELETE /api/users/byUserId/{userId}`; `404` (no such user) counts as deleted.
    async fn delete(
        &self,
        ctx: &DeliveryContext,
        payload: &Payload,
    ) -> Result<RecordOutcome, DestinationError> {
        let id = match actions::delete_id(payload) {
            Ok(id) => id,
            Err(reason) => return Ok(RecordOutcome::Rejected { reason }),
        };
        let request = self.request(Method::DELETE, self.config.delete_url(&id)?, None)?;
        let answer = http::exchange(&self.http, request, ctx).await?;
        if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
            Ok(RecordOutcome::Accepted)
        } else {
            Err(error_of(&answer))
        }
    }

    /// `test()`: `GET /api/channels`, a read that changes nothing: `401` refuses the key.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self.request(Method::GET, self.config.channels_url.clone(), None)?;
        let answer = http::fetch(&self.http, request).await?;
        if answer.status.is_success() {
            Ok(
                "Iterable accepted the API key (GET /api/channels; nothing was written)"
                    .to_string(),
            )
        } else {
            Err(error_of(&answer))
        }
    }
}

/// The error of a non-2xx answer; a `429` without `Retry-After` waits [`THROTTLE_WAIT`].
pub(crate) fn error_of(answer: &http::Answer) -> DestinationError {
    http::error_with_throttle_wait(answer, Some(THROTTLE_WAIT))
}

/// The strings of the list at `path` (`a.b`) of `body`.
fn list<'a>(body: &'a Value, path: &str) -> impl Iterator<Item = &'a str> {
    path.split('.')
        .try_fold(body, |v, k| v.get(k))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// The outcome of each sent user or event from a `bulkUpdate` / `trackBulk` answer.
///
/// - **2xx** `{"successCount", "failCount", "invalidEmails", "invalidUserIds",
///   "failedUpdates": {...}, "disallowedEventNames"}`: a record whose `userId` or email is in
///   a failure list, or whose event name is disallowed, is rejected naming the list; the
///   others are accepted. When `failCount` is larger than the records found in the lists,
///   the unnamed records are not known to be accepted: they are retried (an upsert or an
///   event with its `id` is idempotent).
/// - Anything else: the error of the whole request ([`error_of`]).
pub(crate) fn outcomes_of(
    answer: &http::Answer,
    sent: &[Sent],
) -> Result<Vec<RecordOutcome>, DestinationError> {
    if !answer.status.is_success() {
        return Err(error_of(answer));
    }
    let body: Value =
        serde_json::from_slice(&answer.body).map_err(|_| DestinationError::Rejected {
            message: format!(
                "Iterable answered {} with an unreadable body; nothing is acknowledged: {}",
                answer.status,
                http::truncate(
                    &String::from_utf8_lossy(&answer.body),
                    http::MAX_QUOTED_BODY
                )
            ),
        })?;
    let mut by_user_id = BTreeMap::new();
    for path in USER_ID_LISTS {
        for id in list(&body, path) {
            by_user_id.entry(id.to_string()).or_insert(path);
        }
    }
    let mut by_email = BTreeMap::new();
    for path in EMAIL_LISTS {
        for email in list(&body, path) {
            by_email.entry(email.to_ascii_lowercase()).or_insert(path);
        }
    }
    let disallowed: Vec<&str> = list(&body, "disallowedEventNames").collect();
    let mut failed = 0u64;
    let mut outcomes: Vec<RecordOutcome> = sent
        .iter()
        .map(|who| {
            let listed = by_user_id.get(&who.user_id).copied().or_else(|| {
                who.email
                    .as_ref()
                    .and_then(|e| by_email.get(&e.to_ascii_lowercase()).copied())
            });
            if let Some(path) = listed {
                failed += 1;
                return RecordOutcome::Rejected {
                    reason: format!("Iterable listed this user in {path}"),
                };
            }
            if let Some(name) = who.event_name.as_deref().filter(|n| disallowed.contains(n)) {
                failed += 1;
                return RecordOutcome::Rejected {
                    reason: format!(
                        "Iterable disallows event name '{name}' (disallowedEventNames)"
                    ),
                };
            }
            RecordOutcome::Accepted
        })
        .collect();
    let fail_count = body.get("failCount").and_then(Value::as_u64).unwrap_or(0);
    if fail_count > failed {
        for outcome in &mut outcomes {
            if *outcome == RecordOutcome::Accepted {
                *outcome = RecordOutcome::Retry {
                    reason: format!(
                        "Iterable counted {fail_count} failures but named {failed}; sent again as it may not have been accepted"
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
    pub(crate) action: IterableAction,
    /// The destination's client.
    pub(crate) client: Arc<IterableClient>,
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
