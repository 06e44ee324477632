//! `braze`: sets user profile attributes, records custom events and deletes users in a Braze
//! workspace through its REST API.
//!
//! # Files
//! - `config.rs`: `BrazeConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the three action specs, `BrazeAction`, one record → one attributes object,
//!   event object or external id.
//! - `client.rs`: the one request per batch, minor errors per record, rate-limit headers,
//!   `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::BrazeEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/braze.rs`; the conformance suite runs it in
//! `tests/it/destinations/braze.rs`.
//!
//! # API
//! `Authorization: Bearer <REST API key>` on the workspace's `rest_endpoint`.
//! - `update_user_profile`: `POST /users/track` with `{"attributes": [{"external_id", ...,
//!   "_update_existing_only"}]}`; sync modes `upsert` (`_update_existing_only: false`,
//!   creates missing users) and `update` (`true`: only existing users change; Braze reports no
//!   error for a user it skips, so such a record counts as accepted)
//!   (<https://www.braze.com/docs/api/endpoints/user_data/post_user_track/>).
//! - `track_event`: `POST /users/track` with `{"events": [{"external_id", "name", "time"
//!   (ISO 8601), "properties"}]}`. Braze documents no deduplication id for events, so unlike
//!   Segment's `messageId` or Mixpanel's `$insert_id` a batch re-sent after a lost answer is
//!   recorded twice.
//! - `delete_user`: `POST /users/delete` with `{"external_ids": [...]}`, the records' unique
//!   ids; an unknown id is not an error (the answer counts only the `deleted` ones), so a
//!   re-sent delete succeeds (<https://www.braze.com/docs/api/endpoints/user_data/post_user_delete/>).
//! - When `external_id` is not mapped, the record's unique id is the external id.
//!
//! # Limits (documented)
//! - `/users/track`: 75 objects per request — 75 attributes, 75 events and 75 purchases each
//!   for workspaces on the legacy limits, 75 combined for newer ones (retl sends one array per
//!   request, within both); 3,000 requests per 3 seconds per workspace
//!   (<https://www.braze.com/docs/api/api_limits/>).
//! - `/users/delete`: 50 ids per request; 20,000 requests per minute shared with
//!   `/users/alias/new`, `/users/identify`, `/users/merge` and `/users/alias/update`.
//! - A 429 carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (UTC
//!   epoch seconds); the client waits until the reset when there is no `Retry-After`.
//!
//! Defaults: 75 records per request (a delete batch over 50 is returned to the engine as too
//! large, which halves it), 4 MiB of payload per request (retl's choice: no byte limit is
//! documented), 300 requests/s (burst 300, below the delete endpoint's 20,000 per minute),
//! 8 in flight, 5 attempts, 30 s timeout.
//!
//! # Response contract
//! - `/users/track` **2xx** `{"message": "success", "attributes_processed"|"events_processed":
//!   n, "errors": [{"type", "input_array", "index"}]}`: the objects named by a minor error
//!   are rejected, the others accepted. **400** `{"message": <fatal>, "errors": [...]}` (e.g.
//!   every object invalid): the indexed objects are rejected with their error, the rest with
//!   the fatal message; a 400 without indexed errors rejects the batch
//!   (<https://www.braze.com/docs/api/errors/>).
//! - `/users/delete` **2xx** `{"deleted": n, "message": "success"}`: every id deleted or
//!   already gone.
//! - **401** (unknown key), **403** (key without the permission): authentication error.
//!   **429**: throttled. **5xx**: transient.
//!
//! # Test
//! `TestDestination` sends `POST /users/track` with an empty `attributes` array: Braze checks
//! the key and its `users.track` permission first (`401`/`403`) and writes nothing for an
//! empty request (`400`, "valid data must be provided"). The `users.delete` permission is
//! not checked (it has no side-effect-free call).
//!
//! # Not covered
//! Purchases, user aliases, `braze_id`/email/phone identifiers, subscription groups, nested
//! custom attribute operations (`$add`, `$remove`, `$update`), `/users/track/bulk`,
//! `/users/merge`.

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

use self::actions::{ACTIONS, BrazeAction};
use self::client::{BoundAction, BrazeClient};
use self::config::{BrazeConfig, CONFIG_FIELDS};

/// The catalog entry and factory of the `braze` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "braze",
        display_name: "Braze",
        description: "Sets user profile attributes, records custom events and deletes users in a Braze workspace.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Braze's documented limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 300.0,
        burst: 300,
        batch_size: 75,
        max_batch_bytes: 4 * 1024 * 1024,
        max_in_flight: 8,
        max_attempts: 5,
        initial_backoff_ms: 500,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds a Braze destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(BrazeDestination::new(config, limits)?))
}

/// A configured Braze workspace.
#[derive(Debug)]
pub(crate) struct BrazeDestination {
    client: Arc<BrazeClient>,
}

impl BrazeDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: BrazeConfig = crate::destinations::parse_config(config)?;
        let client = BrazeClient::new(config.validate()?, limits.timeout())?;
        Ok(BrazeDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for BrazeDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            BrazeAction::from_spec(spec).ok_or_else(|| undeclared_action("braze", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
