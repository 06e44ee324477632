//! `zendesk`: end users of a Zendesk Support account, created or updated in bulk by
//! `external_id` and deleted, through the Users API and its job statuses, with an API token.
//!
//! # Files
//! - `config.rs`: `ZendeskConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the two action specs, `ZendeskAction`, one record → one user object or
//!   external id.
//! - `client.rs`: the one request per batch, the job polled to completion, its results →
//!   outcomes, `test()`.
//! - `tests.rs`: encoding and result-parsing unit tests, round-trips against
//!   `retl_testkit::emulators::zendesk`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/zendesk.rs`; the conformance suite runs it in
//! `tests/it/destinations/zendesk.rs`.
//!
//! # Configuration
//! | key | required | secret | meaning |
//! |---|---|---|---|
//! | `subdomain` | unless `base_url` | no | `acme` for `https://acme.zendesk.com` |
//! | `email` | yes | no | the admin the token acts for |
//! | `api_token` | yes | yes | an API token; sent as HTTP Basic `<email>/token:<api_token>` |
//! | `base_url` | no | no | instead of the subdomain's URL |
//!
//! Authentication: <https://developer.zendesk.com/api-reference/introduction/security-and-auth/>.
//!
//! # Actions
//! - `upsert_user`: one `POST /api/v2/users/create_or_update_many` per batch with
//!   `{"users": [...]}` (at most 100); Zendesk matches each user by `external_id` or `email`,
//!   updates it or creates it (a new user needs a `name`). The answer is a job status; retl
//!   polls `GET /api/v2/job_statuses/{id}` (after 0.25 s, then doubling up to 4 s) until the
//!   job is `completed`, and reads one result per user, in the order of the `users` array:
//!   `Created`/`Updated` are accepted, `Failed` rejected with Zendesk's `error` and
//!   `details`. <https://developer.zendesk.com/api-reference/ticketing/users/users/#create-or-update-many-users>,
//!   <https://developer.zendesk.com/api-reference/ticketing/ticket-management/job_statuses/>.
//! - `delete_user` (deleted records; the record's key is the `external_id`): one
//!   `DELETE /api/v2/users/destroy_many?external_ids=a,b,...` per batch (at most 100),
//!   polled the same way; the job names only the users it found, so an id no user has is
//!   already gone: accepted. <https://developer.zendesk.com/api-reference/ticketing/users/users/#bulk-delete-users>.
//!   Zendesk soft-deletes users (they can be permanently deleted afterwards).
//!
//! Fields: `external_id` (the record's key when unmapped), `name`, `email`, `phone`, `role`,
//! `organization_id`, `tags` (array of text), `details`, `notes`, `time_zone`, `locale`,
//! `verified`, and `user_fields`: every field the action does not declare is a custom user
//! field (it must exist in the account). `null` is sent as `null`.
//!
//! # Response contract
//! - 200 with `{"job_status": {"id", "status", ...}}`: polled as above. A job that ends
//!   `failed` or `killed` is a transient error: the batch is sent again (both endpoints are
//!   idempotent). A completed job whose results do not account for a user leaves that user
//!   unacknowledged (rejected, sent again next run).
//! - 401 (`{"error": "Couldn't authenticate you"}`) / 403: authentication error.
//! - 429 with `Retry-After` (seconds): throttled. 5xx: transient. Other 4xx (e.g. 400 for
//!   more than 100 users): the batch is rejected.
//!
//! # Limits
//! Documented at <https://developer.zendesk.com/api-reference/introduction/rate-limits/>:
//! requests per minute per account by plan (Suite Team 200, Growth 400, Professional 400,
//! Enterprise 700, Enterprise Plus 2,500; the High Volume add-on 2,500), 429 with
//! `Retry-After`; at most 30 background jobs queued or running per account ("Job limit").
//! 100 users per `create_or_update_many` and 100 ids per `destroy_many` (their reference
//! pages). No payload byte limit is documented.
//!
//! Defaults: 100 records per request; 1 batch/s with a burst of 2 (a batch costs its request
//! plus its polls, usually 2–4 calls: at most ~240 calls a minute, within the Growth and
//! Professional plans' 400; on the Team plan (200) set `requests_per_second` to 0.5, on
//! Enterprise (700) it can be 2.5); 4 in flight (well under the 30-job limit); 1 MiB per
//! request (not documented; retl's choice); 5 attempts, backoff 1–60 s; 120 s timeout (it
//! bounds the request and the polls of its job).
//!
//! # Test
//! `TestDestination` calls `GET /api/v2/users/me` (reads only,
//! <https://developer.zendesk.com/api-reference/ticketing/users/users/#show-the-currently-authenticated-user>).
//!
//! # Not covered
//! Organizations and `create_or_update_many` of organizations, identities (secondary emails,
//! phone numbers), permanent deletion (`DELETE /api/v2/deleted_users/{id}`), user merges,
//! OAuth tokens (only API tokens), matching by email alone for deletes, field discovery for
//! `retl destination fields`, and the rate limiter counting the job polls (they are not
//! gated by it; the defaults leave room for them).

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

use self::actions::{ACTIONS, ZendeskAction};
use self::client::{BoundAction, ZendeskClient};
use self::config::{CONFIG_FIELDS, ZendeskConfig};

/// The catalog entry and factory of the `zendesk` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "zendesk",
        display_name: "Zendesk",
        description: "Creates, updates and deletes Zendesk Support users matched by external_id, 100 per request through background jobs.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Zendesk's documented limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 1.0,
        burst: 2,
        batch_size: 100,
        max_batch_bytes: 1024 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 120_000,
        daily_request_budget: None,
    }
}

/// Builds a Zendesk destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(ZendeskDestination::new(config, limits)?))
}

/// A configured Zendesk account.
#[derive(Debug)]
pub(crate) struct ZendeskDestination {
    client: Arc<ZendeskClient>,
}

impl ZendeskDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: ZendeskConfig = crate::destinations::parse_config(config)?;
        let client = ZendeskClient::new(config.validate()?, limits.timeout())?;
        Ok(ZendeskDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for ZendeskDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            ZendeskAction::from_spec(spec).ok_or_else(|| undeclared_action("zendesk", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
