//! Braze configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url;

/// The configuration of a Braze destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BrazeConfig {
    /// A REST API key with the `users.track` and `users.delete` permissions (Bearer token).
    /// Secret.
    pub(crate) api_key: Secret,
    /// The workspace's REST endpoint, e.g. `https://rest.iad-01.braze.com` or
    /// `https://rest.fra-01.braze.eu`.
    pub(crate) rest_endpoint: String,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "api_key",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "REST API key (Settings > APIs and Identifiers) with the users.track and users.delete permissions.",
    },
    ConfigField {
        name: "rest_endpoint",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The workspace's REST endpoint, e.g. https://rest.iad-01.braze.com (US-01) or https://rest.fra-01.braze.eu (EU-01).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The REST API key.
    pub(crate) api_key: Secret,
    /// `<rest_endpoint>/users/track`.
    pub(crate) track_url: Url,
    /// `<rest_endpoint>/users/delete`.
    pub(crate) delete_url: Url,
}

impl BrazeConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let key = self.api_key.expose();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(DestinationError::InvalidConfig {
                field: "api_key".to_string(),
                message: "a Braze REST API key is letters, digits and '-' (a UUID); copy it again from Settings > APIs and Identifiers".to_string(),
            });
        }
        Ok(ValidConfig {
            api_key: self.api_key.clone(),
            track_url: join_url("rest_endpoint", &self.rest_endpoint, "/users/track")?,
            delete_url: join_url("rest_endpoint", &self.rest_endpoint, "/users/delete")?,
        })
    }
}
