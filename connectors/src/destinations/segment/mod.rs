//! `segment`: sends records as Segment `identify`, `track`, `group` and `page` calls through
//! Segment's HTTP Tracking API (or any Segment-compatible collector).
//!
//! # Files
//! - `config.rs`: `SegmentConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the four action specs, `SegmentAction`, one record → one message.
//! - `client.rs`: the one `POST /v1/batch` per batch, the size checks, `test()`.
//! - `tests.rs`: encoding unit tests, round-trips against `retl_testkit::SegmentEmulator`,
//!   the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/segment.rs`; the conformance suite runs it in
//! `tests/it/destinations/segment.rs`.
//!
//! # API
//! - `POST <endpoint>/v1/batch` with `{"batch": [message, ...]}`, HTTP Basic auth with the
//!   write key as user name and an empty password
//!   (<https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/>).
//! - `GET <settings_endpoint>/v1/projects/<write key>/settings` (the CDN document
//!   analytics.js loads) in `test()` only.
//!
//! Each message carries `type`, `messageId`, `userId` and/or `anonymousId`, and by type
//! `traits` (identify, group), `event` + `properties` (track), `groupId` (group),
//! `name` + `properties` (page); `timestamp` and `context` when mapped. Mapped fields the
//! action does not declare join `traits` (identify, group) or `properties` (track, page).
//! When neither `user_id` nor `anonymous_id` is mapped, the record's unique id is the
//! `userId`.
//!
//! `messageId` is the record's idempotency key (`DeliveryContext::idempotency_key`: mapping,
//! key, change and the fingerprint of the mapped values), so a record re-sent after a crash
//! or a lost answer carries the same `messageId` and Segment drops the copy (Segment
//! deduplicates on `messageId`); a changed record gets a new one.
//!
//! # Limits (documented)
//! From the HTTP Tracking API page, "Max request size" and "Errors"
//! (<https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/#max-request-size>):
//! - **500 KB per batch request**, **32 KB per message**; over either, Segment answers
//!   `400 Bad Request` for the whole request. retl never sends such a request: a message over
//!   32 KB is rejected for its record alone (never sent), and a batch whose body exceeds
//!   500 KB is returned to the engine as too large (it halves the batch).
//! - No documented count limit per batch and no hard rate limit (Segment asks sources to stay
//!   under about 1,000 events per second per workspace,
//!   <https://segment.com/docs/connections/rate-limits/>).
//!
//! Defaults: 100 messages per batch (retl's choice), 450 KB of payload per batch (the engine
//! counts payload JSON; the message envelope adds about 100 bytes each, so 100 messages stay
//! under 500 KB), 20 requests/s (burst 20), 4 in flight, 5 attempts, 30 s timeout.
//!
//! # Response contract
//! - **200** `{"success": true}`: Segment has the whole batch. The Tracking API returns no
//!   per-record results: a message Segment later drops (e.g. invalid for a downstream tool)
//!   shows only in the source's debugger, so every sent record counts as accepted.
//! - **400**: invalid JSON or a request/message over the size limits: the batch is rejected.
//! - **429, 5xx, timeouts**: transient, `Retry-After` honoured; 401/403 (Segment-compatible
//!   collectors that check keys): authentication error.
//! - An **unknown write key** is answered 200 like a valid one (the Tracking API edge is
//!   stateless and does not check keys; its events are dropped), so a wrong key cannot stop a
//!   run: `test()` is the place it is found.
//!
//! # Test
//! `TestDestination` sends an empty batch (`{"batch": []}`: records nothing; a `2xx`, or a
//! `400` from a collector that refuses an empty batch, shows the endpoint is reachable and
//! speaks the API; anything else is the error), then fetches the source settings for the
//! write key from the settings endpoint: `404` means Segment does not know the key. With a
//! custom `endpoint` and no `settings_endpoint`, the key is not checked and the answer says so.
//!
//! # Not covered
//! - Record deletes: the Tracking API has no delete (user deletion is a workspace
//!   "regulation" of Segment's Public API, with its own token): the type declares no delete
//!   action.
//! - `alias` and `screen` calls, the `integrations` object, `sentAt`, gzip request bodies, and
//!   OAuth tokens for the Tracking API.

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

use self::actions::{ACTIONS, SegmentAction};
use self::client::{BoundAction, SegmentClient};
use self::config::{CONFIG_FIELDS, SegmentConfig};

/// The catalog entry and factory of the `segment` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "segment",
        display_name: "Segment",
        description: "Sends records as Segment identify, track, group and page calls through the HTTP Tracking API (or a Segment-compatible collector).",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Segment's documented sizes (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 20.0,
        burst: 20,
        batch_size: 100,
        max_batch_bytes: 450 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 500,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds a Segment destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(SegmentDestination::new(config, limits)?))
}

/// A configured Segment source.
#[derive(Debug)]
pub(crate) struct SegmentDestination {
    client: Arc<SegmentClient>,
}

impl SegmentDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: SegmentConfig = crate::destinations::parse_config(config)?;
        let client = SegmentClient::new(config.validate()?, limits.timeout())?;
        Ok(SegmentDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for SegmentDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            SegmentAction::from_spec(spec).ok_or_else(|| undeclared_action("segment", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
