//! No stuck runs: the progress watchdog stops a run that makes no progress and names the stage
//! and what it waited on; a shutdown lets requests in flight finish within its grace period and
//! commits what they acknowledged.

use std::time::{Duration, Instant};

use retl_engine::EngineOptions;
use retl_proto::v1;
use retl_testkit::PostgresServer;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, customers};
use serde_json::json;

fn options(stall: Duration, grace: Duration) -> EngineOptions {
    EngineOptions {
        stall_timeout: stall,
        shutdown_grace: grace,
        ..EngineOptions::default()
    }
}

/// `rows` customers behind the webhook destination `hook` (one request at a time of `batch`
/// records, no retries, a request timeout of two minutes) with the upsert mapping `up`.
async fn webhook_sync(h: &Harness, hook: &WebhookEmulator, rows: i64, batch: usize) {
    h.warehouse(&customers(rows)).await;
    h.model("SELECT id, email FROM customers").await;
    let limits = json!({
        "batch_size": batch, "max_in_flight": 1, "max_attempts": 1, "timeout_ms": 120_000,
        "requests_per_second": 1000, "burst": 100
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

#[tokio::test]
async fn a_destination_that_never_answers_fails_the_run_naming_the_stage() {
    let h = Harness::start_with(|c| {
        c.engine_options = options(Duration::from_secs(1), Duration::from_secs(30))
    })
    .await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    webhook_sync(&h, &hook, 20, 10).await;
    hook.respond_after(Duration::from_secs(60));
    let started = Instant::now();
    let run = h.sync("up").await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    assert!(
        run.error.contains("no progress for 1 s while delivering")
            && run
                .error
                .contains("the destination 'hook' to answer a request"),
        "{}",
        run.error
    );
    // Once the destination answers again, the next run delivers everything.
    hook.respond_after(Duration::ZERO);
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.counts.unwrap().delivered, 20);
}

#[tokio::test]
async fn a_query_that_never_returns_fails_the_run_naming_the_source() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql("CREATE TABLE customers (id bigint PRIMARY KEY, email text); INSERT INTO customers SELECT i, 'u' || i FROM generate_series(1, 30) i;")
        .await
        .unwrap();
    let h = Harness::start_with(|c| {
        c.engine_options = options(Duration::from_secs(1), Duration::from_secs(30))
    })
    .await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    h.create_postgres_source("pg", &pg, pg.user(), pg.superuser_password(), json!({}))
        .await
        .unwrap();
    h.create_model("m", "pg", "SELECT id, email FROM customers", "id")
        .await
        .unwrap();
    h.webhook_mappings("m", &hook.url(), &[("email", "email")])
        .await;
    // Another session holds the table for 6 s: the model's query waits on its lock.
    let locker = pg.psql_for(
        "BEGIN; LOCK TABLE customers IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT;",
        Duration::from_secs(30),
    );
    let sync = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let run = h.sync("up").await;
        (run, started.elapsed())
    };
    let (locked, (run, took)) = tokio::join!(locker, sync);
    locked.unwrap();
    assert!(
        took < Duration::from_secs(5),
        "the stall ended the run in {took:?}"
    );
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    assert!(
        run.error.contains("no progress for 1 s while extracting")
            && run
                .error
                .contains("the source 'pg' (the query of model 'm')"),
        "{}",
        run.error
    );
    // The lock is gone: the next run extracts and delivers.
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.counts.unwrap().delivered, 30);
}

/// Stops the daemon while the first request of `up` is in flight; returns how long the stop
/// took and the interrupted run's record after a restart.
async fn stop_during_a_request(h: &mut Harness, hook: &WebhookEmulator) -> (Duration, v1::SyncRun) {
    let run = h.trigger("up", false).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.request_count() == 0 {
        assert!(Instant::now() < deadline, "no request was sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    h.stop().await;
    let took = started.elapsed();
    h.start_again().await;
    let stopped = h
        .client
        .syncs()
        .get_sync_run(v1::GetSyncRunRequest { run_id: run.id })
        .await
        .unwrap()
        .into_inner();
    (took, stopped)
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish_and_commits_it() {
    let mut h = Harness::start_with(|c| {
        c.engine_options = options(Duration::from_secs(600), Duration::from_secs(20))
    })
    .await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    webhook_sync(&h, &hook, 30, 10).await;
    hook.respond_after(Duration::from_millis(1500));
    let (took, stopped) = stop_during_a_request(&mut h, &hook).await;
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(10),
        "the stop waited for the answer: {took:?}"
    );
    assert_eq!(stopped.status(), v1::RunStatus::Cancelled, "{stopped:?}");
    assert!(stopped.error.contains("shutting down"), "{}", stopped.error);
    let delivered = stopped.counts.unwrap().delivered;
    assert_eq!(
        delivered, 10,
        "the request in flight was acknowledged and committed"
    );
    assert_eq!(
        hook.request_count(),
        1,
        "nothing new was sent after the stop"
    );
    // The next run sends the rest, and nothing twice.
    hook.respond_after(Duration::ZERO);
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.counts.unwrap().delivered, 20);
    let keys = hook.accepted_keys();
    let distinct: std::collections::BTreeSet<String> = keys.iter().map(|k| k.to_string()).collect();
    assert_eq!((keys.len(), distinct.len()), (30, 30));
}

#[tokio::test]
async fn shutdown_gives_up_a_request_that_outlasts_the_grace_period() {
    let mut h = Harness::start_with(|c| {
        c.engine_options = options(Duration::from_secs(600), Duration::from_millis(300))
    })
    .await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    webhook_sync(&h, &hook, 30, 10).await;
    hook.respond_after(Duration::from_secs(20));
    let (took, stopped) = stop_during_a_request(&mut h, &hook).await;
    assert!(
        took < Duration::from_secs(5),
        "the stop is bounded: {took:?}"
    );
    assert_eq!(stopped.status(), v1::RunStatus::Cancelled, "{stopped:?}");
    assert_eq!(stopped.counts.unwrap().delivered, 0);
    // The emulator had taken the request (its answer was lost): the next run sends those
    // records again, and all the others once.
    hook.respond_after(Duration::ZERO);
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.counts.unwrap().delivered, 30);
    assert_eq!(hook.accepted_keys().len(), 40);
}
