//! The Intercom client: the requests of each record (create, look up by `external_id`, update,
//! archive), Intercom's answers → per-record outcomes and [`DestinationError`]s, `test()`;
//! [`BoundAction`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
    SyncMode,
};
use serde::Deserialize;
use serde_json::Value;

use super::actions::{self, Contact, IntercomAction};
use super::config::ValidConfig;
use crate::destinations::http::{self, Answer};
use crate::destinations::record_api;

/// The API version retl is written against (`Intercom-Version` header): 2.13 added
/// `GET /contacts/find_by_external_id/{external_id}`.
pub(crate) const API_VERSION: &str = "2.13";

/// Sends requests to one Intercom workspace.
#[derive(Debug)]
pub(crate) struct IntercomClient {
    http: reqwest::Client,
    config: ValidConfig,
}

/// What a look-up by `external_id` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// The contact's Intercom id.
    Contact(String),
    /// No user contact has that `external_id` (404).
    Nothing,
}

impl IntercomClient {
    /// A client for this workspace with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        Ok(IntercomClient {
            http: http::client(timeout)?,
            config,
        })
    }

    /// The request `method <base_url>/<segments...>` (each segment percent-encoded), with the
    /// token, the API version and a JSON body when given.
    fn request(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<reqwest::Request, DestinationError> {
        let url = record_api::url(&self.config.base_url, segments, &[])?;
        let mut builder = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.config.authorization.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(
                HeaderName::from_static("intercom-version"),
                HeaderValue::from_static(API_VERSION),
            );
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
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Answer, DestinationError> {
        let request = self.request(method, segments, body)?;
        http::exchange(&self.http, request, ctx).await
    }

    /// `GET /contacts/find_by_external_id/{external_id}`: 200 → the contact's id, 404 →
    /// nothing; any other answer is the error of the record's delivery.
    pub(crate) async fn find(
        &self,
        ctx: &DeliveryContext,
        external_id: &str,
    ) -> Result<Found, DestinationError> {
        let answer = self
            .call(
                ctx,
                Method::GET,
                &["contacts", "find_by_external_id", external_id],
                None,
            )
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(Found::Nothing);
        }
        if !answer.status.is_success() {
            return Err(error(&answer, SystemTime::now()));
        }
        contact_id(&answer.body)
            .map(Found::Contact)
            .ok_or_else(|| DestinationError::Rejected {
                message: format!(
                    "Intercom answered the look-up of external_id '{external_id}' without a contact id: {}",
                    http::truncate(&String::from_utf8_lossy(&answer.body), http::MAX_QUOTED_BODY)
                ),
            })
    }

    /// Delivers one added or updated record:
    /// - an added record (sync mode `upsert`): `POST /contacts`; when Intercom answers `409`
    ///   (the contact exists), it is looked up and updated as below;
    /// - otherwise: `GET /contacts/find_by_external_id/{id}`, then `PUT /contacts/{id}` when
    ///   found, else `POST /contacts` (mode `upsert`) or a rejection (mode `update`).
    pub(crate) async fn upsert(
        &self,
        spec: &ActionSpec,
        ctx: &DeliveryContext,
        payload: &Payload,
    ) -> Result<RecordOutcome, DestinationError> {
        let contact = match actions::contact(spec, payload) {
            Ok(contact) => contact,
            Err(reason) => return Ok(RecordOutcome::Rejected { reason }),
        };
        let update_only = ctx.sync_mode == Some(SyncMode::Update);
        let mut conflict = None;
        if payload.change == ChangeKind::Added && !update_only {
            let answer = self.create(ctx, &contact).await?;
            if answer.status != StatusCode::CONFLICT {
                return record_outcome(&answer);
            }
            conflict = Some(error_text(&answer));
        }
        match self.find(ctx, &contact.external_id).await? {
            Found::Contact(id) => {
                let answer = self
                    .call(
                        ctx,
                        Method::PUT,
                        &["contacts", &id],
                        Some(&contact.update_body()),
                    )
                    .await?;
                record_outcome(&answer)
            }
            Found::Nothing if update_only => Ok(RecordOutcome::Rejected {
                reason: format!(
                    "no user contact has external_id '{}' (sync mode 'update' changes existing contacts only)",
                    contact.external_id
                ),
            }),
            Found::Nothing => match conflict {
                // Intercom matched another contact (e.g. by email) but none has this id.
                Some(conflict) => Ok(RecordOutcome::Rejected {
                    reason: format!(
                        "Intercom refused to create the contact ({conflict}) and no user contact has external_id '{}'; another contact holds these details",
                        contact.external_id
                    ),
                }),
                None => record_outcome(&self.create(ctx, &contact).await?),
            },
        }
    }

    /// `POST /contacts` with the contact as a user.
    async fn create(
        &self,
        ctx: &DeliveryContext,
        contact: &Contact,
    ) -> Result<Answer, DestinationError> {
        self.call(
            ctx,
            Method::POST,
            &["contacts"],
            Some(&contact.create_body()),
        )
        .await
    }

    /// Archives the contact whose `external_id` is the record's key: a look-up, then
    /// `POST /contacts/{id}/archive`. A contact that is not there (404 to either) is gone:
    /// accepted.
    pub(crate) async fn archive(
        &self,
        ctx: &DeliveryContext,
        payload: &Payload,
    ) -> Result<RecordOutcome, DestinationError> {
        let external_id = match actions::archive_id(payload) {
            Ok(id) => id,
            Err(reason) => return Ok(RecordOutcome::Rejected { reason }),
        };
        let Found::Contact(id) = self.find(ctx, &external_id).await? else {
            return Ok(RecordOutcome::Accepted);
        };
        let answer = self
            .call(ctx, Method::POST, &["contacts", &id, "archive"], None)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(RecordOutcome::Accepted);
        }
        record_outcome(&answer)
    }

    /// `test()`: `GET /me`, which reads the admin the token belongs to and changes nothing.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let request = self.request(Method::GET, &["me"], None)?;
        let answer = http::fetch(&self.http, request).await?;
        if !answer.status.is_success() {
            return Err(error(&answer, SystemTime::now()));
        }
        let me: Me = serde_json::from_slice(&answer.body).unwrap_or_default();
        let admin = me.email.or(me.name).unwrap_or_else(|| "?".to_string());
        let workspace = me
            .app
            .and_then(|a| a.name.or(a.id_code))
            .unwrap_or_else(|| "?".to_string());
        Ok(format!(
            "Intercom accepted the access token (GET /me: admin {admin}, workspace {workspace}; nothing was written)"
        ))
    }
}

/// The answer of `GET /me` (the parts retl reports).
#[derive(Debug, Default, Deserialize)]
struct Me {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    app: Option<App>,
}

#[derive(Debug, Default, Deserialize)]
struct App {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id_code: Option<String>,
}

/// An `error.list` body: `{"type": "error.list", "request_id", "errors": [{"code", "message"}]}`.
#[derive(Debug, Deserialize)]
struct ErrorList {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The id of a contact body (`{"type": "contact", "id", ...}`), or of the first contact of a
/// list (`{"data": [...]}`).
pub(crate) fn contact_id(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let contact = match value.get("data") {
        Some(Value::Array(items)) => items.first()?.clone(),
        _ => value,
    };
    match contact.get("id")? {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Intercom's errors of an answer as `code: message; ...`, or the (truncated) body.
pub(crate) fn error_text(answer: &Answer) -> String {
    let parsed = serde_json::from_slice::<ErrorList>(&answer.body)
        .ok()
        .filter(|list| !list.errors.is_empty());
    match parsed {
        Some(list) => list
            .errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.code.as_deref().unwrap_or("error"),
                    e.message.as_deref().unwrap_or("(no message)")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        None => format!(
            "HTTP {}: {}",
            answer.status,
            http::truncate(
                &String::from_utf8_lossy(&answer.body),
                http::MAX_QUOTED_BODY
            )
        ),
    }
}

/// The outcome of a write (create, update, archive): 2xx accepted; 400, 404, 409, 422 and
/// other client errors reject the record with Intercom's errors; 401/403, 429, 5xx are the
/// errors of the request ([`error`]).
pub(crate) fn record_outcome(answer: &Answer) -> Result<RecordOutcome, DestinationError> {
    record_api::outcome(answer, "Intercom", error_text, |a| {
        error(a, SystemTime::now())
    })
}

/// The error of a non-2xx answer ([`http::classify_status`]); a 429 without `Retry-After`
/// waits for `X-RateLimit-Reset` (UNIX seconds), which is what Intercom sends.
pub(crate) fn error(answer: &Answer, now: SystemTime) -> DestinationError {
    http::error_with_reset(answer, now)
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: IntercomAction,
    /// The destination's client.
    pub(crate) client: Arc<IntercomClient>,
}

#[async_trait]
impl Action for BoundAction {
    fn spec(&self) -> &'static ActionSpec {
        self.spec
    }

    /// Delivers one record (Intercom's contacts API takes one contact per request).
    async fn send(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let mut records = Vec::with_capacity(1);
        if let Some(payload) = record_api::single(batch, "Intercom's contacts API")? {
            records.push(match self.action {
                IntercomAction::UpsertContact => {
                    self.client.upsert(self.spec, ctx, payload).await?
                }
                IntercomAction::ArchiveContact => self.client.archive(ctx, payload).await?,
            });
        }
        Ok(BatchOutcome { records })
    }
}
