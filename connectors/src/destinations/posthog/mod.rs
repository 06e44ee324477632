//! `posthog`: captures events and sets person properties in a PostHog project through the
//! capture API's `/batch/` endpoint, and deletes persons through the persons API.
//!
//! # Files
//! - `config.rs`: `PosthogConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the three action specs, `PosthogAction`, one record → one event,
//!   `$identify` or distinct id.
//! - `client.rs`: the one request per batch, the size checks, `test()`.
//! - `tests.rs`: encoding unit tests, round-trips against `retl_testkit::PosthogEmulator`,
//!   the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/posthog.rs`; the conformance suite runs it in
//! `tests/it/destinations/posthog.rs`.
//!
//! # API
//! - `capture_event` and `identify`: `POST <host>/batch/` with `{"api_key": <project API
//!   key>, "historical_migration": false, "batch": [event, ...]}`; no auth header, the key is
//!   in the body (<https://posthog.com/docs/api/capture>). Each event is `{"event",
//!   "distinct_id", "uuid", "timestamp", "properties"}`.
//!   - `capture_event`: the mapped event; undeclared fields join `properties`.
//!   - `identify`: `{"event": "$identify", "distinct_id", "properties": {"$set": {...}}}`
//!     (sync mode `upsert`), or `$set_once` (sync mode `create`: only properties the person
//!     does not have yet) (<https://posthog.com/docs/product-analytics/person-properties>).
//! - `delete_person`: `POST <app_host>/api/projects/<project_id>/persons/bulk_delete/` with
//!   `{"distinct_ids": [...]}` (the records' unique ids) and `Authorization: Bearer
//!   <personal API key>` (<https://posthog.com/docs/api/persons>). Events are kept (the API's
//!   `delete_events` is not set). The capture API itself has no delete.
//!
//! `uuid` is the record's idempotency key in UUID form, so an event re-sent after a crash or a
//! lost answer is a duplicate PostHog removes: "Events with the same UUID, event name,
//! timestamp, and distinct_id are considered duplicates and are eventually de-duplicated"
//! (<https://posthog.com/docs/how-posthog-works/ingestion-pipeline>). That is why
//! `timestamp` is a required, mapped field of `capture_event`, never the send time.
//!
//! # Limits (documented)
//! - `/batch/`: "There is no limit on the number of events you can send in a batch, but the
//!   entire request body must be less than 20MB by default"
//!   (<https://posthog.com/docs/api/capture>). The capture endpoints are not rate limited
//!   (<https://posthog.com/docs/api#rate-limiting>).
//! - Persons `bulk_delete`: up to 1,000 ids per call (<https://posthog.com/docs/api/persons>);
//!   private endpoints are rate limited per personal API key, the persons endpoints at 240
//!   requests/minute and 1,200/hour (<https://posthog.com/docs/api#rate-limiting>).
//!
//! Defaults: 1,000 records per request (the bulk_delete limit; retl's choice for events, which
//! have none), 10 MiB of payload per request (retl's choice, half the 20 MB body limit; the
//! client refuses a body of 20 MB or more as too large and the engine halves the batch),
//! 10 requests/s (burst 10; retl's choice, capture is not rate limited), 4 in flight,
//! 5 attempts, 30 s timeout. The limiter is shared by the destination's actions: a sync
//! deleting more than 1.2 million persons an hour should use a destination of its own with
//! `requests_per_second` 0.33.
//!
//! # Response contract
//! - `/batch/` **200** `{"status": 1}`: PostHog has the whole batch; the capture API returns
//!   no per-record results. **400**: the body or an event is invalid (no event name, no
//!   distinct_id, a bad uuid or timestamp): the batch is rejected. retl checks what it can
//!   before sending, rejecting those records alone. **401**: the project API key is missing
//!   or invalid. **413**: the body is too large (the engine halves the batch). **429, 5xx**:
//!   transient, `Retry-After` honoured.
//! - `bulk_delete` **2xx**: every id deleted or not there (a person already gone is not an
//!   error, so a re-sent delete succeeds). **401/403**: the personal API key is refused or
//!   lacks `person:write`. **429**: throttled.
//!
//! # Test
//! `TestDestination` posts `{"api_key", "distinct_id": "retl-connection-test"}` to
//! `/flags?v=2`, the flag evaluation endpoint: it captures nothing and answers `401`
//! ("Project API key invalid") for an unknown project API key. PostHog's capture endpoint
//! checks a key's form, not always that its project exists, so this is where an unknown key
//! shows. With a personal API key it then reads one person (`GET .../persons/?limit=1`).
//!
//! # Not covered
//! `$alias`/`$create_alias` and `$anon_distinct_id` merges, group analytics (`$groupidentify`,
//! `$groups`), `$unset`, `$process_person_profile`, `historical_migration: true`, gzip bodies,
//! deleting persons' events or recordings, deleting by PostHog person UUID.

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

use self::actions::{ACTIONS, PosthogAction};
use self::client::{BoundAction, PosthogClient};
use self::config::{CONFIG_FIELDS, PosthogConfig};

/// The catalog entry and factory of the `posthog` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "posthog",
        display_name: "PostHog",
        description: "Captures events (deduplicated by uuid) and sets person properties in a PostHog project; deletes persons with a personal API key.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: PostHog's documented sizes (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 10.0,
        burst: 10,
        batch_size: 1000,
        max_batch_bytes: 10 * 1024 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds a PostHog destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(PosthogDestination::new(config, limits)?))
}

/// A configured PostHog project.
#[derive(Debug)]
pub(crate) struct PosthogDestination {
    client: Arc<PosthogClient>,
}

impl PosthogDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: PosthogConfig = crate::destinations::parse_config(config)?;
        let client = PosthogClient::new(config.validate()?, limits.timeout())?;
        Ok(PosthogDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for PosthogDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            PosthogAction::from_spec(spec).ok_or_else(|| undeclared_action("posthog", spec))?;
        if action == PosthogAction::DeletePerson && !self.client.has_persons_api() {
            return Err(crate::destinations::invalid_config(
                "personal_api_key",
                "the delete_person action deletes through PostHog's persons API: set personal_api_key (a phx_ key with person:write) and project_id",
            ));
        }
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
