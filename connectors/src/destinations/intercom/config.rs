//! Intercom configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use reqwest::header::HeaderValue;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::invalid_config;

/// The US-hosted workspaces' API, used when `base_url` is not set.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.intercom.io";

/// The configuration of an Intercom destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IntercomConfig {
    /// The access token of the workspace's private app (Developer Hub > your app >
    /// Authentication), sent as `Authorization: Bearer`. Secret.
    pub(crate) access_token: Secret,
    /// The API's base URL: `https://api.intercom.io` (default, US), `https://api.eu.intercom.io`
    /// (Europe) or `https://api.au.intercom.io` (Australia); tests point it at an emulator.
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
        description: "Access token of the workspace's Intercom app (Developer Hub > your app > Authentication), with the read and write users and companies permission.",
    },
    ConfigField {
        name: "base_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The API's base URL: https://api.intercom.io (default, US-hosted workspaces), https://api.eu.intercom.io (EU) or https://api.au.intercom.io (Australia).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The base URL, without a trailing slash in its path.
    pub(crate) base_url: Url,
    /// `Bearer <token>`, marked sensitive.
    pub(crate) authorization: HeaderValue,
}

impl IntercomConfig {
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
        {
            return Err(invalid_config(
                "base_url",
                format!("must be an http(s) URL with a host, e.g. {DEFAULT_BASE_URL}"),
            ));
        }
        if base_url.query().is_some() {
            return Err(invalid_config("base_url", "must not have a query string"));
        }
        let path = base_url.path().trim_end_matches('/').to_string();
        base_url.set_path(&path);
        let token = self.access_token.expose().trim();
        if token.is_empty() {
            return Err(invalid_config(
                "access_token",
                "must not be empty; copy the access token from the app's Authentication page in the Developer Hub",
            ));
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                invalid_config(
                    "access_token",
                    "contains characters an HTTP header cannot carry; copy the token again",
                )
            })?;
        authorization.set_sensitive(true);
        Ok(ValidConfig {
            base_url,
            authorization,
        })
    }
}
