//! [`Alerter`]: follows finished runs, keeps each condition's last state per mapping, and
//! sends a message to the targets when one changes.

use std::sync::Arc;

use rocksdb::WriteBatch;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::alert::rules::judge;
use crate::alert::{Alert, AlertCondition, AlertPolicy, AlertSink};
use crate::catalog::Catalog;
use crate::error::StorageError;
use crate::store::{CF_META, Store};
use crate::sync::failures::FailureLedger;
use crate::sync::run::SyncRun;

fn key(mapping_id: &str, condition: AlertCondition) -> String {
    format!("alert/{mapping_id}/{}", condition.as_str())
}

/// Evaluates alert conditions at the end of every run and sends the transitions.
#[derive(Clone)]
pub struct Alerter {
    store: Store,
    catalog: Catalog,
    failures: FailureLedger,
    global_urls: Vec<String>,
    sink: Arc<dyn AlertSink>,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field("global_urls", &self.global_urls.len())
            .finish_non_exhaustive()
    }
}

impl Alerter {
    /// An alerter over the engine's store, sending to `global_urls` (and each mapping's own
    /// targets) through `sink`.
    pub fn new(
        store: Store,
        catalog: Catalog,
        failures: FailureLedger,
        global_urls: Vec<String>,
        sink: Arc<dyn AlertSink>,
    ) -> Self {
        Alerter {
            store,
            catalog,
            failures,
            global_urls,
            sink,
        }
    }

    fn firing(&self, mapping_id: &str, condition: AlertCondition) -> Result<bool, StorageError> {
        Ok(self
            .store
            .get_json::<bool>(CF_META, &key(mapping_id, condition), "alert state")?
            .unwrap_or(false))
    }

    fn set_firing(
        &self,
        mapping_id: &str,
        condition: AlertCondition,
        firing: bool,
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.store
            .put_json(&mut batch, CF_META, &key(mapping_id, condition), &firing)?;
        self.store.write(batch)
    }

    /// The alerts `run`'s end causes under its mapping's `policy` (state changes are saved);
    /// sends nothing.
    ///
    /// # Errors
    /// The store cannot be read or written.
    pub fn transitions(
        &self,
        run: &SyncRun,
        policy: &AlertPolicy,
    ) -> Result<Vec<Alert>, StorageError> {
        let mapping_id = run.mapping_id.as_str();
        let given_up_left = !self
            .failures
            .list(&run.mapping_id, None, 1, true)?
            .is_empty();
        let mut alerts = Vec::new();
        for condition in AlertCondition::ALL {
            let Some((now, message)) = judge(condition, run, policy, given_up_left) else {
                continue;
            };
            if now == self.firing(mapping_id, condition)? {
                continue;
            }
            self.set_firing(mapping_id, condition, now)?;
            let state = if now { "firing" } else { "resolved" };
            alerts.push(Alert {
                text: format!(
                    "[retl] {} {} on mapping '{mapping_id}': {message}",
                    state.to_uppercase(),
                    condition.as_str()
                ),
                alert: condition,
                state: state.to_string(),
                mapping_id: mapping_id.to_string(),
                run_id: run.id.to_string(),
                message,
                time: chrono::Utc::now().to_rfc3339(),
            });
        }
        Ok(alerts)
    }

    /// Handles one finished run: saves the transitions and sends them to every target.
    pub async fn on_finished(&self, run: &SyncRun) {
        // A mapping deleted meanwhile alerts under the defaults, to the global targets.
        let policy = self
            .catalog
            .mapping(run.mapping_id.as_str())
            .map(|m| m.alerts)
            .unwrap_or_default();
        let alerts = match self.transitions(run, &policy) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(run_id = %run.id, error = %e, "could not evaluate alerts");
                return;
            }
        };
        if alerts.is_empty() {
            return;
        }
        let mut urls = self.global_urls.clone();
        urls.extend(policy.webhook_urls);
        urls.dedup();
        for alert in &alerts {
            tracing::info!(mapping_id = %alert.mapping_id, alert = alert.alert.as_str(), state = %alert.state, "alert");
            for url in &urls {
                if let Err(e) = self.sink.send(url, alert).await {
                    tracing::warn!(url = %redact(url), error = %e, "could not deliver an alert");
                }
            }
        }
    }

    /// Follows finished runs until `stop`.
    pub async fn run(&self, mut finished: broadcast::Receiver<SyncRun>, stop: CancellationToken) {
        loop {
            let run = tokio::select! {
                r = finished.recv() => r,
                _ = stop.cancelled() => return,
            };
            match run {
                Ok(run) => self.on_finished(&run).await,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(runs = n, "alerts skipped finished runs (too many at once)");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// The URL without its path (webhook paths carry secrets, e.g. Slack's).
fn redact(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    match url[scheme_end..].find('/') {
        Some(i) => format!("{}/…", &url[..scheme_end + i]),
        None => url.to_string(),
    }
}
