//! `klaviyo`: creates and updates profiles through bulk import jobs, records events and
//! requests profile deletions in a Klaviyo account through its JSON:API REST API.
//!
//! # Files
//! - `config.rs`: `KlaviyoConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the three action specs, `KlaviyoAction`, one record → one profile
//!   resource, one event, or one deletion request.
//! - `client.rs`: the one import job per profile batch and its per-profile errors, the paced
//!   per-record event and deletion requests, `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::KlaviyoEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/klaviyo.rs`; the conformance suite runs it in
//! `tests/it/destinations/klaviyo.rs`.
//!
//! # API
//! `Authorization: Klaviyo-API-Key <private key>` and `revision: 2024-10-15` on
//! `https://a.klaviyo.com`; bodies are JSON:API (`application/vnd.api+json`).
//! - `upsert_profile`: `POST /api/profile-bulk-import-jobs` with `{"data": {"type":
//!   "profile-bulk-import-job", "attributes": {"profiles": {"data": [{"type": "profile",
//!   "attributes": {"external_id", "email", "phone_number", "first_name", "last_name",
//!   "properties"}}]}}, "relationships": {"lists": ...}}}`: an upsert of every profile,
//!   matched by its identifiers, optionally added to `list_id`
//!   (<https://developers.klaviyo.com/en/reference/bulk_import_profiles>,
//!   <https://developers.klaviyo.com/en/docs/use_klaviyos_bulk_profile_import_api>).
//! - `track_event`: `POST /api/events`, one event per request (`{"data": {"type": "event",
//!   "attributes": {"properties", "time", "value", "unique_id", "metric", "profile"}}}`), paced
//!   at the endpoint's own steady rate. `unique_id` is retl's idempotency key: Klaviyo drops
//!   an event whose `unique_id` it already has, so a re-sent event is not counted twice
//!   (<https://developers.klaviyo.com/en/reference/create_event>).
//! - `delete_profile`: `POST /api/data-privacy-deletion-jobs` with the record's unique id as
//!   the profile's **email**, one request per record (the API takes one identifier per job),
//!   paced at its rate. A record whose unique id is not an email address is rejected with
//!   the reason: a model synced to Klaviyo with deletes must be keyed by email. The
//!   deletion runs asynchronously; Klaviyo does not document the answer for an email it does
//!   not know, so the client counts a `404` as deleted as well as a `2xx` (the emulator
//!   accepts such a request), and a re-sent delete succeeds
//!   (<https://developers.klaviyo.com/en/reference/request_profile_deletion>).
//! - When `external_id` is not mapped, the record's unique id is the profile's `external_id`.
//!
//! # Limits (documented)
//! - Bulk import job: up to **10,000 profiles** and **5 MB** per request (100 KB per profile);
//!   rate **10/s burst, 150/min steady**
//!   (<https://developers.klaviyo.com/en/reference/bulk_import_profiles>).
//! - `/api/events`: **350/s burst, 3,500/min steady**
//!   (<https://developers.klaviyo.com/en/reference/create_event>); 5 MB payload
//!   (<https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling>).
//! - `/api/data-privacy-deletion-jobs`: **3/s burst, 60/min steady**.
//! - Limits are per account in fixed 1-second (burst) and 1-minute (steady) windows; a
//!   throttled request is answered `429` with `Retry-After`
//!   (<https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling>).
//!
//! Defaults: 2.5 requests/s (the import job's 150/min steady) with a burst of 10 (its burst),
//! 10,000 records and 5,000,000 bytes per request, 2 in flight, 5 attempts, 30 s timeout.
//! Events go one request each at 3,500/min and deletions at 60/min, paced by
//! [`per_record`](crate::destinations::per_record) (a batch longer than half the timeout at
//! that rate is handed back to the engine, which halves it).
//!
//! # Response contract
//! - Import job **202** (the job, `status: queued`): every profile is accepted for import.
//!   **400** JSON:API `errors` with `source.pointer` `/data/attributes/profiles/data/<i>/...`:
//!   no job was created; the profiles named are rejected with the error's `detail`, the others
//!   are sent again without them. A `400` naming no profile rejects the batch.
//! - Event and deletion: **202** accepted; **400** rejects that record with the `detail`.
//! - **401** (`not_authenticated`), **403** (`permission_denied`, a missing scope):
//!   authentication error. **429**: throttled, waiting for `Retry-After`. **5xx**: transient.
//!
//! # Test
//! `TestDestination` sends `GET /api/accounts`, a read: `401` refuses the key; a `403` (no
//! `accounts:read` scope) still proves the key, whose write scopes cannot be checked without
//! writing.
//!
//! # Not covered
//! The import job's asynchronous per-profile errors (`GET
//! /api/profile-bulk-import-jobs/{id}/import-errors`: a profile Klaviyo fails while processing
//! the job counts as delivered), deletion by phone number or Klaviyo profile id, list
//! membership removal, subscriptions and consent (`/api/profile-subscription-bulk-create-jobs`),
//! `location` and the other standard profile attributes beyond names (they land in
//! `properties` when mapped), bulk event jobs (`/api/event-bulk-create-jobs`),
//! `value_currency`, OAuth apps.

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

use self::actions::{ACTIONS, KlaviyoAction};
use self::client::{BoundAction, KlaviyoClient};
use self::config::{CONFIG_FIELDS, KlaviyoConfig};

/// The catalog entry and factory of the `klaviyo` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "klaviyo",
        display_name: "Klaviyo",
        description: "Creates and updates profiles through bulk import jobs, records events and requests profile deletions in a Klaviyo account.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Klaviyo's documented limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 2.5,
        burst: 10,
        batch_size: client::MAX_PROFILES,
        max_batch_bytes: client::MAX_IMPORT_BYTES,
        max_in_flight: 2,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds a Klaviyo destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(KlaviyoDestination::new(config, &limits)?))
}

/// A configured Klaviyo account.
#[derive(Debug)]
pub(crate) struct KlaviyoDestination {
    client: Arc<KlaviyoClient>,
}

impl KlaviyoDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: KlaviyoConfig = crate::destinations::parse_config(config)?;
        let client = KlaviyoClient::new(config.validate()?, limits)?;
        Ok(KlaviyoDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for KlaviyoDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            KlaviyoAction::from_spec(spec).ok_or_else(|| undeclared_action("klaviyo", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
