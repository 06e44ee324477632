//! `hubspot`: contacts and companies in HubSpot's CRM, through the CRM v3 objects API with a
//! private app's access token.
//!
//! # Files
//! - `config.rs`: `HubSpotConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the action specs, `HubSpotAction`, the encoding of batch inputs.
//! - `client.rs`: the requests, batch answers → per-record outcomes, HubSpot's error bodies.
//! - `tests.rs`: encoding/parsing unit tests, round-trips against
//!   `retl_testkit::emulators::hubspot`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/hubspot.rs`; the conformance suite runs it in
//! `tests/it/destinations/hubspot.rs`.
//!
//! # Configuration
//! | key | required | secret | meaning |
//! |---|---|---|---|
//! | `access_token` | yes | yes | a private app's access token, sent as `Authorization: Bearer` |
//! | `base_url` | no | no | default `https://api.hubapi.com` |
//! | `contact_id_property` | no | no | the unique property contacts are matched by, default `email` |
//! | `company_id_property` | for company actions | no | a unique custom property of companies (`domain` is not unique in HubSpot) |
//!
//! # Actions and fields
//! `upsert_contact` / `upsert_company`: the field `id` holds the value of the object's id
//! property (when not mapped, the record's key is used); every other field is a property,
//! sent as HubSpot's text form (numbers and booleans as text, `null` as `""` which clears the
//! property, an array of scalars as `a;b` for multiple-checkbox properties; objects are
//! refused per record). Sync modes, one request per batch each:
//! - `upsert` (default): `POST /crm/v3/objects/{objectType}/batch/upsert`, inputs
//!   `{"idProperty", "id", "properties", "objectWriteTraceId"}`;
//! - `update`: `POST .../batch/update`, same inputs; a record HubSpot does not hold is rejected
//!   (`OBJECT_NOT_FOUND`);
//! - `create`: `POST .../batch/create`, inputs `{"properties": {..., <idProperty>: id},
//!   "objectWriteTraceId"}`; an existing record is rejected by HubSpot's uniqueness check.
//!
//! `delete_contact` / `delete_company`: the record's **key** is the id property value (deletes
//! carry no fields), so a model synced with deletes must be keyed by it (e.g. by email, or by
//! the warehouse id stored in a unique custom property). HubSpot archives by record id only, so
//! a delete is two requests: `POST .../batch/read?archived=false` with `idProperty` finds the
//! record ids, then `POST .../batch/archive` archives them (204). A key no record has is
//! already gone: success.
//!
//! Custom properties: `retl destination fields` lists the object's writable properties from
//! `GET /crm/v3/properties/{objectType}` (read-only and calculated ones left out).
//!
//! # Response contract
//! - 200/201: every input written. 207 (multi-status): `errors[]` name their inputs in
//!   `context.objectWriteTraceId` (retl sends each input's position) or `context.ids`; those
//!   records are rejected with HubSpot's category and message, the rest accepted. An error
//!   naming no input leaves the others unknown: they are rejected (sent again next run),
//!   never acknowledged.
//! - 429 (`{"errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"|"DAILY",...}`):
//!   throttled, with `Retry-After` when sent; 5xx: transient; 401/403: the credentials (the
//!   message carries HubSpot's `category` and `message`); other 4xx: the batch is rejected.
//!
//! # Limits
//! Documented at <https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>
//! and <https://developers.hubspot.com/changelog/increasing-our-api-limits> (private apps:
//! Free/Starter 100 requests per 10 s and 250,000 per day; Professional 190 per 10 s and
//! 650,000 per day; Enterprise 190 per 10 s and 1,000,000 per day; the API limit increase pack
//! 250 per 10 s), and on the batch endpoints' reference pages (100 inputs per batch request,
//! <https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts>).
//! Defaults: batch of 100, 9 requests/s with a burst of 10 (at most 100 requests in any 10 s,
//! the lowest tier's burst limit), 4 in flight, 5 MiB per request (a retl default: HubSpot
//! documents no byte limit for batch requests). The daily limit is not enforced by retl: a
//! `DAILY` 429 fails the batches with that explanation. Raise `requests_per_second` per
//! destination on higher tiers.
//!
//! # Test
//! `TestDestination` calls `GET /crm/v3/objects/contacts?limit=1` (reads, changes nothing) and
//! reports HubSpot's answer on failure (401 `INVALID_AUTHENTICATION`, 403 `MISSING_SCOPES`).
//!
//! # Not covered
//! Other object types (deals, tickets, custom objects), associations, OAuth apps (only
//! private-app tokens), the `X-HubSpot-RateLimit-*` headers, GDPR delete (`/gdpr-delete`),
//! and restoring archived records.

mod actions;
mod client;
mod config;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use retl_engine::connector::DestinationType;
use retl_engine::destination::{
    Action, ActionSpec, DeliveryLimits, Destination, DestinationError, FieldInfo, FieldType,
    undeclared_action,
};
use serde::Deserialize;

use self::actions::{ACTIONS, HubSpotAction, ObjectType};
use self::client::{BoundAction, HubSpotClient};
use self::config::{CONFIG_FIELDS, HubSpotConfig};

/// The catalog entry and factory of the `hubspot` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "hubspot",
        display_name: "HubSpot",
        description: "Creates, updates and archives HubSpot contacts and companies through the CRM v3 batch API, matched by a unique property.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// HubSpot's documented limits for private apps (lowest tier) and batch endpoints.
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        // A bucket of 10 refilled at 9/s lets at most 100 requests through in any 10 s.
        requests_per_second: 9.0,
        burst: 10,
        batch_size: 100,
        max_batch_bytes: 5 * 1024 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 500,
        max_backoff_ms: 30_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(HubSpotDestination::new(config, limits)?))
}

/// A configured HubSpot account.
#[derive(Debug)]
pub(crate) struct HubSpotDestination {
    client: Arc<HubSpotClient>,
}

impl HubSpotDestination {
    /// Parses and validates the config and prepares the client (no network access).
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: HubSpotConfig = crate::destinations::parse_config(config)?;
        let client = HubSpotClient::new(config.validate()?, limits.timeout())?;
        Ok(HubSpotDestination {
            client: Arc::new(client),
        })
    }

    /// The id property of an object type, or the config error saying what to set.
    fn id_property(&self, object_type: ObjectType) -> Result<String, DestinationError> {
        let config = self.client.config();
        match object_type {
            ObjectType::Contacts => Ok(config.contact_id_property.clone()),
            ObjectType::Companies => config.company_id_property.clone().ok_or_else(|| {
                config::invalid(
                    "company_id_property",
                    "the company actions need it: name a company property with unique values (create a custom one, e.g. 'external_id'); 'domain' is not unique in HubSpot",
                )
            }),
        }
    }
}

/// One property of `GET /crm/v3/properties/{objectType}`.
#[derive(Debug, Deserialize)]
struct Property {
    name: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default, rename = "type")]
    property_type: Option<String>,
    #[serde(default, rename = "fieldType")]
    field_type: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    calculated: bool,
    #[serde(default, rename = "modificationMetadata")]
    modification: Option<Modification>,
}

#[derive(Debug, Deserialize)]
struct Modification {
    #[serde(default, rename = "readOnlyValue")]
    read_only_value: bool,
}

#[derive(Debug, Deserialize)]
struct Properties {
    results: Vec<Property>,
}

/// The field type of a HubSpot property type.
fn field_type(property: &Property) -> FieldType {
    match (
        property.property_type.as_deref(),
        property.field_type.as_deref(),
    ) {
        (Some("number"), _) => FieldType::Number,
        (Some("bool"), _) | (_, Some("booleancheckbox")) => FieldType::Boolean,
        (Some("datetime" | "date"), _) => FieldType::Datetime,
        (Some("enumeration"), Some("checkbox")) => FieldType::Array,
        _ => FieldType::String,
    }
}

#[async_trait]
impl Destination for HubSpotDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        let path = "/crm/v3/objects/contacts?limit=1";
        let answer = self.client.get(path).await?;
        if !answer.status.is_success() {
            return Err(client::error(&answer));
        }
        Ok(format!(
            "HubSpot accepted the access token (GET {path} answered {})",
            answer.status.as_u16()
        ))
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            HubSpotAction::from_spec(spec).ok_or_else(|| undeclared_action("hubspot", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            id_property: self.id_property(action.object_type())?,
            client: Arc::clone(&self.client),
        }))
    }

    async fn fields(&self, spec: &'static ActionSpec) -> Result<Vec<FieldInfo>, DestinationError> {
        let action =
            HubSpotAction::from_spec(spec).ok_or_else(|| undeclared_action("hubspot", spec))?;
        let HubSpotAction::Upsert(object_type) = action else {
            return Ok(FieldInfo::from_specs(spec.fields));
        };
        let answer = self
            .client
            .get(&format!("/crm/v3/properties/{}", object_type.path()))
            .await?;
        if !answer.status.is_success() {
            return Err(client::error(&answer));
        }
        let properties: Properties =
            serde_json::from_slice(&answer.body).map_err(|e| DestinationError::Rejected {
                message: format!("HubSpot's list of properties could not be read: {e}"),
            })?;
        let mut fields = FieldInfo::from_specs(&spec.fields[..1]);
        for property in properties.results {
            let read_only = property.calculated
                || property
                    .modification
                    .as_ref()
                    .is_some_and(|m| m.read_only_value);
            if read_only {
                continue;
            }
            let description = match (&property.label, &property.description) {
                (Some(label), Some(d)) if !d.is_empty() => format!("{label}: {d}"),
                (Some(label), _) => label.clone(),
                (None, d) => d.clone().unwrap_or_default(),
            };
            fields.push(FieldInfo {
                field_type: field_type(&property),
                name: Cow::Owned(property.name),
                required: false,
                description: Cow::Owned(description),
                children: Vec::new(),
            });
        }
        Ok(fields)
    }
}
