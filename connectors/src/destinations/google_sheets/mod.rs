//! `google-sheets`: one tab of a Google spreadsheet mirrors a model by key, through the
//! Google Sheets API v4.
//!
//! # Files
//! - `config.rs`: `GoogleSheetsConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the three action specs, `SheetsAction`, cells and A1 ranges, and the plan
//!   of a batch (rows updated, appended, deleted) from the header row and key column.
//! - `client.rs`: the requests, answers → `BatchOutcome` or an error, `test()`.
//! - `tests.rs`: planning and config unit tests, round-trips against
//!   `retl_testkit::GoogleSheetsEmulator`, the config drift test.
//!
//! Authentication is `destinations/google_auth/` (a service account's JWT or a refresh
//! token; the token cached and renewed once after a 401). Its emulator is
//! `tests/testkit/src/emulators/google_sheets/` (with the token endpoint of
//! `google_oauth.rs`); the conformance suite runs it in `tests/it/destinations/google_sheets.rs`.
//!
//! # The tab
//! Row 1 is the header: column A, headed `key_column` (default `id`), holds each record's
//! unique id; the other columns are headed with the mapped field names. On the first batch
//! into an empty tab retl writes the header; a field the header lacks is **added as a new
//! column** on the right (not an error), and columns the mapping does not set are left as
//! they are (a user may keep notes or formulas there). A tab whose column A is headed
//! otherwise is refused with an error naming both headers. Values are written with
//! `valueInputOption=RAW` by default: stored as given, so a text starting with `=` stays text
//! (no formula injection from warehouse data); `USER_ENTERED` parses them as if typed.
//! A null clears its cell; an object or array is written as JSON text.
//!
//! # API, one batch
//! `Authorization: Bearer <access token>` with the scope
//! `https://www.googleapis.com/auth/spreadsheets`, on
//! `https://sheets.googleapis.com/v4/spreadsheets/{spreadsheetId}`:
//! 1. `GET …/values:batchGet?ranges='Tab'!1:1&ranges='Tab'!A2:A&valueRenderOption=UNFORMATTED_VALUE`
//!    (<https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/batchGet>):
//!    the header and the key column, read **for every batch**, so that row numbers are those
//!    of the tab as it is now (a user may have sorted or edited it since the last batch);
//! 2. when the header changes or rows are updated: one `POST …/values:batchUpdate`
//!    (<https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/batchUpdate>),
//!    one `ValueRange` per row (`'Tab'!A7:D7`; a null leaves a cell unchanged);
//! 3. when rows are deleted: one `POST …:batchUpdate` of `deleteDimension` requests, bottom
//!    row first, contiguous rows merged
//!    (<https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets/request#DeleteDimensionRequest>);
//!    the tab's `sheetId` is looked up once (`spreadsheets.get`);
//! 4. when records are new: one `POST …/values/'Tab'!A1:append?insertDataOption=INSERT_ROWS`
//!    (<https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/append>).
//!
//! Deleting rows (rather than clearing them) keeps the tab one contiguous table with no
//! blank rows, so appends land right below it and row positions match the model's rows; the
//! rows below a deleted one move up, which is why the key column is read again per batch.
//! A key several rows hold (typed by hand) updates the first and deletes all. A re-sent
//! delete of a key no row holds is accepted (already gone). Each request is atomic, so a
//! batch whose later request fails is retried whole, and the retry (re-reading the keys)
//! updates instead of appending what the first attempt wrote.
//!
//! **Concurrency: one writer per tab is assumed.** Row numbers from a read are valid until
//! the next write; `max_in_flight` is 1 and two destinations (or people deleting rows) writing
//! the same tab at once can overwrite the wrong row.
//!
//! # Limits (documented, <https://developers.google.com/sheets/api/limits>)
//! - 300 read and 300 write requests per minute per project, **60 per minute per user per
//!   project** (a service account is one user); a `429` asks for exponential backoff ("after
//!   1 minute, you can execute requests again"). A batch makes 1 read and up to 3 writes.
//! - No hard request size limit; "we recommend a 2 MB maximum payload".
//! - A request processed for more than 180 seconds returns a timeout error.
//! - 10 million cells per spreadsheet, 50,000 characters per cell
//!   (<https://support.google.com/drive/answer/37603>).
//!
//! Defaults: 0.33 batches/s, burst 1 (60 writes per minute per user ÷ up to 3 writes per
//! batch; an upsert-only mapping, at most 2 writes, may set `limits.requests_per_second` to
//! 0.5); 500 records per batch (retl's choice: no count limit is documented); 1 MiB per batch
//! (half the recommended 2 MB, room for the ranges around the values); 1 in flight (one writer);
//! 8 attempts, backoff from 1 s to 64 s (the truncated exponential backoff the limits page
//! asks for under "Resolve time-based quota errors"); 180 s timeout (the processing limit).
//!
//! # Response contract
//! - **2xx**: every record of the batch written; a record with a value over 50,000
//!   characters is rejected before sending (Google would fail the whole request).
//! - **400** (`INVALID_ARGUMENT`: a tab that does not exist, the cell limit, a bad range):
//!   the batch is rejected with Google's message and what to check.
//! - **401**: the token is renewed and the request sent once more; a second 401, and
//!   **403** (`PERMISSION_DENIED`: the spreadsheet is not shared with the account, or the API
//!   is not enabled), are authentication errors that stop the run. A refused token request
//!   (`invalid_grant`, ...) likewise.
//! - **404**: the spreadsheet does not exist: rejected.
//! - **429** (`RESOURCE_EXHAUSTED`, no `Retry-After`): throttled, the engine backs off; **5xx**:
//!   transient.
//!
//! # Test
//! `TestDestination` calls `spreadsheets.get` with `fields=sheets.properties`: it checks the
//! credentials, that the spreadsheet is shared and that the tab exists, and writes nothing.
//!
//! # Not covered
//! - several writers to one tab, or a tab sorted or edited while a batch is in flight;
//! - a key column other than A, header rows other than row 1, several header rows;
//! - renaming or removing columns when the mapping changes (new fields are added; dropped
//!   fields' columns stay with their last values);
//! - cell formats, data validation, protected ranges, named ranges; creating spreadsheets
//!   or tabs;
//! - domain-wide delegation (a service account acting as a user, the JWT's `sub`) and
//!   workload identity federation; API keys;
//! - per-record results from Google (a Sheets request succeeds or fails whole).

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

use self::actions::{ACTIONS, SheetsAction};
use self::client::{BoundAction, SCOPE, SheetsClient};
use self::config::{CONFIG_FIELDS, GoogleSheetsConfig};
use crate::destinations::google_auth::GoogleAuth;
use crate::destinations::http;

/// The catalog entry and factory of the `google-sheets` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "google-sheets",
        display_name: "Google Sheets",
        description: "Mirrors a model into one tab of a Google spreadsheet by key: rows updated, appended and deleted (service account or OAuth refresh token).",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The limits from Google's documentation (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 0.33,
        burst: 1,
        batch_size: 500,
        max_batch_bytes: 1024 * 1024,
        max_in_flight: 1,
        max_attempts: 8,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 64_000,
        timeout_ms: 180_000,
        daily_request_budget: None,
    }
}

/// Builds a Google Sheets destination from its config (secrets included); no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(GoogleSheetsDestination::new(config, limits)?))
}

/// A configured tab of a spreadsheet.
#[derive(Debug)]
pub(crate) struct GoogleSheetsDestination {
    client: Arc<SheetsClient>,
}

impl GoogleSheetsDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: GoogleSheetsConfig = crate::destinations::parse_config(config)?;
        let valid = config.validate()?;
        let http = http::client(limits.timeout())?;
        let auth = GoogleAuth::new(valid.credentials.clone(), &[SCOPE], http);
        Ok(GoogleSheetsDestination {
            client: Arc::new(SheetsClient::new(valid, auth)),
        })
    }
}

#[async_trait]
impl Destination for GoogleSheetsDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action = SheetsAction::from_spec(spec)
            .ok_or_else(|| undeclared_action("google-sheets", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
