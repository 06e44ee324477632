//! Prometheus `/metrics`: a sync with a throttled answer and a rejected record, scraped over
//! HTTP and parsed as OpenMetrics; the token; the loopback rule.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use retl::{DaemonConfig, ServeError, spawn_in_process};
use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, TOKEN, customers};
use serde_json::json;

/// One parsed exposition: families by name (type, help, unit) and samples by series.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    helps: HashMap<String, String>,
    samples: BTreeMap<String, f64>,
}

impl Exposition {
    /// Parses OpenMetrics text, asserting what any Prometheus server relies on: every sample
    /// belongs to a family with `# TYPE` and `# HELP`, names are `retl_*`, counters end in
    /// `_total`, durations are in seconds, and the text ends with `# EOF`.
    fn parse(text: &str) -> Exposition {
        assert!(text.ends_with("# EOF\n"), "no # EOF:\n{text}");
        let mut e = Exposition::default();
        for line in text.lines() {
            if line == "# EOF" {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let (kind, name, value) = (
                    parts.next().unwrap(),
                    parts.next().unwrap().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                );
                assert!(name.starts_with("retl_"), "{line}");
                match kind {
                    "TYPE" => {
                        assert!(
                            ["counter", "gauge", "histogram", "info"].contains(&value.as_str()),
                            "{line}"
                        );
                        e.types.insert(name, value);
                    }
                    "HELP" => {
                        assert!(!value.is_empty(), "{line}");
                        e.helps.insert(name, value);
                    }
                    "UNIT" => assert!(["seconds", "bytes"].contains(&value.as_str()), "{line}"),
                    other => panic!("unknown descriptor {other}: {line}"),
                }
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            let family = e.family_of(name);
            assert!(e.helps.contains_key(&family), "no HELP for {line}");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            assert!(value.is_finite() && value >= 0.0, "{line}");
            e.samples.insert(series.to_string(), value);
        }
        assert!(!e.samples.is_empty());
        e
    }

    /// The family a sample name belongs to, checked against its type's suffixes.
    fn family_of(&self, name: &str) -> String {
        for (suffix, kind) in [
            ("_total", "counter"),
            ("_bucket", "histogram"),
            ("_sum", "histogram"),
            ("_count", "histogram"),
            ("_info", "info"),
        ] {
            if let Some(family) = name.strip_suffix(suffix)
                && self.types.get(family).is_some_and(|t| t == kind)
            {
                if kind == "histogram" {
                    assert!(family.ends_with("_seconds"), "{name}: not in seconds");
                }
                return family.to_string();
            }
        }
        assert_eq!(
            self.types.get(name).map(String::as_str),
            Some("gauge"),
            "{name}: no TYPE, or a counter without _total"
        );
        name.to_string()
    }

    /// A sample's value (0 when absent).
    fn get(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }
}

async fn scrape(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    request.send().await.unwrap()
}

/// Scrapes until the run counter of mapping `a` reads `runs` (a run's metrics are added just
/// after its final record is published).
async fn scrape_after_runs(url: &str, series: &str, runs: f64) -> Exposition {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = scrape(url, Some(TOKEN)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let e = Exposition::parse(&response.text().await.unwrap());
        if e.get(series) >= runs || std::time::Instant::now() > deadline {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_count_runs_records_requests_throttles_and_retries_exactly() {
    let h = Harness::start_with(|c| c.metrics_listen = Some("127.0.0.1:0".to_string())).await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    // The first request is throttled (429, Retry-After: 1); the retry delivers 4 of 5 records
    // and the receiver rejects id 3.
    hook.fail_next(1, 429, Some(1));
    hook.reject_keys([json!(3)]);
    h.warehouse(&customers(5)).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination(
        "hook",
        "webhook",
        json!({"url": hook.url(), "limits": {"batch_size": 10, "max_in_flight": 1, "max_attempts": 3}}),
    )
    .await
    .unwrap();
    h.create_mapping("a", "m", "hook", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    let run = h.sync("a").await;
    assert_eq!(run.status(), v1::RunStatus::PartiallyFailed, "{run:?}");
    let c = run.counts.unwrap();
    assert_eq!(
        (c.requests, c.request_errors, c.throttled, c.retries),
        (2, 1, 1, 1),
        "{c:?}"
    );

    let url = h.metrics_url();
    let runs = r#"retl_sync_runs_total{mapping="a",destination="hook",status="partially_failed",trigger="manual"}"#;
    let e = scrape_after_runs(&url, runs, 1.0).await;
    let labels = r#"mapping="a",destination="hook""#;
    let record = |outcome: &str| {
        e.get(&format!(
            r#"retl_sync_records_total{{{labels},outcome="{outcome}"}}"#
        ))
    };
    assert_eq!(e.get(runs), 1.0);
    for (outcome, n) in [
        ("extracted", 5.0),
        ("added", 5.0),
        ("selected", 5.0),
        ("delivered", 4.0),
        ("failed", 1.0),
        ("rejected", 0.0),
        ("unchanged", 0.0),
        ("given_up", 0.0),
    ] {
        assert_eq!(record(outcome), n, "{outcome}");
    }
    let request = |outcome: &str| {
        e.get(&format!(
            r#"retl_destination_requests_total{{{labels},outcome="{outcome}"}}"#
        ))
    };
    assert_eq!((request("ok"), request("error")), (1.0, 1.0));
    assert_eq!(
        e.get(&format!("retl_destination_throttled_total{{{labels}}}")),
        1.0
    );
    assert_eq!(
        e.get(&format!("retl_destination_retries_total{{{labels}}}")),
        1.0
    );
    assert_eq!(
        e.get(r#"retl_destination_request_duration_seconds_count{destination="hook"}"#),
        2.0
    );
    assert_eq!(
        e.get(&format!("retl_sync_run_duration_seconds_count{{{labels}}}")),
        1.0
    );
    assert!(
        e.get(&format!("retl_sync_run_duration_seconds_sum{{{labels}}}")) >= 1.0,
        "the run waited out a 1 s Retry-After"
    );
    assert_eq!(
        e.get(&format!(
            r#"retl_sync_stage_duration_seconds_count{{{labels},stage="deliver"}}"#
        )),
        1.0
    );
    assert_eq!(
        e.get(&format!("retl_failed_records_pending{{{labels}}}")),
        1.0
    );
    assert_eq!(
        e.get(&format!("retl_failed_records_given_up{{{labels}}}")),
        0.0
    );
    assert_eq!(e.get(&format!("retl_sync_runs_running{{{labels}}}")), 0.0);
    assert_eq!(
        e.get(&format!(
            r#"retl_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );

    // A second run sends only the pending record again (still rejected: the run failed);
    // counters only go up.
    let run = h.sync("a").await;
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    let failed_runs = runs.replace("partially_failed", "failed");
    let e = scrape_after_runs(&url, &failed_runs, 1.0).await;
    assert_eq!((e.get(runs), e.get(&failed_runs)), (1.0, 1.0));
    let record = |outcome: &str| {
        e.get(&format!(
            r#"retl_sync_records_total{{{labels},outcome="{outcome}"}}"#
        ))
    };
    assert_eq!(
        (record("extracted"), record("delivered"), record("failed")),
        (10.0, 4.0, 2.0)
    );
    assert_eq!(
        e.get(&format!(
            r#"retl_destination_requests_total{{{labels},outcome="ok"}}"#
        )),
        2.0
    );
}

#[tokio::test]
async fn metrics_need_the_token_when_the_daemon_has_one() {
    let h = Harness::start_with(|c| c.metrics_listen = Some("127.0.0.1:0".to_string())).await;
    let url = h.metrics_url();
    for token in [None, Some("wrong-token")] {
        let response = scrape(&url, token).await;
        assert_eq!(response.status(), 401, "{token:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body = response.text().await.unwrap();
        assert!(body.contains("Authorization: Bearer"), "{body}");
        assert!(
            !body.contains("wrong-token"),
            "never echoes the token: {body}"
        );
    }
    assert_eq!(scrape(&url, Some(TOKEN)).await.status(), 200);
}

#[tokio::test]
async fn metrics_without_a_token_only_on_loopback() {
    let data = tempfile::tempdir().unwrap();
    let mut config = DaemonConfig::new(data.path(), None);
    config.metrics_listen = Some("0.0.0.0:0".to_string());
    let err = spawn_in_process(config).await.unwrap_err();
    assert!(
        matches!(err, ServeError::MetricsTokenRequired { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("--metrics-listen 127.0.0.1"),
        "{err}"
    );

    let mut config = DaemonConfig::new(data.path(), None);
    config.metrics_listen = Some("127.0.0.1:0".to_string());
    let daemon = spawn_in_process(config).await.unwrap();
    let response = scrape(&daemon.metrics_url().unwrap(), None).await;
    assert_eq!(response.status(), 200);
    let e = Exposition::parse(&response.text().await.unwrap());
    // Families with no series yet are not listed; the build is.
    assert_eq!(
        e.types.get("retl_build").map(String::as_str),
        Some("info"),
        "{e:?}"
    );
    daemon.stop().await.unwrap();
}
