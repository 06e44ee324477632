//! PostHog configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url as join;
use crate::destinations::invalid_config as invalid;

/// PostHog US Cloud's ingestion host (capture and flags).
pub(crate) const DEFAULT_HOST: &str = "https://us.i.posthog.com";

/// The configuration of a PostHog destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PosthogConfig {
    /// The project API key (`phc_...`), sent as `api_key` in every capture body. Secret.
    pub(crate) project_api_key: Secret,
    /// Ingestion host: `https://us.i.posthog.com` (default), `https://eu.i.posthog.com`, or a
    /// self-hosted instance's URL.
    #[serde(default)]
    pub(crate) host: Option<String>,
    /// A personal API key (`phx_...`) with the `person:write` scope, needed only by the
    /// `delete_person` action (persons API). Secret.
    #[serde(default)]
    pub(crate) personal_api_key: Option<Secret>,
    /// The project id (digits), needed with `personal_api_key`.
    #[serde(default)]
    pub(crate) project_id: Option<String>,
    /// Host of the private API: by default `https://us.posthog.com` / `https://eu.posthog.com`
    /// for the cloud ingestion hosts, else `host`.
    #[serde(default)]
    pub(crate) app_host: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "project_api_key",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "Project API key (phc_..., Project settings > Project API key): the write-only key of the capture API.",
    },
    ConfigField {
        name: "host",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Ingestion host: https://us.i.posthog.com (default, US Cloud), https://eu.i.posthog.com (EU Cloud) or a self-hosted instance's URL.",
    },
    ConfigField {
        name: "personal_api_key",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "Personal API key (phx_...) with the person:write scope; only the delete_person action needs it.",
    },
    ConfigField {
        name: "project_id",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Project id (digits, Project settings); required with personal_api_key.",
    },
    ConfigField {
        name: "app_host",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Host of PostHog's private API (persons): https://us.posthog.com or https://eu.posthog.com for the cloud ingestion hosts by default, else the host.",
    },
];

/// What the persons API needs (the `delete_person` action).
#[derive(Debug, Clone)]
pub(crate) struct PersonsApi {
    /// The personal API key (`Authorization: Bearer`).
    pub(crate) personal_api_key: Secret,
    /// `<app_host>/api/projects/<project_id>/persons/bulk_delete/`.
    pub(crate) bulk_delete_url: Url,
    /// `<app_host>/api/projects/<project_id>/persons/?limit=1` (the key check of `test()`).
    pub(crate) persons_url: Url,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The project API key.
    pub(crate) project_api_key: Secret,
    /// `<host>/batch/`.
    pub(crate) batch_url: Url,
    /// `<host>/flags?v=2` (the key check of `test()`).
    pub(crate) flags_url: Url,
    /// The persons API, when a personal API key is configured.
    pub(crate) persons: Option<PersonsApi>,
}

/// Whether `key` looks like an API key: printable ASCII without spaces.
fn plausible_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_graphic())
}

impl PosthogConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let key = self.project_api_key.expose();
        if !plausible_key(key) {
            return Err(invalid(
                "project_api_key",
                "must be the project API key (phc_..., no spaces); copy it from Project settings",
            ));
        }
        if key.starts_with("phx_") {
            return Err(invalid(
                "project_api_key",
                "this is a personal API key (phx_...), which the capture API refuses; use the project API key (phc_...) here, and put the personal key in personal_api_key",
            ));
        }
        let host = self.host.as_deref().unwrap_or(DEFAULT_HOST);
        let batch_url = join("host", host, "/batch/")?;
        let mut flags_url = join("host", host, "/flags")?;
        flags_url.query_pairs_mut().append_pair("v", "2");
        let persons = match (&self.personal_api_key, &self.project_id) {
            (None, None) => None,
            (Some(personal), Some(project_id)) => {
                if !plausible_key(personal.expose()) {
                    return Err(invalid(
                        "personal_api_key",
                        "must be a personal API key (phx_..., no spaces)",
                    ));
                }
                if project_id.is_empty() || !project_id.chars().all(|c| c.is_ascii_digit()) {
                    return Err(invalid(
                        "project_id",
                        "must be the project's numeric id (Project settings > Project ID)",
                    ));
                }
                let app_host = self.app_host.clone().unwrap_or_else(|| app_host_of(host));
                let base = format!("/api/projects/{project_id}/persons");
                let bulk_delete_url = join("app_host", &app_host, &format!("{base}/bulk_delete/"))?;
                let mut persons_url = join("app_host", &app_host, &format!("{base}/"))?;
                persons_url.query_pairs_mut().append_pair("limit", "1");
                Some(PersonsApi {
                    personal_api_key: personal.clone(),
                    bulk_delete_url,
                    persons_url,
                })
            }
            (Some(_), None) => {
                return Err(invalid(
                    "project_id",
                    "set it with personal_api_key (the persons API is per project)",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "personal_api_key",
                    "set it with project_id, or remove project_id (only delete_person needs them)",
                ));
            }
        };
        Ok(ValidConfig {
            project_api_key: self.project_api_key.clone(),
            batch_url,
            flags_url,
            persons,
        })
    }
}

/// The private API host of an ingestion host: PostHog Cloud serves them apart
/// (`us.i.posthog.com` / `us.posthog.com`); a self-hosted instance serves both.
pub(crate) fn app_host_of(host: &str) -> String {
    let trimmed = host.trim_end_matches('/');
    match trimmed {
        "https://us.i.posthog.com" => "https://us.posthog.com".to_string(),
        "https://eu.i.posthog.com" => "https://eu.posthog.com".to_string(),
        other => other.to_string(),
    }
}
