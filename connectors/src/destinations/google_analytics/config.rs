//! Google Analytics 4 configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url as join;
use crate::destinations::invalid_config as invalid;

/// Google Analytics' Measurement Protocol host.
pub(crate) const DEFAULT_ENDPOINT: &str = "https://www.google-analytics.com";

/// The configuration of a Google Analytics 4 destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GoogleAnalyticsConfig {
    /// The web stream's measurement id (`G-XXXXXXX`).
    pub(crate) measurement_id: String,
    /// A Measurement Protocol API secret of that stream. Secret.
    pub(crate) api_secret: Secret,
    /// Base URL of the Measurement Protocol: `https://www.google-analytics.com` (default) or
    /// `https://region1.google-analytics.com` (collection in the EU).
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "measurement_id",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Measurement ID of the web data stream (G-..., Admin > Data streams > the stream); not the stream id.",
    },
    ConfigField {
        name: "api_secret",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Measurement Protocol API secret of that stream (Admin > Data streams > the stream > Measurement Protocol API secrets).",
    },
    ConfigField {
        name: "endpoint",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Base URL of the Measurement Protocol: https://www.google-analytics.com (default) or https://region1.google-analytics.com to collect in the EU.",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The measurement id.
    pub(crate) measurement_id: String,
    /// The API secret.
    pub(crate) api_secret: Secret,
    /// `<endpoint>/mp/collect` (the query is added per request: it carries the secret).
    pub(crate) collect_url: Url,
    /// `<endpoint>/debug/mp/collect`, the validation server.
    pub(crate) debug_url: Url,
}

impl GoogleAnalyticsConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let id = self.measurement_id.trim();
        if !id.starts_with("G-")
            || id.len() < 3
            || !id[2..].chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "measurement_id",
                "a GA4 measurement id looks like G-XXXXXXXXXX (Admin > Data streams > the web stream); the numeric stream id and UA- ids are not measurement ids",
            ));
        }
        let secret = self.api_secret.expose();
        if secret.is_empty() || !secret.chars().all(|c| c.is_ascii_graphic()) {
            return Err(invalid(
                "api_secret",
                "must be a Measurement Protocol API secret (no spaces); create one under the stream's Measurement Protocol API secrets",
            ));
        }
        let endpoint = self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        Ok(ValidConfig {
            measurement_id: id.to_string(),
            api_secret: self.api_secret.clone(),
            collect_url: join("endpoint", endpoint, "/mp/collect")?,
            debug_url: join("endpoint", endpoint, "/debug/mp/collect")?,
        })
    }
}
