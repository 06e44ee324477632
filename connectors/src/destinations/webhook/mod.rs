//! `webhook`: POSTs batches of changed records as JSON to any HTTP endpoint. **The reference
//! connector**: copy this folder to write a new HTTP destination.
//!
//! # Files
//! - `config.rs`: `WebhookConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the `upsert` and `delete` action specs, `WebhookAction`, body encoding,
//!   idempotency key, and the `Action` impl that calls the client.
//! - `client.rs`: headers, signature, the one request per batch, answer → `BatchOutcome`.
//! - `tests/`: encoding/parsing unit tests and the config drift test (`mod.rs`), round-trips
//!   against `retl_testkit::WebhookEmulator` (`emulator.rs`).
//!
//! Its emulator is `tests/testkit/src/emulators/webhook/mod.rs`; the conformance suite runs it in
//! `tests/it/destinations/webhook.rs`.
//!
//! # Configuration
//! | key | required | secret | meaning |
//! |---|---|---|---|
//! | `url` | yes | no | endpoint (http/https) every batch is POSTed to |
//! | `headers` | no | no | extra headers, object of name → value (not for credentials) |
//! | `auth_header` | no | yes | value of a credential header, e.g. `Bearer abc123` |
//! | `auth_header_name` | no | no | its name, default `Authorization` |
//! | `signing_secret` | no | yes | HMAC-SHA256 key for `X-Retl-Signature` |
//! | `limits` | no | no | overrides of the delivery limits below (handled by the engine) |
//!
//! The request timeout is `limits.timeout_ms` (the engine applies it around every send, and the
//! HTTP client uses the same bound), so there is no separate `timeout_ms` key.
//!
//! # Request
//! One `POST <url>` per batch, `Content-Type: application/json`, with headers
//! `X-Retl-Mapping: <mapping id>`, `X-Retl-Run: <run id>`, `Idempotency-Key: <key>` (the same
//! for every attempt at the same batch of a run), the configured headers, and when
//! `signing_secret` is set `X-Retl-Signature: sha256=<hex>`: the HMAC-SHA256 of the exact body
//! bytes (no timestamp is signed; receivers that need replay protection can use the
//! idempotency key). Body:
//!
//! ```json
//! {"action": "upsert", "mapping": "users_to_crm", "run": "0192…",
//!  "records": [{"key": 42, "change": "added", "fields": {"email": "a@example.com"}}]}
//! ```
//!
//! `action` is `upsert` (changes `added`/`updated`, with `fields`) or `delete` (change
//! `deleted`, no `fields`).
//!
//! # Response contract
//! - **2xx**: every record accepted, unless the body is a JSON object with
//!   `"errors": [{"index": i, "message": "..."}]` (those records are rejected permanently:
//!   recorded in the run, re-sent by the next run) and/or
//!   `"retry": [{"index": i, "message": "...", "retry_after": secs}]` (those records are sent
//!   again; `retry_after` falls back to the answer's `Retry-After`). `index` is the position in
//!   `records`. An unreadable `errors`/`retry` list or an index outside the batch rejects the
//!   whole batch (nothing is acknowledged that may not have been accepted).
//! - **408, 425, 429, 5xx, timeouts, connection errors**: transient; the engine retries with
//!   backoff and honours `Retry-After` (seconds or HTTP-date); a 429 pauses the whole
//!   destination.
//! - **401, 403**: authentication error. **3xx** (not followed) and **other 4xx**: the batch is
//!   rejected, with the response body (truncated) in the message.
//! - **404 to a `delete`**, with a JSON body (`Content-Type: application/json`): the receiver
//!   does not have these records, so they are already gone: every record of the batch counts as
//!   deleted. Deletes may be re-sent after a crash, so a receiver must answer a delete of a key
//!   it does not know with 2xx or this 404. A 404 without a JSON body (a web server's page for
//!   a wrong path) and a 404 to an `upsert` reject the batch like any other 4xx.
//!
//! # Limits
//! Defaults: 10 requests/s, burst 10, 100 records and 5 MiB per request, 4 requests in flight,
//! 5 attempts, backoff 200 ms to 30 s, 30 s timeout. Override them per destination with
//! `limits` (`batch_size: 1` sends one record per request).
//!
//! # Test
//! `TestDestination` opens a TCP connection to the URL's host and port and closes it: the
//! contract has no side-effect-free call, so no request is sent and credentials are not
//! checked.

mod actions;
mod client;
mod config;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use retl_engine::connector::DestinationType;
use retl_engine::destination::{
    Action, ActionSpec, DeliveryLimits, Destination, DestinationError, undeclared_action,
};

use self::actions::{ACTIONS, WebhookAction};
use self::client::{BoundAction, WebhookClient};
use self::config::{CONFIG_FIELDS, WebhookConfig};

/// The longest `test()` waits for the TCP connection.
const TEST_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The catalog entry and factory of the `webhook` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "webhook",
        display_name: "Webhook",
        description: "POSTs batches of changed records as JSON to an HTTP endpoint, optionally signed with HMAC-SHA256.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The documented default limits of a generic webhook.
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 10.0,
        burst: 10,
        batch_size: 100,
        max_batch_bytes: 5 * 1024 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 200,
        max_backoff_ms: 30_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds a webhook destination from its config (secrets included); no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(WebhookDestination::new(config, limits)?))
}

/// A configured webhook.
#[derive(Debug)]
pub(crate) struct WebhookDestination {
    client: Arc<WebhookClient>,
}

impl WebhookDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: WebhookConfig = crate::destinations::parse_config(config)?;
        let valid = config.validate()?;
        let client = WebhookClient::new(valid, limits.timeout())?;
        Ok(WebhookDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for WebhookDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        let (host, port) = self.client.authority()?;
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        match tokio::time::timeout(TEST_CONNECT_TIMEOUT, connect).await {
            Ok(Ok(_stream)) => Ok(format!(
                "connected to {host}:{port}; no request was sent (the webhook contract has no test call), so credentials were not checked"
            )),
            Ok(Err(e)) => Err(DestinationError::Transient {
                message: format!(
                    "could not connect to {host}:{port}: {e}; check the URL and that the endpoint is reachable from the daemon"
                ),
                retry_after: None,
                throttled: false,
            }),
            Err(_) => Err(DestinationError::Transient {
                message: format!(
                    "connecting to {host}:{port} timed out after {} s",
                    TEST_CONNECT_TIMEOUT.as_secs()
                ),
                retry_after: None,
                throttled: false,
            }),
        }
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            WebhookAction::from_spec(spec).ok_or_else(|| undeclared_action("webhook", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
