//! `google-ads-customer-match`: adds people to and removes them from a Google Ads Customer
//! Match audience through Google's **Data Manager API**, with identifiers normalised and
//! SHA-256 hashed as Google documents (`destinations/hashing.rs`).
//!
//! # Why the Data Manager API, not the Google Ads API
//! Issue 11 named the Google Ads API's offline user data jobs. Since 2026-04-01 the Google Ads
//! API accepts no new Customer Match adopters
//! (<https://developers.google.com/ads/blog/posts/2026/03/changes-to-customer-match-support-in>)
//! and Google points them to the Data Manager API
//! (<https://developers.google.com/data-manager/api/devguides/audiences/google-ads/customer-match/upgrade>):
//! no jobs to create, add and run, no developer token, two synchronous calls. The type keeps
//! the name `google-ads-customer-match`, which is what a user looks for.
//!
//! # Files
//! - `config.rs`: `GoogleAdsConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the two action specs and their fields, `AudienceAction`, records →
//!   `AudienceMember`s with hashed identifiers.
//! - `client.rs`: the one request per batch, Google's error JSON, fast-fail answers mapped
//!   back to records, the validate-only test call.
//! - `tests.rs`: encoding and answer unit tests, round-trips against
//!   `retl_testkit::GoogleDataManagerEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/google_data_manager.rs` (served with the
//! shared token endpoint `google_oauth.rs`); the conformance suite runs it in
//! `tests/it/destinations/google_ads.rs`.
//!
//! # API
//! `POST https://datamanager.googleapis.com/v1/audienceMembers:ingest` and
//! `…/v1/audienceMembers:remove`
//! (<https://developers.google.com/data-manager/api/reference/rest/v1/audienceMembers/ingest>,
//! `…/remove`), `Authorization: Bearer <access token>` for the scope
//! `https://www.googleapis.com/auth/datamanager`, from a service account or an OAuth refresh
//! token (`destinations/google_auth/`; a `401` renews the token once). Body:
//! `{"destinations": [{"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId"},
//! "loginAccount"?, "productDestinationId": <audience id>}], "audienceMembers": [{"userData":
//! {"userIdentifiers": [{"emailAddress"}, {"phoneNumber"}, {"address": {"givenName",
//! "familyName", "regionCode", "postalCode"}}]}, "consent"?: {"adUserData",
//! "adPersonalization"}}], "encoding": "HEX" | "BASE64", "termsOfService":
//! {"customerMatchTermsOfServiceStatus": "ACCEPTED"}}` (terms on ingest only). Answer `200
//! {"requestId"}`, logged at debug level.
//!
//! - `add_to_audience` (mirror): added and updated records → ingest; deleted records →
//!   remove. A deleted record carries only its unique id and the API removes members by
//!   identifiers only, so deletes need `unique_id_identifier` (`email` or `phone`: the unique
//!   id is normalised and hashed as that identifier); without it they are rejected per
//!   record with that explanation (unselect deleted records to not send them). Removing a
//!   person the audience does not hold is no error, so a re-sent removal succeeds.
//! - `remove_from_audience` (upsert): the model's records → remove by their mapped
//!   identifiers (e.g. a model of opted-out customers).
//!
//! Normalisation (formatting guide,
//! <https://developers.google.com/data-manager/api/devguides/concepts/formatting>, examples in
//! `hashing.rs`): email without whitespace, lowercased, `gmail.com`/`googlemail.com` without
//! periods and `+suffix` in the local part; phone E.164 (`default_phone_country_code` for
//! national numbers); first and last name lowercased without punctuation; then SHA-256, hex
//! or Base64 per `encoding`. A 64-hex-digit value is taken as an existing digest and sent as
//! is. The address (`first_name`, `last_name`, `country_code` upper-cased, `postal_code`; the
//! last two not hashed) is sent only with all four, as `AddressInfo` requires. A record
//! without a usable identifier is rejected with the reason (never the value) and not sent.
//! Consent fields map `granted`/`denied` to `CONSENT_GRANTED`/`CONSENT_DENIED`.
//!
//! # Limits (documented, <https://developers.google.com/data-manager/api/devguides/limits>)
//! - 10,000 `AudienceMember`s per request, 10 user identifiers per member, 10 destinations
//!   per request (retl sends one);
//! - `IngestionService` per Google Cloud project: 300 requests per minute and 100,000 per day
//!   (mutate); over it, `429 RESOURCE_EXHAUSTED`;
//! - no request byte limit is documented.
//!
//! Defaults: 10,000 members per request; 8 MiB of mapped payload per request (retl's choice;
//! a member is at most three identifiers, about 400 bytes once hashed); 4 requests/s (burst
//! 4), i.e. at most 240 a minute, below the project's 300 which other tools may share;
//! 2 in flight; a daily budget of 100,000 requests; 5 attempts, 60 s timeout. A `429`
//! without `Retry-After` waits 60 s (the quota window).
//!
//! # Response contract
//! - **200** `{"requestId"}`: every member of the request accepted (processing is
//!   asynchronous; see "Not covered").
//! - **400** `INVALID_ARGUMENT` with a `google.rpc.BadRequest` naming
//!   `audience_members[i]…`: the API is fast-fail (nothing of the request was processed,
//!   <https://developers.google.com/data-manager/api/devguides/concepts/understand-errors>),
//!   so the named members' records are rejected with Google's reason and the others are
//!   handed back to be sent again.
//! - `ErrorInfo` reasons `INVALID_USER_LIST_ID`/`INVALID_USER_LIST_TYPE` (audience),
//!   `INVALID_DESTINATION` (accounts), `TERMS_AND_CONDITIONS_NOT_SIGNED` → a config error
//!   naming the field, which stops the run; `TOO_MANY_AUDIENCE_MEMBERS` or a body over the
//!   size limit → the engine splits the batch; `401`/`403` → authentication error; `429` →
//!   throttled; `5xx` → transient; other `4xx` → the batch is rejected. Messages carry
//!   Google's message, reason and request id.
//!
//! # Test
//! `TestDestination` sends an ingest request with `validateOnly: true` and one placeholder
//! member: it checks the token, the accounts, the audience and the terms, and writes nothing.
//!
//! # Not covered
//! - request diagnostics: `requestStatus:retrieve` (asynchronous per-request processing
//!   status and match counts) is not polled;
//! - mobile ids (`mobileData`), PAIR ids (`pairData`), user-id lists, encrypted identifiers
//!   (`encryptionInfo`), several emails or phones per person, request-level consent (map the
//!   consent fields to a constant instead), several destinations per request;
//! - creating the audience (`userLists.create`) or emptying it: it must exist;
//! - Display & Video 360 and data-partner account types (`accountType` is `GOOGLE_ADS`).

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

use self::actions::{ACTIONS, AudienceAction, MAX_MEMBERS};
use self::client::{AudienceClient, BoundAction};
use self::config::{CONFIG_FIELDS, GoogleAdsConfig};

/// The catalog entry and factory of the `google-ads-customer-match` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "google-ads-customer-match",
        display_name: "Google Ads Customer Match",
        description: "Adds people to and removes them from a Google Ads Customer Match audience through the Data Manager API, identifiers normalised and SHA-256 hashed.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 4.0,
        burst: 4,
        batch_size: MAX_MEMBERS,
        max_batch_bytes: 8 * 1024 * 1024,
        max_in_flight: 2,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 60_000,
        daily_request_budget: Some(100_000),
    }
}

/// Builds the destination from its config (secrets included); no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(GoogleAdsDestination::new(config, limits)?))
}

/// A configured audience.
#[derive(Debug)]
pub(crate) struct GoogleAdsDestination {
    client: Arc<AudienceClient>,
}

impl GoogleAdsDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: GoogleAdsConfig = crate::destinations::parse_config(config)?;
        let valid = config.validate()?;
        Ok(GoogleAdsDestination {
            client: Arc::new(AudienceClient::new(valid, limits.timeout())?),
        })
    }
}

#[async_trait]
impl Destination for GoogleAdsDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action = AudienceAction::from_spec(spec)
            .ok_or_else(|| undeclared_action("google-ads-customer-match", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
