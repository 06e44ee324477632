//! Attio configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use reqwest::header::HeaderValue;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::invalid_config;

/// The API's base URL when `base_url` is not set.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.attio.com";

/// The configuration of an Attio destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttioConfig {
    /// An access token of the workspace (Workspace settings > Developers), sent as
    /// `Authorization: Bearer`. Secret.
    pub(crate) access_token: Secret,
    /// The object records are written to, by slug: `people`, `companies`, or a custom
    /// object's slug.
    pub(crate) object: String,
    /// The unique attribute records are matched by, by slug (e.g. `email_addresses` for
    /// people, `domains` for companies, or a custom unique attribute).
    pub(crate) matching_attribute: String,
    /// The API's base URL; default `https://api.attio.com` (tests point it at an emulator).
    #[serde(default)]
    pub(crate) base_url: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "access_token",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Access token of an Attio integration (Workspace settings > Developers) with the record read-write and object configuration read scopes.",
    },
    ConfigField {
        name: "object",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Slug of the object records are written to: 'people', 'companies', or a custom object's slug.",
    },
    ConfigField {
        name: "matching_attribute",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Slug of the unique attribute records are matched by, e.g. 'email_addresses' (people), 'domains' (companies) or a custom attribute with unique values.",
    },
    ConfigField {
        name: "base_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The API's base URL (default https://api.attio.com).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The base URL, without a trailing slash in its path.
    pub(crate) base_url: Url,
    /// `Bearer <token>`, marked sensitive.
    pub(crate) authorization: HeaderValue,
    /// The object's slug.
    pub(crate) object: String,
    /// The matching attribute's slug.
    pub(crate) matching_attribute: String,
}

/// A slug: lower-case letters, digits and `_` (Attio's API slugs).
fn slug(field: &str, value: &str, example: &str) -> Result<String, DestinationError> {
    let value = value.trim();
    let valid = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        Ok(value.to_string())
    } else {
        Err(invalid_config(
            field,
            format!(
                "'{value}' is not a slug (lower-case letters, digits, '_'), e.g. '{example}'; use the API slug, not the display name"
            ),
        ))
    }
}

impl AttioConfig {
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
        let token = self.access_token.expose().trim();
        if token.is_empty() {
            return Err(invalid_config(
                "access_token",
                "must not be empty; create an access token in Workspace settings > Developers",
            ));
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| invalid_config("access_token", "cannot be sent in an HTTP header"))?;
        authorization.set_sensitive(true);
        Ok(ValidConfig {
            base_url,
            authorization,
            object: slug("object", &self.object, "people")?,
            matching_attribute: slug(
                "matching_attribute",
                &self.matching_attribute,
                "email_addresses",
            )?,
        })
    }
}
