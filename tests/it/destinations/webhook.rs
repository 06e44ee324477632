//! The `webhook` destination against `retl_testkit`'s webhook emulator: every check applies.

use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use serde_json::{Value, json};

use super::{Capability, Observed, Subject};

/// The bearer token the emulator requires.
const TOKEN: &str = "conformance-token";

/// A webhook emulator requiring [`TOKEN`].
pub(crate) struct WebhookSubject {
    hook: WebhookEmulator,
}

impl WebhookSubject {
    async fn start() -> Self {
        let hook = WebhookEmulator::start(WebhookOptions {
            bearer_token: Some(TOKEN.to_string()),
            ..WebhookOptions::default()
        })
        .await
        .unwrap();
        WebhookSubject { hook }
    }
}

impl Subject for WebhookSubject {
    fn destination_type(&self) -> &'static str {
        "webhook"
    }

    fn config(&self) -> Value {
        json!({"url": self.hook.url(), "auth_header": format!("Bearer {TOKEN}")})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        self.hook
            .records()
            .into_iter()
            .filter(|r| r.change.as_deref() == Some(change))
            .map(|r| r.key.as_i64().expect("integer key"))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"url": self.hook.url(), "auth_header": "Bearer not-the-token"}),
            "missing or wrong bearer token",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .hook
            .requests()
            .into_iter()
            .map(|r| Observed {
                status: r.status,
                records: r.body["records"].as_array().cloned().unwrap_or_default(),
                at: r.received_at,
            })
            .collect())
    }

    fn reject_keys(&self, keys: &[i64]) -> Capability<()> {
        self.hook.reject_keys(keys.iter().map(|k| json!(k)));
        Ok(())
    }

    fn throttle_next(&self, seconds: u64) -> Capability<()> {
        self.hook.fail_next(1, 429, Some(seconds));
        Ok(())
    }

    fn fail_everything(&self) -> Capability<()> {
        self.hook.fail_next(usize::MAX, 503, None);
        Ok(())
    }

    fn recover(&self) {
        self.hook.clear();
    }

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        // Like a REST API, the receiver answers 404 to a delete of records it does not have;
        // the webhook connector documents that as success.
        self.hook.not_found_for_missing_deletes();
        self.hook.forget(keys.iter().map(|k| json!(k)));
        Ok(())
    }
}

conformance_suite!(WebhookSubject::start().await);
