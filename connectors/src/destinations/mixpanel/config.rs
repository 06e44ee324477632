//! Mixpanel configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url as join;

/// Mixpanel's US ingestion host.
pub(crate) const DEFAULT_API_HOST: &str = "https://api.mixpanel.com";

/// The configuration of a Mixpanel destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MixpanelConfig {
    /// The project token: `$token` of every profile update, and the `/import` credential when
    /// no service account is configured. Secret.
    pub(crate) project_token: Secret,
    /// The project id, required with a service account (`/import?project_id=`).
    #[serde(default)]
    pub(crate) project_id: Option<String>,
    /// Service account user name (Owner or Admin), for `/import`.
    #[serde(default)]
    pub(crate) service_account_username: Option<String>,
    /// Service account secret. Secret.
    #[serde(default)]
    pub(crate) service_account_secret: Option<Secret>,
    /// Ingestion host: `https://api.mixpanel.com` (default), `https://api-eu.mixpanel.com` or
    /// `https://api-in.mixpanel.com` by the project's data residency.
    #[serde(default)]
    pub(crate) api_host: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "project_token",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Project token (Project Settings > Access Keys): sent with every profile update, and the /import credential when no service account is set.",
    },
    ConfigField {
        name: "project_id",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Project id (Project Settings > Overview); required with a service account.",
    },
    ConfigField {
        name: "service_account_username",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "User name of an Owner or Admin service account, the recommended /import credential.",
    },
    ConfigField {
        name: "service_account_secret",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "Secret of that service account.",
    },
    ConfigField {
        name: "api_host",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Ingestion host by data residency: https://api.mixpanel.com (default, US), https://api-eu.mixpanel.com (EU) or https://api-in.mixpanel.com (India).",
    },
];

/// How `/import` authenticates.
#[derive(Debug, Clone)]
pub(crate) enum ImportAuth {
    /// HTTP Basic with the service account, and `project_id` in the query.
    ServiceAccount {
        /// User name.
        username: String,
        /// Secret.
        secret: Secret,
        /// Project id.
        project_id: String,
    },
    /// HTTP Basic with the project token as user name and an empty password.
    ProjectToken,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The project token.
    pub(crate) token: Secret,
    /// `/import` credentials.
    pub(crate) import_auth: ImportAuth,
    /// `<host>/import` with `strict=1` (and `project_id` with a service account).
    pub(crate) import_url: Url,
    /// `<host>/engage` with `verbose=1`.
    pub(crate) engage_url: Url,
}

fn invalid(field: &str, message: impl Into<String>) -> DestinationError {
    DestinationError::InvalidConfig {
        field: field.to_string(),
        message: message.into(),
    }
}

impl MixpanelConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let token = self.project_token.expose();
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "project_token",
                "a project token is letters and digits; copy it from Project Settings > Access Keys",
            ));
        }
        let import_auth = match (&self.service_account_username, &self.service_account_secret) {
            (None, None) => ImportAuth::ProjectToken,
            (Some(username), Some(secret)) => {
                if username.is_empty() || secret.expose().is_empty() {
                    return Err(invalid(
                        "service_account_username",
                        "user name and secret must not be empty",
                    ));
                }
                let project_id = self.project_id.clone().unwrap_or_default();
                if project_id.is_empty() || !project_id.chars().all(|c| c.is_ascii_digit()) {
                    return Err(invalid(
                        "project_id",
                        "a service account needs the project id (digits, Project Settings > Overview)",
                    ));
                }
                ImportAuth::ServiceAccount {
                    username: username.clone(),
                    secret: secret.clone(),
                    project_id,
                }
            }
            (Some(_), None) => {
                return Err(invalid(
                    "service_account_secret",
                    "set it too, or remove service_account_username to use the project token",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "service_account_username",
                    "set it too, or remove service_account_secret to use the project token",
                ));
            }
        };
        let host = self.api_host.as_deref().unwrap_or(DEFAULT_API_HOST);
        let mut import_url = join("api_host", host, "/import")?;
        import_url.query_pairs_mut().append_pair("strict", "1");
        if let ImportAuth::ServiceAccount { project_id, .. } = &import_auth {
            import_url
                .query_pairs_mut()
                .append_pair("project_id", project_id);
        }
        let mut engage_url = join("api_host", host, "/engage")?;
        engage_url.query_pairs_mut().append_pair("verbose", "1");
        Ok(ValidConfig {
            token: self.project_token.clone(),
            import_auth,
            import_url,
            engage_url,
        })
    }
}
