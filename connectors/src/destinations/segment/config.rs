//! Segment configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url as join;

/// Segment's HTTP Tracking API.
pub(crate) const DEFAULT_ENDPOINT: &str = "https://api.segment.io";
/// Segment's CDN, which serves a source's settings by write key.
pub(crate) const DEFAULT_SETTINGS_ENDPOINT: &str = "https://cdn.segment.com";

/// The configuration of a Segment destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SegmentConfig {
    /// The write key of the Segment source the records are sent to (HTTP Basic user name,
    /// empty password). Secret.
    pub(crate) write_key: Secret,
    /// Base URL of the Tracking API; default `https://api.segment.io` (EU workspaces:
    /// `https://events.eu1.segmentapis.com`), or any Segment-compatible collector.
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
    /// Base URL serving `/v1/projects/<write key>/settings`, used by `test()` to check the
    /// write key; default `https://cdn.segment.com` when `endpoint` is Segment's own, else no
    /// write key check.
    #[serde(default)]
    pub(crate) settings_endpoint: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "write_key",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Write key of the Segment source to send to (Connections > Sources > the HTTP API source > Settings > API Keys).",
    },
    ConfigField {
        name: "endpoint",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Base URL of the Tracking API (default https://api.segment.io; EU workspaces use https://events.eu1.segmentapis.com), or of any Segment-compatible collector.",
    },
    ConfigField {
        name: "settings_endpoint",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Base URL serving /v1/projects/<write key>/settings, which TestDestination uses to check the write key (default https://cdn.segment.com when endpoint is Segment's own; otherwise the key is not checked).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The write key.
    pub(crate) write_key: Secret,
    /// `<endpoint>/v1/batch`.
    pub(crate) batch_url: Url,
    /// The settings endpoint (base URL), when the key can be checked; the settings URL
    /// (which carries the key) is built only when used, so that it is never printed.
    pub(crate) settings_endpoint: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> DestinationError {
    DestinationError::InvalidConfig {
        field: field.to_string(),
        message: message.into(),
    }
}

impl SegmentConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let key = self.write_key.expose();
        if key.trim().is_empty() {
            return Err(invalid("write_key", "must not be empty"));
        }
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "write_key",
                "a Segment write key is letters and digits only; copy it again from the source's settings",
            ));
        }
        let endpoint = self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        let batch_url = join("endpoint", endpoint, "/v1/batch")?;
        let settings = match (&self.settings_endpoint, &self.endpoint) {
            (Some(settings), _) => Some(settings.as_str()),
            (None, None) => Some(DEFAULT_SETTINGS_ENDPOINT),
            (None, Some(endpoint)) if endpoint.trim_end_matches('/') == DEFAULT_ENDPOINT => {
                Some(DEFAULT_SETTINGS_ENDPOINT)
            }
            (None, Some(_)) => None,
        };
        if let Some(base) = settings {
            join("settings_endpoint", base, "/v1/projects")?;
        }
        Ok(ValidConfig {
            write_key: self.write_key.clone(),
            batch_url,
            settings_endpoint: settings.map(str::to_string),
        })
    }
}
