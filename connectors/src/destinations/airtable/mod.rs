//! `airtable`: upserts and deletes records of one Airtable table through the Web API, matching
//! records on a merge field that holds each record's unique id.
//!
//! # Files
//! - `config.rs`: `AirtableConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the two action specs, `AirtableAction`, the upsert body and the lookup
//!   formula of a delete.
//! - `client.rs`: the requests, answers → `BatchOutcome`, the 30 s wait after a 429, `test()`.
//! - `tests.rs`: encoding and classification unit tests, round-trips against
//!   `retl_testkit::AirtableEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/airtable.rs`; the conformance suite runs it in
//! `tests/it/destinations/airtable.rs`.
//!
//! # API
//! `Authorization: Bearer <personal access token>` (scopes `data.records:read` and
//! `data.records:write`; <https://airtable.com/developers/web/api/authentication>), on
//! `https://api.airtable.com/v0/{baseId}/{tableIdOrName}`.
//! - `upsert_records`: `PATCH` with `{"performUpsert": {"fieldsToMergeOn": [merge_field]},
//!   "records": [{"fields": {...}}], "typecast": false}`: a record whose merge field matches
//!   none is created, one is updated, several fail the request; only the fields sent change
//!   (<https://airtable.com/developers/web/api/update-multiple-records>). The merge field gets
//!   the record's unique id unless the mapping sets it.
//! - `delete_records`: deletes take record ids, which retl does not keep, so a batch is two
//!   requests: `GET ?filterByFormula=OR({merge}=k1,…)&fields[]=merge` finds the records
//!   (<https://airtable.com/developers/web/api/list-records>), then
//!   `DELETE ?records[]=rec…&records[]=rec…` deletes them
//!   (<https://airtable.com/developers/web/api/delete-multiple-records>). A key no record
//!   holds is already gone (a re-sent delete succeeds); a key several records hold is
//!   rejected.
//!
//! # Limits (documented)
//! - 10 records per upsert and per delete request (the pages above); a larger batch is handed
//!   back to the engine as too large, which halves it.
//! - 5 requests per second per base, and 50 per second across all bases of one token; a 429
//!   means "wait 30 seconds before subsequent requests will succeed"
//!   (<https://airtable.com/developers/web/api/rate-limits>): the client reports a throttle
//!   with a 30 s wait (or the `Retry-After`, should an answer carry one), which pauses the
//!   whole destination.
//! - No request byte limit is documented (413 "you shouldn't encounter this under normal
//!   use", <https://airtable.com/developers/web/api/errors>).
//!
//! Defaults: 10 records per request; 2.5 requests/s, burst 1 — half the documented 5 per base,
//! because a delete batch makes two requests and a 429 costs 30 s; 1 in flight; 1 MiB per
//! request (retl's choice); 5 attempts, 30 s timeout. An upsert-only destination may set
//! `limits.requests_per_second` to 5.
//!
//! # Response contract
//! - **200** to the `PATCH`: `{"records": [...], "createdRecords": [...], "updatedRecords":
//!   [...]}`, every record written (Airtable applies a request whole).
//! - **422** (`INVALID_VALUE_FOR_COLUMN`, `UNKNOWN_FIELD_NAME`, several matches, …): the
//!   whole request failed: every record of the batch is rejected with Airtable's message.
//! - **401** (missing or invalid token), **403** (`INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`:
//!   the token cannot reach the base or table): authentication error, the run stops.
//! - **404** to the `DELETE` (the records went between lookup and delete): gone, accepted.
//! - **429**: throttled, 30 s. **5xx**: transient.
//!
//! # Test
//! `TestDestination` lists at most one record (`GET …?maxRecords=1`): it checks the token, the
//! base and the table and writes nothing.
//!
//! # Not covered
//! - per-record results: Airtable rejects a whole request for one invalid record, so the other
//!   nine records of its batch are rejected with it (and re-sent by the next run);
//! - merging on several fields (`fieldsToMergeOn` takes up to 3; retl merges on one, which
//!   holds the unique id), destructive `PUT` updates, `returnFieldsByFieldId`;
//! - field discovery from the base schema (`GET /v0/meta/bases/{baseId}/tables`) and type
//!   checks before sending: mapped names are sent as given;
//! - attachments, linked records by name, OAuth token refresh.

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

use self::actions::{ACTIONS, AirtableAction, MAX_RECORDS};
use self::client::{AirtableClient, BoundAction};
use self::config::{AirtableConfig, CONFIG_FIELDS};

/// The catalog entry and factory of the `airtable` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "airtable",
        display_name: "Airtable",
        description: "Upserts records of an Airtable table matched on a merge field (performUpsert), and deletes them.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The limits from Airtable's documentation (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 2.5,
        burst: 1,
        batch_size: MAX_RECORDS,
        max_batch_bytes: 1024 * 1024,
        max_in_flight: 1,
        max_attempts: 5,
        initial_backoff_ms: 500,
        max_backoff_ms: 30_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds an Airtable destination from its config (secrets included); no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(AirtableDestination::new(config, limits)?))
}

/// A configured Airtable table.
#[derive(Debug)]
pub(crate) struct AirtableDestination {
    client: Arc<AirtableClient>,
}

impl AirtableDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: AirtableConfig = crate::destinations::parse_config(config)?;
        let valid = config.validate()?;
        Ok(AirtableDestination {
            client: Arc::new(AirtableClient::new(valid, limits.timeout())?),
        })
    }
}

#[async_trait]
impl Destination for AirtableDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            AirtableAction::from_spec(spec).ok_or_else(|| undeclared_action("airtable", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
