//! Pipedrive configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use reqwest::header::HeaderValue;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::invalid_config;

/// The API's base URL when `base_url` is not set.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.pipedrive.com";

/// The configuration of a Pipedrive destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PipedriveConfig {
    /// A user's personal API token (Personal preferences > API), sent as `x-api-token`.
    /// Secret.
    pub(crate) api_token: Secret,
    /// The API's base URL; default `https://api.pipedrive.com` (or the company domain,
    /// `https://<company>.pipedrive.com`; tests point it at an emulator).
    #[serde(default)]
    pub(crate) base_url: Option<String>,
    /// The person field persons are matched by: `email` (default), `phone`, `name`, or the
    /// 40-character key of a custom field holding a unique id.
    #[serde(default)]
    pub(crate) person_match_field: Option<String>,
    /// The organization field organizations are matched by: `name` (default) or the key of a
    /// custom field holding a unique id.
    #[serde(default)]
    pub(crate) organization_match_field: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "api_token",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Personal API token of a Pipedrive user (Personal preferences > API).",
    },
    ConfigField {
        name: "base_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The API's base URL (default https://api.pipedrive.com; https://<company>.pipedrive.com also works).",
    },
    ConfigField {
        name: "person_match_field",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Person field that identifies a person: 'email' (default), 'phone', 'name', or the 40-character key of a custom field holding a unique id (Settings > Data fields).",
    },
    ConfigField {
        name: "organization_match_field",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Organization field that identifies an organization: 'name' (default) or the key of a custom field holding a unique id.",
    },
];

/// The field records are matched by, and how the search endpoint names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MatchField {
    /// The body key (`email`, `name`, or a custom field key).
    pub(crate) key: String,
    /// The search endpoint's `fields` value (`email`, `name`, `custom_fields`, ...).
    pub(crate) search: &'static str,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The base URL, without a trailing slash in its path.
    pub(crate) base_url: Url,
    /// The token, as the sensitive `x-api-token` header value.
    pub(crate) api_token: HeaderValue,
    /// How persons are matched.
    pub(crate) person_match: MatchField,
    /// How organizations are matched.
    pub(crate) organization_match: MatchField,
}

/// Whether `key` is a custom field's key: 40 hexadecimal characters.
fn is_custom_key(key: &str) -> bool {
    key.len() == 40 && key.chars().all(|c| c.is_ascii_hexdigit())
}

fn match_field(
    config_field: &str,
    key: &str,
    standard: &[&'static str],
) -> Result<MatchField, DestinationError> {
    if let Some(search) = standard.iter().copied().find(|s| *s == key) {
        return Ok(MatchField {
            key: key.to_string(),
            search,
        });
    }
    if is_custom_key(key) {
        return Ok(MatchField {
            key: key.to_string(),
            search: "custom_fields",
        });
    }
    Err(invalid_config(
        config_field,
        format!(
            "'{key}' is neither {} nor a custom field's 40-character key (Settings > Data fields > the field's API key)",
            standard.join(", ")
        ),
    ))
}

impl PipedriveConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let raw = self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let mut base_url = Url::parse(raw).map_err(|e| {
            invalid_config(
                "base_url",
                format!("not a valid URL ({e}); expected e.g. {DEFAULT_BASE_URL}"),
            )
        })?;
        if !matches!(base_url.scheme(), "http" | "https")
            || base_url.host_str().is_none_or(str::is_empty)
            || base_url.cannot_be_a_base()
            || base_url.query().is_some()
        {
            return Err(invalid_config(
                "base_url",
                format!("must be an http(s) URL with a host and no query, e.g. {DEFAULT_BASE_URL}"),
            ));
        }
        let path = base_url.path().trim_end_matches('/').to_string();
        base_url.set_path(&path);
        let token = self.api_token.expose().trim();
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid_config(
                "api_token",
                "a Pipedrive API token is letters and digits; copy it again from Personal preferences > API",
            ));
        }
        let mut api_token = HeaderValue::from_str(token)
            .map_err(|_| invalid_config("api_token", "cannot be sent in an HTTP header"))?;
        api_token.set_sensitive(true);
        let person_match = match_field(
            "person_match_field",
            self.person_match_field.as_deref().unwrap_or("email"),
            &["email", "phone", "name"],
        )?;
        let organization_match = match_field(
            "organization_match_field",
            self.organization_match_field.as_deref().unwrap_or("name"),
            &["name"],
        )?;
        Ok(ValidConfig {
            base_url,
            api_token,
            person_match,
            organization_match,
        })
    }
}
