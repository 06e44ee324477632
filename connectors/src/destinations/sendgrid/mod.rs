//! `sendgrid`: creates, updates and deletes Twilio SendGrid Marketing Campaigns contacts
//! through its v3 API.
//!
//! # Files
//! - `config.rs`: `SendgridConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the two action specs, `SendgridAction`, one record → one contact or the
//!   email of a delete.
//! - `client.rs`: the one upsert request per batch and its per-contact errors, the lookup and
//!   delete requests, `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::SendgridEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/sendgrid.rs`; the conformance suite runs it
//! in `tests/it/destinations/sendgrid.rs`.
//!
//! # API
//! `Authorization: Bearer <API key>` on `https://api.sendgrid.com`.
//! - `upsert_contact`: `PUT /v3/marketing/contacts` with `{"list_ids"?, "contacts": [{"email",
//!   "first_name", ..., "custom_fields"}]}`: an asynchronous upsert by email, answered `202`
//!   with a `job_id` (<https://www.twilio.com/docs/sendgrid/api-reference/contacts/add-or-update-a-contact>).
//!   Custom fields are keyed by their ids and must exist.
//! - `delete_contact`: contacts are deleted by id, so a batch's emails (the records' unique
//!   ids) are looked up first with `POST /v3/marketing/contacts/search/emails` (`{"emails":
//!   [...]}`, `404` when none matches)
//!   (<https://www.twilio.com/docs/sendgrid/api-reference/contacts/get-contacts-by-emails>),
//!   then the contacts found are deleted in one `DELETE /v3/marketing/contacts?ids=<id,...>`
//!   (asynchronous, `202`)
//!   (<https://www.twilio.com/docs/sendgrid/api-reference/contacts/delete-contacts>). Two
//!   requests per batch, so the delete of a batch whose first request succeeded and second
//!   failed is retried whole (the lookup is a read). An email with no contact is already
//!   gone: success, so a re-sent delete succeeds. A record whose unique id is not an email
//!   is rejected with the reason: a model synced to SendGrid with deletes must be keyed by
//!   email.
//!
//! # Limits
//! - Upsert: up to **30,000 contacts or 6 MB** per request, whichever is lower
//!   (<https://www.twilio.com/docs/sendgrid/api-reference/contacts/add-or-update-a-contact>).
//! - Lookup by email: up to **100 emails** per request.
//! - Rate: SendGrid documents a fixed number of requests per refresh period per endpoint,
//!   without publishing the numbers; every answer carries `X-RateLimit-Limit`,
//!   `X-RateLimit-Remaining` and `X-RateLimit-Reset` (UTC epoch seconds), and a throttled
//!   request is answered `429 {"errors": [{"field": null, "message": "too many requests"}]}`
//!   (<https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits>);
//!   the client waits until the reset.
//!
//! Defaults: 3 requests/s, burst 3, 2 in flight (not documented; retl's choice), 30,000
//! records and 6,000,000 bytes per request (documented), 5 attempts, 60 s timeout. A delete
//! batch over 100 records is handed back to the engine as too large, which halves it.
//!
//! # Response contract
//! - Upsert **202** `{"job_id"}`: every contact is queued. **400** `{"errors": [{"field":
//!   "contacts[<i>].<field>", "message"}]}`: nothing was queued; the contacts named are
//!   rejected, the others sent again without them; a `400` naming no contact rejects the batch.
//! - Lookup **200** `{"result": {"<email>": {"contact": {"id", ...}} | {"error"}}}`, **404**
//!   none found. Delete **202** `{"job_id"}`.
//! - **401**/**403**: authentication error. **429**: throttled until `X-RateLimit-Reset`.
//!   **5xx**: transient.
//!
//! # Test
//! `TestDestination` sends `GET /v3/scopes`, a read any key may make: `401` refuses the key;
//! the answer says whether the key has Marketing scopes.
//!
//! # Not covered
//! The upsert job's result (`GET /v3/marketing/contacts/imports/{id}`: a contact SendGrid
//! fails while processing the job counts as delivered), identifiers other than email
//! (`phone_number_id`, `external_id`, `anonymous_id`), resolving custom field names to ids,
//! removing contacts from lists, CSV imports, suppressions, the Legacy Marketing Campaigns
//! API.

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

use self::actions::{ACTIONS, SendgridAction};
use self::client::{BoundAction, SendgridClient};
use self::config::{CONFIG_FIELDS, SendgridConfig};

/// The catalog entry and factory of the `sendgrid` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "sendgrid",
        display_name: "Twilio SendGrid",
        description: "Creates, updates and deletes Twilio SendGrid Marketing Campaigns contacts.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: SendGrid's documented batch limits, retl's rate (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 3.0,
        burst: 3,
        batch_size: client::MAX_CONTACTS,
        max_batch_bytes: client::MAX_UPSERT_BYTES,
        max_in_flight: 2,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 60_000,
        daily_request_budget: None,
    }
}

/// Builds a SendGrid destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(SendgridDestination::new(config, &limits)?))
}

/// A configured SendGrid account.
#[derive(Debug)]
pub(crate) struct SendgridDestination {
    client: Arc<SendgridClient>,
}

impl SendgridDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: SendgridConfig = crate::destinations::parse_config(config)?;
        let client = SendgridClient::new(config.validate()?, limits)?;
        Ok(SendgridDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for SendgridDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            SendgridAction::from_spec(spec).ok_or_else(|| undeclared_action("sendgrid", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
