//! `mixpanel`: imports events (`/import`) and sets or deletes user profiles (`/engage`) in a
//! Mixpanel project.
//!
//! # Files
//! - `config.rs`: `MixpanelConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the three action specs, `MixpanelAction`, one record → one event or
//!   profile update.
//! - `client.rs`: the one request per batch, strict-mode per-record results, `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::MixpanelEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/mixpanel.rs`; the conformance suite runs it in
//! `tests/it/destinations/mixpanel.rs`.
//!
//! # API
//! - `track_event`: `POST <api_host>/import?strict=1` (`&project_id=` with a service
//!   account), JSON array of `{"event", "properties": {"time" (ms), "distinct_id",
//!   "$insert_id", ...}}`; HTTP Basic with the service account, or the project token as user
//!   name and an empty password (<https://docs.mixpanel.com/reference/import-events>).
//!   `$insert_id` is the record's idempotency key (32 hex digits; Mixpanel allows at most 36
//!   letters, digits or `-`), so an event re-sent after a crash or a lost answer is
//!   deduplicated (Mixpanel deduplicates on event, distinct_id, time and `$insert_id`; `time`
//!   is therefore a required, mapped field, never the send time).
//! - `set_profile` / `delete_profile`: `POST <api_host>/engage?verbose=1`, JSON array of
//!   `{"$token", "$distinct_id", "$set" | "$set_once" | "$delete": "null"}`
//!   (<https://docs.mixpanel.com/reference/profile-batch-update>). Sync modes: `upsert`
//!   (`$set`) and `create` (`$set_once`: only properties the profile does not have yet).
//!   A delete uses the record's unique id as `$distinct_id`.
//!
//! # Limits (documented)
//! - `/import`: 2,000 events and 10 MB uncompressed per request
//!   (<https://docs.mixpanel.com/reference/import-events>); rate limit 2 GB of JSON per minute
//!   per project, about 30k events/s (<https://docs.mixpanel.com/reference/rate-limits>).
//! - `/engage`: 2,000 updates per request, 1 MB per update
//!   (<https://docs.mixpanel.com/reference/user-profile-limits>).
//!
//! Defaults: 2,000 records and 9 MiB of payload per request (the engine counts payload JSON;
//! the client refuses an `/import` body over 10 MB as too large, and the engine halves the
//! batch), 15 requests/s (2,000 events each: the documented ~30k events/s), 8 in flight,
//! 6 attempts with backoff from 2 s to 60 s (Mixpanel's advice for 429), 60 s timeout.
//!
//! # Response contract
//! - `/import` **200**: every event imported. **400** with `failed_records: [{"index",
//!   "insert_id", "field", "message"}]` (strict mode): those events are rejected, the others
//!   were imported (<https://docs.mixpanel.com/troubleshooting/errors/400-bad-request>); a
//!   400 without it rejects the batch.
//! - `/engage` answers **200** even for invalid data; with `verbose=1` the body is
//!   `{"status": 1}` (applied) or `{"status": 0, "error": "..."}` (the batch is rejected with
//!   that error). A `$delete` of a profile that does not exist is `status: 1`: success.
//! - **401/403**: authentication error. **413**: too large (the engine splits). **429**: throttled
//!   (Mixpanel documents no `Retry-After`; when absent the engine backs off exponentially),
//!   **5xx**: transient.
//!
//! # Test
//! `TestDestination` posts an empty batch (`[]`) to `/import` with the import credentials:
//! nothing is imported; `401`/`403` mean the credentials are refused, any other answer
//! (`200`, or `400` for the empty batch) that they were accepted. The project token of
//! profile updates travels in the body of `/engage`, which has no credential check.
//!
//! # Not covered
//! `/track` (client-side), group profiles (`/groups`), `$add`/`$union`/`$append`/`$remove`/
//! `$unset` profile operations, identity merges, gzip bodies, NDJSON bodies, lookup tables.

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

use self::actions::{ACTIONS, MixpanelAction};
use self::client::{BoundAction, MixpanelClient};
use self::config::{CONFIG_FIELDS, MixpanelConfig};

/// The catalog entry and factory of the `mixpanel` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "mixpanel",
        display_name: "Mixpanel",
        description: "Imports events (deduplicated by $insert_id) and sets or deletes user profiles in a Mixpanel project.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Mixpanel's documented sizes (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 15.0,
        burst: 15,
        batch_size: 2000,
        max_batch_bytes: 9 * 1024 * 1024,
        max_in_flight: 8,
        max_attempts: 6,
        initial_backoff_ms: 2_000,
        max_backoff_ms: 60_000,
        timeout_ms: 60_000,
        daily_request_budget: None,
    }
}

/// Builds a Mixpanel destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(MixpanelDestination::new(config, limits)?))
}

/// A configured Mixpanel project.
#[derive(Debug)]
pub(crate) struct MixpanelDestination {
    client: Arc<MixpanelClient>,
}

impl MixpanelDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: MixpanelConfig = crate::destinations::parse_config(config)?;
        let client = MixpanelClient::new(config.validate()?, limits.timeout())?;
        Ok(MixpanelDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for MixpanelDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            MixpanelAction::from_spec(spec).ok_or_else(|| undeclared_action("mixpanel", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
