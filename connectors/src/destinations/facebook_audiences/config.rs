//! Facebook Custom Audiences configuration: the typed config, its catalog field specs and
//! validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url;
use crate::destinations::invalid_config as invalid;

/// The Graph API origin.
const DEFAULT_API_URL: &str = "https://graph.facebook.com";
/// The Graph API version used when the config names none.
pub(crate) const DEFAULT_API_VERSION: &str = "v25.0";

/// The configuration of a Facebook Custom Audiences destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FacebookAudiencesConfig {
    /// A (system user) access token with `ads_management` on the audience's ad account.
    /// Secret.
    pub(crate) access_token: Secret,
    /// The Customer File Custom Audience's id (digits).
    pub(crate) audience_id: String,
    /// The Graph API version, e.g. `v25.0` (default).
    #[serde(default)]
    pub(crate) api_version: Option<String>,
    /// Country calling code added to phone numbers written without one, e.g. `1` or `44`.
    #[serde(default)]
    pub(crate) default_phone_country_code: Option<String>,
    /// The API origin; default `https://graph.facebook.com` (tests point it at an emulator).
    #[serde(default)]
    pub(crate) api_url: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "access_token",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "System user access token with the ads_management permission on the audience's ad account.",
    },
    ConfigField {
        name: "audience_id",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The id of the Customer File Custom Audience (Ads Manager > Audiences).",
    },
    ConfigField {
        name: "api_version",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Graph API version, e.g. 'v25.0' (the default).",
    },
    ConfigField {
        name: "default_phone_country_code",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Country calling code put in front of phone numbers written without one (no '+' or '00'), e.g. '1' or '44'.",
    },
    ConfigField {
        name: "api_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The Graph API origin (default https://graph.facebook.com).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The token.
    pub(crate) access_token: Secret,
    /// `<api_url>/<version>/<audience_id>/users`.
    pub(crate) users_url: Url,
    /// Digits of the default country calling code.
    pub(crate) default_phone_country_code: Option<String>,
}

impl FacebookAudiencesConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let token = self.access_token.expose();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "access_token",
                "an access token is one word without spaces; copy it again from Business Settings > System users",
            ));
        }
        let id = self.audience_id.trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "audience_id",
                format!("'{id}' is not an audience id: digits only, e.g. 23851234567890123"),
            ));
        }
        let version = self.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        let valid_version = version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(major, minor)| {
                !major.is_empty()
                    && !minor.is_empty()
                    && major.bytes().all(|b| b.is_ascii_digit())
                    && minor.bytes().all(|b| b.is_ascii_digit())
            });
        if !valid_version {
            return Err(invalid(
                "api_version",
                format!("'{version}' is not a Graph API version such as {DEFAULT_API_VERSION}"),
            ));
        }
        let code = match &self.default_phone_country_code {
            None => None,
            Some(code) => {
                let digits = code.trim().trim_start_matches('+');
                if digits.is_empty()
                    || digits.len() > 3
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(invalid(
                        "default_phone_country_code",
                        format!(
                            "'{code}' is not a country calling code: 1 to 3 digits, e.g. 1 or 44"
                        ),
                    ));
                }
                Some(digits.to_string())
            }
        };
        let origin = self.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
        let users_url = join_url("api_url", origin, &format!("/{version}/{id}/users"))?;
        Ok(ValidConfig {
            access_token: self.access_token.clone(),
            users_url,
            default_phone_country_code: code,
        })
    }
}
