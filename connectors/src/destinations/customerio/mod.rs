//! `customerio`: identifies people, tracks their events and deletes them in a Customer.io
//! workspace through the Track API v2 batch endpoint.
//!
//! # Files
//! - `config.rs`: `CustomerioConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the three action specs, `CustomerioAction`, one record → one batch entry,
//!   the documented attribute limits.
//! - `client.rs`: the one request per batch, per-entry errors, `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::CustomerioEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/customerio.rs`; the conformance suite runs it
//! in `tests/it/destinations/customerio.rs`.
//!
//! # API
//! `POST <track_host>/api/v2/batch` with `{"batch": [entry, ...]}` and HTTP Basic
//! `site_id:api_key` (<https://docs.customer.io/api/track/>, "Authentication" and the
//! `batch` operation). Each entry is a person operation, `{"type": "person",
//! "identifiers": {"id"}, "action", ...}`:
//! - `identify`: `"action": "identify", "attributes": {...}` (creates or updates the person);
//! - `track_event`: `"action": "event", "name", "timestamp"? (epoch seconds), "attributes"`
//!   (the event data);
//! - `delete_person`: `"action": "delete"` for the record's unique id; deleting a person that
//!   does not exist is not an error, so a re-sent delete succeeds.
//!
//! When `id` is not mapped, the record's unique id is the person's id. Mapped fields the
//! action does not declare join `attributes`.
//!
//! Customer.io's v2 entries carry no deduplication id retl can set, so an event re-sent after
//! a lost answer is recorded twice; identify and delete are idempotent.
//!
//! # Limits (documented)
//! - The v2 batch request "must be smaller than 500kb" (the `batch` operation of
//!   <https://docs.customer.io/api/track/>); a single Track API call at most 32 KB (the
//!   "Limits" of the same page), which retl applies to each entry.
//! - Fair use of 100 requests per second for the Track API, v1 and v2
//!   (<https://docs.customer.io/api/track/>, "Limits").
//! - A person's identify: at most 300 attributes, names at most 150 bytes, values at most
//!   1,000 bytes; an event name at most 100 bytes
//!   (<https://docs.customer.io/journeys/invalid-api-requests/>). retl rejects a record that
//!   breaks one before sending it.
//!
//! No count limit per batch is documented.
//!
//! Defaults: 100 records per request (retl's choice), 450 KiB of payload per request (the
//! client refuses a body of 500 KB or more and the engine halves the batch), 50 requests/s
//! (burst 50; half the fair-use rate, as other integrations share it), 4 in flight,
//! 5 attempts, 30 s timeout.
//!
//! # Response contract
//! - **200**: every entry applied. **207** `{"errors": [{"batch_index", "reason", "field",
//!   "message"}]}`: the named entries are rejected, the others were applied. **400** naming
//!   entries the same way: those are rejected and the others, not applied, are sent again; a
//!   400 without them (`{"meta": {"error"}}`) rejects the batch
//!   (<https://docs.customer.io/journeys/invalid-api-requests/>). **401**: the site ID or API
//!   key is refused. **429**: throttled (`Retry-After` honoured when sent). **5xx**:
//!   transient.
//!
//! # Test
//! `TestDestination` reads the workspace's region, `GET <track_host>/api/v1/accounts/region`,
//! with the Track API credentials: it changes nothing and answers `401` for wrong ones.
//!
//! # Not covered
//! Objects and relationships (`"type": "object"`), deliveries, identifying by `email` or
//! `cio_id`, `add_device`/`delete_device`, `suppress`/`unsuppress`, `merge`, anonymous
//! events, page and screen events, event deduplication ids, the EU redirect (configure
//! `track_host`).

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

use self::actions::{ACTIONS, CustomerioAction};
use self::client::{BoundAction, CustomerioClient};
use self::config::{CONFIG_FIELDS, CustomerioConfig};

/// The catalog entry and factory of the `customerio` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "customerio",
        display_name: "Customer.io",
        description: "Identifies people, tracks their events and deletes them in a Customer.io workspace through the Track API v2 batch endpoint.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Customer.io's documented sizes (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 50.0,
        burst: 50,
        batch_size: 100,
        max_batch_bytes: 450 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds a Customer.io destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(CustomerioDestination::new(config, limits)?))
}

/// A configured Customer.io workspace.
#[derive(Debug)]
pub(crate) struct CustomerioDestination {
    client: Arc<CustomerioClient>,
}

impl CustomerioDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: CustomerioConfig = crate::destinations::parse_config(config)?;
        let client = CustomerioClient::new(config.validate()?, limits.timeout())?;
        Ok(CustomerioDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for CustomerioDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action = CustomerioAction::from_spec(spec)
            .ok_or_else(|| undeclared_action("customerio", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
