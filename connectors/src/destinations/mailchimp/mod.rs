//! `mailchimp`: adds, updates and archives the members of a Mailchimp audience through the
//! Marketing API 3.0.
//!
//! # Files
//! - `config.rs`: `MailchimpConfig` (the data center from the API key's suffix), its catalog
//!   config fields, `validate()`.
//! - `actions.rs`: the two action specs, `MailchimpAction`, one record → one batch member or
//!   the subscriber hash (MD5 of the lower-cased email, RustCrypto `md-5`) of an archive.
//! - `client.rs`: the one batch subscribe request per upsert batch and its per-member errors,
//!   the paced per-member archives, `test()`.
//! - `tests.rs`: encoding (the subscriber hash against RFC 1321 test vectors) and
//!   answer-parsing unit tests, round-trips against `retl_testkit::MailchimpEmulator`, the
//!   config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/mailchimp.rs`; the conformance suite runs it
//! in `tests/it/destinations/mailchimp.rs`.
//!
//! # API
//! HTTP Basic auth with any user name and the API key as the password, on
//! `https://<dc>.api.mailchimp.com/3.0`, `<dc>` being the key's suffix (`…-us6` → `us6`)
//! (<https://mailchimp.com/developer/marketing/docs/fundamentals/>).
//! - `upsert_member`: `POST /3.0/lists/{list_id}` with `{"members": [{"email_address",
//!   "status_if_new", "status"?, "merge_fields"?}], "update_existing": true}`: new members are
//!   added with `status_if_new`, existing ones updated
//!   (<https://mailchimp.com/developer/marketing/api/lists/batch-subscribe-or-unsubscribe/>).
//! - `archive_member`: `DELETE /3.0/lists/{list_id}/members/{subscriber_hash}`, one request
//!   per record (there is no batch archive outside the asynchronous `/batches` endpoint),
//!   paced by [`per_record`](crate::destinations::per_record); `subscriber_hash` is the MD5
//!   hash of the lower-cased email, the record's unique id. `204` archived; `404` for a
//!   member that is not there counts as archived, so a re-sent archive succeeds
//!   (<https://mailchimp.com/developer/marketing/api/list-members/archive-list-member/>). A
//!   record whose unique id is not an email is rejected with the reason: a model synced to
//!   Mailchimp with archives must be keyed by email.
//!
//! # Limits
//! - Batch subscribe: up to **500 members** per request.
//! - **10 simultaneous connections** per account; more are answered `429`. Mailchimp
//!   documents no request rate, sends no rate-limit headers and no `Retry-After`, and times a
//!   request out after 120 s (<https://mailchimp.com/developer/marketing/docs/fundamentals/>).
//! - Payload bytes: not documented.
//!
//! Defaults: 500 records per request (documented), 8 in flight (below the documented 10
//! connections, leaving two for the account's other integrations), 10 requests/s with a burst
//! of 10 and 4 MiB per request (not documented; retl's choice), 5 attempts, 60 s timeout. A
//! `429` waits one second (retl's choice).
//!
//! # Response contract
//! - Batch **200** `{"new_members", "updated_members", "errors": [{"email_address", "error",
//!   "error_code", "field", "field_message"}], "total_created", "total_updated",
//!   "error_count"}`: members named in `errors` are rejected, the others accepted (sent
//!   again when `error_count` exceeds the members named).
//! - Errors are problem documents `{"type", "title", "status", "detail", "instance"}`:
//!   **400** rejects the batch, **401** (`API Key Invalid`) and **403** are authentication
//!   errors, **404** of an archive is success, **429** throttled, **5xx** transient.
//!
//! # Test
//! `TestDestination` sends `GET /3.0/ping`, a health check that requires a valid key and
//! writes nothing. The audience id is not checked.
//!
//! # Not covered
//! Tags, interests (groups), marketing permissions, `skip_merge_validation`, language, VIP,
//! location, permanent deletion (`/actions/delete-permanent`), unsubscribing instead of
//! archiving, the asynchronous `/3.0/batches` endpoint, OAuth 2 access tokens, merge field
//! discovery (`/lists/{id}/merge-fields`).

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

use self::actions::{ACTIONS, MailchimpAction};
use self::client::{BoundAction, MailchimpClient};
use self::config::{CONFIG_FIELDS, MailchimpConfig};

/// The catalog entry and factory of the `mailchimp` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "mailchimp",
        display_name: "Mailchimp",
        description: "Adds, updates and archives the members of a Mailchimp audience.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Mailchimp's documented limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 10.0,
        burst: 10,
        batch_size: client::MAX_MEMBERS,
        max_batch_bytes: 4 * 1024 * 1024,
        max_in_flight: 8,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 60_000,
        daily_request_budget: None,
    }
}

/// Builds a Mailchimp destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(MailchimpDestination::new(config, &limits)?))
}

/// A configured Mailchimp audience.
#[derive(Debug)]
pub(crate) struct MailchimpDestination {
    client: Arc<MailchimpClient>,
}

impl MailchimpDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: MailchimpConfig = crate::destinations::parse_config(config)?;
        let client = MailchimpClient::new(config.validate()?, limits)?;
        Ok(MailchimpDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for MailchimpDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            MailchimpAction::from_spec(spec).ok_or_else(|| undeclared_action("mailchimp", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
