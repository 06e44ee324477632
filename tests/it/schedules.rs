//! Schedules: the scheduler driven by a manual clock over a real engine (files source, webhook
//! emulator), and schedules through the API of a running daemon (validation, next run times,
//! chained mappings).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use retl_engine::Engine;
use retl_engine::catalog::destination::NewDestination;
use retl_engine::catalog::model::NewModel;
use retl_engine::catalog::source::NewSource;
use retl_engine::mapping::spec::{FieldMapping, FieldSource, MappingPatch, NewMapping};
use retl_engine::options::EngineOptions;
use retl_engine::schedule::{Clock, ManualClock, Schedule, ScheduleKind, Scheduler, TickOutcome};
use retl_engine::sync::run::RunStatus;
use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, column, customers, write_parquet};
use serde_json::json;
use tonic::Code;

fn obj(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().cloned().unwrap()
}

fn every(seconds: u64) -> Schedule {
    Schedule {
        kind: ScheduleKind::Interval { seconds },
        time_zone: None,
    }
}

/// An engine over `dir` with source `wh` (three customers), model `m`, webhook destination `hook`
/// and mapping `up` on `schedule`.
async fn engine(
    dir: &std::path::Path,
    hook: &WebhookEmulator,
    schedule: Option<Schedule>,
) -> Engine {
    let engine = Engine::open(
        &dir.join("data"),
        retl::registry(),
        EngineOptions::default(),
    )
    .await
    .unwrap();
    let parquet = dir.join("customers.parquet");
    write_parquet(&parquet, &customers(3));
    engine
        .sources()
        .create(NewSource {
            id: Some("wh".into()),
            source_type: "files".into(),
            config: obj(json!({"path": parquet.display().to_string()})),
            ..Default::default()
        })
        .await
        .unwrap();
    engine
        .models()
        .create(NewModel {
            id: Some("m".into()),
            display_name: String::new(),
            source_id: "wh".into(),
            sql: "SELECT id, email FROM customers".into(),
            unique_id: "id".into(),
        })
        .await
        .unwrap();
    engine
        .destinations()
        .create(NewDestination {
            id: Some("hook".into()),
            display_name: String::new(),
            destination_type: "webhook".into(),
            config: obj(json!({"url": hook.url()})),
            enabled: None,
        })
        .await
        .unwrap();
    engine
        .mappings()
        .create(NewMapping {
            id: Some("up".into()),
            model_id: "m".into(),
            destination_id: "hook".into(),
            action: "upsert".into(),
            fields: vec![FieldMapping {
                field: "email".into(),
                source: FieldSource::Column("email".into()),
            }],
            schedule,
            ..Default::default()
        })
        .await
        .unwrap();
    engine
}

/// Waits for a run to end and returns its status.
async fn finished(engine: &Engine, run_id: &str) -> RunStatus {
    let mut rx = engine.syncs().watch(run_id).unwrap();
    loop {
        let status = rx.borrow().status;
        if status.is_terminal() {
            return status;
        }
        if rx.changed().await.is_err() {
            return engine.syncs().get(run_id).unwrap().status;
        }
    }
}

fn started(outcome: &TickOutcome) -> String {
    match outcome {
        TickOutcome::Started { run_id } => run_id.clone(),
        other => panic!("expected a started run, got {other:?}"),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn an_interval_runs_at_its_ticks_and_catches_up_missed_ones_with_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let engine = engine(dir.path(), &hook, Some(every(15 * 60))).await;
    let clock = Arc::new(ManualClock::new(at("2026-03-01T10:00:00Z")));
    let scheduler: Scheduler = engine.scheduler_with_clock(Arc::clone(&clock) as Arc<dyn Clock>);

    // A new schedule is first due at its next tick, never at once.
    let first = scheduler.tick(engine.syncs()).await.unwrap().unwrap();
    assert!(
        first > at("2026-03-01T10:00:00Z") && first <= at("2026-03-01T10:16:30Z"),
        "{first}"
    );
    assert!(
        engine
            .syncs()
            .list(Some("up"), None, 10)
            .unwrap()
            .is_empty()
    );

    clock.set(first);
    let next = scheduler.tick(engine.syncs()).await.unwrap().unwrap();
    assert_eq!(
        next - first,
        chrono::Duration::minutes(15),
        "the grid keeps its offset"
    );
    let state = scheduler.state("up").unwrap().unwrap();
    let tick = state.ticks.last().unwrap();
    assert_eq!((tick.due, tick.missed), (first, 0));
    let run_id = started(&tick.outcome);
    assert_eq!(finished(&engine, &run_id).await, RunStatus::Succeeded);
    assert_eq!(engine.syncs().get(&run_id).unwrap().trigger, "schedule");
    assert_eq!(hook.accepted_keys().len(), 3);

    // The daemon was down for two hours: eight ticks passed, one run catches up.
    clock.set(first + chrono::Duration::hours(2) + chrono::Duration::seconds(20));
    let after = scheduler.tick(engine.syncs()).await.unwrap().unwrap();
    let state = scheduler.state("up").unwrap().unwrap();
    let tick = state.ticks.last().unwrap();
    assert_eq!(tick.due, next);
    assert_eq!(tick.missed, 7, "{tick:?}");
    let run_id = started(&tick.outcome);
    assert_eq!(finished(&engine, &run_id).await, RunStatus::Succeeded);
    assert_eq!(after, first + chrono::Duration::minutes(135));
    assert_eq!(
        engine.syncs().list(Some("up"), None, 10).unwrap().len(),
        2,
        "one run per pass, not a burst"
    );

    // Another pass at the same time starts nothing.
    scheduler.tick(engine.syncs()).await.unwrap();
    assert_eq!(engine.syncs().list(Some("up"), None, 10).unwrap().len(), 2);

    // The state survives a new scheduler (a restart): same next due time.
    let again = engine.scheduler_with_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    assert_eq!(again.state("up").unwrap().unwrap().next_due, Some(after));
    engine.shutdown().await;
}

#[tokio::test]
async fn ticks_of_a_running_or_disabled_mapping_are_recorded_as_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    hook.respond_after(Duration::from_secs(2));
    let engine = engine(dir.path(), &hook, Some(every(60))).await;
    let clock = Arc::new(ManualClock::new(at("2026-03-01T10:00:00Z")));
    let scheduler = engine.scheduler_with_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let first = scheduler.tick(engine.syncs()).await.unwrap().unwrap();

    let manual = engine
        .syncs()
        .trigger("up", Default::default())
        .await
        .unwrap();
    clock.set(first);
    scheduler.tick(engine.syncs()).await.unwrap();
    let state = scheduler.state("up").unwrap().unwrap();
    assert_eq!(
        state.ticks.last().unwrap().outcome,
        TickOutcome::SkippedRunning {
            run_id: manual.id.to_string()
        }
    );
    assert_eq!(
        finished(&engine, manual.id.as_str()).await,
        RunStatus::Succeeded
    );

    engine.mappings().set_enabled("up", false).await.unwrap();
    clock.advance(Duration::from_secs(60));
    scheduler.tick(engine.syncs()).await.unwrap();
    let state = scheduler.state("up").unwrap().unwrap();
    let TickOutcome::SkippedDisabled { reason } = &state.ticks.last().unwrap().outcome else {
        panic!("{state:?}");
    };
    assert!(reason.contains("retl mapping enable up"), "{reason}");
    assert_eq!(
        engine.syncs().list(Some("up"), None, 10).unwrap().len(),
        1,
        "only the manual run"
    );

    // A changed schedule starts afresh: due at its own next time, not at once.
    engine.mappings().set_enabled("up", true).await.unwrap();
    engine
        .mappings()
        .update(
            "up",
            MappingPatch {
                schedule: Some(Some(every(3600))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let next = scheduler.tick(engine.syncs()).await.unwrap().unwrap();
    assert!(next > clock.now(), "{next}");
    assert_eq!(engine.syncs().list(Some("up"), None, 10).unwrap().len(), 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn schedules_through_the_api_show_their_next_runs_and_refuse_bad_input() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    let create = |id: &str, schedule: v1::Schedule| v1::CreateMappingRequest {
        mapping_id: id.to_string(),
        mapping: Some(v1::Mapping {
            model_id: "m".into(),
            destination_id: "hook".into(),
            action: "upsert".into(),
            fields: vec![column("email", "email")],
            schedule: Some(schedule),
            ..Default::default()
        }),
    };
    let weekdays = v1::Schedule {
        schedule: Some(v1::schedule::Schedule::DayAndTime(v1::DayAndTime {
            days: vec![v1::DayOfWeek::Monday as i32, v1::DayOfWeek::Friday as i32],
            hour: 9,
        })),
        time_zone: "Europe/Paris".into(),
    };
    let m = h
        .client
        .mappings()
        .create_mapping(create("weekly", weekdays.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.schedule, Some(weekdays));
    let status = m
        .schedule_status
        .expect("a scheduled mapping shows its next runs");
    assert_eq!(status.next_run_times.len(), 3);
    let paris = chrono_tz::Europe::Paris;
    for t in &status.next_run_times {
        let local = Utc
            .timestamp_opt(t.seconds, 0)
            .unwrap()
            .with_timezone(&paris);
        assert_eq!(local.format("%H:%M").to_string(), "09:00", "{local}");
        assert!(
            matches!(local.format("%a").to_string().as_str(), "Mon" | "Fri"),
            "{local}"
        );
    }

    let cases = [
        (
            v1::schedule::Schedule::Interval(prost_types::Duration {
                seconds: 30,
                nanos: 0,
            }),
            "",
            "too short",
        ),
        (
            v1::schedule::Schedule::Cron("61 * * * *".into()),
            "",
            "is invalid",
        ),
        (v1::schedule::Schedule::DailyAt("9h30".into()), "", "HH:MM"),
        (
            v1::schedule::Schedule::Cron("0 9 * * *".into()),
            "Mars/Olympus",
            "IANA",
        ),
        (
            v1::schedule::Schedule::AfterMapping("nope".into()),
            "",
            "does not exist",
        ),
    ];
    for (i, (kind, zone, words)) in cases.into_iter().enumerate() {
        let err = h
            .client
            .mappings()
            .create_mapping(create(
                &format!("bad{i}"),
                v1::Schedule {
                    schedule: Some(kind),
                    time_zone: zone.into(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(err.message().contains(words), "case {i}: {}", err.message());
        assert!(
            err.message().contains("mapping.schedule"),
            "{}",
            err.message()
        );
    }

    // Chained: `after` runs when `weekly` succeeds (the daemon's own scheduler).
    h.client
        .mappings()
        .create_mapping(create(
            "after",
            v1::Schedule {
                schedule: Some(v1::schedule::Schedule::AfterMapping("weekly".into())),
                time_zone: String::new(),
            },
        ))
        .await
        .unwrap();
    let run = h.sync("weekly").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let mut chained = None;
    for _ in 0..100 {
        let runs = h
            .client
            .syncs()
            .list_sync_runs(v1::ListSyncRunsRequest {
                mapping_id: "after".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .sync_runs;
        if let Some(run) = runs.into_iter().next() {
            chained = Some(run);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let chained = chained.expect("the chained mapping started after the first succeeded");
    assert_eq!(chained.trigger, "schedule");
    let run = h.wait(&chained.id).await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");

    // Removing the schedule: the mapping runs only when triggered.
    let m = h
        .client
        .mappings()
        .update_mapping(v1::UpdateMappingRequest {
            mapping: Some(v1::Mapping {
                id: "weekly".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["schedule".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((m.schedule, m.schedule_status), (None, None));
}
