//! `facebook-custom-audiences`: adds users to and removes them from a Meta (Facebook)
//! Customer File Custom Audience through the Marketing API, with identifiers normalised and
//! SHA-256 hashed as Meta documents (`destinations/hashing.rs`).
//!
//! # Files
//! - `config.rs`: `FacebookAudiencesConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the three action specs and their identifier fields, `AudienceAction`, a
//!   batch → `{"schema": [...], "data": [[...]]}` with hashed values.
//! - `client.rs`: the one request per batch, Graph API error codes, invalid entries → records.
//! - `tests.rs`: encoding and answer unit tests, round-trips against
//!   `retl_testkit::FacebookAudiencesEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/facebook_audiences.rs`; the conformance suite
//! runs it in `tests/it/destinations/facebook_audiences.rs`.
//!
//! # API
//! `Authorization: Bearer <access token>` (a system user token with `ads_management`) on
//! `https://graph.facebook.com/{api_version}/{audience_id}/users`
//! (<https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences>):
//! - `add_users`: `POST` with `{"session": {"session_id", "batch_seq", "last_batch_flag"},
//!   "payload": {"schema": ["EXTERN_ID", "EMAIL", ...], "data": [["42", "<sha256>", ...]]}}`.
//!   The record's unique id goes as `EXTERN_ID` (not hashed), so that a later removal can
//!   name the user by it. Every identifier mapped by some record of the batch is a schema
//!   column; a record without a value has `""` there (multi-key matching).
//! - `remove_users`: `DELETE` with the same body: removes the model's records (e.g. a model of
//!   opted-out customers).
//! - `remove_deleted_users`: `DELETE` with schema `["EXTERN_ID"]`: removes the users whose
//!   records left the model (deleted records carry only their unique id). Removing a user the
//!   audience does not hold is no error, so a re-sent removal succeeds.
//!
//! Normalisation before hashing (Meta's hashing guide, examples in `hashing.rs`): email
//! trimmed and lowercased; phone digits only with the country code (leading zeros removed;
//! `default_phone_country_code` put in front of national numbers); first and last names
//! lowercased without punctuation (UTF-8 letters kept); gender `m`/`f`; birth year `YYYY`,
//! month and day two digits; city and state lowercased without spaces or punctuation; zip
//! lowercased without spaces (US: 5 digits); country ISO alpha-2 lowercased. `MADID` is
//! lowercased and not hashed; `EXTERN_ID` is not hashed. A value that is already a SHA-256
//! hex digest is sent as is. A record none of whose mapped identifiers normalises is rejected
//! with the reason and not sent.
//!
//! # Limits (documented)
//! - 10,000 users per request ("only up to 10000 at a time", the page above); a larger batch
//!   is handed back to the engine as too large.
//! - Rate: the Marketing API's business use case limits
//!   (<https://developers.facebook.com/docs/graph-api/overview/rate-limiting/>) depend on the
//!   app's tier; no fixed per-second number is documented. A throttled answer carries a
//!   Graph error code (4, 17, 32, 613, 80003, 80004) and `X-Business-Use-Case-Usage` with
//!   `estimated_time_to_regain_access` in minutes, which the client turns into the wait.
//! - No request byte limit is documented.
//!
//! Defaults (retl's choice where undocumented): 10,000 users per request, 8 MiB of payload
//! (about 10,000 records with several identifiers), 1 request/s (burst 2), 1 in flight,
//! 5 attempts, 60 s timeout.
//!
//! # Response contract
//! - **200** `{"audience_id", "session_id", "num_received", "num_invalid_entries",
//!   "invalid_entry_samples"}`: accepted, except the records whose sent values (or whole row)
//!   appear in `invalid_entry_samples`, which are rejected with Meta's reason. Samples are
//!   examples: entries counted invalid without a sample cannot be told apart and count as
//!   accepted (Meta received them; resending would not change that).
//! - an error `{"error": {"message", "type", "code", ...}}`: codes 190, 102, 10, 200, 294
//!   (token or permission) → authentication error, the run stops; rate-limit codes →
//!   throttled; otherwise by status (400 rejects the batch, 5xx transient).
//!
//! # Test
//! `TestDestination` reads the audience (`GET /{audience_id}?fields=id,name`): checks the
//! token and the id, changes nothing.
//!
//! # Not covered
//! - `last_batch_flag`, `estimated_num_total` and replace sessions (`usersreplace`): retl does
//!   not know which batch of a run is the last, so every batch says `false`;
//! - `LOOKALIKE_VALUE` (value-based audiences), `data_processing_options` (LDU),
//!   `app_ids`/`page_ids` for app- and page-scoped ids, `FI` (first initial), Marketing API
//!   `customer_consent`;
//! - creating the audience: it must exist (Ads Manager or the API).

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

use self::actions::{ACTIONS, AudienceAction, MAX_USERS};
use self::client::{AudienceClient, BoundAction};
use self::config::{CONFIG_FIELDS, FacebookAudiencesConfig};

/// The catalog entry and factory of the `facebook-custom-audiences` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "facebook-custom-audiences",
        display_name: "Facebook Custom Audiences",
        description: "Adds users to and removes them from a Meta Customer File Custom Audience, identifiers normalised and SHA-256 hashed.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 1.0,
        burst: 2,
        batch_size: MAX_USERS,
        max_batch_bytes: 8 * 1024 * 1024,
        max_in_flight: 1,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 60_000,
        daily_request_budget: None,
    }
}

/// Builds the destination from its config (secrets included); no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(FacebookAudiencesDestination::new(config, limits)?))
}

/// A configured audience.
#[derive(Debug)]
pub(crate) struct FacebookAudiencesDestination {
    client: Arc<AudienceClient>,
}

impl FacebookAudiencesDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: FacebookAudiencesConfig = crate::destinations::parse_config(config)?;
        let valid = config.validate()?;
        Ok(FacebookAudiencesDestination {
            client: Arc::new(AudienceClient::new(valid, limits.timeout())?),
        })
    }
}

#[async_trait]
impl Destination for FacebookAudiencesDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action = AudienceAction::from_spec(spec)
            .ok_or_else(|| undeclared_action("facebook-custom-audiences", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
