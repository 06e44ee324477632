//! Mailchimp configuration: the typed config, its catalog field specs and validation (the
//! data center comes from the API key's suffix).

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::http::join_url;
use crate::destinations::invalid_config;

/// The member statuses Mailchimp accepts for `status_if_new`.
pub(crate) const STATUSES: [&str; 5] = [
    "subscribed",
    "unsubscribed",
    "cleaned",
    "pending",
    "transactional",
];

/// The configuration of a Mailchimp destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MailchimpConfig {
    /// A Marketing API key, `<key>-<dc>` (e.g. `…-us6`); the suffix names the data center.
    /// Secret.
    pub(crate) api_key: Secret,
    /// The audience (list) id members are upserted into and archived from.
    pub(crate) list_id: String,
    /// The status a new member gets: `subscribed` (the default), `pending` (double opt-in),
    /// `unsubscribed`, `cleaned` or `transactional`.
    #[serde(default)]
    pub(crate) status_if_new: Option<String>,
    /// The API root; `https://<dc>.api.mailchimp.com` from the key when unset.
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
        description: "Marketing API key (Profile > Extras > API keys), e.g. 0123...abcd-us6; its suffix names the data center.",
    },
    ConfigField {
        name: "list_id",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Audience id (Audience > Settings > Audience name and defaults), e.g. a1b2c3d4e5.",
    },
    ConfigField {
        name: "status_if_new",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Status of a member the sync creates: subscribed (default), pending (sends a confirmation email), unsubscribed, cleaned or transactional. Only add contacts who opted in.",
    },
    ConfigField {
        name: "endpoint",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "API root; https://<dc>.api.mailchimp.com from the API key's suffix when unset.",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The API key (sent as the password of HTTP Basic auth).
    pub(crate) api_key: Secret,
    /// The status of new members.
    pub(crate) status_if_new: String,
    /// `<root>/3.0/lists/<list_id>` (batch upsert).
    pub(crate) list_url: Url,
    /// `<root>/3.0/ping` (the read of `test()`).
    pub(crate) ping_url: Url,
}

impl MailchimpConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        let key = self.api_key.expose();
        let dc = key
            .rsplit_once('-')
            .map(|(_, dc)| dc)
            .filter(|dc| {
                !dc.is_empty() && dc.len() <= 8 && dc.chars().all(|c| c.is_ascii_alphanumeric())
            })
            .filter(|_| key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .ok_or_else(|| {
                invalid_config(
                    "api_key",
                    "a Mailchimp API key ends with its data center after a dash (e.g. 0123abcd-us6); copy it again from Profile > Extras > API keys",
                )
            })?;
        if self.list_id.is_empty() || !self.list_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid_config(
                "list_id",
                "an audience id is letters and digits (e.g. a1b2c3d4e5); find it under Audience > Settings",
            ));
        }
        let status = self.status_if_new.as_deref().unwrap_or("subscribed");
        if !STATUSES.contains(&status) {
            return Err(invalid_config(
                "status_if_new",
                format!("must be one of {}", STATUSES.join(", ")),
            ));
        }
        let root = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => format!("https://{dc}.api.mailchimp.com"),
        };
        Ok(ValidConfig {
            api_key: self.api_key.clone(),
            status_if_new: status.to_string(),
            list_url: join_url("endpoint", &root, &format!("/3.0/lists/{}", self.list_id))?,
            ping_url: join_url("endpoint", &root, "/3.0/ping")?,
        })
    }
}

impl ValidConfig {
    /// `<root>/3.0/lists/<list_id>/members/<subscriber_hash>`.
    pub(crate) fn member_url(&self, subscriber_hash: &str) -> Result<Url, DestinationError> {
        let mut url = self.list_url.clone();
        url.path_segments_mut()
            .map_err(|()| invalid_config("endpoint", "must be a URL with a path"))?
            .push("members")
            .push(subscriber_hash);
        Ok(url)
    }
}
