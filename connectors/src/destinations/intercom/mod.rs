//! `intercom`: user contacts in an Intercom workspace, created or updated by `external_id` and
//! archived, through the REST API (version 2.13) with an app's access token.
//!
//! # Files
//! - `config.rs`: `IntercomConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the two action specs, `IntercomAction`, one record → one contact body.
//! - `client.rs`: the requests of each record, Intercom's answers → outcomes and errors,
//!   `test()`.
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::emulators::intercom`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/intercom.rs`; the conformance suite runs it in
//! `tests/it/destinations/intercom.rs`.
//!
//! # Configuration
//! | key | required | secret | meaning |
//! |---|---|---|---|
//! | `access_token` | yes | yes | the app's access token, sent as `Authorization: Bearer` |
//! | `base_url` | no | no | `https://api.intercom.io` (default), `https://api.eu.intercom.io` or `https://api.au.intercom.io` for the workspace's region |
//!
//! Every request carries `Intercom-Version: 2.13` (the version that added the look-up by
//! external id, <https://developers.intercom.com/docs/references/2.13/changelog>).
//!
//! # API and calls per record
//! Intercom's contacts API takes **one contact per request** and has no upsert, so the batch
//! size is 1 and each record costs one to three calls:
//! - `upsert_contact`, an **added** record (sync mode `upsert`): `POST /contacts` with
//!   `{"role": "user", "external_id", <attributes>, "custom_attributes"}` — 1 call. If the
//!   contact exists already (`409 conflict`, e.g. created by another tool, or by a delivery
//!   whose answer was lost), `GET /contacts/find_by_external_id/{external_id}` then
//!   `PUT /contacts/{id}` — 3 calls. A 409 for a contact that does not have this
//!   `external_id` (Intercom matched another contact's details) rejects the record.
//! - `upsert_contact`, an **updated** record, or any record in sync mode `update`: the look-up,
//!   then `PUT /contacts/{id}` — 2 calls; when no user has the id, `POST /contacts` (mode
//!   `upsert`, 2 calls) or a rejection (mode `update`, 1 call).
//! - `archive_contact` (deleted records; the record's key is the `external_id`): the look-up,
//!   then `POST /contacts/{id}/archive` — 2 calls; a contact that is not there (404) is
//!   already gone: accepted after 1 call.
//!
//! Endpoints: <https://developers.intercom.com/docs/references/rest-api/api.intercom.io/contacts/createcontact>,
//! <https://developers.intercom.com/docs/references/rest-api/api.intercom.io/contacts/showcontactbyexternalid>,
//! <https://developers.intercom.com/docs/references/rest-api/api.intercom.io/contacts/updatecontact>,
//! <https://developers.intercom.com/docs/references/rest-api/api.intercom.io/contacts/archivecontact>.
//! The look-up goes by external id, not through `POST /contacts/search`, whose index lags
//! behind recently created contacts by up to a few minutes (Search contacts, "Contact
//! Creation Delay").
//!
//! # Fields
//! `external_id` (the record's key when unmapped), `email`, `phone`, `name`, `avatar`,
//! `owner_id` (whole number), `unsubscribed_from_emails` (boolean), `signed_up_at` and
//! `last_seen_at` (sent as UNIX seconds), and `custom_attributes`: every field the action does
//! not declare is a custom attribute (it must exist in the workspace; Intercom rejects
//! unknown ones per record). `null` is sent as `null`. Objects and arrays are refused per
//! record: Intercom custom attributes are flat.
//!
//! # Response contract
//! - 2xx: the write is accepted.
//! - 400, 404, 409, 422 and other client errors of a write: the record is rejected with
//!   Intercom's `error.list` (`{"type": "error.list", "errors": [{"code", "message"}]}`).
//! - 401 (`unauthorized`, "Access Token Invalid") / 403: authentication error, which stops the
//!   run.
//! - 429: throttled, waiting for `Retry-After` when sent, else until `X-RateLimit-Reset` (UNIX
//!   seconds), the header Intercom documents with `X-RateLimit-Limit` and
//!   `X-RateLimit-Remaining`. 5xx: transient.
//!
//! # Limits
//! Documented at <https://developers.intercom.com/docs/references/rest-api/errors/rate-limiting>:
//! 10,000 API calls per minute per app and 25,000 per minute per workspace, distributed
//! evenly into 10-second windows (about 1,666 calls per 10 s per app); over it, `429 Too Many
//! Requests` with `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`. One
//! contact per request (the create/update endpoints take one contact). No payload byte limit
//! is documented.
//!
//! Defaults: 1 record per request; 75 records/s with a burst of 75 (a record costs at most two
//! calls but for a conflict, so at most 75 + 750 records = 1,650 calls in any 10 s, within the
//! per-app window); 8 in flight; 1 MiB per request (not documented; retl's choice); 5 attempts,
//! backoff 0.5–60 s, 30 s timeout.
//!
//! # Test
//! `TestDestination` calls `GET /me` (the admin the token belongs to; reads only,
//! <https://developers.intercom.com/docs/references/rest-api/api.intercom.io/admins/identifyadmin>)
//! and reports Intercom's error on failure (401 "Access Token Invalid").
//!
//! # Not covered
//! Leads (`role: lead`, which have no external id), companies and attaching contacts to
//! companies, tags, notes, events (`POST /events`), permanent deletion
//! (`DELETE /contacts/{id}`) and unarchiving (an archived contact is not restored by a later
//! upsert), contacts merged into another (`410 Gone` rejects the record), data attribute
//! discovery for `retl destination fields`, OAuth apps (only access tokens), and the
//! per-workspace limit shared with other apps (lower `requests_per_second` when other apps use
//! the workspace heavily).

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

use self::actions::{ACTIONS, IntercomAction};
use self::client::{BoundAction, IntercomClient};
use self::config::{CONFIG_FIELDS, IntercomConfig};

/// The catalog entry and factory of the `intercom` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "intercom",
        display_name: "Intercom",
        description: "Creates, updates and archives Intercom user contacts matched by external_id, one contact per request.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Intercom's documented limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 75.0,
        burst: 75,
        batch_size: 1,
        max_batch_bytes: 1024 * 1024,
        max_in_flight: 8,
        max_attempts: 5,
        initial_backoff_ms: 500,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds an Intercom destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(IntercomDestination::new(config, limits)?))
}

/// A configured Intercom workspace.
#[derive(Debug)]
pub(crate) struct IntercomDestination {
    client: Arc<IntercomClient>,
}

impl IntercomDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: IntercomConfig = crate::destinations::parse_config(config)?;
        let client = IntercomClient::new(config.validate()?, limits.timeout())?;
        Ok(IntercomDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for IntercomDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            IntercomAction::from_spec(spec).ok_or_else(|| undeclared_action("intercom", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
