//! `activecampaign`: creates, updates and deletes ActiveCampaign contacts through its v3 API.
//!
//! # Files
//! - `config.rs`: `ActiveCampaignConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the two action specs, `ActiveCampaignAction`, one record → one contact
//!   sync body or the email of a delete.
//! - `client.rs`: the paced per-record requests, answer → outcome, `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::ActiveCampaignEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/activecampaign.rs`; the conformance suite runs
//! it in `tests/it/destinations/activecampaign.rs`.
//!
//! # API
//! `Api-Token: <API key>` on the account's API URL (`https://<account>.api-us1.com`)
//! (<https://developers.activecampaign.com/reference/authentication>).
//! - `sync_contact`: `POST /api/3/contact/sync` with `{"contact": {"email", "firstName",
//!   "lastName", "phone", "fieldValues": [{"field", "value"}]}}`: creates the contact or
//!   updates the one with that email; **one contact per request** (the API has no batch
//!   contact sync), so a batch is sent record by record, paced by
//!   [`per_record`](crate::destinations::per_record) at the account's rate
//!   (<https://developers.activecampaign.com/reference/sync-a-contacts-data>).
//! - `delete_contact`: the contact's id is looked up by email (`GET
//!   /api/3/contacts?email=<email>`,
//!   <https://developers.activecampaign.com/reference/list-all-contacts>), then `DELETE
//!   /api/3/contacts/{id}` (<https://developers.activecampaign.com/reference/delete-contact>);
//!   no contact, or a `404`, is already gone, so a re-sent delete succeeds. The email is the
//!   record's unique id: a record whose unique id is not an email is rejected with the
//!   reason (a model synced to ActiveCampaign with deletes must be keyed by email).
//!
//! # Limits
//! - **5 requests per second per account**; more are answered `429 Too Many Requests` with
//!   `Retry-After` (seconds), and answers carry `RateLimit-Limit` / `RateLimit-Remaining`
//!   (<https://developers.activecampaign.com/reference/rate-limits>).
//! - One contact per sync request; payload bytes are not documented.
//!
//! Defaults: 5 requests/s, burst 5 (documented), 1 record per delivery (each record is its
//! own request anyway), 1 MiB (retl's choice), 2 in flight (the pacer serialises the requests
//! of the destination in any case), 5 attempts, 30 s timeout.
//!
//! # Response contract
//! - Sync **200**/**201** `{"contact": {...}}`: accepted. **422** `{"errors": [{"title",
//!   "detail", "code", "source"}]}` (e.g. an invalid email): that record is rejected with the
//!   titles.
//! - Lookup **200** `{"contacts": [...]}`; delete **200**, **404** (gone).
//! - **401**/**403**: authentication error. **429**: throttled with `Retry-After`. **5xx**:
//!   transient.
//!
//! # Test
//! `TestDestination` sends `GET /api/3/users/me`, a read that needs a valid key.
//!
//! # Not covered
//! Lists and list subscriptions (`/api/3/contactLists`), tags, accounts and deals, custom
//! field discovery by name (field values are keyed by field id), bulk import
//! (`/api/3/import/bulk_import`), events tracking, phone- or id-keyed deletes.

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

use self::actions::{ACTIONS, ActiveCampaignAction};
use self::client::{ActiveCampaignClient, BoundAction};
use self::config::{ActiveCampaignConfig, CONFIG_FIELDS};

/// The catalog entry and factory of the `activecampaign` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "activecampaign",
        display_name: "ActiveCampaign",
        description: "Creates, updates and deletes ActiveCampaign contacts, one contact per request.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: ActiveCampaign's documented limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 5.0,
        burst: 5,
        batch_size: 1,
        max_batch_bytes: 1024 * 1024,
        max_in_flight: 2,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds an ActiveCampaign destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(ActiveCampaignDestination::new(config, &limits)?))
}

/// A configured ActiveCampaign account.
#[derive(Debug)]
pub(crate) struct ActiveCampaignDestination {
    client: Arc<ActiveCampaignClient>,
}

impl ActiveCampaignDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: ActiveCampaignConfig = crate::destinations::parse_config(config)?;
        let client = ActiveCampaignClient::new(config.validate()?, limits)?;
        Ok(ActiveCampaignDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for ActiveCampaignDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action = ActiveCampaignAction::from_spec(spec)
            .ok_or_else(|| undeclared_action("activecampaign", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
