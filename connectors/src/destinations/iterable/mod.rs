//! `iterable`: creates and updates users, records custom events and deletes users in an
//! Iterable project through its REST API.
//!
//! # Files
//! - `config.rs`: `IterableConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the three action specs, `IterableAction`, one record → one `bulkUpdate`
//!   user, one `trackBulk` event, or the `userId` of a delete.
//! - `client.rs`: the one request per bulk batch, failures per record from the answer's lists,
//!   the paced per-record deletes, `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::IterableEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/iterable.rs`; the conformance suite runs it in
//! `tests/it/destinations/iterable.rs`.
//!
//! # API
//! `Api-Key: <server-side key>` on `https://api.iterable.com` (or `https://api.eu.iterable.com`
//! for the EU data center) (<https://api.iterable.com/api/docs>).
//! - `upsert_user`: `POST /api/users/bulkUpdate` with `{"users": [{"userId", "email",
//!   "dataFields", "preferUserId": true}]}`; data fields are merged into the profile, and
//!   `preferUserId` creates a user for an unknown `userId`
//!   (<https://api.iterable.com/api/docs#users_bulkUpdateUser>).
//! - `track_event`: `POST /api/events/trackBulk` with `{"events": [{"id", "userId", "email",
//!   "eventName", "createdAt" (epoch seconds), "dataFields"}]}`. The `id` is retl's
//!   idempotency key: Iterable updates the event that already has that id, so a batch re-sent
//!   after a lost answer is not recorded twice
//!   (<https://api.iterable.com/api/docs#events_trackBulk>).
//! - `delete_user`: `DELETE /api/users/byUserId/{userId}` with the record's unique id, one
//!   request per record (Iterable has no bulk delete), paced by
//!   [`per_record`](crate::destinations::per_record) at the destination's rate; a `404` for a
//!   user that is not there counts as deleted, so a re-sent delete succeeds
//!   (<https://api.iterable.com/api/docs#users_delete_0>).
//! - When `user_id` is not mapped, the record's unique id is the `userId`.
//!
//! # Limits
//! - Rate, per project: `/api/users/bulkUpdate` **5 requests/s**, `/api/events/trackBulk`
//!   **10 requests/s** (Iterable's API reference, <https://api.iterable.com/api/docs>, and
//!   "API Overview and Sample Payloads",
//!   <https://support.iterable.com/hc/en-us/articles/204780579>; the trackBulk figure is also
//!   quoted at <https://hookdeck.com/webhooks/platforms/how-to-solve-iterable-exceeded-rate-limit-for-webhooks>).
//!   Limits are a leaky bucket answered `429` without a documented `Retry-After`; the client
//!   then waits one second.
//! - Batch size and bytes: Iterable's reference gives no user count or byte limit for
//!   `bulkUpdate` that could be read here (RELIABILITY.md lists them as not found). retl's
//!   choice follows the batching of the widely used RudderStack Iterable destination: 1,000
//!   users per request and 4,000,000 bytes of body (`IDENTIFY_MAX_BATCH_SIZE`,
//!   `IDENTIFY_MAX_BODY_SIZE_IN_BYTES` in rudder-transformer's `iterable/config.js`).
//!
//! Defaults: 5 requests/s (burst 5, the lower of the two bulk endpoints), 1,000 records per
//! request, 4,000,000 bytes, 4 in flight, 5 attempts, 30 s timeout. Deletes go one request
//! per record at the same 5/s through the pacer; a delete batch longer than 75 records (half
//! the timeout at 5/s) is handed back to the engine, which halves it.
//!
//! # Response contract
//! - bulk endpoints **2xx** `{"successCount", "failCount", "invalidEmails", "invalidUserIds",
//!   "failedUpdates": {"invalidEmails", "invalidUserIds", "notFoundEmails",
//!   "notFoundUserIds", "forgottenEmails", "forgottenUserIds", "conflictEmails",
//!   "conflictUserIds", "invalidDataEmails", "invalidDataUserIds"}, "disallowedEventNames"}`:
//!   the records named in a list are rejected, the others accepted; if `failCount` is larger
//!   than the records named, the unnamed ones are sent again rather than acknowledged.
//! - **400** `{"msg", "code": "BadJsonBody" | "BadParams", "params"}`: the batch is rejected.
//!   **401** `{"msg": "Invalid API key", "code": "BadApiKey"}`: authentication error (a key
//!   without the permission gets the same answer). **429**: throttled. **5xx**: transient.
//! - Delete: **2xx** deleted, **404** already gone (both success).
//!
//! # Test
//! `TestDestination` sends `GET /api/channels`, a read: `401` refuses the key. It does not
//! prove the key's write permissions (Iterable has no side-effect-free write check).
//!
//! # Not covered
//! Email-keyed projects (users identified by email only, `DELETE /api/users/{email}`), list
//! subscriptions (`/api/lists/subscribe`), `bulkUpdateSubscriptions`, purchases and carts
//! (`/api/commerce/*`), catalogs, device tokens, `mergeNestedObjects`, `/api/users/forget`
//! (GDPR forget), updating a user's email (`/api/users/updateEmail`).

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

use self::actions::{ACTIONS, IterableAction};
use self::client::{BoundAction, IterableClient};
use self::config::{CONFIG_FIELDS, IterableConfig};

/// The catalog entry and factory of the `iterable` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "iterable",
        display_name: "Iterable",
        description: "Creates and updates users, records custom events and deletes users in an Iterable project.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Iterable's documented limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 5.0,
        burst: 5,
        batch_size: client::MAX_BULK,
        max_batch_bytes: 4_000_000,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 500,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds an Iterable destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(IterableDestination::new(config, &limits)?))
}

/// A configured Iterable project.
#[derive(Debug)]
pub(crate) struct IterableDestination {
    client: Arc<IterableClient>,
}

impl IterableDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: IterableConfig = crate::destinations::parse_config(config)?;
        let client = IterableClient::new(config.validate()?, limits)?;
        Ok(IterableDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for IterableDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            IterableAction::from_spec(spec).ok_or_else(|| undeclared_action("iterable", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
