//! `salesforce`: records of one sObject (Contact, Account, a custom object) through the REST
//! API's sObject Collections, matched by an external id field, with OAuth 2.0.
//!
//! # Files
//! - `config.rs`: `SalesforceConfig`, its catalog config fields, `validate()`.
//! - `auth.rs`: the client credentials and JWT bearer flows (RS256 with `ring`), token cache.
//! - `actions.rs`: the action specs, `SalesforceAction`, records and SOQL lookups.
//! - `client.rs`: authenticated calls, each mode's requests, results → per-record outcomes.
//! - `tests.rs`: encoding/parsing/token unit tests, round-trips against
//!   `retl_testkit::emulators::salesforce`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/salesforce.rs`; the conformance suite runs it
//! in `tests/it/destinations/salesforce.rs`.
//!
//! # Configuration
//! `client_id` plus either `client_secret` (client credentials flow; `login_url` must then be
//! the org's My Domain URL) or `username` + `private_key` (JWT bearer flow: an assertion with
//! `iss` = client_id, `sub` = username, `aud` = login_url, `exp` = now + 3 min, signed RS256
//! with the key of the certificate uploaded to the connected app). `object` and
//! `external_id_field` name what is written; `api_version` (default 62.0, at least 46.0),
//! `login_url` (default `https://login.salesforce.com`) and `instance_url` (default: the
//! token answer's) are optional.
//!
//! Tokens come from `POST <login_url>/services/oauth2/token`; Salesforce answers no expiry,
//! so a token is reused for at most an hour and replaced at once when the API answers
//! `401 INVALID_SESSION_ID` (the request is then sent once more).
//!
//! # Actions
//! `upsert_record`: fields are the object's field API names (discovered with describe); the
//! external id value is the field named like `external_id_field` when mapped, else the
//! record's key. Sync modes:
//! - `upsert` (default): `PATCH /services/data/vXX.X/composite/sobjects/{Object}/{ExternalIdField}`
//!   with `{"allOrNone": false, "records": [{"attributes": {"type": Object}, ...}]}`;
//! - `create`: `POST .../composite/sobjects` with the same records (an existing external id
//!   is refused by Salesforce's uniqueness check, per record);
//! - `update`: the record ids are looked up (`GET .../query?q=SELECT Id, <ext> FROM <Object>
//!   WHERE <ext> IN (...)`), a key no record has is rejected, the others are sent as
//!   `PATCH .../composite/sobjects` records with their `id`.
//!
//! `delete_record`: Salesforce deletes by record id, and deletes carry only the record's key,
//! so the key is the **external id value**: the ids are looked up with the same SOQL query,
//! then `DELETE .../composite/sobjects?ids=...&allOrNone=false`. A key no record has, and an
//! id answered `ENTITY_IS_DELETED` or `INVALID_CROSS_REFERENCE_KEY`, is already gone:
//! success.
//!
//! # Response contract
//! Collections answer 200 with one result per record, in order (`{"id", "success",
//! "errors": [{"statusCode", "message", "fields"}]}`): failed records are rejected with the
//! status code and message. Other answers are `[{"message", "errorCode"}]`:
//! `REQUEST_LIMIT_EXCEEDED` (403) is throttling (`Retry-After` if sent, else 2 s), 401/403
//! the credentials, 5xx transient, other 4xx (e.g. `EXCEEDED_ID_LIMIT`) a rejected batch.
//!
//! # Limits
//! sObject Collections take at most 200 records per request
//! (<https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html>).
//! API requests are limited per org per rolling 24 hours (Enterprise Edition: 100,000 plus
//! 1,000 per user license) and long-running requests (over 20 s) to 25 at once
//! (<https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm>);
//! there is no per-second limit. Defaults: 200 records per request, 10 requests/s, burst 10,
//! 4 in flight, 6 MiB per request (a retl default, not a documented Salesforce limit).
//!
//! # Test
//! `TestDestination` fetches a token and calls `GET /services/data/vXX.X/sobjects/{Object}/describe`
//! (reads, changes nothing), reporting Salesforce's answer on failure.
//!
//! # Not covered
//! The username-password and web server (authorization code) flows, refresh tokens, several
//! objects per destination, relationship fields by external id beyond passing the nested
//! object through, `allOrNone: true`, the Bulk API 2.0, and the `Sforce-Limit-Info` header.

mod actions;
mod auth;
mod client;
mod config;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use retl_engine::connector::DestinationType;
use retl_engine::destination::{
    Action, ActionSpec, DeliveryLimits, Destination, DestinationError, FieldInfo, FieldType,
    undeclared_action,
};
use serde::Deserialize;

use self::actions::{ACTIONS, SalesforceAction};
use self::client::{BoundAction, SalesforceClient};
use self::config::{CONFIG_FIELDS, SalesforceConfig};

/// The catalog entry and factory of the `salesforce` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "salesforce",
        display_name: "Salesforce",
        description: "Upserts, creates, updates and deletes records of one Salesforce object through sObject Collections, matched by an external id field, with OAuth 2.0 (client credentials or JWT bearer).",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// Salesforce's documented limits for sObject Collections.
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 10.0,
        burst: 10,
        batch_size: 200,
        max_batch_bytes: 6 * 1024 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 500,
        max_backoff_ms: 60_000,
        timeout_ms: 60_000,
        daily_request_budget: None,
    }
}

fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(SalesforceDestination::new(config, limits)?))
}

/// A configured Salesforce org and object.
#[derive(Debug)]
pub(crate) struct SalesforceDestination {
    client: Arc<SalesforceClient>,
}

impl SalesforceDestination {
    /// Parses and validates the config and prepares the client (no network access).
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: SalesforceConfig = crate::destinations::parse_config(config)?;
        let (valid, flow) = config.validate()?;
        let client = SalesforceClient::new(valid, flow, limits.timeout())?;
        Ok(SalesforceDestination {
            client: Arc::new(client),
        })
    }

    fn describe_path(&self) -> String {
        let config = self.client.config();
        format!(
            "/services/data/{}/sobjects/{}/describe",
            config.api_version, config.object
        )
    }
}

/// What retl reads of a describe answer.
#[derive(Debug, Deserialize)]
struct Describe {
    fields: Vec<DescribeField>,
}

#[derive(Debug, Deserialize)]
struct DescribeField {
    name: String,
    #[serde(default)]
    label: String,
    #[serde(default, rename = "type")]
    field_type: String,
    #[serde(default)]
    createable: bool,
    #[serde(default)]
    updateable: bool,
}

/// The field type of a Salesforce field type.
fn field_type(salesforce: &str) -> FieldType {
    match salesforce {
        "boolean" => FieldType::Boolean,
        "int" | "long" => FieldType::Integer,
        "double" | "currency" | "percent" => FieldType::Number,
        "date" | "datetime" => FieldType::Datetime,
        "address" | "location" => FieldType::Object,
        _ => FieldType::String,
    }
}

#[async_trait]
impl Destination for SalesforceDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        let path = self.describe_path();
        self.client.call_ok(None, Method::GET, &path, None).await?;
        Ok(format!("Salesforce issued a token and answered GET {path}"))
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action = SalesforceAction::from_spec(spec)
            .ok_or_else(|| undeclared_action("salesforce", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }

    async fn fields(&self, spec: &'static ActionSpec) -> Result<Vec<FieldInfo>, DestinationError> {
        let action = SalesforceAction::from_spec(spec)
            .ok_or_else(|| undeclared_action("salesforce", spec))?;
        if action == SalesforceAction::Delete {
            return Ok(FieldInfo::from_specs(spec.fields));
        }
        let answer = self
            .client
            .call_ok(None, Method::GET, &self.describe_path(), None)
            .await?;
        let describe: Describe =
            serde_json::from_slice(&answer.body).map_err(|e| DestinationError::Rejected {
                message: format!("Salesforce's describe answer could not be read: {e}"),
            })?;
        let external = &self.client.config().external_id_field;
        Ok(describe
            .fields
            .into_iter()
            .filter(|f| f.createable || f.updateable)
            .map(|f| FieldInfo {
                field_type: field_type(&f.field_type),
                required: false,
                description: Cow::Owned(if &f.name == external {
                    format!(
                        "{} (the external id; when not mapped, the record's key)",
                        f.label
                    )
                } else {
                    f.label
                }),
                name: Cow::Owned(f.name),
                children: Vec::new(),
            })
            .collect())
    }
}
