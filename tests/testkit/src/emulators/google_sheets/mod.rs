//! Emulator of the subset of the Google Sheets API v4 that retl's `google-sheets` destination
//! uses, served beside Google's token endpoint ([`super::google_oauth`], at `/token`).
//!
//! # The contract it enforces
//! Checks run in this order; the first that fails answers the request:
//! 1. fault controls: [`GoogleSheetsEmulator::fail_next`] (e.g. `429` with `Retry-After`),
//!    [`GoogleSheetsEmulator::fail_everything`] (`503`);
//! 2. `Authorization: Bearer <token>`: a token the token endpoint issued and that has not
//!    expired, else Google's `401 UNAUTHENTICATED`;
//! 3. the endpoint and method, else `404`; a spreadsheet id other than the emulator's →
//!    `404 {"error": {"code": 404, "message": "Requested entity was not found.", "status":
//!    "NOT_FOUND"}}`;
//! 4. the per-minute quota, reads and writes counted apart
//!    (<https://developers.google.com/sheets/api/limits>: 60 per minute per user per project,
//!    [`GoogleSheetsOptions::requests_per_minute`]): over it → `429` with Google's
//!    `RESOURCE_EXHAUSTED` error (an `ErrorInfo` detail with reason `RATE_LIMIT_EXCEEDED`),
//!    without `Retry-After`;
//! 5. the request: A1 ranges must parse and name an existing tab (else `400 INVALID_ARGUMENT
//!    "Unable to parse range: ..."`), writes need `valueInputOption` (`RAW` or
//!    `USER_ENTERED`), values must fit the range, and a write that takes the spreadsheet past
//!    [`GoogleSheetsOptions::cell_limit`] cells (rows × columns of every tab's grid; 10
//!    million) is refused with `400`. A request is applied whole or not at all.
//!
//! Endpoints, under `/v4/spreadsheets/{spreadsheetId}`:
//! - `GET` (`?fields=sheets.properties`): `{"spreadsheetId", "sheets": [{"properties":
//!   {"sheetId", "title", "index", "sheetType", "gridProperties"}}]}`;
//! - `GET /values/{range}` and `GET /values:batchGet?ranges=…`: `ValueRange`s (rows;
//!   trailing empty rows and cells left out; `valueRenderOption=UNFORMATTED_VALUE` gives
//!   numbers and booleans as such, the default `FORMATTED_VALUE` as text);
//! - `POST /values:batchUpdate` `{"valueInputOption", "data": [{"range", "values"}]}`: a null
//!   value leaves its cell unchanged, `""` clears it; writes grow the grid;
//! - `POST /values/{range}:append?valueInputOption=…&insertDataOption=INSERT_ROWS|OVERWRITE`
//!   `{"values"}`: after the last row holding a value;
//! - `POST :batchUpdate` `{"requests": [{"deleteDimension": {"range": {"sheetId",
//!   "dimension": "ROWS", "startIndex", "endIndex"}}}]}` (only this request kind), applied in
//!   order: an unknown `sheetId` → `400 "No grid with id"`.
//!
//! The ledger: every request ([`GoogleSheetsEmulator::requests`], with the rows each wrote or
//! deleted), every row written ([`GoogleSheetsEmulator::written`], header row excluded) or
//! deleted ([`GoogleSheetsEmulator::deleted`]), the cells ([`GoogleSheetsEmulator::cells`]);
//! token requests are in [`GoogleSheetsEmulator::oauth`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use axum::Router;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::common::{self, Faults};
use super::google_oauth::{GoogleOAuth, GoogleOAuthOptions, TOKEN_PATH};
use grid::Tab;

mod api;
mod grid;

/// How a Sheets emulator starts.
#[derive(Debug, Clone)]
pub struct GoogleSheetsOptions {
    /// The token endpoint's accounts.
    pub oauth: GoogleOAuthOptions,
    /// The one spreadsheet it holds.
    pub spreadsheet_id: String,
    /// Its tabs, empty.
    pub tabs: Vec<String>,
    /// `(rowCount, columnCount)` of each tab's grid at the start (a new sheet: 1000 × 26).
    pub grid: (usize, usize),
    /// The most cells the spreadsheet's grids may hold (Google: 10 million).
    pub cell_limit: usize,
    /// Read requests, and write requests, per minute (Google: 60 per user per project).
    pub requests_per_minute: u32,
}

impl Default for GoogleSheetsOptions {
    fn default() -> Self {
        GoogleSheetsOptions {
            oauth: GoogleOAuthOptions::default(),
            spreadsheet_id: "1TestSpreadsheet0123456789abcdefghijklmnopqrs".to_string(),
            tabs: vec!["Sheet1".to_string()],
            grid: (1000, 26),
            cell_limit: 10_000_000,
            requests_per_minute: 60,
        }
    }
}

/// One request as the emulator received it.
#[derive(Debug, Clone)]
pub struct SheetsRequest {
    /// HTTP method.
    pub method: String,
    /// Path, percent-decoded, without the query.
    pub path: String,
    /// Query pairs, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The body parsed as JSON (`Value::Null` when absent).
    pub body: Value,
    /// The status answered.
    pub status: u16,
    /// When it arrived.
    pub received_at: SystemTime,
    /// Rows (below the header row) this request wrote, as sent (nulls kept).
    pub written: Vec<Vec<Value>>,
    /// Rows this request deleted, with their cells at that time.
    pub deleted: Vec<Vec<Value>>,
}

impl SheetsRequest {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Ledger {
    options: GoogleSheetsOptions,
    tabs: Vec<Tab>,
    requests: Vec<SheetsRequest>,
    written: Vec<Vec<Value>>,
    deleted: Vec<Vec<Value>>,
    faults: Faults,
    /// Start of the quota minute, reads and writes in it.
    quota: (Instant, u32, u32),
}

type Shared = Arc<Mutex<Ledger>>;

/// A running Sheets emulator on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct GoogleSheetsEmulator {
    addr: SocketAddr,
    shared: Shared,
    oauth: GoogleOAuth,
    task: JoinHandle<()>,
}

impl GoogleSheetsEmulator {
    /// Starts an emulator holding one spreadsheet with these (empty) tabs.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(options: GoogleSheetsOptions) -> std::io::Result<Self> {
        let oauth = GoogleOAuth::new(options.oauth.clone());
        let tabs = options
            .tabs
            .iter()
            .enumerate()
            .map(|(i, title)| Tab {
                sheet_id: if i == 0 { 0 } else { 1_000_000 + i as i64 },
                title: title.clone(),
                row_count: options.grid.0,
                column_count: options.grid.1,
                cells: Vec::new(),
            })
            .collect();
        let shared: Shared = Arc::new(Mutex::new(Ledger {
            options,
            tabs,
            requests: Vec::new(),
            written: Vec::new(),
            deleted: Vec::new(),
            faults: Faults::default(),
            quota: (Instant::now(), 0, 0),
        }));
        let api = Router::new()
            .fallback(api::handle)
            .with_state((Arc::clone(&shared), oauth.clone()));
        let app = oauth.router().merge(api);
        let (addr, task) = common::serve(app, "google-sheets").await?;
        Ok(GoogleSheetsEmulator {
            addr,
            shared,
            oauth,
            task,
        })
    }

    /// The API origin, for the destination's `api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token URI (`<url>/token`), for the destination's `token_uri`.
    pub fn token_uri(&self) -> String {
        format!("{}{TOKEN_PATH}", self.url())
    }

    /// A service account key file the token endpoint honours (its token URI is this
    /// emulator's).
    pub fn service_account_key_json(&self) -> String {
        self.lock()
            .options
            .oauth
            .service_account_key_json(&self.token_uri())
    }

    /// The spreadsheet's id.
    pub fn spreadsheet_id(&self) -> String {
        self.lock().options.spreadsheet_id.clone()
    }

    /// The token endpoint: its ledger and controls.
    pub fn oauth(&self) -> &GoogleOAuth {
        &self.oauth
    }

    /// Every API request so far, in arrival order.
    pub fn requests(&self) -> Vec<SheetsRequest> {
        self.lock().requests.clone()
    }

    /// Every row written below the header row, as sent, in order.
    pub fn written(&self) -> Vec<Vec<Value>> {
        self.lock().written.clone()
    }

    /// Every row deleted, with its cells, in order.
    pub fn deleted(&self) -> Vec<Vec<Value>> {
        self.lock().deleted.clone()
    }

    /// A tab's cells (trailing empty rows and cells left out; `Null` = empty), or `None`.
    pub fn cells(&self, tab: &str) -> Option<Vec<Vec<Value>>> {
        self.lock()
            .tabs
            .iter()
            .find(|t| t.title == tab)
            .map(Tab::trimmed)
    }

    /// `(rowCount, columnCount)` of a tab's grid.
    pub fn grid(&self, tab: &str) -> Option<(usize, usize)> {
        self.lock()
            .tabs
            .iter()
            .find(|t| t.title == tab)
            .map(|t| (t.row_count, t.column_count))
    }

    /// Sets a tab's cells (rows from row 1), as a user typing them would.
    pub fn set_cells(&self, tab: &str, rows: Vec<Vec<Value>>) {
        let mut ledger = self.lock();
        if let Some(t) = ledger.tabs.iter_mut().find(|t| t.title == tab) {
            t.row_count = t.row_count.max(rows.len());
            t.column_count = t
                .column_count
                .max(rows.iter().map(Vec::len).max().unwrap_or(0));
            t.cells = rows;
        }
    }

    /// The rows of a tab whose first cell is one of `keys` (as text) go away, as when a user
    /// deletes them.
    pub fn forget(&self, tab: &str, keys: &[String]) {
        let mut ledger = self.lock();
        if let Some(t) = ledger.tabs.iter_mut().find(|t| t.title == tab) {
            let before = t.cells.len();
            let header = t.cells.first().cloned();
            let mut rows: Vec<Vec<Value>> = t.cells.drain(..).skip(1).collect();
            rows.retain(|row| !row.first().is_some_and(|c| keys.contains(&text(c))));
            t.cells = header.into_iter().chain(rows).collect();
            t.row_count -= before - t.cells.len();
        }
    }

    /// The next `n` requests answer `status` (Google's error JSON, `Retry-After` when given).
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.lock().faults.fail_next(n, status, retry_after);
    }

    /// Every request answers 503 until [`Self::clear`].
    pub fn fail_everything(&self) {
        self.lock().faults.fail_everything = true;
    }

    /// Ends every fault and forgets the requests and the written and deleted rows (not the
    /// cells).
    pub fn clear(&self) {
        let mut ledger = self.lock();
        ledger.faults.clear();
        ledger.requests.clear();
        ledger.written.clear();
        ledger.deleted.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.shared)
    }
}

impl Drop for GoogleSheetsEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Ledger> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A cell as text (a key's form): a string as is, anything else as JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
