//! The Google Sheets client: `test()`, the read of the header row and key column, the writes
//! of a batch (`values:batchUpdate`, `:batchUpdate` with `deleteDimension`, `values:append`)
//! and the classification of Google's answers; [`BoundAction`], an action bound to it.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::actions::{self, SheetsAction};
use super::config::ValidConfig;
use crate::destinations::google_auth::{GoogleAuth, authorized};
use crate::destinations::http::{self, Answer};

/// The OAuth scope of the Sheets API: read and write spreadsheets
/// (<https://developers.google.com/sheets/api/scopes>).
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";

/// Talks to one tab of one spreadsheet.
#[derive(Debug)]
pub(crate) struct SheetsClient {
    auth: GoogleAuth,
    config: ValidConfig,
    /// The tab's `sheetId` (for `deleteDimension`), once looked up.
    sheet_id: Mutex<Option<i64>>,
}

/// `spreadsheets.get` with `fields=sheets.properties`.
#[derive(Debug, Deserialize)]
struct Spreadsheet {
    #[serde(default)]
    sheets: Vec<SheetEntry>,
}

#[derive(Debug, Deserialize)]
struct SheetEntry {
    properties: SheetProperties,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SheetProperties {
    #[serde(default)]
    sheet_id: i64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    grid_properties: Option<GridProperties>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GridProperties {
    #[serde(default)]
    row_count: u64,
    #[serde(default)]
    column_count: u64,
}

/// `values:batchGet`'s answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchGet {
    #[serde(default)]
    value_ranges: Vec<ValueRange>,
}

#[derive(Debug, Default, Deserialize)]
struct ValueRange {
    #[serde(default)]
    values: Vec<Vec<Value>>,
}

impl SheetsClient {
    /// A client for this tab, authenticating with `auth`.
    pub(crate) fn new(config: ValidConfig, auth: GoogleAuth) -> Self {
        SheetsClient {
            auth,
            config,
            sheet_id: Mutex::new(None),
        }
    }

    /// `<spreadsheet>/<tail segments…>?<query>`.
    fn url(&self, tail: &[&str], query: &[(&str, &str)]) -> Result<Url, DestinationError> {
        let mut url = self.config.spreadsheet_url.clone();
        if !tail.is_empty() {
            url.path_segments_mut()
                .map_err(|()| no_path())?
                .extend(tail);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// `<api>/v4/spreadsheets/{id}:batchUpdate` (a method of the spreadsheet itself).
    fn batch_update_url(&self) -> Result<Url, DestinationError> {
        let mut url = self.config.spreadsheet_url.clone();
        let method = format!("{}:batchUpdate", self.spreadsheet_segment());
        url.path_segments_mut()
            .map_err(|()| no_path())?
            .pop()
            .push(&method);
        Ok(url)
    }

    /// One API request with a token (renewed once after a 401); traced when `ctx` is a
    /// delivery's.
    async fn call(
        &self,
        ctx: Option<&DeliveryContext>,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Answer, DestinationError> {
        let body = body.map(Value::to_string);
        self.auth
            .send(ctx, |client, bearer| {
                let mut builder = authorized(client.request(method.clone(), url.clone()), bearer);
                if let Some(body) = &body {
                    builder = builder
                        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                        .body(body.clone());
                }
                builder.build().map_err(http::classify_send_error)
            })
            .await
    }

    /// `spreadsheets.get` (`fields=sheets.properties`): the tab's properties, or an error
    /// naming the tabs there are.
    async fn tab(
        &self,
        ctx: Option<&DeliveryContext>,
    ) -> Result<SheetProperties, DestinationError> {
        let url = self.url(&[], &[("fields", "sheets.properties")])?;
        let answer = self.call(ctx, Method::GET, url, None).await?;
        if !answer.status.is_success() {
            return Err(self.error(&answer));
        }
        let spreadsheet: Spreadsheet =
            serde_json::from_slice(&answer.body).map_err(|e| DestinationError::Rejected {
                message: format!("the spreadsheet's properties could not be read ({e})"),
            })?;
        let titles: Vec<String> = spreadsheet
            .sheets
            .iter()
            .map(|s| format!("'{}'", s.properties.title))
            .collect();
        spreadsheet
            .sheets
            .into_iter()
            .map(|s| s.properties)
            .find(|p| p.title == self.config.sheet)
            .ok_or_else(|| DestinationError::Rejected {
                message: format!(
                    "the spreadsheet has no tab '{}' (sheet); its tabs are {}: create the tab or fix sheet",
                    self.config.sheet,
                    titles.join(", ")
                ),
            })
    }

    /// Reads the tab's properties: checks the credentials, the spreadsheet and the tab
    /// without changing anything.
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let tab = self.tab(None).await?;
        *self.sheet_id.lock().await = Some(tab.sheet_id);
        let grid = tab
            .grid_properties
            .map(|g| format!(", {} rows × {} columns", g.row_count, g.column_count))
            .unwrap_or_default();
        Ok(format!(
            "read the spreadsheet's properties: tab '{}' found (sheetId {}{grid}); nothing was written",
            tab.title, tab.sheet_id
        ))
    }

    /// The tab's `sheetId`, looked up once.
    async fn sheet_id(&self, ctx: &DeliveryContext) -> Result<i64, DestinationError> {
        let mut cached = self.sheet_id.lock().await;
        if let Some(id) = *cached {
            return Ok(id);
        }
        let id = self.tab(Some(ctx)).await?.sheet_id;
        *cached = Some(id);
        Ok(id)
    }

    /// One `values:batchGet` of row 1 and column A from row 2, as text.
    async fn read(
        &self,
        ctx: &DeliveryContext,
    ) -> Result<(Vec<String>, Vec<String>), DestinationError> {
        let sheet = actions::quoted(&self.config.sheet);
        let (header, keys) = (format!("{sheet}!1:1"), format!("{sheet}!A2:A"));
        let url = self.url(
            &["values:batchGet"],
            &[
                ("ranges", header.as_str()),
                ("ranges", keys.as_str()),
                ("majorDimension", "ROWS"),
                ("valueRenderOption", "UNFORMATTED_VALUE"),
            ],
        )?;
        let answer = self.call(Some(ctx), Method::GET, url, None).await?;
        if !answer.status.is_success() {
            return Err(self.error(&answer));
        }
        let read: BatchGet =
            serde_json::from_slice(&answer.body).map_err(|e| DestinationError::Rejected {
                message: format!("the header row and key column could not be read ({e})"),
            })?;
        let mut ranges = read.value_ranges.into_iter();
        let header: Vec<String> = ranges
            .next()
            .unwrap_or_default()
            .values
            .into_iter()
            .next()
            .unwrap_or_default()
            .iter()
            .map(actions::text)
            .collect();
        let keys: Vec<String> = ranges
            .next()
            .unwrap_or_default()
            .values
            .iter()
            .map(|row| row.first().map(actions::text).unwrap_or_default())
            .collect();
        Ok((header, keys))
    }

    /// Delivers a batch: reads the header row and key column, then (each only when needed)
    /// one `values:batchUpdate` (header and updated rows), one `:batchUpdate` of
    /// `deleteDimension`s (bottom-up) and one `values:append` (new rows), in that order.
    pub(crate) async fn deliver(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let (header, keys) = self.read(ctx).await?;
        let sheet = self.config.sheet.as_str();
        let plan = actions::plan(sheet, &self.config.key_column, &header, &keys, batch)?;
        let width = plan.header.len();
        let mut data = Vec::new();
        if plan.header_changed {
            data.push(
                json!({"range": actions::row_range(sheet, 1, width), "values": [plan.header]}),
            );
        }
        for (row, cells) in &plan.updates {
            data.push(json!({"range": actions::row_range(sheet, *row, width), "values": [cells]}));
        }
        if !data.is_empty() {
            let body = json!({"valueInputOption": self.config.value_input_option, "data": data});
            let url = self.url(&["values:batchUpdate"], &[])?;
            self.write(ctx, url, &body).await?;
        }
        if !plan.deletes.is_empty() {
            let sheet_id = self.sheet_id(ctx).await?;
            let body = json!({"requests": actions::delete_requests(sheet_id, &plan.deletes)});
            let url = self.batch_update_url()?;
            if let Err(error) = self.write(ctx, url, &body).await {
                // The tab may have been deleted and re-created with another id.
                *self.sheet_id.lock().await = None;
                return Err(error);
            }
        }
        if !plan.appends.is_empty() {
            let range = format!("{}!A1:append", actions::quoted(sheet));
            let url = self.url(
                &["values", &range],
                &[
                    ("valueInputOption", self.config.value_input_option),
                    ("insertDataOption", "INSERT_ROWS"),
                ],
            )?;
            self.write(
                ctx,
                url,
                &json!({"majorDimension": "ROWS", "values": plan.appends}),
            )
            .await?;
        }
        Ok(BatchOutcome {
            records: plan.outcomes,
        })
    }

    /// The spreadsheet id, the last segment of the spreadsheet URL.
    fn spreadsheet_segment(&self) -> String {
        self.config
            .spreadsheet_url
            .path_segments()
            .and_then(|mut s| s.next_back().map(str::to_string))
            .unwrap_or_default()
    }

    /// One write request; a non-2xx answer is the batch's error.
    async fn write(
        &self,
        ctx: &DeliveryContext,
        url: Url,
        body: &Value,
    ) -> Result<(), DestinationError> {
        let answer = self.call(Some(ctx), Method::POST, url, Some(body)).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(self.error(&answer))
        }
    }

    /// The error a non-2xx Sheets answer means ([`Answer::error`]), with what to check for
    /// the answers that name a config problem.
    fn error(&self, answer: &Answer) -> DestinationError {
        let message = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_default();
        let hint = match answer.status {
            StatusCode::NOT_FOUND => format!(
                "; check spreadsheet_id ({}) and that the spreadsheet exists",
                self.spreadsheet_segment()
            ),
            StatusCode::FORBIDDEN => {
                "; share the spreadsheet with the service account's client_email (or the refresh token's user) as an Editor, and enable the Google Sheets API in its Google Cloud project".to_string()
            }
            StatusCode::BAD_REQUEST if message.starts_with("Unable to parse range") => format!(
                "; check that the tab '{}' (sheet) exists",
                self.config.sheet
            ),
            _ => String::new(),
        };
        match answer.error() {
            DestinationError::Rejected { message } => DestinationError::Rejected {
                message: format!("{message}{hint}"),
            },
            DestinationError::Authentication { message } => DestinationError::Authentication {
                message: format!("{message}{hint}"),
            },
            DestinationError::Transient {
                message,
                retry_after,
                throttled: true,
            } => DestinationError::Transient {
                message: format!(
                    "{message}; Google Sheets allows 60 read and 60 write requests per minute per user per project (lower limits.requests_per_second if this recurs)"
                ),
                retry_after,
                throttled: true,
            },
            other => other,
        }
    }
}

/// The error of a spreadsheet URL that cannot take path segments (never: it is http(s)).
fn no_path() -> DestinationError {
    DestinationError::Internal {
        message: "the spreadsheet URL cannot take a path".to_string(),
    }
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action (all deliver through the same plan).
    pub(crate) action: SheetsAction,
    /// The destination's client (shared by its actions).
    pub(crate) client: Arc<SheetsClient>,
}

#[async_trait]
impl Action for BoundAction {
    fn spec(&self) -> &'static ActionSpec {
        self.spec
    }

    async fn send(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        match self.action {
            SheetsAction::Upsert | SheetsAction::Delete | SheetsAction::Mirror => {
                self.client.deliver(ctx, batch).await
            }
        }
    }
}
