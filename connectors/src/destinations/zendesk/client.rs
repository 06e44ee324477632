//! The Zendesk client: one `create_or_update_many` or `destroy_many` request per batch, the
//! job status polled to completion, its per-user results → outcomes, `test()`;
//! [`BoundAction`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::actions::{self, ZendeskAction};
use super::config::ValidConfig;
use crate::destinations::http::{self, Answer};

/// Zendesk's documented limit of users per `create_or_update_many` and of ids per
/// `destroy_many`.
pub(crate) const MAX_USERS: usize = 100;
/// The wait before the first poll of a job; each later wait doubles, up to [`MAX_POLL`].
pub(crate) const FIRST_POLL: Duration = Duration::from_millis(250);
/// The longest wait between two polls of a job.
const MAX_POLL: Duration = Duration::from_secs(4);

/// Sends requests to one Zendesk account.
#[derive(Debug)]
pub(crate) struct ZendeskClient {
    http: reqwest::Client,
    config: ValidConfig,
}

/// A job status (`{"job_status": {...}}`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct JobStatus {
    /// The job's id.
    pub(crate) id: String,
    /// `queued`, `working`, `completed`, `failed` or `killed`.
    pub(crate) status: String,
    /// The worker's message, if any.
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// The per-task results once the job has run.
    #[serde(default)]
    pub(crate) results: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct JobAnswer {
    job_status: JobStatus,
}

/// One entry of a job's `results`.
#[derive(Debug, Deserialize)]
struct JobResult {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    success: Option<bool>,
}

impl ZendeskClient {
    /// A client for this account with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(ZendeskClient {
            http: http::client(timeout)?,
            config,
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        query: Option<(&str, &str)>,
        body: Option<&Value>,
    ) -> Result<reqwest::Request, DestinationError> {
        let mut url = self.config.base_url.clone();
        url.set_path(&format!(
            "{}{path}",
            self.config.base_url.path().trim_end_matches('/')
        ));
        if let Some((name, value)) = query {
            url.query_pairs_mut().append_pair(name, value);
        }
        let mut builder = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.config.authorization.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(body) = body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.to_string());
        }
        builder.build().map_err(http::classify_send_error)
    }

    /// One request of a delivery, through [`http::exchange`] (traced for test records).
    async fn call(
        &self,
        ctx: &DeliveryContext,
        method: Method,
        path: &str,
        query: Option<(&str, &str)>,
        body: Option<&Value>,
    ) -> Result<Answer, DestinationError> {
        let request = self.request(method, path, query, body)?;
        http::exchange(&self.http, request, ctx).await
    }

    /// Sends one batch and waits for its job.
    pub(crate) async fn send(
        &self,
        action: ZendeskAction,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        if batch.len() > MAX_USERS {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} records in one request; Zendesk takes at most {MAX_USERS} users (lower limits.batch_size)",
                    batch.len()
                ),
            });
        }
        let mut outcomes: Vec<RecordOutcome> = Vec::with_capacity(batch.len());
        let mut sent = Vec::new();
        let mut items = Vec::new();
        for (index, payload) in batch.iter().enumerate() {
            let item = match action {
                ZendeskAction::UpsertUser => actions::user(spec, payload),
                ZendeskAction::DeleteUser => actions::delete_id(payload).map(Value::String),
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
            ZendeskAction::UpsertUser => {
                let body = json!({ "users": items });
                self.call(
                    ctx,
                    Method::POST,
                    "/api/v2/users/create_or_update_many",
                    None,
                    Some(&body),
                )
                .await?
            }
            ZendeskAction::DeleteUser => {
                let ids: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                let joined = ids.join(",");
                self.call(
                    ctx,
                    Method::DELETE,
                    "/api/v2/users/destroy_many",
                    Some(("external_ids", joined.as_str())),
                    None,
                )
                .await?
            }
        };
        let job = self.wait(ctx, parse_job(&answer)?).await?;
        let per_record = match action {
            ZendeskAction::UpsertUser => upsert_outcomes(&job, sent.len()),
            ZendeskAction::DeleteUser => {
                let ids: Vec<String> = items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                delete_outcomes(&job, &ids)
            }
        };
        for (index, outcome) in sent.into_iter().zip(per_record) {
            outcomes[index] = outcome;
        }
        Ok(BatchOutcome { records: outcomes })
    }

    /// Polls `GET /api/v2/job_statuses/{id}` until the job is `completed` (returned),
    /// `failed` or `killed` (a transient error: the idempotent batch is sent again).
    async fn wait(
        &self,
        ctx: &DeliveryContext,
        mut job: JobStatus,
    ) -> Result<JobStatus, DestinationError> {
        let mut delay = FIRST_POLL;
        loop {
            match job.status.as_str() {
                "completed" => return Ok(job),
                "failed" | "killed" => {
                    return Err(DestinationError::Transient {
                        message: format!(
                            "Zendesk's job {} ended '{}': {}",
                            job.id,
                            job.status,
                            job.message.as_deref().unwrap_or("(no message)")
                        ),
                        retry_after: None,
                        throttled: false,
                    });
                }
                _ => {}
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_POLL);
            let path = format!("/api/v2/job_statuses/{}", job.id);
            let answer = self.call(ctx, Method::GET, &path, None, None).await?;
            job = parse_job(&answer)?;
        }
    }

    /// `test()`: `GET /api/v2/users/me`, which reads the authenticated user and changes
    /// nothing. Zendesk answers refused credentials `401`, and a request it could not tie to a
    /// user with the anonymous user (no `id`), which is refused here too.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self.request(Method::GET, "/api/v2/users/me", None, None)?;
        let answer = http::fetch(&self.http, request).await?;
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        let me: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let user = &me["user"];
        if user["id"].is_null() {
            return Err(DestinationError::Authentication {
                message: "Zendesk answered as the anonymous user: check email and api_token (token access must be enabled)".to_string(),
            });
        }
        Ok(format!(
            "Zendesk accepted the API token (GET /api/v2/users/me: {} with role {}; nothing was written)",
            user["email"].as_str().unwrap_or("?"),
            user["role"].as_str().unwrap_or("?")
        ))
    }
}

/// The job status of a 2xx answer; any other answer is the error of the request.
pub(crate) fn parse_job(answer: &Answer) -> Result<JobStatus, DestinationError> {
    if !answer.status.is_success() {
        return Err(answer.error());
    }
    serde_json::from_slice::<JobAnswer>(&answer.body)
        .map(|a| a.job_status)
        .map_err(|e| DestinationError::Rejected {
            message: format!(
                "Zendesk answered {} without a readable job_status ({e}); nothing is acknowledged: {}",
                answer.status,
                http::truncate(
                    &String::from_utf8_lossy(&answer.body),
                    http::MAX_QUOTED_BODY
                )
            ),
        })
}

fn results(job: &JobStatus) -> Vec<JobResult> {
    match &job.results {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect(),
        _ => Vec::new(),
    }
}

fn failure(result: &JobResult) -> String {
    format!(
        "Zendesk {}: {}",
        result.error.as_deref().unwrap_or("Failed"),
        result.details.as_deref().unwrap_or("(no details)")
    )
}

/// The outcome of each sent user from a completed `create_or_update_many` job: its results
/// follow the order of the `users` array (or name it by `index`); `Created` and `Updated`
/// are accepted, `Failed` rejected with Zendesk's `error` and `details`. Results that do not
/// account for every user acknowledge nothing.
pub(crate) fn upsert_outcomes(job: &JobStatus, sent: usize) -> Vec<RecordOutcome> {
    let results = results(job);
    let indexed = !results.is_empty() && results.iter().all(|r| r.index.is_some());
    let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; sent];
    for (position, result) in results.iter().enumerate() {
        let index = if indexed {
            result.index
        } else {
            Some(position)
        };
        let Some(slot) = index.and_then(|i| outcomes.get_mut(i)) else {
            continue;
        };
        *slot = Some(match result.status.as_deref() {
            Some("Created" | "Updated") => RecordOutcome::Accepted,
            _ => RecordOutcome::Rejected {
                reason: failure(result),
            },
        });
    }
    let unaccounted = RecordOutcome::Rejected {
        reason: format!(
            "Zendesk's job {} reported {} results for {sent} users; this user's result is unknown, so it is sent again next run",
            job.id,
            results.len()
        ),
    };
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| unaccounted.clone()))
        .collect()
}

/// The outcome of each sent external id from a completed `destroy_many` job: deleted, or not
/// there to delete (the job names only the users it found), both accepted; a result that
/// failed and names the id by `external_id` or `index` rejects it.
pub(crate) fn delete_outcomes(job: &JobStatus, ids: &[String]) -> Vec<RecordOutcome> {
    let mut outcomes = vec![RecordOutcome::Accepted; ids.len()];
    for result in results(job) {
        let failed = result.success == Some(false)
            || result.status.as_deref() == Some("Failed")
            || result.error.is_some();
        if !failed {
            continue;
        }
        let index = result.index.or_else(|| {
            ids.iter()
                .position(|id| Some(id) == result.external_id.as_ref())
        });
        if let Some(slot) = index.and_then(|i| outcomes.get_mut(i)) {
            *slot = RecordOutcome::Rejected {
                reason: failure(&result),
            };
        }
    }
    outcomes
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: ZendeskAction,
    /// The destination's client.
    pub(crate) client: Arc<ZendeskClient>,
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
