//! The Data Manager API client: one `audienceMembers:ingest` or `audienceMembers:remove`
//! request per batch with a bearer token from `destinations/google_auth/`, Google's error
//! JSON (`google.rpc.Status` with `ErrorInfo`, `BadRequest` and `RequestInfo` details)
//! classified, and members named by a fast-fail answer mapped back to records;
//! [`BoundAction`], an action bound to it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload, RecordOutcome,
};
use serde_json::{Value, json};

use super::actions::{AudienceAction, Encoder, MAX_MEMBERS, Members};
use super::config::{SCOPE, ValidConfig};
use crate::destinations::google_auth::{GoogleAuth, authorized};
use crate::destinations::hashing::{self, DigestEncoding};
use crate::destinations::http::{self, Answer};

/// How long a `429` without `Retry-After` waits: the quota is per minute
/// (<https://developers.google.com/data-manager/api/devguides/limits>); retl's choice.
const QUOTA_WAIT: Duration = Duration::from_secs(60);

/// The member `TestDestination` validates (never stored: `validateOnly`).
const TEST_EMAIL: &str = "retl-connection-test@example.com";

/// Sends batches to one audience.
#[derive(Debug)]
pub(crate) struct AudienceClient {
    config: ValidConfig,
    auth: GoogleAuth,
    encoder: Encoder,
}

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// `audienceMembers:ingest`.
    Ingest,
    /// `audienceMembers:remove`.
    Remove,
}

impl AudienceClient {
    /// A client for this audience with this request timeout.
    pub(crate) fn new(config: ValidConfig, timeout: Duration) -> Result<Self, DestinationError> {
        let http = http::client(timeout)?;
        let auth = GoogleAuth::new(config.credentials.clone(), &[SCOPE], http);
        let encoder = Encoder {
            encoding: config.encoding,
            phone_code: config.default_phone_country_code.clone(),
            key_identifier: config.key_identifier,
        };
        Ok(AudienceClient {
            config,
            auth,
            encoder,
        })
    }

    /// The request body for these members.
    pub(crate) fn body(
        &self,
        operation: Operation,
        members: &[Value],
        validate_only: bool,
    ) -> Value {
        let mut destination = json!({
            "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": self.config.operating_account_id},
            "productDestinationId": self.config.audience_id,
        });
        if let Some(login) = &self.config.login_account_id {
            destination["loginAccount"] = json!({"accountType": "GOOGLE_ADS", "accountId": login});
        }
        let mut body = json!({
            "destinations": [destination],
            "audienceMembers": members,
            "encoding": match self.config.encoding {
                DigestEncoding::Hex => "HEX",
                DigestEncoding::Base64 => "BASE64",
            },
        });
        if operation == Operation::Ingest {
            body["termsOfService"] = json!({"customerMatchTermsOfServiceStatus": "ACCEPTED"});
        }
        if validate_only {
            body["validateOnly"] = json!(true);
        }
        body
    }

    /// `POST` of `body` with a bearer token; a `401` renews the token once.
    async fn post(
        &self,
        operation: Operation,
        body: &Value,
        ctx: Option<&DeliveryContext>,
    ) -> Result<Answer, DestinationError> {
        let url = match operation {
            Operation::Ingest => &self.config.ingest_url,
            Operation::Remove => &self.config.remove_url,
        };
        let text = body.to_string();
        self.auth
            .send(ctx, |client, bearer| {
                authorized(client.post(url.clone()), bearer)
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(text.clone())
                    .build()
                    .map_err(http::classify_send_error)
            })
            .await
    }

    /// Validates an ingest of one placeholder member (`validateOnly`: nothing is written):
    /// checks the credentials, the accounts, the audience and the terms.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let hashed = hashing::hash_normalized(TEST_EMAIL, hashing::email_google)
            .and_then(|h| hashing::encode_digest(&h, self.config.encoding))
            .unwrap_or_default();
        let member = json!({"userData": {"userIdentifiers": [{"emailAddress": hashed}]}});
        let body = self.body(Operation::Ingest, &[member], true);
        let answer = self.post(Operation::Ingest, &body, None).await?;
        if !answer.status.is_success() {
            return Err(error(&answer));
        }
        Ok(format!(
            "the credentials can upload to audience {} of account {} (validated only; nothing was changed)",
            self.config.audience_id, self.config.operating_account_id
        ))
    }

    /// Sends one batch: its added and updated records in one ingest request, its deleted
    /// ones (or, for `remove_from_audience`, all) in one remove request. The engine sends
    /// deletes in batches of their own, so a batch makes one request.
    pub(crate) async fn send(
        &self,
        action: AudienceAction,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        if batch.len() > MAX_MEMBERS {
            return Err(DestinationError::PayloadTooLarge {
                message: format!(
                    "{} members in one request; the Data Manager API takes at most {MAX_MEMBERS}: lower limits.batch_size",
                    batch.len()
                ),
            });
        }
        let encoded = self.encoder.encode(action, batch);
        let mut outcomes = vec![RecordOutcome::Accepted; batch.len()];
        for (index, reason) in encoded.refused {
            outcomes[index] = RecordOutcome::Rejected { reason };
        }
        for (operation, members) in [
            (Operation::Ingest, &encoded.ingest),
            (Operation::Remove, &encoded.remove),
        ] {
            if members.members.is_empty() {
                continue;
            }
            let body = self.body(operation, &members.members, false);
            let answer = self.post(operation, &body, Some(ctx)).await?;
            if answer.status.is_success() {
                let request_id = request_id(&answer);
                tracing::debug!(request_id = %request_id, members = members.members.len(), ?operation, "accepted");
                continue;
            }
            match member_violations(&answer, members) {
                Some(rejected) => {
                    for (index, reason) in rejected {
                        outcomes[index] = RecordOutcome::Rejected { reason };
                    }
                    for &index in &members.rows {
                        if outcomes[index] == RecordOutcome::Accepted {
                            outcomes[index] = RecordOutcome::Retry {
                                reason: "not processed: the API refused the whole request because of other members (fast-fail)".to_string(),
                                after: None,
                            };
                        }
                    }
                }
                None => return Err(error(&answer)),
            }
        }
        Ok(BatchOutcome { records: outcomes })
    }
}

/// The `error` object of a Google error answer.
fn status_of(answer: &Answer) -> Value {
    serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|v| v.get("error").cloned())
        .unwrap_or(Value::Null)
}

/// The details of type `type_suffix` (e.g. `google.rpc.ErrorInfo`).
fn details<'a>(status: &'a Value, type_suffix: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    status
        .get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(type_suffix))
        })
}

/// The request id of an answer: `requestId` of a success, or of a `RequestInfo` detail.
pub(crate) fn request_id(answer: &Answer) -> String {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    if let Some(id) = body.get("requestId").and_then(Value::as_str) {
        return id.to_string();
    }
    let status = body.get("error").cloned().unwrap_or(Value::Null);
    details(&status, "google.rpc.RequestInfo")
        .find_map(|d| d.get("requestId").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

/// The index `i` of a field path naming `audience_members[i]` (or `audienceMembers[i]`).
pub(crate) fn member_index(field: &str) -> Option<usize> {
    let rest = field
        .split_once("audience_members[")
        .or_else(|| field.split_once("audienceMembers["))?
        .1;
    rest.split_once(']')?.0.parse().ok()
}

/// For a `400` whose `BadRequest` names members, the records of those members with the
/// reason; `None` when no member is named (the request as a whole was refused).
pub(crate) fn member_violations(
    answer: &Answer,
    members: &Members,
) -> Option<Vec<(usize, String)>> {
    if answer.status != StatusCode::BAD_REQUEST {
        return None;
    }
    let status = status_of(answer);
    let mut rejected = Vec::new();
    for violation in details(&status, "google.rpc.BadRequest")
        .filter_map(|d| d.get("fieldViolations").and_then(Value::as_array))
        .flatten()
    {
        let field = violation.get("field").and_then(Value::as_str).unwrap_or("");
        let Some(record) = member_index(field).and_then(|i| members.rows.get(i)) else {
            continue;
        };
        let reason = violation
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("INVALID_AUDIENCE_MEMBER");
        let description = violation
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        rejected.push((
            *record,
            format!("Google refused this member ({reason}): {description} [{field}]"),
        ));
    }
    (!rejected.is_empty()).then_some(rejected)
}

/// The error a non-2xx answer means, from Google's error JSON: the `ErrorInfo` reason says
/// which config field is wrong (audience, terms, account), a request over the member or byte
/// limit is split by the engine, `429` waits (`Retry-After`, else [`QUOTA_WAIT`]), `401`/`403`
/// are authentication errors, the rest follow the status. Messages carry Google's message,
/// reason and request id.
pub(crate) fn error(answer: &Answer) -> DestinationError {
    let status = status_of(answer);
    let message = status.get("message").and_then(Value::as_str).map_or_else(
        || {
            http::truncate(
                &String::from_utf8_lossy(&answer.body),
                http::MAX_QUOTED_BODY,
            )
        },
        str::to_string,
    );
    let reason = details(&status, "google.rpc.ErrorInfo")
        .find_map(|d| d.get("reason").and_then(Value::as_str))
        .or_else(|| status.get("status").and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    let request = request_id(answer);
    let said = if request.is_empty() {
        format!("HTTP {} {reason}: {message}", answer.status)
    } else {
        format!(
            "HTTP {} {reason}: {message} (request id {request})",
            answer.status
        )
    };
    let config = |field: &str, fix: &str| DestinationError::InvalidConfig {
        field: field.to_string(),
        message: format!("{said}; {fix}"),
    };
    match reason.as_str() {
        "INVALID_USER_LIST_ID" | "INVALID_USER_LIST_TYPE" => {
            return config(
                "audience_id",
                "check that the audience exists in the operating account and is a Customer Match (contact information) audience",
            );
        }
        "INVALID_DESTINATION" | "DATA_PARTNER_USER_LIST_MUTATE_NOT_ALLOWED" => {
            return config(
                "operating_account_id",
                "check the operating and login account ids",
            );
        }
        "TERMS_AND_CONDITIONS_NOT_SIGNED" => {
            return config(
                "customer_match_terms_accepted",
                "accept the Customer Match terms for the operating account in Google Ads",
            );
        }
        "TOO_MANY_AUDIENCE_MEMBERS" => {
            return DestinationError::PayloadTooLarge { message: said };
        }
        _ => {}
    }
    if answer.status == StatusCode::BAD_REQUEST && message.contains("payload size exceeds") {
        return DestinationError::PayloadTooLarge { message: said };
    }
    match answer.status.as_u16() {
        401 | 403 => DestinationError::Authentication {
            message: format!(
                "{said}; check the credentials and their access to the Google Ads account (login_account_id for a manager account)"
            ),
        },
        429 => DestinationError::Transient {
            message: said,
            retry_after: http::retry_after(&answer.headers, std::time::SystemTime::now())
                .or(Some(QUOTA_WAIT)),
            throttled: true,
        },
        _ => match answer.error() {
            DestinationError::Transient {
                retry_after,
                throttled,
                ..
            } => DestinationError::Transient {
                message: said,
                retry_after,
                throttled,
            },
            DestinationError::Rejected { .. } => DestinationError::Rejected { message: said },
            other => other,
        },
    }
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`super::actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: AudienceAction,
    /// The destination's client (shared by its actions).
    pub(crate) client: Arc<AudienceClient>,
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
        self.client.send(self.action, ctx, batch).await
    }
}
