//! Marketo configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::invalid_config;

/// The configuration of a Marketo destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MarketoConfig {
    /// The instance's REST API base URL (Admin > Web Services > REST API > Endpoint, without
    /// `/rest`), e.g. `https://123-ABC-456.mktorest.com`.
    pub(crate) base_url: String,
    /// The client id of a LaunchPoint custom service.
    pub(crate) client_id: String,
    /// The client secret of that service. Secret.
    pub(crate) client_secret: Secret,
    /// The lead field leads are matched by (`lookupField`); default `email`.
    #[serde(default)]
    pub(crate) lookup_field: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "base_url",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The REST API base URL (Admin > Web Services > REST API > Endpoint, without /rest), e.g. https://123-ABC-456.mktorest.com.",
    },
    ConfigField {
        name: "client_id",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Client id of a LaunchPoint custom service (Admin > LaunchPoint > View Details) whose API-only user may read and write leads.",
    },
    ConfigField {
        name: "client_secret",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Client secret of that LaunchPoint service.",
    },
    ConfigField {
        name: "lookup_field",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Lead field (REST API name) leads are matched by: 'email' (default), 'id', or a custom field marked unique/dedupe.",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The base URL, without a trailing slash in its path.
    pub(crate) base_url: Url,
    /// The client id.
    pub(crate) client_id: String,
    /// The client secret.
    pub(crate) client_secret: Secret,
    /// The lookup field.
    pub(crate) lookup_field: String,
}

impl MarketoConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let mut base_url = Url::parse(&self.base_url).map_err(|e| {
            invalid_config(
                "base_url",
                format!("not a valid URL ({e}); expected e.g. https://123-ABC-456.mktorest.com"),
            )
        })?;
        if !matches!(base_url.scheme(), "http" | "https")
            || base_url.host_str().is_none_or(str::is_empty)
            || base_url.cannot_be_a_base()
            || base_url.query().is_some()
        {
            return Err(invalid_config(
                "base_url",
                "must be an http(s) URL with a host and no query, e.g. https://123-ABC-456.mktorest.com",
            ));
        }
        let path = base_url.path().trim_end_matches('/').to_string();
        if path.ends_with("/rest") {
            return Err(invalid_config(
                "base_url",
                "give the endpoint without '/rest' (retl adds /rest/v1/... and /identity/...)",
            ));
        }
        base_url.set_path(&path);
        if self.client_id.trim().is_empty() {
            return Err(invalid_config(
                "client_id",
                "must not be empty; copy it from Admin > LaunchPoint > View Details",
            ));
        }
        if self.client_secret.expose().trim().is_empty() {
            return Err(invalid_config(
                "client_secret",
                "must not be empty; copy it from Admin > LaunchPoint > View Details",
            ));
        }
        let lookup_field = self.lookup_field.as_deref().unwrap_or("email").trim();
        if lookup_field.is_empty()
            || !lookup_field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(invalid_config(
                "lookup_field",
                format!("'{lookup_field}' is not a lead field's REST API name, e.g. 'email'"),
            ));
        }
        Ok(ValidConfig {
            base_url,
            client_id: self.client_id.trim().to_string(),
            client_secret: self.client_secret.clone(),
            lookup_field: lookup_field.to_string(),
        })
    }
}
