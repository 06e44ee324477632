//! `pipedrive`: persons and organizations of a Pipedrive company, found by a match field
//! (email or a unique custom field) and added, updated or deleted through the REST API v1,
//! with a user's API token.
//!
//! # Files
//! - `config.rs`: `PipedriveConfig`, its catalog config fields, the match fields,
//!   `validate()`.
//! - `actions.rs`: the four action specs, `PipedriveAction`, one record → one body.
//! - `client.rs`: the search and write of each record, Pipedrive's answers → outcomes and
//!   errors, `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::emulators::pipedrive`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/pipedrive.rs`; the conformance suite runs it
//! in `tests/it/destinations/pipedrive.rs`.
//!
//! # Configuration
//! | key | required | secret | meaning |
//! |---|---|---|---|
//! | `api_token` | yes | yes | a user's API token, sent as the `x-api-token` header (never in the URL, where the `api_token` query parameter would put it) |
//! | `base_url` | no | no | default `https://api.pipedrive.com` |
//! | `person_match_field` | no | no | `email` (default), `phone`, `name` or a custom field's 40-character key |
//! | `organization_match_field` | no | no | `name` (default) or a custom field's key |
//!
//! Authentication: <https://pipedrive.readme.io/docs/core-api-concepts-authentication>.
//!
//! # Actions and calls per record
//! Pipedrive's persons and organizations endpoints write one record per request and have no
//! upsert, so the batch size is 1 and each record costs two calls:
//! - `upsert_person` / `upsert_organization`: `GET /v1/{persons|organizations}/search?term=
//!   <value>&fields=<email|phone|name|custom_fields>&exact_match=true&limit=2`, then
//!   `PUT /v1/{object}/{id}` when exactly one record matches, `POST /v1/{object}` when none
//!   does; several matches reject the record (ambiguous). The field `id` holds the match
//!   value (the record's key when unmapped), which is also written to the match field; every
//!   other field is sent as mapped (`name`, `email`, `phone`, `org_id`, `owner_id`,
//!   `visible_to`, `address`, and custom fields by their 40-character key).
//!   <https://developers.pipedrive.com/docs/api/v1/Persons#searchPersons>,
//!   <https://developers.pipedrive.com/docs/api/v1/Persons#addPerson>,
//!   <https://developers.pipedrive.com/docs/api/v1/Persons#updatePerson>, and the same for
//!   Organizations.
//! - `delete_person` / `delete_organization` (the record's key is the match value): the
//!   search, then `DELETE /v1/{object}/{id}`; nothing found (or 404) is already gone:
//!   accepted after one call. <https://developers.pipedrive.com/docs/api/v1/Persons#deletePerson>.
//!
//! # Response contract
//! - 2xx `{"success": true, "data": ...}`: accepted.
//! - 400, 402, 404, 410, 422 and other client errors of a write: the record is rejected with
//!   Pipedrive's `error` (and `error_info`).
//! - 401 (`{"success": false, "error": "unauthorized access", "errorCode": 401}`) / 403:
//!   authentication error. 429: throttled, waiting `Retry-After` when sent, else
//!   `x-ratelimit-reset` seconds. 5xx: transient.
//!
//! # Limits
//! Documented at <https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting>: burst
//! limits per token in 2-second windows — with an API token 20 requests per 2 s (Essential),
//! 40 (Advanced), 80 (Professional), 100 (Power), 120 (Enterprise); the Search API 10 per 2 s
//! on every plan; 429 `Too Many Requests` with `x-ratelimit-limit`, `x-ratelimit-remaining`
//! and `x-ratelimit-reset`. Token-based daily budget: 30,000 base tokens × plan multiplier ×
//! seats a day per company, each request costing tokens by endpoint (the page lists the
//! costs; a search costs more than a write). One record per request; no byte limit is
//! documented.
//!
//! Defaults: 1 record per request; 4 records/s with a burst of 2 (one search each: at most
//! 10 searches and 20 calls in any 2 s, the Essential plan's and the Search API's limits);
//! 2 in flight; 1 MiB per request (not documented; retl's choice); 5 attempts, backoff
//! 1–60 s, 30 s timeout; a daily budget of 600 records (the smallest company's 30,000
//! tokens at about 50 tokens a record; raise it with seats and plan).
//!
//! # Test
//! `TestDestination` calls `GET /v1/users/me` (reads only,
//! <https://developers.pipedrive.com/docs/api/v1/Users#getCurrentUser>).
//!
//! # Not covered
//! Deals, leads, activities and other objects; the v2 endpoints; OAuth apps (only API
//! tokens); custom field discovery for `retl destination fields`; a search on
//! `custom_fields` matches the value in any custom field, so a unique id must not appear in
//! another custom field of another record (such a record makes the match ambiguous, and the
//! record is rejected rather than written); the daily token budget is not tracked from the
//! answers.

mod actions;
mod client;
mod config;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use retl_engine::connector::DestinationType;
use retl_engine::destination::{
    Action, ActionSpec, DeliveryLimits, Destination, DestinationError, undeclared_action,
};

use self::actions::{ACTIONS, PipedriveAction};
use self::client::{BoundAction, PipedriveClient};
use self::config::{CONFIG_FIELDS, PipedriveConfig};

/// The catalog entry and factory of the `pipedrive` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "pipedrive",
        display_name: "Pipedrive",
        description: "Adds, updates and deletes Pipedrive persons and organizations found by email or a unique custom field, one record per request.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Pipedrive's documented limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 4.0,
        burst: 2,
        batch_size: 1,
        max_batch_bytes: 1024 * 1024,
        max_in_flight: 2,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: Some(600),
    }
}

/// Builds a Pipedrive destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(PipedriveDestination::new(config, limits)?))
}

/// A configured Pipedrive company.
#[derive(Debug)]
pub(crate) struct PipedriveDestination {
    client: Arc<PipedriveClient>,
}

impl PipedriveDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: PipedriveConfig = crate::destinations::parse_config(config)?;
        let client = PipedriveClient::new(config.validate()?, limits.timeout())?;
        Ok(PipedriveDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for PipedriveDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            PipedriveAction::from_spec(spec).ok_or_else(|| undeclared_action("pipedrive", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
