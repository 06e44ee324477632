//! Iterable configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url;
use crate::destinations::invalid_config;

/// The US data center's API host, the default.
pub(crate) const US_ENDPOINT: &str = "https://api.iterable.com";

/// The configuration of an Iterable destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IterableConfig {
    /// A server-side API key of the project (`Api-Key` header). Secret.
    pub(crate) api_key: Secret,
    /// The API host: `https://api.iterable.com` (US, the default) or
    /// `https://api.eu.iterable.com` (EU data center).
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
        description: "Server-side API key of the Iterable project (Integrations > API Keys).",
    },
    ConfigField {
        name: "endpoint",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "API host: https://api.iterable.com (US data center, the default) or https://api.eu.iterable.com (EU data center).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The API key.
    pub(crate) api_key: Secret,
    /// `<endpoint>/api/users/bulkUpdate`.
    pub(crate) bulk_update_url: Url,
    /// `<endpoint>/api/events/trackBulk`.
    pub(crate) track_bulk_url: Url,
    /// `<endpoint>/api/users/byUserId` (the user id is appended as a path segment).
    pub(crate) by_user_id_url: Url,
    /// `<endpoint>/api/channels` (the side-effect-free call of `test()`).
    pub(crate) channels_url: Url,
}

impl IterableConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let key = self.api_key.expose();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid_config(
                "api_key",
                "an Iterable API key is letters and digits (32 hex digits); copy it again from Integrations > API Keys",
            ));
        }
        let base = self.endpoint.as_deref().unwrap_or(US_ENDPOINT);
        let url = |path: &str| join_url("endpoint", base, path);
        Ok(ValidConfig {
            api_key: self.api_key.clone(),
            bulk_update_url: url("/api/users/bulkUpdate")?,
            track_bulk_url: url("/api/events/trackBulk")?,
            by_user_id_url: url("/api/users/byUserId")?,
            channels_url: url("/api/channels")?,
        })
    }
}

impl ValidConfig {
    /// `DELETE` URL of the user with this `userId` (percent-encoded as one path segment).
    pub(crate) fn delete_url(&self, user_id: &str) -> Result<Url, DestinationError> {
        let mut url = self.by_user_id_url.clone();
        url.path_segments_mut()
            .map_err(|()| invalid_config("endpoint", "must be a URL with a path"))?
            .push(user_id);
        Ok(url)
    }
}
