//! One extraction per model per tick: mappings of one model due together share one extract
//! (staged once) and each diffs against its own state; cancelling one run of the group leaves
//! the others their extract.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use retl_engine::Engine;
use retl_engine::catalog::destination::NewDestination;
use retl_engine::catalog::model::NewModel;
use retl_engine::catalog::source::NewSource;
use retl_engine::mapping::spec::{FieldMapping, FieldSource, NewMapping};
use retl_engine::options::EngineOptions;
use retl_engine::schedule::{Clock, ManualClock, Schedule, ScheduleKind, TickOutcome};
use retl_engine::sync::TriggerOptions;
use retl_engine::sync::run::{RunStage, RunStatus, SyncRun};
use retl_testkit::PostgresServer;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{customers, write_parquet};
use serde_json::json;

fn obj(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().cloned().unwrap()
}

async fn open(dir: &std::path::Path) -> Engine {
    Engine::open(
        &dir.join("data"),
        retl::registry(),
        EngineOptions::default(),
    )
    .await
    .unwrap()
}

async fn model(engine: &Engine, id: &str, source: &str, sql: &str) {
    engine
        .models()
        .create(NewModel {
            id: Some(id.into()),
            display_name: String::new(),
            source_id: source.into(),
            sql: sql.into(),
            unique_id: "id".into(),
        })
        .await
        .unwrap();
}

async fn hook(engine: &Engine, id: &str) -> WebhookEmulator {
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    engine
        .destinations()
        .create(NewDestination {
            id: Some(id.into()),
            display_name: String::new(),
            destination_type: "webhook".into(),
            config: obj(json!({"url": hook.url()})),
            enabled: None,
        })
        .await
        .unwrap();
    hook
}

async fn mapping(
    engine: &Engine,
    id: &str,
    model: &str,
    destination: &str,
    column: &str,
    schedule: Option<Schedule>,
) {
    engine
        .mappings()
        .create(NewMapping {
            id: Some(id.into()),
            model_id: model.into(),
            destination_id: destination.into(),
            action: "upsert".into(),
            fields: vec![FieldMapping {
                field: column.into(),
                source: FieldSource::Column(column.into()),
            }],
            schedule,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Waits for a run to end and returns its final record.
async fn finished(engine: &Engine, run_id: &str) -> SyncRun {
    let mut rx = engine.syncs().watch(run_id).unwrap();
    loop {
        if rx.borrow().status.is_terminal() {
            break;
        }
        if rx.changed().await.is_err() {
            break;
        }
    }
    engine.syncs().get(run_id).unwrap()
}

fn staged_dirs(dir: &std::path::Path, model: &str) -> usize {
    std::fs::read_dir(dir.join("data/staging").join(model))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn mappings_of_one_model_due_together_share_one_extraction_and_keep_their_own_state() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let parquet = dir.path().join("customers.parquet");
    let mut rows = customers(30);
    write_parquet(&parquet, &rows);
    engine
        .sources()
        .create(NewSource {
            id: Some("wh".into()),
            source_type: "files".into(),
            config: obj(
                json!({"path": parquet.display().to_string(), "max_concurrent_extractions": 1}),
            ),
            ..Default::default()
        })
        .await
        .unwrap();
    model(&engine, "m", "wh", "SELECT id, email, plan FROM customers").await;
    model(
        &engine,
        "few",
        "wh",
        "SELECT id, email FROM customers WHERE id <= 2",
    )
    .await;
    let emails = hook(&engine, "emails").await;
    let plans = hook(&engine, "plans").await;
    let other = hook(&engine, "other").await;
    let every_minute = Schedule {
        kind: ScheduleKind::Interval { seconds: 60 },
        time_zone: None,
    };
    mapping(
        &engine,
        "a",
        "m",
        "emails",
        "email",
        Some(every_minute.clone()),
    )
    .await;
    mapping(
        &engine,
        "b",
        "m",
        "plans",
        "plan",
        Some(every_minute.clone()),
    )
    .await;
    mapping(&engine, "c", "few", "other", "email", Some(every_minute)).await;

    let clock = Arc::new(ManualClock::new(at("2026-03-01T10:00:00Z")));
    let scheduler = engine.scheduler_with_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    scheduler.tick(engine.syncs()).await.unwrap();
    // Past every mapping's first time (the jitter of a one-minute interval is a few seconds):
    // all three are due at this pass.
    let pass = |minutes: i64| {
        clock.set(at("2026-03-01T10:00:00Z") + chrono::Duration::minutes(minutes));
    };
    pass(5);
    scheduler.tick(engine.syncs()).await.unwrap();
    let runs = async |scheduler: &retl_engine::schedule::Scheduler| {
        let mut runs = Vec::new();
        for id in ["a", "b", "c"] {
            let state = scheduler.state(id).unwrap().unwrap();
            let TickOutcome::Started { run_id } = &state.ticks.last().unwrap().outcome else {
                panic!("{id}: {state:?}");
            };
            runs.push(finished(&engine, run_id).await);
        }
        runs
    };
    let first = runs(&scheduler).await;
    for run in &first {
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        assert_eq!(run.trigger, "schedule");
    }
    let (a, b, c) = (&first[0], &first[1], &first[2]);
    assert_eq!(
        a.staging_path, b.staging_path,
        "the mappings of model m read one extract"
    );
    assert_ne!(a.staging_path, c.staging_path);
    assert_eq!(staged_dirs(dir.path(), "m"), 1, "model m was staged once");
    assert_eq!(staged_dirs(dir.path(), "few"), 1);
    assert_eq!(
        (a.counts.extracted, b.counts.extracted, c.counts.extracted),
        (30, 30, 2)
    );
    assert_eq!(
        (a.counts.delivered, b.counts.delivered, c.counts.delivered),
        (30, 30, 2)
    );
    assert_eq!(
        (
            emails.accepted_keys().len(),
            plans.accepted_keys().len(),
            other.accepted_keys().len()
        ),
        (30, 30, 2)
    );

    // One email and one plan change: each mapping sends what changed in its own columns.
    rows[4].email = "changed@example.com".into();
    rows[9].plan = Some("changed".into());
    write_parquet(&parquet, &rows);
    emails.clear();
    plans.clear();
    other.clear();
    pass(10);
    scheduler.tick(engine.syncs()).await.unwrap();
    let second = runs(&scheduler).await;
    let (a, b, c) = (&second[0], &second[1], &second[2]);
    for run in &second {
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    }
    assert_eq!(a.staging_path, b.staging_path);
    assert_ne!(a.staging_path, first[0].staging_path, "a fresh extract");
    assert_eq!((a.counts.updated, a.counts.unchanged), (1, 29));
    assert_eq!((b.counts.updated, b.counts.unchanged), (1, 29));
    assert_eq!((c.counts.updated, c.counts.unchanged), (0, 2));
    assert_eq!(emails.accepted_keys(), vec![json!(5)]);
    assert_eq!(plans.accepted_keys(), vec![json!(10)]);
    assert!(other.accepted_keys().is_empty());
    assert_eq!(staged_dirs(dir.path(), "m"), 2, "two extracts kept");
    engine.shutdown().await;
}

#[tokio::test]
async fn cancelling_one_run_of_a_shared_extraction_leaves_the_others_their_extract() {
    let pg = PostgresServer::start().await.unwrap();
    pg.psql("CREATE TABLE customers (id bigint PRIMARY KEY, email text, plan text); INSERT INTO customers SELECT i, 'u' || i, 'p' || (i % 3) FROM generate_series(1, 40) i;")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    engine
        .sources()
        .create(NewSource {
            id: Some("pg".into()),
            source_type: "postgres".into(),
            config: obj(json!({
                "host": "127.0.0.1", "port": pg.port(), "database": pg.database(),
                "user": pg.user(), "password": pg.superuser_password(), "sslmode": "disable",
            })),
            ..Default::default()
        })
        .await
        .unwrap();
    model(&engine, "m", "pg", "SELECT id, email, plan FROM customers").await;
    let emails = hook(&engine, "emails").await;
    let plans = hook(&engine, "plans").await;
    mapping(&engine, "a", "m", "emails", "email", None).await;
    mapping(&engine, "b", "m", "plans", "plan", None).await;

    // Another session holds the table: the shared query waits on its lock.
    let locker = pg.psql_for(
        "BEGIN; LOCK TABLE customers IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;",
        Duration::from_secs(30),
    );
    let syncs = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = engine
            .syncs()
            .trigger_together(&["a", "b"], TriggerOptions::default())
            .await;
        let ids: Vec<String> = started
            .into_iter()
            .map(|r| r.unwrap().id.to_string())
            .collect();
        // Both wait in the extraction; cancel `a` only.
        let deadline = Instant::now() + Duration::from_secs(3);
        while ids
            .iter()
            .any(|id| engine.syncs().get(id).unwrap().stage != RunStage::Extracting)
        {
            assert!(
                Instant::now() < deadline,
                "the runs never started extracting"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cancelled_at = Instant::now();
        engine.syncs().cancel(&ids[0]).unwrap();
        let a = finished(&engine, &ids[0]).await;
        let a_took = cancelled_at.elapsed();
        let b_meanwhile = engine.syncs().get(&ids[1]).unwrap();
        let b = finished(&engine, &ids[1]).await;
        (a, a_took, b_meanwhile, b)
    };
    let (locked, (a, a_took, b_meanwhile, b)) = tokio::join!(locker, syncs);
    locked.unwrap();
    assert_eq!(a.status, RunStatus::Cancelled, "{a:?}");
    assert!(a_took < Duration::from_secs(2), "cancel took {a_took:?}");
    assert_eq!(
        b_meanwhile.stage,
        RunStage::Extracting,
        "b kept waiting for the shared extract: {b_meanwhile:?}"
    );
    assert_eq!(b.status, RunStatus::Succeeded, "{b:?}");
    assert_eq!(b.counts.delivered, 40);
    assert!(
        emails.accepted_keys().is_empty(),
        "the cancelled run sent nothing"
    );
    assert_eq!(plans.accepted_keys().len(), 40);
    // The cancelled run's key index was removed; nothing is left in tmp.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("data/tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The cancelled mapping's next run sends everything (its state did not move).
    let rerun = engine
        .syncs()
        .trigger("a", TriggerOptions::default())
        .await
        .unwrap();
    let rerun = finished(&engine, rerun.id.as_str()).await;
    assert_eq!(rerun.status, RunStatus::Succeeded, "{rerun:?}");
    assert_eq!(rerun.counts.delivered, 40);
    engine.shutdown().await;
}
