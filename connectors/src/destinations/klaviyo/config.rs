//! Klaviyo configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url;
use crate::destinations::invalid_config;

/// Klaviyo's API host, the default endpoint.
pub(crate) const DEFAULT_ENDPOINT: &str = "https://a.klaviyo.com";

/// The configuration of a Klaviyo destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KlaviyoConfig {
    /// A private API key (`pk_...`) with the `profiles:write`, `lists:write`, `events:write`
    /// and `data-privacy:write` scopes. Secret.
    pub(crate) api_key: Secret,
    /// The id of a list every imported profile is added to; none when unset.
    #[serde(default)]
    pub(crate) list_id: Option<String>,
    /// The API host; `https://a.klaviyo.com` when unset.
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "api_key",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Private API key (pk_..., Settings > API keys) with the profiles:write, lists:write, events:write and data-privacy:write scopes.",
    },
    ConfigField {
        name: "list_id",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Id of a Klaviyo list that every imported profile is added to (optional).",
    },
    ConfigField {
        name: "endpoint",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "API host; https://a.klaviyo.com when unset.",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The private API key.
    pub(crate) api_key: Secret,
    /// The list imported profiles join.
    pub(crate) list_id: Option<String>,
    /// `<endpoint>/api/profile-bulk-import-jobs`.
    pub(crate) import_url: Url,
    /// `<endpoint>/api/events`.
    pub(crate) events_url: Url,
    /// `<endpoint>/api/data-privacy-deletion-jobs`.
    pub(crate) deletion_url: Url,
    /// `<endpoint>/api/accounts` (the read of `test()`).
    pub(crate) accounts_url: Url,
}

impl KlaviyoConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let key = self.api_key.expose();
        if !key.starts_with("pk_")
            || !key[3..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || key.len() < 4
        {
            return Err(invalid_config(
                "api_key",
                "a Klaviyo private API key starts with 'pk_' followed by letters and digits; the public key (site id) cannot write, create a private key under Settings > API keys",
            ));
        }
        if let Some(list) = &self.list_id
            && (list.is_empty() || !list.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(invalid_config(
                "list_id",
                "a Klaviyo list id is letters and digits (e.g. 'Y6nRLr'); copy it from the list's settings",
            ));
        }
        let base = self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        let url = |path: &str| join_url("endpoint", base, path);
        Ok(ValidConfig {
            api_key: self.api_key.clone(),
            list_id: self.list_id.clone(),
            import_url: url("/api/profile-bulk-import-jobs")?,
            events_url: url("/api/events")?,
            deletion_url: url("/api/data-privacy-deletion-jobs")?,
            accounts_url: url("/api/accounts")?,
        })
    }
}
