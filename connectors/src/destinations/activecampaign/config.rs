//! ActiveCampaign configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url;
use crate::destinations::invalid_config;

/// The configuration of an ActiveCampaign destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActiveCampaignConfig {
    /// The account's API URL, e.g. `https://youraccount.api-us1.com` (Settings > Developer).
    pub(crate) api_url: String,
    /// The API key (`Api-Token` header). Secret.
    pub(crate) api_key: Secret,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "api_url",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The account's API URL (Settings > Developer), e.g. https://youraccount.api-us1.com.",
    },
    ConfigField {
        name: "api_key",
        field_type: FieldType::String,
        required: true,
        secret: true,
        description: "The account's API key (Settings > Developer), sent as the Api-Token header.",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The API key.
    pub(crate) api_key: Secret,
    /// `<api_url>/api/3/contact/sync`.
    pub(crate) sync_url: Url,
    /// `<api_url>/api/3/contacts` (lookup with `?email=`, delete with `/{id}`).
    pub(crate) contacts_url: Url,
    /// `<api_url>/api/3/users/me` (the read of `test()`).
    pub(crate) me_url: Url,
}

impl ActiveCampaignConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let key = self.api_key.expose();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid_config(
                "api_key",
                "an ActiveCampaign API key is letters and digits; copy it again from Settings > Developer",
            ));
        }
        let url = |path: &str| join_url("api_url", &self.api_url, path);
        Ok(ValidConfig {
            api_key: self.api_key.clone(),
            sync_url: url("/api/3/contact/sync")?,
            contacts_url: url("/api/3/contacts")?,
            me_url: url("/api/3/users/me")?,
        })
    }
}

impl ValidConfig {
    /// `<api_url>/api/3/contacts/<id>`.
    pub(crate) fn contact_url(&self, id: &str) -> Result<Url, DestinationError> {
        let mut url = self.contacts_url.clone();
        url.path_segments_mut()
            .map_err(|()| invalid_config("api_url", "must be a URL with a path"))?
            .push(id);
        Ok(url)
    }
}
