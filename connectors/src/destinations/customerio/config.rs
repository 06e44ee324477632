//! Customer.io configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url as join;
use crate::destinations::invalid_config as invalid;

/// The Track API of US workspaces.
pub(crate) const DEFAULT_TRACK_HOST: &str = "https://track.customer.io";

/// The configuration of a Customer.io destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomerioConfig {
    /// The workspace's Track API site id (HTTP Basic user name).
    pub(crate) site_id: String,
    /// The Track API key (HTTP Basic password). Secret.
    pub(crate) api_key: Secret,
    /// Track API host: `https://track.customer.io` (default, US) or
    /// `https://track-eu.customer.io` (EU).
    #[serde(default)]
    pub(crate) track_host: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "site_id",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Site ID of the workspace's Track API credentials (Workspace settings > API and webhook credentials).",
    },
    ConfigField {
        name: "api_key",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Track API key paired with that site ID.",
    },
    ConfigField {
        name: "track_host",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Track API host: https://track.customer.io (default, US region) or https://track-eu.customer.io (EU region).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The site id.
    pub(crate) site_id: String,
    /// The API key.
    pub(crate) api_key: Secret,
    /// `<host>/api/v2/batch`.
    pub(crate) batch_url: Url,
    /// `<host>/api/v1/accounts/region`, the credential check of `test()`.
    pub(crate) region_url: Url,
}

impl CustomerioConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let site = self.site_id.trim();
        if site.is_empty() || !site.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "site_id",
                "a Track API site ID is letters and digits; copy it from Workspace settings > API and webhook credentials",
            ));
        }
        let key = self.api_key.expose();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "api_key",
                "a Track API key is letters and digits; copy it from the same credentials as the site ID",
            ));
        }
        let host = self.track_host.as_deref().unwrap_or(DEFAULT_TRACK_HOST);
        Ok(ValidConfig {
            site_id: site.to_string(),
            api_key: self.api_key.clone(),
            batch_url: join("track_host", host, "/api/v2/batch")?,
            region_url: join("track_host", host, "/api/v1/accounts/region")?,
        })
    }
}
