//! `attio`: records of one Attio object (people, companies or a custom object), asserted by a
//! unique matching attribute and deleted, through the REST API v2 with an access token.
//!
//! # Files
//! - `config.rs`: `AttioConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the two action specs, `AttioAction`, one record → one assert body.
//! - `client.rs`: the assert, the query and delete, Attio's answers → outcomes and errors,
//!   `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::emulators::attio`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/attio.rs`; the conformance suite runs it in
//! `tests/it/destinations/attio.rs`.
//!
//! # Configuration
//! | key | required | secret | meaning |
//! |---|---|---|---|
//! | `access_token` | yes | yes | the integration's access token, sent as `Authorization: Bearer` |
//! | `object` | yes | no | the object's slug: `people`, `companies`, or a custom object's |
//! | `matching_attribute` | yes | no | the slug of a unique attribute, e.g. `email_addresses` |
//! | `base_url` | no | no | default `https://api.attio.com` |
//!
//! # Actions and calls per record
//! Attio's record endpoints take one record per request, so the batch size is 1:
//! - `assert_record`: `PUT /v2/objects/{object}/records?matching_attribute={attribute}` with
//!   `{"data": {"values": {<attribute>: <id>, <slug>: <value>, ...}}}` — 1 call; Attio
//!   updates the record whose attribute holds the value or creates it
//!   (<https://docs.attio.com/rest-api/endpoint-reference/records/assert-a-record>). The
//!   field `id` holds the matching value (the record's key when unmapped); every other field
//!   is an attribute by its slug with Attio's value form (a single value, or an array for a
//!   multi-value attribute), sent as mapped.
//! - `delete_record` (the record's key is the matching value):
//!   `POST /v2/objects/{object}/records/query` with `{"filter": {<attribute>: <value>},
//!   "limit": 2}`, then `DELETE /v2/objects/{object}/records/{record_id}` — 2 calls; nothing
//!   found (or a 404) is already gone: accepted after 1 call; two matches reject the record
//!   (<https://docs.attio.com/rest-api/endpoint-reference/records/list-records>,
//!   <https://docs.attio.com/rest-api/endpoint-reference/records/delete-a-record>).
//!
//! # Response contract
//! - 2xx: accepted.
//! - 400 (`validation_type`, unknown attribute, value of the wrong form), 404 (unknown
//!   object), other client errors: the record is rejected with Attio's `code` and `message`
//!   (`{"status_code", "type", "code", "message"}`).
//! - 401/403: authentication error. 429 (`rate_limit_exceeded`): throttled until
//!   `Retry-After`, which Attio sends as an HTTP date. 5xx: transient.
//!
//! # Limits
//! Documented at <https://docs.attio.com/rest-api/guides/rate-limiting>: 100 read requests
//! and 25 write requests per second across the API, `429` with `Retry-After` (a date,
//! usually the next second). One record per request; no payload byte limit is documented.
//!
//! Defaults: 1 record per request; 20 records/s with a burst of 5 (at most 25 writes in any
//! second; a delete adds one read); 8 in flight; 1 MiB per request (not documented; retl's
//! choice); 5 attempts, backoff 0.5–30 s, 30 s timeout.
//!
//! # Test
//! `TestDestination` calls `GET /v2/self` (describes the token; reads only,
//! <https://docs.attio.com/rest-api/endpoint-reference/meta/identify>) and refuses an
//! inactive token.
//!
//! # Not covered
//! Lists and list entries, notes, tasks, attribute discovery for `retl destination fields`
//! (attribute slugs are mapped as typed), OAuth apps (only access tokens), and
//! multi-select attributes' append mode (an assert replaces their values).

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

use self::actions::{ACTIONS, AttioAction};
use self::client::{AttioClient, BoundAction};
use self::config::{AttioConfig, CONFIG_FIELDS};

/// The catalog entry and factory of the `attio` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "attio",
        display_name: "Attio",
        description: "Asserts (creates or updates) and deletes records of an Attio object matched by a unique attribute, one record per request.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Attio's documented limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 20.0,
        burst: 5,
        batch_size: 1,
        max_batch_bytes: 1024 * 1024,
        max_in_flight: 8,
        max_attempts: 5,
        initial_backoff_ms: 500,
        max_backoff_ms: 30_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds an Attio destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(AttioDestination::new(config, limits)?))
}

/// A configured Attio workspace and object.
#[derive(Debug)]
pub(crate) struct AttioDestination {
    client: Arc<AttioClient>,
}

impl AttioDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: AttioConfig = crate::destinations::parse_config(config)?;
        let client = AttioClient::new(config.validate()?, limits.timeout())?;
        Ok(AttioDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for AttioDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            AttioAction::from_spec(spec).ok_or_else(|| undeclared_action("attio", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
