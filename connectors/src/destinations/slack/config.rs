//! Slack configuration: the typed config, its catalog field specs and validation.

use reqwest::Url;
use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::invalid_config as invalid;

/// The hosts Slack serves incoming webhooks from (commercial and GovSlack).
pub(crate) const SLACK_HOSTS: &[&str] = &["hooks.slack.com", "hooks.slack-gov.com"];

/// The configuration of a Slack destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlackConfig {
    /// The incoming webhook URL, `https://hooks.slack.com/services/T.../B.../...`. It is the
    /// credential (anyone holding it can post to the channel). Secret.
    pub(crate) webhook_url: Secret,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[ConfigField {
    name: "webhook_url",
    field_type: FieldType::String,
    required: true,
    secret: true,
    description: "Incoming webhook URL (https://hooks.slack.com/services/T.../B.../..., from the Slack app's Incoming Webhooks page); it is a credential.",
}];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The webhook URL (a credential: never in a message or a log).
    pub(crate) webhook_url: Url,
    /// What may be shown of it: scheme, host and the workspace/app ids, the token hidden.
    pub(crate) shown_url: String,
}

const SHAPE: &str = "must be a Slack incoming webhook URL, https://hooks.slack.com/services/T.../B.../<token>; copy it from the app's Incoming Webhooks page";

impl SlackConfig {
    /// Checks the URL's shape (no network access): `https` on Slack's hooks host (or `http`
    /// to a loopback address, for a local stand-in), path `/services/<T...>/<B...>/<token>`.
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        // Never quote the URL: it is the credential.
        let url = Url::parse(self.webhook_url.expose().trim())
            .map_err(|_| invalid("webhook_url", format!("is not a URL; it {SHAPE}")))?;
        let host = url.host_str().unwrap_or("");
        let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
        match url.scheme() {
            "https" if SLACK_HOSTS.contains(&host) || loopback => {}
            "http" if loopback => {}
            _ => {
                return Err(invalid(
                    "webhook_url",
                    format!("has scheme or host other than https://hooks.slack.com; it {SHAPE}"),
                ));
            }
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "webhook_url",
                format!("has a query or fragment; it {SHAPE}"),
            ));
        }
        let segments: Vec<&str> = url
            .path_segments()
            .map(Iterator::collect)
            .unwrap_or_default();
        let plausible = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
        match segments.as_slice() {
            ["services", team, app, token]
                if team.starts_with('T')
                    && app.starts_with('B')
                    && [team, app, token].iter().all(|s| plausible(s)) =>
            {
                let authority = match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                };
                Ok(ValidConfig {
                    shown_url: format!(
                        "{}://{authority}/services/{team}/{app}/<redacted>",
                        url.scheme()
                    ),
                    webhook_url: url.clone(),
                })
            }
            ["workflows" | "triggers", ..] => Err(invalid(
                "webhook_url",
                "is a Workflow Builder trigger URL, which takes workflow variables rather than messages; create an incoming webhook (https://hooks.slack.com/services/...) instead",
            )),
            _ => Err(invalid(
                "webhook_url",
                format!("has the wrong path; it {SHAPE}"),
            )),
        }
    }
}
