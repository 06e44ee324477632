//! Google Sheets configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::google_auth::{self, CredentialFields, ValidCredentials};
use crate::destinations::http::join_url;
use crate::destinations::invalid_config as invalid;

/// The Sheets API's origin.
const DEFAULT_API_URL: &str = "https://sheets.googleapis.com";
/// The key column's default header.
pub(crate) const DEFAULT_KEY_COLUMN: &str = "id";
/// The longest tab name Google Sheets accepts (retl's check, for a clear error).
const MAX_SHEET_NAME: usize = 100;

/// The configuration of a Google Sheets destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GoogleSheetsConfig {
    /// A service account's JSON key file (the spreadsheet must be shared with its
    /// `client_email` as an editor). Secret.
    #[serde(default)]
    pub(crate) service_account_key: Option<Secret>,
    /// OAuth client id, with `client_secret` and `refresh_token` (a user's consent).
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    /// The OAuth client's secret. Secret.
    #[serde(default)]
    pub(crate) client_secret: Option<Secret>,
    /// A refresh token with the spreadsheets scope. Secret.
    #[serde(default)]
    pub(crate) refresh_token: Option<Secret>,
    /// The token endpoint (default: the key file's, else Google's).
    #[serde(default)]
    pub(crate) token_uri: Option<String>,
    /// The spreadsheet's id, from its URL `docs.google.com/spreadsheets/d/<id>/edit`.
    pub(crate) spreadsheet_id: String,
    /// The tab (sheet) name the model is mirrored into; it must exist.
    pub(crate) sheet: String,
    /// The header of column A, which holds each record's unique id; default `id`.
    #[serde(default)]
    pub(crate) key_column: Option<String>,
    /// `RAW` (default: values stored as given; text starting with `=` stays text) or
    /// `USER_ENTERED` (values parsed as if typed: formulas, numbers and dates in text).
    #[serde(default)]
    pub(crate) value_input_option: Option<String>,
    /// The API origin; default `https://sheets.googleapis.com` (tests point it at an
    /// emulator).
    #[serde(default)]
    pub(crate) api_url: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    google_auth::SERVICE_ACCOUNT_KEY_FIELD,
    google_auth::CLIENT_ID_FIELD,
    google_auth::CLIENT_SECRET_FIELD,
    google_auth::REFRESH_TOKEN_FIELD,
    google_auth::TOKEN_URI_FIELD,
    ConfigField {
        name: "spreadsheet_id",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The spreadsheet's id, from its URL docs.google.com/spreadsheets/d/<id>/edit. Share the spreadsheet with the service account's client_email as an Editor.",
    },
    ConfigField {
        name: "sheet",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The tab (sheet) that mirrors the model; it must exist. Its row 1 holds the headers: column A the key column, then the mapped fields (written by retl when the tab is empty; new fields are added as columns on the right).",
    },
    ConfigField {
        name: "key_column",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The header of column A, which holds each record's unique id and locates its row (default 'id').",
    },
    ConfigField {
        name: "value_input_option",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "RAW (default: values stored as given, so text starting with '=' is not a formula) or USER_ENTERED (values parsed as if typed into the sheet).",
    },
    ConfigField {
        name: "api_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The Sheets API origin (default https://sheets.googleapis.com).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The credentials, parsed.
    pub(crate) credentials: ValidCredentials,
    /// `<api_url>/v4/spreadsheets/<spreadsheet_id>`.
    pub(crate) spreadsheet_url: Url,
    /// The tab name.
    pub(crate) sheet: String,
    /// Column A's header.
    pub(crate) key_column: String,
    /// `RAW` or `USER_ENTERED`.
    pub(crate) value_input_option: &'static str,
}

impl GoogleSheetsConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let credentials = CredentialFields {
            service_account_key: self.service_account_key.as_ref(),
            client_id: self.client_id.as_deref(),
            client_secret: self.client_secret.as_ref(),
            refresh_token: self.refresh_token.as_ref(),
            token_uri: self.token_uri.as_deref(),
        }
        .validate()?;
        let id = self.spreadsheet_id.trim();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "spreadsheet_id",
                "is not a spreadsheet id: copy the part between /d/ and /edit of the spreadsheet's URL (letters, digits, '-' and '_')",
            ));
        }
        if self.sheet.trim().is_empty() || self.sheet.chars().count() > MAX_SHEET_NAME {
            return Err(invalid(
                "sheet",
                "name the tab (as shown on it at the bottom of the spreadsheet, up to 100 characters)",
            ));
        }
        let key_column = self
            .key_column
            .clone()
            .unwrap_or_else(|| DEFAULT_KEY_COLUMN.to_string());
        if key_column.trim().is_empty() {
            return Err(invalid(
                "key_column",
                "name column A's header (default 'id'), or leave the field out",
            ));
        }
        let value_input_option = match self.value_input_option.as_deref() {
            None | Some("RAW") => "RAW",
            Some("USER_ENTERED") => "USER_ENTERED",
            Some(other) => {
                return Err(invalid(
                    "value_input_option",
                    format!("'{other}' is not an option: use RAW or USER_ENTERED"),
                ));
            }
        };
        let origin = self.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
        let mut spreadsheet_url = join_url("api_url", origin, "/v4/spreadsheets")?;
        spreadsheet_url
            .path_segments_mut()
            .map_err(|()| invalid("api_url", "must be an http or https URL with a host"))?
            .push(id);
        Ok(ValidConfig {
            credentials,
            spreadsheet_url,
            sheet: self.sheet.clone(),
            key_column,
            value_input_option,
        })
    }
}
