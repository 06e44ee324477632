//! Alerts: per mapping, four conditions are evaluated at the end of every run — the run
//! failed, the share of failed records passed the mapping's threshold, deletes were held back
//! by the mass-delete safety stop, records were given up — and a message goes to the alert
//! targets (the daemon's global webhooks and the mapping's own) only when a condition changes
//! (`firing` or `resolved`), not once per run. The last state of each condition is kept in the
//! `meta` column family (`alert/<mapping>/<condition>`), so a restart sends nothing twice.
//!
//! Sending is the [`AlertSink`]'s job (the HTTP one lives with the connectors); a target that
//! cannot be reached is logged and retried by the sink, never blocks a run.

pub mod notifier;
pub mod rules;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Default [`AlertPolicy::failed_record_share`]: alert when more than 10 % of a run's selected
/// records failed.
pub const DEFAULT_FAILED_RECORD_SHARE: f64 = 0.1;

fn default_share() -> f64 {
    DEFAULT_FAILED_RECORD_SHARE
}

/// A mapping's alert settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertPolicy {
    /// Webhook URLs (besides the daemon's global ones) that receive this mapping's alerts; a
    /// Slack incoming-webhook URL works as is (the message has a `text` field).
    #[serde(default)]
    pub webhook_urls: Vec<String>,
    /// Alert when more than this share (0 < share <= 1) of a run's selected records failed.
    #[serde(default = "default_share")]
    pub failed_record_share: f64,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            webhook_urls: Vec::new(),
            failed_record_share: DEFAULT_FAILED_RECORD_SHARE,
        }
    }
}

/// Checks a webhook URL of an alert target; `field` names it in the error.
///
/// # Errors
/// `InvalidArgument` unless it is an `http://` or `https://` URL with a host.
pub fn check_webhook_url(field: &str, url: &str) -> Result<(), Error> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty() && !rest.starts_with('/') && !url.contains(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => Err(Error::invalid(
            field,
            format!(
                "'{url}' is not an http(s) URL; give the full address, e.g. https://hooks.slack.com/services/T000/B000/XXXX"
            ),
        )),
    }
}

impl AlertPolicy {
    /// Checks the URLs and the threshold.
    ///
    /// # Errors
    /// `InvalidArgument` naming the bad field.
    pub fn check(&self) -> Result<(), Error> {
        for (i, url) in self.webhook_urls.iter().enumerate() {
            check_webhook_url(&format!("mapping.alerts.webhook_urls[{i}]"), url)?;
        }
        let share = self.failed_record_share;
        if !(share > 0.0 && share <= 1.0) {
            return Err(Error::invalid(
                "mapping.alerts.failed_record_share",
                format!(
                    "{share} is not a share; give a number above 0 and at most 1, e.g. 0.1 for 10 %"
                ),
            ));
        }
        Ok(())
    }
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertCondition {
    /// The last run failed.
    RunFailed,
    /// More than the threshold of the run's selected records failed.
    FailedRecords,
    /// Deletes were held back by the mass-delete safety stop.
    MassDeleteHeld,
    /// Records were given up and are no longer retried.
    RecordsGivenUp,
}

impl AlertCondition {
    /// Every condition.
    pub const ALL: [AlertCondition; 4] = [
        AlertCondition::RunFailed,
        AlertCondition::FailedRecords,
        AlertCondition::MassDeleteHeld,
        AlertCondition::RecordsGivenUp,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertCondition::RunFailed => "run_failed",
            AlertCondition::FailedRecords => "failed_records",
            AlertCondition::MassDeleteHeld => "mass_delete_held",
            AlertCondition::RecordsGivenUp => "records_given_up",
        }
    }
}

/// One alert message: a condition of a mapping started or stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// One line for chat tools (Slack reads this field).
    pub text: String,
    /// The condition.
    pub alert: AlertCondition,
    /// `firing` or `resolved`.
    pub state: String,
    /// The mapping.
    pub mapping_id: String,
    /// The run whose end changed the condition.
    pub run_id: String,
    /// What happened, with the numbers.
    pub message: String,
    /// When (RFC 3339).
    pub time: String,
}

/// Sends alerts to webhook targets.
#[async_trait::async_trait]
pub trait AlertSink: Send + Sync + std::fmt::Debug {
    /// Sends `alert` to `url`; the error says why it could not be delivered.
    async fn send(&self, url: &str, alert: &Alert) -> Result<(), String>;
}
