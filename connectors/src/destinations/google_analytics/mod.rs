//! `google-analytics-4`: sends events to a Google Analytics 4 web stream through the
//! Measurement Protocol.
//!
//! # Files
//! - `config.rs`: `GoogleAnalyticsConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the `send_event` spec, `GoogleAnalyticsAction`, one record → one event of
//!   one client, the documented limits checked per record.
//! - `client.rs`: the one `/mp/collect` request per batch, the validation server call of
//!   `test()`.
//! - `tests.rs`: encoding unit tests, round-trips against `retl_testkit::GoogleAnalyticsEmulator`,
//!   the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/google_analytics.rs`; the conformance suite
//! runs it in `tests/it/destinations/google_analytics.rs`.
//!
//! # API
//! `send_event`: `POST <endpoint>/mp/collect?measurement_id=<G-...>&api_secret=<secret>` with
//! `{"client_id", "user_id"?, "timestamp_micros"?, "user_properties"?: {name: {"value"}},
//! "events": [{"name", "params"}]}`
//! (<https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events>).
//! `client_id`, `user_id`, `timestamp_micros` and `user_properties` belong to the request,
//! so a request carries the events of one client: the client sends a batch whose records
//! share them in one request, and returns any other batch as too large before sending
//! anything, so that the engine splits it (down to one record per request when every record
//! is another client's; such a split is local and costs no request, but counts as a failed
//! attempt in the run's statistics and takes a rate-limit token: a sync whose records are
//! all different clients runs faster with `limits.batch_size` 1). When `client_id` is not
//! mapped, the record's unique id is the client id. Mapped fields the action does not declare
//! join `params`.
//!
//! The Measurement Protocol has no deduplication id: an event re-sent after a lost answer is
//! counted twice.
//!
//! # Limits (documented)
//! From "Limitations" of the sending-events guide
//! (<https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events#limitations>):
//! at most 25 events per request, 25 parameters per event, 25 user properties; event and
//! parameter names at most 40 characters (a letter, then letters, digits or `_`), parameter
//! values at most 100 characters (500 on GA4 360), user property names at most 24 and values
//! at most 36 characters; the body smaller than 130 kB; `timestamp_micros` at most 72 hours
//! in the past. Reserved event names and the `_`, `firebase_`, `ga_`, `google_`, `gtag.`
//! prefixes are refused (<https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference#reserved_names>).
//! A `user_id` is at most 256 characters (<https://support.google.com/analytics/answer/9267744>).
//! No request rate limit is documented.
//!
//! Defaults: 25 records and 100 KiB of payload per request (the client refuses a body of
//! 130 kB or more), 10 requests/s (burst 10; retl's choice), 4 in flight, 5 attempts, 30 s
//! timeout. retl checks every limit per record before sending, rejecting the record with the
//! reason, because Google Analytics drops an event that breaks one without saying so.
//!
//! # Response contract
//! The production endpoint "always returns a 2xx status code if the HTTP request was
//! received" and "does not return an error code if the payload data was malformed"
//! (<https://developers.google.com/analytics/devguides/collection/protocol/ga4/validating-events>):
//! a 2xx accepts the batch; a wrong `api_secret` or `measurement_id` is not reported either.
//! 5xx, timeouts (and a 429, which Google does not document) are transient.
//!
//! # Test
//! `TestDestination` posts a sample event to the validation server, `POST
//! <endpoint>/debug/mp/collect` (events sent there are not recorded), and fails with its
//! `validationMessages` (`{"fieldPath", "description", "validationCode"}`) when there are
//! any. The validation server does not check the `api_secret`: nothing can.
//!
//! # Not covered
//! App streams (`firebase_app_id`, `app_instance_id`), `consent`, `user_location`, `device`,
//! `user_data` (user-provided data), ecommerce `items` checks beyond being a list, validating
//! each batch against the validation server, GA4 360's longer parameter values, deletes (the
//! Measurement Protocol has none; user deletion is the separate User Deletion API).

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

use self::actions::{ACTIONS, GoogleAnalyticsAction};
use self::client::{BoundAction, GoogleAnalyticsClient};
use self::config::{CONFIG_FIELDS, GoogleAnalyticsConfig};

/// The catalog entry and factory of the `google-analytics-4` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "google-analytics-4",
        display_name: "Google Analytics 4",
        description: "Sends events to a Google Analytics 4 web stream through the Measurement Protocol, checking Google's documented limits per record.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: the Measurement Protocol's documented sizes (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 10.0,
        burst: 10,
        batch_size: 25,
        max_batch_bytes: 100 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds a Google Analytics 4 destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(GoogleAnalyticsDestination::new(config, limits)?))
}

/// A configured Google Analytics 4 web stream.
#[derive(Debug)]
pub(crate) struct GoogleAnalyticsDestination {
    client: Arc<GoogleAnalyticsClient>,
}

impl GoogleAnalyticsDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: GoogleAnalyticsConfig = crate::destinations::parse_config(config)?;
        let client = GoogleAnalyticsClient::new(config.validate()?, limits.timeout())?;
        Ok(GoogleAnalyticsDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for GoogleAnalyticsDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action = GoogleAnalyticsAction::from_spec(spec)
            .ok_or_else(|| undeclared_action("google-analytics-4", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
