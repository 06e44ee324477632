//! `amplitude`: sends events (HTTP V2 API) and sets user properties (Identify API) in an
//! Amplitude project.
//!
//! # Files
//! - `config.rs`: `AmplitudeConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the two action specs, `AmplitudeAction`, one record → one event or
//!   identification.
//! - `client.rs`: the one request per batch, per-event results of a `400`, `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::AmplitudeEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/amplitude.rs`; the conformance suite runs it
//! in `tests/it/destinations/amplitude.rs`.
//!
//! # API
//! The API key travels in the body of every request (no auth header).
//! - `track_event`: `POST <api_host>/2/httpapi` with `{"api_key", "events": [{"user_id" |
//!   "device_id", "event_type", "time" (ms), "insert_id", "event_properties",
//!   "user_properties"}], "options": {"min_id_length"}}`
//!   (<https://amplitude.com/docs/apis/analytics/http-v2>). `insert_id` is the record's
//!   idempotency key: "Amplitude ignores an event that repeats an insert_id from the past 7
//!   days, so a retry doesn't create duplicates"
//!   (<https://amplitude.com/docs/apis/analytics/http-api-batching-retries>).
//! - `identify_user`: `POST <api_host>/identify`, form-encoded `api_key=...&identification=
//!   [{"user_id" | "device_id", "user_properties": {"$set": {...}}}]` (sync mode `upsert`), or
//!   `$setOnce` (sync mode `create`: only properties the user does not have yet)
//!   (<https://amplitude.com/docs/apis/analytics/identify>).
//! - When neither `user_id` nor `device_id` is mapped, the record's unique id is the
//!   `user_id`. Amplitude refuses ids shorter than 5 characters unless `min_id_length` says
//!   otherwise (config field, sent as `options.min_id_length` with events).
//!
//! # Limits (documented)
//! - HTTP V2: up to 2,000 events and under 1 MB per request (over either: `413`); 30 events
//!   per second per `user_id` or `device_id` (over it: `429`); Starter plans: 100 batches and
//!   1,000 events per second (<https://amplitude.com/docs/apis/analytics/http-v2>, "Upload
//!   limit"). A throttled user or device should pause 30 seconds
//!   (<https://amplitude.com/docs/faq/api-choice>).
//! - Identify API: user property updates of more than 1,800 per hour for one user may be
//!   dropped; a `429` asks to pause the request's devices 15 seconds
//!   (<https://amplitude.com/docs/apis/analytics/identify>). No count or size limit per
//!   request is documented; retl sends at most the batch size.
//!
//! Defaults: 2,000 records and 900 KiB of payload per request (the engine counts payload
//! JSON; the client refuses a body of 1 MB or more as too large and the engine halves the
//! batch), 5 requests/s (burst 5; retl's choice: on a Starter plan with full batches lower it
//! to 0.5 for the 1,000 events per second), 2 in flight, 6 attempts with backoff from 2 s to
//! 60 s, 30 s timeout.
//!
//! # Response contract
//! - `/2/httpapi` **200** `{"code": 200, "events_ingested", ...}`: every event ingested.
//!   **400** with `events_with_invalid_fields`, `events_with_missing_fields` or
//!   `events_with_invalid_id_lengths` (field → event indexes): those events are rejected and
//!   the others, not ingested, are sent again ("When a 400 response lists rejected events,
//!   remove those events and resend the rest"); a 400 "Invalid API key" is an authentication
//!   error (the key is removed from the message); another 400 rejects the batch. **413**: too
//!   large (the engine halves the batch). **429** `{"eps_threshold", "throttled_users",
//!   "throttled_devices", "throttled_events"}`: throttled, the whole request is sent again
//!   after `Retry-After` or 30 s (a re-sent event that was ingested is dropped by its
//!   `insert_id`). **5xx**: transient.
//! - `/identify` **200** `success`: applied. **400**: the batch is rejected ("Invalid API
//!   key": authentication error). **429**: throttled, 15 s. **5xx**: transient.
//!
//! # Test
//! `TestDestination` posts an empty events array with the API key: nothing is ingested; a
//! `400` "Invalid API key" fails the test, a `2xx` or another `400` (for the empty batch)
//! passes. Amplitude does not document whether the key is checked before the events, so a
//! passing test proves the endpoint, and the key only when Amplitude checked it.
//!
//! # Not covered
//! The Batch Event Upload API (`/batch`), group properties and `groups`, revenue fields
//! (`price`, `quantity`, `revenue`), `$add`/`$append`/`$unset` user property operations,
//! user deletion (the User Privacy API is a separate, asynchronous deletion-job API with its
//! own credentials: the type declares no delete action), gzip bodies.

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

use self::actions::{ACTIONS, AmplitudeAction};
use self::client::{AmplitudeClient, BoundAction};
use self::config::{AmplitudeConfig, CONFIG_FIELDS};

/// The catalog entry and factory of the `amplitude` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "amplitude",
        display_name: "Amplitude",
        description: "Sends events (deduplicated by insert_id) through the HTTP V2 API and sets user properties through the Identify API of an Amplitude project.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Amplitude's documented sizes (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 5.0,
        burst: 5,
        batch_size: 2000,
        max_batch_bytes: 900 * 1024,
        max_in_flight: 2,
        max_attempts: 6,
        initial_backoff_ms: 2_000,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds an Amplitude destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(AmplitudeDestination::new(config, limits)?))
}

/// A configured Amplitude project.
#[derive(Debug)]
pub(crate) struct AmplitudeDestination {
    client: Arc<AmplitudeClient>,
}

impl AmplitudeDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: AmplitudeConfig = crate::destinations::parse_config(config)?;
        let client = AmplitudeClient::new(config.validate()?, limits.timeout())?;
        Ok(AmplitudeDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for AmplitudeDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            AmplitudeAction::from_spec(spec).ok_or_else(|| undeclared_action("amplitude", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
