//! `http`: a configurable HTTP Request destination for any API without a connector (as
//! Hightouch's and Census's HTTP Request destinations): method, URL template, headers (secret
//! ones allowed), body template or the mapped fields as JSON, one record per request or a JSON
//! array of records, per-record errors read at a JSON pointer, configurable throttle statuses.
//!
//! The folder is `http_request` because `destinations/http.rs` holds the HTTP helpers every
//! destination shares.
//!
//! # Files
//! - `config.rs`: `HttpRequestConfig`, its catalog config fields, `validate()` (templates
//!   parsed once, the URL's scheme and host required literal, statuses checked).
//! - `actions.rs`: the `upsert` and `delete` specs, `HttpRequestAction`, rendering a batch into
//!   a URL and a body.
//! - `client.rs`: the one request per batch, answer → `BatchOutcome`.
//! - `template.rs`: the URL and body templates (MiniJinja plus `tojson` and `urlencode`).
//! - `tests.rs`: config, rendering and answer-parsing unit tests, round-trips against
//!   `retl_testkit`'s webhook emulator and HTTP API emulator, the config drift test.
//!
//! Its emulators are `tests/testkit/src/emulators/webhook/` and
//! `tests/testkit/src/emulators/http_request.rs` (a second API shape: bare JSON arrays,
//! `X-Api-Key`, 503 as the throttle signal); the conformance suite runs against both in
//! `tests/it/destinations/http_request.rs`.
//!
//! # Configuration
//! | key | default | meaning |
//! |---|---|---|
//! | `url` | (required) | URL template of `upsert`; scheme and host literal |
//! | `method` | `POST` | `POST`, `PUT`, `PATCH` or `DELETE` |
//! | `body` | mapped fields as JSON | body template of `upsert` |
//! | `delete_url` | none (no deletes) | URL template of `delete` |
//! | `delete_method` | `DELETE` | as `method` |
//! | `delete_body` | none / array of keys | body template of `delete` |
//! | `records_per_request` | `array` | `one` (needs `limits.batch_size: 1`) or `array` |
//! | `headers` | none | static headers (not for credentials) |
//! | `secret_headers` | none | **secret**: JSON object text of credential headers |
//! | `errors_pointer` | none (status only) | JSON pointer to per-record errors in a 2xx answer |
//! | `error_index_field` / `error_message_field` | `index` / `message` | members of an error entry |
//! | `throttle_statuses` | `[429]` | statuses that pause the destination for `Retry-After` |
//! | `delete_gone_statuses` | `[404]` | statuses that count a delete as done |
//!
//! `secret_headers` is the *text* of a JSON object (`"{\"Authorization\": \"Bearer abc\"}"`)
//! because a secret config value is one string; its values are sent marked sensitive and never
//! quoted in an error.
//!
//! # Templates
//! MiniJinja (Jinja2) syntax, behaving as the engine's mapping templates (`template.rs`), with
//! the filters `tojson`
//! (`{"email": {{ email | tojson }}}`) and `urlencode` (`/users/{{ id | urlencode }}`). Every
//! template reads `action` (`upsert`/`delete`), `mapping` and `run`; then:
//! - `records_per_request: one`: the record's mapped fields by name, `key` (the unique id),
//!   `change` (`added`/`updated`/`deleted`) and `fields` (all mapped fields, also the ones
//!   whose name is reserved: `action change fields key mapping records run`);
//! - `records_per_request: array`: `records`, a list of `{"key", "change", "fields"}` (deletes
//!   have no `fields`). A template reading anything else is refused when the destination is
//!   saved. E.g. `{"ids": {{ records | map(attribute='key') | list | tojson }}}`.
//!
//! Without a body template the body is the mapped fields as a JSON object (one) or an array of
//! objects (array); a delete sends no body (one) or the JSON array of keys (array).
//! `Content-Type: application/json` is sent with a body unless `headers` sets another.
//! A URL that renders to another scheme, host or port than the template's literal prefix
//! rejects the record: a record value never decides where the credential headers go.
//!
//! # Response contract
//! - **2xx**: accepted; with `errors_pointer`, the array there lists rejected records, each an
//!   object `{"<error_index_field>": i, "<error_message_field>": "..."}` (or a bare index),
//!   `i` the position in the request. Nothing at the pointer = all accepted. Something there
//!   that is not such an array, or an index outside the batch, rejects the whole batch
//!   (nothing is acknowledged that may not have been accepted).
//! - a status in `delete_gone_statuses` to a **delete**: the records are already gone, counted
//!   deleted (so a re-sent delete succeeds). Beware: a wrong delete path answering 404 looks
//!   the same.
//! - a status in `throttle_statuses`: throttled; the whole destination waits `Retry-After`
//!   (seconds or HTTP-date) or backs off.
//! - otherwise as every HTTP destination (`destinations/http.rs`): 408/425/429/5xx and
//!   connection errors transient, 401/403 authentication (stops the run), 413 splits the
//!   batch, other 4xx reject the batch with the (truncated) body; redirects are not followed.
//! - a template that fails on a record's values rejects that record (or batch) without a
//!   request.
//!
//! # Limits
//! A generic API documents nothing retl can read, so every default is **retl's choice**:
//! 5 requests/s (burst 5), 100 records and 5 MiB per request, 2 in flight, 5 attempts, backoff
//! 200 ms to 30 s, 30 s timeout. Set the API's own limits with `limits` (e.g.
//! `{"requests_per_second": 2, "batch_size": 1}`).
//!
//! # Test
//! `TestDestination` opens a TCP connection to the URL's host and port and closes it: a
//! generic API has no known side-effect-free call, so credentials are not checked.
//!
//! # Not covered
//! - templated header values (headers are static or secret);
//! - per-record errors in a non-2xx answer (a 4xx rejects the whole batch), per-record
//!   retries, and error arrays aligned with the request instead of indexed;
//! - bodies other than text (multipart, form uploads need a template producing them and a
//!   `Content-Type` header);
//! - OAuth flows and request signing (a static token in `secret_headers` only);
//! - following pagination, reading ids back from the answer, GET lookups before a write.

mod actions;
mod client;
mod config;
mod template;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use retl_engine::connector::DestinationType;
use retl_engine::destination::{
    Action, ActionSpec, DeliveryLimits, Destination, DestinationError, undeclared_action,
};

use self::actions::{ACTIONS, HttpRequestAction};
use self::client::{BoundAction, HttpRequestClient};
use self::config::{CONFIG_FIELDS, HttpRequestConfig};

/// The longest `test()` waits for the TCP connection.
const TEST_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The catalog entry and factory of the `http` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "http",
        display_name: "HTTP Request",
        description: "Sends records to any HTTP API: method, URL and body templates, secret headers, one record or a JSON array per request, per-record errors read at a JSON pointer.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: retl's choice (a generic API documents none retl can read).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 5.0,
        burst: 5,
        batch_size: 100,
        max_batch_bytes: 5 * 1024 * 1024,
        max_in_flight: 2,
        max_attempts: 5,
        initial_backoff_ms: 200,
        max_backoff_ms: 30_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds an HTTP Request destination from its config (secrets included); no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(HttpRequestDestination::new(config, limits)?))
}

/// A configured HTTP Request destination.
#[derive(Debug)]
pub(crate) struct HttpRequestDestination {
    client: Arc<HttpRequestClient>,
}

impl HttpRequestDestination {
    /// Parses and validates the config against the effective limits and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: HttpRequestConfig = crate::destinations::parse_config(config)?;
        let valid = config.validate(limits.batch_size)?;
        let client = HttpRequestClient::new(valid, limits.timeout())?;
        Ok(HttpRequestDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for HttpRequestDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        let (host, port) = self.client.authority().clone();
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        match tokio::time::timeout(TEST_CONNECT_TIMEOUT, connect).await {
            Ok(Ok(_stream)) => Ok(format!(
                "connected to {host}:{port}; no request was sent (a generic API has no known side-effect-free call), so credentials were not checked"
            )),
            Ok(Err(e)) => Err(DestinationError::Transient {
                message: format!(
                    "could not connect to {host}:{port}: {e}; check the URL and that the API is reachable from the daemon"
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
            HttpRequestAction::from_spec(spec).ok_or_else(|| undeclared_action("http", spec))?;
        if action == HttpRequestAction::Delete && !self.client.has_delete() {
            return Err(DestinationError::InvalidConfig {
                field: "delete_url".to_string(),
                message:
                    "the delete action needs delete_url (and usually delete_method, delete_body)"
                        .to_string(),
            });
        }
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
