//! Airtable configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url;
use crate::destinations::invalid_config as invalid;

/// Airtable's API origin.
const DEFAULT_API_URL: &str = "https://api.airtable.com";

/// The configuration of an Airtable destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AirtableConfig {
    /// A personal access token (or OAuth access token) with `data.records:read` and
    /// `data.records:write` on the base. Secret.
    pub(crate) access_token: Secret,
    /// The base id, `app` + 14 characters (from the base's URL).
    pub(crate) base_id: String,
    /// The table's id (`tbl…`, recommended: survives renames) or name.
    pub(crate) table: String,
    /// The field that identifies a record: upserts merge on it (`performUpsert`), deletes
    /// look records up by it. It receives the record's unique id unless the mapping sets it.
    pub(crate) merge_field: String,
    /// Let Airtable convert string values to the field's type (`typecast`); default false.
    #[serde(default)]
    pub(crate) typecast: bool,
    /// The API origin; default `https://api.airtable.com` (tests point it at an emulator).
    #[serde(default)]
    pub(crate) api_url: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "access_token",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Personal access token (airtable.com/create/tokens) with the data.records:read and data.records:write scopes and access to the base.",
    },
    ConfigField {
        name: "base_id",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The base id: 'app' and 14 letters or digits, from the base's URL.",
    },
    ConfigField {
        name: "table",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The table id ('tbl...', recommended: it survives renames) or the table name.",
    },
    ConfigField {
        name: "merge_field",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The field identifying a record: upserts merge on it, deletes find records by it. It gets the record's unique id unless the mapping sets it.",
    },
    ConfigField {
        name: "typecast",
        field_type: FieldType::Boolean,
        required: false,
        secret: false,
        description: "Let Airtable convert string values to each field's type (default false).",
    },
    ConfigField {
        name: "api_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The API origin (default https://api.airtable.com).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The token.
    pub(crate) access_token: Secret,
    /// `<api_url>/v0/<base_id>/<table>`: upserts, lookups and deletes.
    pub(crate) table_url: Url,
    /// The merge field's name.
    pub(crate) merge_field: String,
    /// Whether to send `typecast: true`.
    pub(crate) typecast: bool,
}

impl AirtableConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let token = self.access_token.expose();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "access_token",
                "a personal access token is one word ('pat' followed by letters, digits and '.'); copy it again from airtable.com/create/tokens",
            ));
        }
        let base = self.base_id.as_str();
        if !(base.len() == 17
            && base.starts_with("app")
            && base.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(invalid(
                "base_id",
                format!(
                    "'{base}' is not a base id: 'app' followed by 14 letters or digits, e.g. appA1b2C3d4E5f6G7 (from the base's URL)"
                ),
            ));
        }
        if self.table.trim().is_empty() {
            return Err(invalid(
                "table",
                "name the table (its id 'tbl...' or its name)",
            ));
        }
        if self.merge_field.trim().is_empty() || self.merge_field.contains(['{', '}']) {
            return Err(invalid(
                "merge_field",
                "name the field that identifies a record (without '{' or '}')",
            ));
        }
        let origin = self.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
        let mut table_url = join_url("api_url", origin, "/v0")?;
        table_url
            .path_segments_mut()
            .map_err(|()| invalid("api_url", "must be an http or https URL with a host"))?
            .push(base)
            .push(&self.table);
        Ok(ValidConfig {
            access_token: self.access_token.clone(),
            table_url,
            merge_field: self.merge_field.clone(),
            typecast: self.typecast,
        })
    }
}
