//! Salesforce configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;

use crate::destinations::invalid_config as invalid;
use serde::Deserialize;

use super::auth::{self, Flow};

/// The token endpoint's host when `login_url` is not set.
pub(crate) const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
/// The REST API version when `api_version` is not set.
pub(crate) const DEFAULT_API_VERSION: &str = "62.0";

/// The configuration of a Salesforce destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SalesforceConfig {
    /// Where tokens are requested: `https://login.salesforce.com`, `https://test.salesforce.com`
    /// or the org's My Domain URL.
    #[serde(default)]
    pub(crate) login_url: Option<String>,
    /// The org's instance URL; default: the `instance_url` of the token answer.
    #[serde(default)]
    pub(crate) instance_url: Option<String>,
    /// The connected app's consumer key.
    pub(crate) client_id: String,
    /// The connected app's consumer secret (client credentials flow). Secret.
    #[serde(default)]
    pub(crate) client_secret: Option<Secret>,
    /// The user the JWT bearer flow acts as.
    #[serde(default)]
    pub(crate) username: Option<String>,
    /// The PEM RSA private key of the connected app's certificate (JWT bearer flow). Secret.
    #[serde(default)]
    pub(crate) private_key: Option<Secret>,
    /// The REST API version, e.g. `62.0`.
    #[serde(default)]
    pub(crate) api_version: Option<String>,
    /// The sObject records are written to, e.g. `Contact`.
    pub(crate) object: String,
    /// The object's external id field records are matched by, e.g. `Retl_Id__c`.
    pub(crate) external_id_field: String,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "login_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Token endpoint host (default https://login.salesforce.com; https://test.salesforce.com for sandboxes, or the org's My Domain URL, required by the client credentials flow).",
    },
    ConfigField {
        name: "instance_url",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The org's instance URL (default: the instance_url the token endpoint answers).",
    },
    ConfigField {
        name: "client_id",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The connected app's consumer key.",
    },
    ConfigField {
        name: "client_secret",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "The connected app's consumer secret, for the client credentials flow.",
    },
    ConfigField {
        name: "username",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The user the JWT bearer flow acts as (with private_key).",
    },
    ConfigField {
        name: "private_key",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "PEM RSA private key of the certificate uploaded to the connected app, for the JWT bearer flow (with username).",
    },
    ConfigField {
        name: "api_version",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "REST API version (default 62.0; sObject Collections upsert needs 46.0 or later).",
    },
    ConfigField {
        name: "object",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The sObject written, e.g. Contact, Account or My_Object__c.",
    },
    ConfigField {
        name: "external_id_field",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The object's External ID field that matches records, e.g. Retl_Id__c.",
    },
];

/// A validated configuration.
#[derive(Debug)]
pub(crate) struct ValidConfig {
    /// The token endpoint's host, no trailing slash.
    pub(crate) login_url: String,
    /// The configured instance URL, no trailing slash.
    pub(crate) instance_url: Option<String>,
    /// `vNN.N`.
    pub(crate) api_version: String,
    /// The sObject.
    pub(crate) object: String,
    /// The external id field.
    pub(crate) external_id_field: String,
}

fn url(field: &str, raw: &str) -> Result<String, DestinationError> {
    let parsed = Url::parse(raw).map_err(|e| {
        invalid(
            field,
            format!("not a valid URL ({e}); expected e.g. {DEFAULT_LOGIN_URL}"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(field, "must be an http(s) URL with a host"));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// An API name: letters, digits and `_`, starting with a letter (`Contact`, `Retl_Id__c`).
fn api_name(field: &str, name: &str) -> Result<String, DestinationError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(invalid(
            field,
            format!(
                "'{name}' is not an API name (letters, digits and '_', e.g. Contact or Retl_Id__c); use the API name, not the label"
            ),
        ));
    }
    Ok(name.to_string())
}

impl SalesforceConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<(ValidConfig, Flow), DestinationError> {
        let login_url = url(
            "login_url",
            self.login_url.as_deref().unwrap_or(DEFAULT_LOGIN_URL),
        )?;
        let instance_url = self
            .instance_url
            .as_deref()
            .map(|u| url("instance_url", u))
            .transpose()?;
        if self.client_id.trim().is_empty() {
            return Err(invalid(
                "client_id",
                "must not be empty; copy the connected app's consumer key",
            ));
        }
        let flow = match (&self.client_secret, &self.username, &self.private_key) {
            (Some(secret), None, None) => Flow::ClientCredentials {
                client_id: self.client_id.clone(),
                client_secret: secret.expose().to_string(),
            },
            (None, Some(username), Some(key)) => Flow::JwtBearer {
                client_id: self.client_id.clone(),
                username: username.clone(),
                key: Box::new(auth::parse_private_key(key.expose())?),
            },
            (None, Some(_), None) => {
                return Err(invalid(
                    "private_key",
                    "the JWT bearer flow needs the private key with username",
                ));
            }
            (None, None, Some(_)) => {
                return Err(invalid(
                    "username",
                    "the JWT bearer flow needs the username with private_key",
                ));
            }
            (None, None, None) => {
                return Err(invalid(
                    "client_secret",
                    "set client_secret (client credentials flow) or username and private_key (JWT bearer flow)",
                ));
            }
            (Some(_), _, _) => {
                return Err(invalid(
                    "client_secret",
                    "set either client_secret (client credentials flow) or username and private_key (JWT bearer flow), not both",
                ));
            }
        };
        let version = self.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        let version = version.trim_start_matches('v');
        let supported = version
            .split_once('.')
            .and_then(|(major, minor)| {
                Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
            })
            .is_some_and(|(major, _)| major >= 46);
        if !supported {
            return Err(invalid(
                "api_version",
                format!(
                    "'{version}' is not a REST API version of 46.0 or later (sObject Collections upsert needs 46.0), e.g. {DEFAULT_API_VERSION}"
                ),
            ));
        }
        let config = ValidConfig {
            login_url,
            instance_url,
            api_version: format!("v{version}"),
            object: api_name("object", &self.object)?,
            external_id_field: api_name("external_id_field", &self.external_id_field)?,
        };
        Ok((config, flow))
    }
}
