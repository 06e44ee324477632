//! SendGrid configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url;
use crate::destinations::invalid_config;

/// SendGrid's global API host, the default endpoint.
pub(crate) const DEFAULT_ENDPOINT: &str = "https://api.sendgrid.com";

/// The configuration of a SendGrid destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendgridConfig {
    /// An API key (`SG.…`) with the Marketing `marketing.contacts` permissions. Secret.
    pub(crate) api_key: Secret,
    /// The id of a Marketing Campaigns list every upserted contact is added to; none when
    /// unset.
    #[serde(default)]
    pub(crate) list_id: Option<String>,
    /// The API host: `https://api.sendgrid.com` (the default) or `https://api.eu.sendgrid.com`
    /// for an EU regional subuser.
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "api_key",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "API key (SG...., Settings > API Keys) with Marketing contacts read, create, update and delete access.",
    },
    ConfigField {
        name: "list_id",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Id (a UUID) of a Marketing Campaigns list every upserted contact is added to (optional).",
    },
    ConfigField {
        name: "endpoint",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "API host: https://api.sendgrid.com (the default) or https://api.eu.sendgrid.com (EU regional subusers).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The API key.
    pub(crate) api_key: Secret,
    /// The list upserted contacts join.
    pub(crate) list_id: Option<String>,
    /// `<endpoint>/v3/marketing/contacts` (upsert with `PUT`, delete with `DELETE ?ids=`).
    pub(crate) contacts_url: Url,
    /// `<endpoint>/v3/marketing/contacts/search/emails`.
    pub(crate) search_url: Url,
    /// `<endpoint>/v3/scopes` (the read of `test()`).
    pub(crate) scopes_url: Url,
}

impl SendgridConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let key = self.api_key.expose();
        if !key.starts_with("SG.")
            || key.len() < 4
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(invalid_config(
                "api_key",
                "a SendGrid API key starts with 'SG.' followed by letters, digits, '_', '-' and '.'; copy it again (it is shown once, at creation)",
            ));
        }
        if let Some(list) = &self.list_id
            && (list.is_empty() || !list.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        {
            return Err(invalid_config(
                "list_id",
                "a SendGrid list id is a UUID (e.g. ca7a3796-e8a8-4029-9ccb-df8937940562); copy it from the list's URL",
            ));
        }
        let base = self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        let url = |path: &str| join_url("endpoint", base, path);
        Ok(ValidConfig {
            api_key: self.api_key.clone(),
            list_id: self.list_id.clone(),
            contacts_url: url("/v3/marketing/contacts")?,
            search_url: url("/v3/marketing/contacts/search/emails")?,
            scopes_url: url("/v3/scopes")?,
        })
    }
}
