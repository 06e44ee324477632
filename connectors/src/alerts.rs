//! The HTTP [`AlertSink`]: alerts are `POST`ed as JSON to webhook URLs (a Slack incoming webhook
//! takes them as is: Slack reads the `text` field). A target gets three attempts, one and two
//! seconds apart, on a network error, a `429` or a `5xx`; any other answer is final.

use std::time::Duration;

use retl_engine::alert::{Alert, AlertSink};

/// Sends alerts over HTTP.
#[derive(Debug, Clone)]
pub struct WebhookAlertSink {
    client: reqwest::Client,
    backoff: Duration,
}

impl WebhookAlertSink {
    /// A sink with a 10-second timeout per attempt.
    ///
    /// # Errors
    /// The TLS backend cannot be initialised.
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("retl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("could not build the HTTP client for alerts: {e}"))?;
        Ok(WebhookAlertSink {
            client,
            backoff: Duration::from_secs(1),
        })
    }
}

#[async_trait::async_trait]
impl AlertSink for WebhookAlertSink {
    async fn send(&self, url: &str, alert: &Alert) -> Result<(), String> {
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 1..=3 {
            if attempt > 1 {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            match self.client.post(url).json(alert).send().await {
                Ok(answer) if answer.status().is_success() => return Ok(()),
                Ok(answer) => {
                    let status = answer.status();
                    last = format!("the target answered {status}");
                    if !(status.is_server_error() || status.as_u16() == 429) {
                        return Err(last);
                    }
                }
                Err(e) => last = format!("the request failed: {e}"),
            }
        }
        Err(format!("{last} (3 attempts)"))
    }
}
