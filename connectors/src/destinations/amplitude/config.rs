//! Amplitude configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url as join;
use crate::destinations::invalid_config as invalid;

/// Amplitude's default (US) event ingestion host.
pub(crate) const DEFAULT_API_HOST: &str = "https://api2.amplitude.com";

/// The configuration of an Amplitude destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AmplitudeConfig {
    /// The project's API key, sent as `api_key` in every request body. Secret.
    pub(crate) api_key: Secret,
    /// Ingestion host: `https://api2.amplitude.com` (default) or `https://api.eu.amplitude.com`
    /// for EU data residency.
    #[serde(default)]
    pub(crate) api_host: Option<String>,
    /// The shortest `user_id` / `device_id` Amplitude accepts in events (its `options.
    /// min_id_length`); Amplitude's default is 5.
    #[serde(default)]
    pub(crate) min_id_length: Option<u32>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "api_key",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "The project's API key (Organization settings > Projects > the project > General).",
    },
    ConfigField {
        name: "api_host",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Ingestion host: https://api2.amplitude.com (default) or https://api.eu.amplitude.com (EU data residency).",
    },
    ConfigField {
        name: "min_id_length",
        field_type: FieldType::Integer,
        required: false,
        secret: false,
        description: "Shortest user_id or device_id accepted in events (sent as options.min_id_length; Amplitude's default is 5). Set it when your ids are shorter, e.g. numeric ids.",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The API key.
    pub(crate) api_key: Secret,
    /// `<host>/2/httpapi`.
    pub(crate) events_url: Url,
    /// `<host>/identify`.
    pub(crate) identify_url: Url,
    /// `options.min_id_length`, when set.
    pub(crate) min_id_length: Option<u32>,
}

impl AmplitudeConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let key = self.api_key.expose();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "api_key",
                "an Amplitude API key is letters and digits (32 hex digits); copy it from the project's settings",
            ));
        }
        if self.min_id_length == Some(0) {
            return Err(invalid(
                "min_id_length",
                "must be at least 1 (Amplitude needs a user_id or device_id)",
            ));
        }
        let host = self.api_host.as_deref().unwrap_or(DEFAULT_API_HOST);
        Ok(ValidConfig {
            api_key: self.api_key.clone(),
            events_url: join("api_host", host, "/2/httpapi")?,
            identify_url: join("api_host", host, "/identify")?,
            min_id_length: self.min_id_length,
        })
    }
}
