//! Dry runs (`TriggerSync` with `dry_run`, `retl sync run --dry-run`): the counts a run would
//! report, sample payloads, the requests it would make, an ETA from the destination's limits
//! and measured latency, the daily request budget — sending nothing, changing no state and
//! recording no run.

use std::time::Duration;

use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, customers, write_parquet};
use serde_json::{Value, json};
use tonic::Code;

/// A webhook `hook` with small batches and a daily budget of 7 requests, model `m` and the
/// upsert mapping `up` of its emails.
async fn setup(h: &Harness, hook: &WebhookEmulator, rows: i64) {
    h.warehouse(&customers(rows)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let limits = json!({
        "batch_size": 3, "requests_per_second": 100.0, "burst": 2, "max_in_flight": 1,
        "daily_request_budget": 7,
    });
    h.create_destination(
        "hook",
        "webhook",
        json!({"url": hook.url(), "limits": limits}),
    )
    .await
    .unwrap();
    h.create_mapping("up", "m", "hook", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
}

async fn dry_run(h: &Harness, latest: bool) -> Result<v1::SyncRun, tonic::Status> {
    h.client
        .syncs()
        .trigger_sync(v1::TriggerSyncRequest {
            mapping_id: "up".into(),
            dry_run: true,
            reuse_latest_extract: latest,
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn runs(h: &Harness) -> usize {
    h.client
        .syncs()
        .list_sync_runs(v1::ListSyncRunsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sync_runs
        .len()
}

async fn state_rows(h: &Harness) -> String {
    retl_tests::query_text(h, "SELECT count(*) FROM retl.state").await[0][0].clone()
}

/// The counts a dry run and the run after it both report.
fn decided(c: &v1::RunCounts) -> [u64; 10] {
    [
        c.extracted,
        c.added,
        c.updated,
        c.unchanged,
        c.rejected,
        c.deleted,
        c.deletes_held_back,
        c.selected,
        c.not_selected,
        c.given_up,
    ]
}

#[tokio::test]
async fn a_dry_run_reports_what_the_next_run_does_and_sends_nothing() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    setup(&h, &hook, 20).await;

    // No extract yet: reusing the latest one is refused with how to fix it.
    let err = dry_run(&h, true).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("--dry-run"), "{}", err.message());
    let err = h
        .client
        .syncs()
        .trigger_sync(v1::TriggerSyncRequest {
            mapping_id: "up".into(),
            reuse_latest_extract: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("dry_run"), "{}", err.message());

    let dry = dry_run(&h, false).await.unwrap();
    assert_eq!((dry.id.as_str(), dry.trigger.as_str()), ("", "dry_run"));
    assert_eq!(dry.status(), v1::RunStatus::Succeeded);
    let counts = dry.counts.unwrap();
    assert_eq!(
        (counts.extracted, counts.added, counts.selected),
        (20, 20, 20)
    );
    assert_eq!((counts.delivered, counts.requests), (0, 0));
    let report = dry.dry_run.clone().unwrap();
    // 20 records in batches of 3.
    assert_eq!(report.requests, 7);
    assert_eq!(report.samples.len(), 3, "{:?}", report.samples);
    let sample = &report.samples[0];
    assert_eq!(sample.change(), v1::ChangeKind::Added);
    let fields: Value = serde_json::from_str(&sample.fields_json).unwrap();
    assert_eq!(
        fields["email"],
        json!(format!("user{}@example.com", sample.key))
    );
    // 5 requests past the burst of 2 at 100/s; no latency measured yet.
    assert!(
        (report.rate_limited_seconds - 0.05).abs() < 1e-9,
        "{report:?}"
    );
    assert_eq!(report.mean_latency_ms, None);
    assert!(report.eta_basis.contains("no request latency measured"));
    assert_eq!(report.daily_request_budget, Some(7));
    assert_eq!((report.requests_last_24h, report.over_budget), (0, false));
    assert!(!dry.staging_path.is_empty());
    // Nothing sent, no state, no run recorded.
    assert_eq!(hook.request_count(), 0);
    assert_eq!(state_rows(&h).await, "0");
    assert_eq!(runs(&h).await, 0);

    // The run does what the dry run said, in as many requests.
    hook.respond_after(Duration::from_millis(40));
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let ran = run.counts.unwrap();
    assert_eq!(decided(&ran), decided(&counts));
    assert_eq!((ran.delivered, ran.requests), (20, 7));
    assert_eq!(hook.request_count(), 7);

    // One changed, one gone, two new.
    let mut next = customers(22);
    next.retain(|c| c.id != Some(20));
    next[2].email = "changed3@example.com".to_string();
    write_parquet(&h.path("customers.parquet"), &next);
    let latest = dry_run(&h, true).await.unwrap();
    let c = latest.counts.unwrap();
    assert_eq!(
        (c.added, c.updated, c.deleted, c.unchanged),
        (0, 0, 0, 20),
        "the latest extract is the run's"
    );
    let dry = dry_run(&h, false).await.unwrap();
    let counts = dry.counts.unwrap();
    assert_eq!(
        (
            counts.added,
            counts.updated,
            counts.deleted,
            counts.unchanged
        ),
        (2, 1, 1, 18)
    );
    // The upsert mapping does not send deletes.
    assert_eq!((counts.selected, counts.not_selected), (3, 1));
    let report = dry.dry_run.clone().unwrap();
    assert_eq!(report.requests, 1);
    let latency = report.mean_latency_ms.expect("measured by the run");
    assert!((40.0..2000.0).contains(&latency), "{latency}");
    assert!(
        report.eta_basis.contains("measured mean latency"),
        "{report:?}"
    );
    // 7 used + 1 > 7 a day.
    assert_eq!((report.requests_last_24h, report.over_budget), (7, true));
    assert!(
        dry.warnings.iter().any(|w| w.contains("daily budget of 7")),
        "{:?}",
        dry.warnings
    );
    assert_eq!(hook.request_count(), 7, "a dry run sends nothing");
    assert_eq!(state_rows(&h).await, "20");
    assert_eq!(runs(&h).await, 1);

    let run = h.sync("up").await;
    assert_eq!(decided(&run.counts.unwrap()), decided(&counts));
    assert_eq!(hook.request_count(), 8);

    // Unknown mapping.
    let err = h
        .client
        .syncs()
        .trigger_sync(v1::TriggerSyncRequest {
            mapping_id: "nope".into(),
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test]
async fn retl_sync_run_dry_run_prints_the_report() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    setup(&h, &hook, 12).await;
    let out = h.cli(&["sync", "run", "up", "--dry-run"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "dry run of mapping up: nothing sent, no state changed",
        "added 12",
        "would send 12",
        "requests 4",
        "daily request budget 7: 0 used in the last 24 hours, 4 with this run",
        "user1@example.com",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    let out = h
        .cli(&[
            "--output",
            "json",
            "sync",
            "run",
            "up",
            "--dry-run",
            "--latest",
        ])
        .await;
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["trigger"], "dry_run");
    assert_eq!(report["counts"]["added"], 12);
    assert_eq!(report["dry_run"]["requests"], 4);
    assert_eq!(
        report["dry_run"]["samples"][0]["change"],
        "CHANGE_KIND_ADDED"
    );
    assert!(report["dry_run"]["samples"][0]["fields"]["email"].is_string());
    // --latest alone and --dry-run with --watch are usage errors.
    let out = h.cli(&["sync", "run", "up", "--latest"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = h.cli(&["sync", "run", "up", "--dry-run", "--watch"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(hook.request_count(), 0);
}
