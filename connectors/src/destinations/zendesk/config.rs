//! Zendesk configuration: the typed config, its catalog field specs and validation.

use base64::Engine as _;
use reqwest::Url;
use reqwest::header::HeaderValue;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::invalid_config;

/// The configuration of a Zendesk destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ZendeskConfig {
    /// The account's subdomain: `acme` for `https://acme.zendesk.com`.
    #[serde(default)]
    pub(crate) subdomain: Option<String>,
    /// The email address of the agent or admin the API token acts for.
    pub(crate) email: String,
    /// An API token (Admin Center > Apps and integrations > Zendesk API). Secret.
    pub(crate) api_token: Secret,
    /// The API's base URL instead of the subdomain's (tests point it at an emulator).
    #[serde(default)]
    pub(crate) base_url: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "subdomain",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The account's subdomain: 'acme' for https://acme.zendesk.com (required unless base_url is set).",
    },
    ConfigField {
        name: "email",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Email address of the admin the API token acts for (token access: '<email>/token').",
    },
    ConfigField {
        name: "api_token",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Zendesk API token (Admin Center > Apps and integrations > APIs > Zendesk API), with token access enabled.",
    },
    ConfigField {
        name: "base_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The API's base URL instead of https://<subdomain>.zendesk.com (e.g. a host-mapped domain).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The base URL, without a trailing slash in its path.
    pub(crate) base_url: Url,
    /// `Basic base64(<email>/token:<api_token>)`, marked sensitive.
    pub(crate) authorization: HeaderValue,
}

impl ZendeskConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let raw = match (&self.base_url, &self.subdomain) {
            (Some(url), _) => url.clone(),
            (None, Some(sub)) => {
                let sub = sub.trim();
                let valid =
                    !sub.is_empty() && sub.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                if !valid {
                    return Err(invalid_config(
                        "subdomain",
                        format!(
                            "'{sub}' is not a subdomain: give only the first label, e.g. 'acme' for https://acme.zendesk.com"
                        ),
                    ));
                }
                format!("https://{sub}.zendesk.com")
            }
            (None, None) => {
                return Err(invalid_config(
                    "subdomain",
                    "set the account's subdomain ('acme' for https://acme.zendesk.com) or base_url",
                ));
            }
        };
        let mut base_url = Url::parse(&raw).map_err(|e| {
            invalid_config(
                "base_url",
                format!("not a valid URL ({e}); expected e.g. https://acme.zendesk.com"),
            )
        })?;
        if !matches!(base_url.scheme(), "http" | "https")
            || base_url.host_str().is_none_or(str::is_empty)
            || base_url.cannot_be_a_base()
            || base_url.query().is_some()
        {
            return Err(invalid_config(
                "base_url",
                "must be an http(s) URL with a host and no query, e.g. https://acme.zendesk.com",
            ));
        }
        let path = base_url.path().trim_end_matches('/').to_string();
        base_url.set_path(&path);
        let email = self.email.trim();
        if !email.contains('@') || email.contains(':') {
            return Err(invalid_config(
                "email",
                "must be the email address of the admin the API token acts for, e.g. admin@acme.com",
            ));
        }
        let token = self.api_token.expose().trim();
        if token.is_empty() {
            return Err(invalid_config(
                "api_token",
                "must not be empty; create a token in Admin Center > Apps and integrations > APIs > Zendesk API",
            ));
        }
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{email}/token:{token}"));
        let mut authorization = HeaderValue::from_str(&format!("Basic {encoded}"))
            .map_err(|_| invalid_config("api_token", "cannot be sent in an HTTP header"))?;
        authorization.set_sensitive(true);
        Ok(ValidConfig {
            base_url,
            authorization,
        })
    }
}
