//! `marketo`: leads of a Marketo Engage instance, created or updated in batches by a lookup
//! field and deleted, through the REST API with OAuth client credentials.
//!
//! # Files
//! - `config.rs`: `MarketoConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the two action specs, `MarketoAction`, one record → one lead object.
//! - `client.rs`: the token cache, the calls, Marketo's `success`/`errors`/`result` answers →
//!   outcomes and errors, `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::emulators::marketo`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/marketo.rs`; the conformance suite runs it in
//! `tests/it/destinations/marketo.rs`.
//!
//! # Configuration
//! | key | required | secret | meaning |
//! |---|---|---|---|
//! | `base_url` | yes | no | the REST endpoint without `/rest`, e.g. `https://123-ABC-456.mktorest.com` |
//! | `client_id` | yes | no | a LaunchPoint custom service's client id |
//! | `client_secret` | yes | yes | its client secret |
//! | `lookup_field` | no | no | the lead field leads are matched by (`email` by default) |
//!
//! # Authentication
//! `POST /identity/oauth/token` with `grant_type=client_credentials`, `client_id` and
//! `client_secret` in the form body (never in a URL, never traced) answers an
//! `access_token` and its `expires_in`; retl caches it, renews it a minute before it expires,
//! and, when a call answers error 601 (token invalid) or 602 (token expired), renews it and
//! sends the call once more. Calls carry `Authorization: Bearer <token>`
//! (<https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/authentication>).
//!
//! # Actions
//! - `upsert_lead`: one `POST /rest/v1/leads.json` per batch with `{"action":
//!   "createOrUpdate"|"updateOnly"|"createOnly" (by sync mode), "lookupField", "input": [...]}`
//!   (at most 300 leads); `result[i]` answers lead `i`: `created`/`updated` are accepted,
//!   `skipped`/`failed` rejected with their `reasons`
//!   (<https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/leads>).
//!   The field `id` holds the lookup value (the record's key when unmapped); every other field
//!   is a lead field by its REST API name.
//! - `delete_lead` (the record's key is the lookup value): `GET /rest/v1/leads.json?filterType=
//!   <lookup>&filterValues=a,b&fields=id,<lookup>` finds the Marketo ids, then one
//!   `POST /rest/v1/leads/delete.json` with `{"input": [{"id"}...]}` deletes them; a value no
//!   lead has, and a delete skipped with reason 1004 (lead not found), are already gone.
//!
//! # Response contract
//! Marketo answers HTTP 200 with `{"success": false, "errors": [{"code", "message"}]}` for
//! most failures (<https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/error-codes>):
//! 601/602 renew the token (above); 603 (access denied) is an authentication error; **606**
//! (over 100 calls in 20 s) and **615** (over 10 concurrent calls) are throttling (retl waits
//! 20 s and 1 s); 604, 607 (daily quota reached), 608, 611 and 713 are transient; any other
//! code rejects the batch. A non-2xx HTTP status is classified as usual (401/403
//! authentication, 429/5xx transient).
//!
//! # Limits
//! Documented at <https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/marketo-integration-best-practices>
//! ("API Limits"): 50,000 API calls per day for most subscriptions, 100 calls per 20 seconds
//! per instance, at most 10 concurrent calls, 300 records per lead database batch, and a REST
//! API payload of 1 MB.
//!
//! Defaults: 300 records and 1,000,000 bytes per request; 2 batches/s with a burst of 5 (at
//! most 45 batches in any 20 s: 90 calls when every batch is a delete's look-up and delete);
//! 4 in flight (under the 10 concurrent calls); a daily request budget of 50,000; 5
//! attempts, backoff 1–60 s, 30 s timeout.
//!
//! # Test
//! `TestDestination` obtains a token with the client credentials and calls
//! `GET /rest/v1/stats/usage.json` (today's API usage; reads only).
//!
//! # Not covered
//! Partitions (`partitionName`), `asyncProcessing`, bulk lead import (CSV), programs, lists
//! and static list membership, custom objects, activities, field discovery for
//! `retl destination fields`, and the daily quota tracked from the usage endpoint.

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

use self::actions::{ACTIONS, MarketoAction};
use self::client::{BoundAction, MarketoClient};
use self::config::{CONFIG_FIELDS, MarketoConfig};

/// The catalog entry and factory of the `marketo` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "marketo",
        display_name: "Marketo",
        description: "Creates, updates and deletes Marketo leads matched by a lookup field, 300 per request, with OAuth client credentials.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Marketo's documented limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 2.0,
        burst: 5,
        batch_size: client::MAX_LEADS,
        max_batch_bytes: 1_000_000,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: Some(50_000),
    }
}

/// Builds a Marketo destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(MarketoDestination::new(config, limits)?))
}

/// A configured Marketo instance.
#[derive(Debug)]
pub(crate) struct MarketoDestination {
    client: Arc<MarketoClient>,
}

impl MarketoDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: MarketoConfig = crate::destinations::parse_config(config)?;
        let client = MarketoClient::new(config.validate()?, limits.timeout())?;
        Ok(MarketoDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for MarketoDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            MarketoAction::from_spec(spec).ok_or_else(|| undeclared_action("marketo", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
