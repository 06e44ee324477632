//! [`Metrics`]: the engine's Prometheus metrics (OpenMetrics text exposition), with no HTTP in
//! sight: the sync manager updates them, the daemon serves [`Metrics::encode`] on its own port.
//!
//! What is counted where:
//! - runs finished, records by outcome and stage durations: when a run ends, from its record
//!   (counters only go up; a run adds its counts once);
//! - requests, throttled answers, retries and request latency: live, by the delivery pipeline,
//!   through the per-run handles of [`RequestMetrics`] (atomic increments, no label allocation
//!   on the hot path);
//! - runs running and queued: at scrape time, from the runs in progress;
//! - records pending and given up: from the failure ledger when a run ends, when given-up
//!   records are retried, and at start.
//!
//! Every family is named `retl_*`, durations are in seconds and counters end in `_total`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::sync::run::{RunStatus, SyncRun};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A mapping and its destination.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MappingLabels {
    mapping: String,
    destination: String,
}

/// A finished run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    mapping: String,
    destination: String,
    status: String,
    trigger: String,
}

/// Records or requests of a mapping by outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    mapping: String,
    destination: String,
    outcome: String,
}

/// A stage of a run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    mapping: String,
    destination: String,
    stage: String,
}

/// A destination.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    destination: String,
}

/// A build of retl.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// Run and stage durations: 0.1 s to about 5 hours.
fn run_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 3.0, 12))
}

/// Request latency: 5 ms to about 20 s.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.5, 10))
}

/// The per-run handles the delivery pipeline counts requests with (resolved once per run).
/// [`RequestMetrics::default`] counts into metrics no registry exposes (unit tests).
#[derive(Clone, Debug, Default)]
pub struct RequestMetrics {
    ok: Counter,
    error: Counter,
    throttled: Counter,
    retries: Counter,
    latency: Option<Histogram>,
}

impl RequestMetrics {
    /// A request the destination answered (whatever it said about each record).
    pub fn answered(&self, took: Duration) {
        self.ok.inc();
        self.observe(took);
    }

    /// A request that failed as a whole: an error answer, a timeout, a refused connection.
    pub fn failed(&self, took: Duration, throttled: bool) {
        self.error.inc();
        if throttled {
            self.throttled.inc();
        }
        self.observe(took);
    }

    /// A request about to be sent again.
    pub fn retried(&self) {
        self.retries.inc();
    }

    fn observe(&self, took: Duration) {
        if let Some(h) = &self.latency {
            h.observe(took.as_secs_f64());
        }
    }
}

/// The engine's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    running: Family<MappingLabels, Gauge>,
    queued: Family<MappingLabels, Gauge>,
    records: Family<OutcomeLabels, Counter>,
    requests: Family<OutcomeLabels, Counter>,
    throttled: Family<MappingLabels, Counter>,
    retries: Family<MappingLabels, Counter>,
    run_duration: HistogramFamily<MappingLabels>,
    stage_duration: HistogramFamily<StageLabels>,
    request_duration: HistogramFamily<DestinationLabels>,
    pending: Family<MappingLabels, Gauge>,
    given_up: Family<MappingLabels, Gauge>,
    /// The destination of every mapping seen, for the scrape-time gauges.
    destinations: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("retl");
        let m = Metrics {
            registry: Registry::default(),
            runs: Family::default(),
            running: Family::default(),
            queued: Family::default(),
            records: Family::default(),
            requests: Family::default(),
            throttled: Family::default(),
            retries: Family::default(),
            run_duration: Family::new_with_constructor(run_histogram),
            stage_duration: Family::new_with_constructor(run_histogram),
            request_duration: Family::new_with_constructor(request_histogram),
            pending: Family::default(),
            given_up: Family::default(),
            destinations: Mutex::new(HashMap::new()),
        };
        registry.register(
            "build",
            "The running retl version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        );
        registry.register(
            "sync_runs",
            "Sync runs finished, by status and trigger",
            m.runs.clone(),
        );
        registry.register(
            "sync_runs_running",
            "Sync runs in progress",
            m.running.clone(),
        );
        registry.register(
            "sync_runs_queued",
            "Sync runs waiting for an extraction slot",
            m.queued.clone(),
        );
        registry.register(
            "sync_records",
            "Records of finished runs by outcome: extracted, added, updated, deleted, unchanged, rejected (before delivery), not_selected, held_back (mass-delete stop), selected, delivered, failed (rejected by the destination or not delivered), given_up (given up by this run), skipped_given_up (not sent: given up earlier)",
            m.records.clone(),
        );
        registry.register(
            "destination_requests",
            "Requests sent to destinations, by outcome: ok (answered) or error",
            m.requests.clone(),
        );
        registry.register(
            "destination_throttled",
            "Requests a destination answered with a throttle (HTTP 429 or the API's equivalent)",
            m.throttled.clone(),
        );
        registry.register(
            "destination_retries",
            "Requests sent again after a transient failure or records the destination asked to retry",
            m.retries.clone(),
        );
        registry.register_with_unit(
            "sync_run_duration",
            "Duration of finished sync runs, from start to end",
            Unit::Seconds,
            m.run_duration.clone(),
        );
        registry.register_with_unit(
            "sync_stage_duration",
            "Time finished runs spent per stage: queued, extract, diff, deliver, commit",
            Unit::Seconds,
            m.stage_duration.clone(),
        );
        registry.register_with_unit(
            "destination_request_duration",
            "Latency of requests to a destination",
            Unit::Seconds,
            m.request_duration.clone(),
        );
        registry.register(
            "failed_records_pending",
            "Records that failed and are sent again by the next runs",
            m.pending.clone(),
        );
        registry.register(
            "failed_records_given_up",
            "Records given up by the mapping's retry policy (retl sync failures)",
            m.given_up.clone(),
        );
        Metrics { registry, ..m }
    }

    fn labels(mapping: &str, destination: &str) -> MappingLabels {
        MappingLabels {
            mapping: mapping.to_string(),
            destination: destination.to_string(),
        }
    }

    /// Remembers a mapping's destination (for the running and queued gauges).
    pub fn mapping_seen(&self, mapping: &str, destination: &str) {
        let mut known = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        if known.get(mapping).is_none_or(|d| d != destination) {
            known.insert(mapping.to_string(), destination.to_string());
        }
    }

    /// The handles a run's delivery pipeline counts its requests with.
    pub fn requests(&self, mapping: &str, destination: &str) -> RequestMetrics {
        let labels = Metrics::labels(mapping, destination);
        let outcome = |outcome: &str| {
            self.requests.get_or_create_owned(&OutcomeLabels {
                mapping: mapping.to_string(),
                destination: destination.to_string(),
                outcome: outcome.to_string(),
            })
        };
        RequestMetrics {
            ok: outcome("ok"),
            error: outcome("error"),
            throttled: self.throttled.get_or_create_owned(&labels),
            retries: self.retries.get_or_create_owned(&labels),
            latency: Some(
                self.request_duration
                    .get_or_create_owned(&DestinationLabels {
                        destination: destination.to_string(),
                    }),
            ),
        }
    }

    /// Adds a finished run: its status, its records by outcome and its durations.
    pub fn run_finished(&self, run: &SyncRun, destination: &str) {
        let mapping = run.mapping_id.as_str();
        self.mapping_seen(mapping, destination);
        self.runs
            .get_or_create(&RunLabels {
                mapping: mapping.to_string(),
                destination: destination.to_string(),
                status: run.status.as_str().to_string(),
                trigger: run.trigger.clone(),
            })
            .inc();
        let c = &run.counts;
        for (outcome, n) in [
            ("extracted", c.extracted),
            ("added", c.added),
            ("updated", c.updated),
            ("deleted", c.deleted),
            ("unchanged", c.unchanged),
            ("rejected", c.rejected),
            ("not_selected", c.not_selected),
            ("held_back", c.deletes_held_back),
            ("selected", c.selected),
            ("delivered", c.delivered),
            ("failed", c.failed),
            ("given_up", c.newly_given_up),
            ("skipped_given_up", c.given_up),
        ] {
            self.records
                .get_or_create(&OutcomeLabels {
                    mapping: mapping.to_string(),
                    destination: destination.to_string(),
                    outcome: outcome.to_string(),
                })
                .inc_by(n);
        }
        let secs = |ms: u64| ms as f64 / 1000.0;
        let t = &run.timings;
        self.run_duration
            .get_or_create(&Metrics::labels(mapping, destination))
            .observe(secs(t.total_ms));
        for (stage, ms) in [
            ("queued", t.queued_ms),
            ("extract", t.extract_ms),
            ("diff", t.diff_ms),
            ("deliver", t.deliver_ms),
            ("commit", t.commit_ms),
        ] {
            self.stage_duration
                .get_or_create(&StageLabels {
                    mapping: mapping.to_string(),
                    destination: destination.to_string(),
                    stage: stage.to_string(),
                })
                .observe(secs(ms));
        }
    }

    /// Sets a mapping's records pending (failed, sent again by later runs) and given up.
    pub fn failed_records(&self, mapping: &str, destination: &str, pending: u64, given_up: u64) {
        let labels = Metrics::labels(mapping, destination);
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.pending.get_or_create(&labels).set(to_i64(pending));
        self.given_up.get_or_create(&labels).set(to_i64(given_up));
    }

    /// Sets the running and queued gauges from the runs in progress (every mapping seen and
    /// not in `live` is at zero).
    pub fn set_live(&self, live: &[SyncRun]) {
        let known = self
            .destinations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut running: HashMap<&str, i64> = HashMap::new();
        let mut queued: HashMap<&str, i64> = HashMap::new();
        for run in live {
            match run.status {
                RunStatus::Queued => *queued.entry(run.mapping_id.as_str()).or_default() += 1,
                RunStatus::Running => *running.entry(run.mapping_id.as_str()).or_default() += 1,
                _ => {}
            }
        }
        for (mapping, destination) in &known {
            let labels = Metrics::labels(mapping, destination);
            let get = |m: &HashMap<&str, i64>| m.get(mapping.as_str()).copied().unwrap_or(0);
            self.running.get_or_create(&labels).set(get(&running));
            self.queued.get_or_create(&labels).set(get(&queued));
        }
    }

    /// The OpenMetrics text exposition of every metric ([`CONTENT_TYPE`]).
    ///
    /// # Errors
    /// Formatting failed (not expected when writing to a `String`).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::MappingId;

    #[test]
    fn a_finished_run_adds_its_counts_and_the_exposition_is_well_formed() {
        let m = Metrics::new();
        let mut run = SyncRun::queued(MappingId::new("m1"), "manual");
        run.status = RunStatus::Succeeded;
        run.counts.delivered = 7;
        run.timings.total_ms = 1500;
        m.run_finished(&run, "d1");
        m.run_finished(&run, "d1");
        let r = m.requests("m1", "d1");
        r.answered(Duration::from_millis(20));
        r.failed(Duration::from_millis(5), true);
        r.retried();
        m.failed_records("m1", "d1", 3, 1);
        let live = SyncRun::queued(MappingId::new("m1"), "schedule");
        m.set_live(&[live]);
        let text = m.encode().unwrap();
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(
            has(
                r#"retl_sync_runs_total{mapping="m1",destination="d1",status="succeeded",trigger="manual"} 2"#
            ),
            "{text}"
        );
        assert!(has(
            r#"retl_sync_records_total{mapping="m1",destination="d1",outcome="delivered"} 14"#
        ));
        assert!(has(
            r#"retl_destination_requests_total{mapping="m1",destination="d1",outcome="error"} 1"#
        ));
        assert!(has(
            r#"retl_destination_throttled_total{mapping="m1",destination="d1"} 1"#
        ));
        assert!(has(
            r#"retl_sync_runs_queued{mapping="m1",destination="d1"} 1"#
        ));
        assert!(has(
            r#"retl_failed_records_pending{mapping="m1",destination="d1"} 3"#
        ));
        assert!(has(
            r#"retl_sync_run_duration_seconds_sum{mapping="m1",destination="d1"} 3.0"#
        ));
        let build = format!(
            r#"retl_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        );
        assert!(has(&build), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
