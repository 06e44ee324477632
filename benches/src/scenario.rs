//! One scenario, run in its own process (so its peak RSS is its own): an in-process engine over a
//! work directory, one mapping, one sync, checked counts, and a [`ScenarioResult`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use retl_engine::catalog::destination::NewDestination;
use retl_engine::catalog::model::NewModel;
use retl_engine::catalog::source::{ConfigMap, NewSource};
use retl_engine::mapping::spec::{FieldMapping, FieldSource, InitialSync, NewMapping};
use retl_engine::sync::run::{RunCounts, RunStatus, StageTimings, SyncRun};
use retl_engine::{Engine, EngineOptions, TriggerOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::generate::{COLUMNS, DataSet, Day, Expected};
use crate::{BenchError, null_sink, peak_rss_bytes};

/// The mapping every scenario syncs.
pub const MAPPING_ID: &str = "bench";

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Scenario {
    /// 1: initial sync of every row to the null sink.
    #[value(name = "1")]
    Initial,
    /// 2: incremental sync after the day's changes (state of scenario 1).
    #[value(name = "2")]
    Incremental,
    /// 3: initial sync to the local HTTP sink, 1,000 records per request.
    #[value(name = "3")]
    Http,
    /// 4: delivery to the rate-limited HTTP sink.
    #[value(name = "4")]
    RateLimited,
    /// 5: initial sync from PostgreSQL to the null sink.
    #[value(name = "5")]
    Postgres,
    /// 6: scenario 1 keyed by `email`: the extract is not in key order, so the diff sorts.
    #[value(name = "6")]
    InitialUnordered,
    /// 7: scenario 2 keyed by `email` (state of scenario 6).
    #[value(name = "7")]
    IncrementalUnordered,
}

impl Scenario {
    /// Every scenario, in order.
    pub const ALL: [Scenario; 7] = [
        Scenario::Initial,
        Scenario::Incremental,
        Scenario::Http,
        Scenario::RateLimited,
        Scenario::Postgres,
        Scenario::InitialUnordered,
        Scenario::IncrementalUnordered,
    ];

    /// Its number.
    pub fn number(self) -> u8 {
        match self {
            Scenario::Initial => 1,
            Scenario::Incremental => 2,
            Scenario::Http => 3,
            Scenario::RateLimited => 4,
            Scenario::Postgres => 5,
            Scenario::InitialUnordered => 6,
            Scenario::IncrementalUnordered => 7,
        }
    }

    /// The incremental scenarios (they sync the next day onto the state of [`Self::initial`]).
    pub fn is_incremental(self) -> bool {
        matches!(self, Scenario::Incremental | Scenario::IncrementalUnordered)
    }

    /// The scenario whose state an incremental one starts from (itself for the others).
    pub fn initial(self) -> Scenario {
        match self {
            Scenario::Incremental => Scenario::Initial,
            Scenario::IncrementalUnordered => Scenario::InitialUnordered,
            other => other,
        }
    }

    /// The model's unique id column: `id` (the extract's order) or `email` (not its order).
    pub fn unique_id(self) -> &'static str {
        match self {
            Scenario::InitialUnordered | Scenario::IncrementalUnordered => "email",
            _ => "id",
        }
    }

    /// A short description for the table.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Initial => "initial sync → null sink",
            Scenario::Incremental => "incremental sync (2% changed) → null sink",
            Scenario::Http => "initial sync → HTTP sink, 1,000/request",
            Scenario::RateLimited => "rate-limited HTTP sink",
            Scenario::Postgres => "initial sync from PostgreSQL → null sink",
            Scenario::InitialUnordered => {
                "initial sync keyed by email (extract not in key order) → null sink"
            }
            Scenario::IncrementalUnordered => {
                "incremental sync keyed by email (2% changed, extract not in key order) → null sink"
            }
        }
    }

    /// The work directory of the scenario (1 and 2 share theirs: 2 needs 1's state).
    pub fn work_dir(self, work: &Path) -> PathBuf {
        match self {
            Scenario::Initial | Scenario::Incremental => work.join("s12"),
            Scenario::InitialUnordered | Scenario::IncrementalUnordered => work.join("s67"),
            other => work.join(format!("s{}", other.number())),
        }
    }
}

/// Rows scenario 4 sends (it measures pacing, not volume): at most this many.
pub const RATE_LIMITED_ROWS: u64 = 100_000;
/// Records per request in scenario 4.
pub const RATE_LIMITED_BATCH: usize = 100;
/// The sink's limit in scenario 4: HubSpot's 100 requests per 10 s, scaled up to 100 per second.
pub const RATE_LIMIT_PER_SECOND: u32 = 100;
/// Rows scenario 5 reads from PostgreSQL: at most this many.
pub const POSTGRES_ROWS: u64 = 1_000_000;

/// Where scenario 5 reads: a PostgreSQL server holding the day-0 table `day0`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgTarget {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// Database.
    pub database: String,
}

/// What one scenario reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Which.
    pub scenario: Scenario,
    /// Rows in the model (extracted).
    pub rows: u64,
    /// From trigger to the final run record, seconds.
    pub wall_secs: f64,
    /// Peak resident set of the scenario's process (VmHWM), bytes.
    pub peak_rss_bytes: u64,
    /// The run's counts.
    pub counts: RunCounts,
    /// The run's per-stage timings.
    pub timings: StageTimings,
}

impl ScenarioResult {
    /// Extracted rows per second of wall time.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.wall_secs.max(1e-9)
    }
}

/// What the child needs to run a scenario.
#[derive(Debug, Clone)]
pub struct ScenarioArgs {
    /// Which.
    pub scenario: Scenario,
    /// The generated data set.
    pub data: DataSet,
    /// The suite's work directory.
    pub work: PathBuf,
    /// The HTTP sink (scenarios 3 and 4).
    pub sink_url: Option<String>,
    /// The PostgreSQL server (scenario 5).
    pub pg: Option<PgTarget>,
}

fn obj(v: serde_json::Value) -> ConfigMap {
    match v {
        serde_json::Value::Object(m) => m,
        _ => ConfigMap::new(),
    }
}

/// Puts `day`'s Parquet file at `target` (a hard link when the filesystem allows, else a copy),
/// replacing what was there atomically.
fn place(data: &DataSet, day: Day, target: &Path) -> Result<(), BenchError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(BenchError::io(dir))?;
    let tmp = target.with_extension("incoming");
    let _ = std::fs::remove_file(&tmp);
    let src = data.parquet(day);
    if std::fs::hard_link(&src, &tmp).is_err() {
        std::fs::copy(&src, &tmp).map_err(BenchError::io(&src))?;
    }
    std::fs::rename(&tmp, target).map_err(BenchError::io(target))
}

/// The model's SQL over `table`, with an optional filter.
fn model_sql(table: &str, filter: Option<String>) -> String {
    let mut sql = format!("SELECT {} FROM {table}", COLUMNS.join(", "));
    if let Some(f) = filter {
        sql.push_str(" WHERE ");
        sql.push_str(&f);
    }
    sql
}

/// The largest id of the first `rows` rows of day 0 (ids are `10 * i + 10`).
fn max_id(rows: u64) -> u64 {
    10 * rows
}

/// Opens the engine of a scenario with the bench registry (retl's connectors + `null`).
async fn open_engine(dir: &Path) -> Result<Engine, BenchError> {
    let mut registry = retl_connectors::registry();
    registry.register_destination(null_sink::destination_type());
    Ok(Engine::open(&dir.join("retl-data"), registry, EngineOptions::default()).await?)
}

/// Creates the source, model, destination and mapping of a scenario.
async fn define(engine: &Engine, args: &ScenarioArgs, dir: &Path) -> Result<(), BenchError> {
    let rows = args.data.rows;
    let (source_type, source_config, sql) = match args.scenario {
        Scenario::Postgres => {
            let pg = args
                .pg
                .as_ref()
                .ok_or_else(|| BenchError::msg("scenario 5 needs a PostgreSQL server"))?;
            let filter = (rows > POSTGRES_ROWS).then(|| format!("id <= {}", max_id(POSTGRES_ROWS)));
            (
                "postgres",
                json!({"host": pg.host, "port": pg.port, "user": pg.user, "password": pg.password,
                       "database": pg.database, "sslmode": "disable"}),
                model_sql("day0", filter),
            )
        }
        other => {
            // A files source needs an absolute path (`--work` may be relative).
            let file = dir.join("warehouse").join("customers.parquet");
            let file = std::path::absolute(&file).map_err(BenchError::io(&file))?;
            let filter = (other == Scenario::RateLimited && rows > RATE_LIMITED_ROWS)
                .then(|| format!("id <= {}", max_id(RATE_LIMITED_ROWS)));
            (
                "files",
                json!({"path": file.display().to_string(), "format": "parquet", "table": "customers"}),
                model_sql("customers", filter),
            )
        }
    };
    engine
        .sources()
        .create(NewSource {
            id: Some("warehouse".into()),
            display_name: String::new(),
            source_type: source_type.into(),
            config: obj(source_config),
        })
        .await?;
    engine
        .models()
        .create(NewModel {
            id: Some("customers".into()),
            display_name: String::new(),
            source_id: "warehouse".into(),
            sql,
            unique_id: args.scenario.unique_id().into(),
        })
        .await?;
    let url = || {
        args.sink_url
            .clone()
            .ok_or_else(|| BenchError::msg("scenarios 3 and 4 need the HTTP sink's URL"))
    };
    let (destination_type, config, action) = match args.scenario {
        Scenario::Initial
        | Scenario::Incremental
        | Scenario::Postgres
        | Scenario::InitialUnordered
        | Scenario::IncrementalUnordered => (
            null_sink::NULL_TYPE,
            json!({"limits": {"batch_size": 1000, "max_in_flight": 4}}),
            null_sink::NULL_ACTION,
        ),
        Scenario::Http => (
            "webhook",
            json!({"url": url()?, "limits": {
                "requests_per_second": 1e9, "burst": 1_000_000, "batch_size": 1000,
                "max_batch_bytes": 64 * 1024 * 1024, "max_in_flight": 4}}),
            "upsert",
        ),
        Scenario::RateLimited => (
            "webhook",
            json!({"url": url()?, "limits": {
                "requests_per_second": RATE_LIMIT_PER_SECOND, "burst": 1,
                "batch_size": RATE_LIMITED_BATCH, "max_in_flight": 4}}),
            "upsert",
        ),
    };
    engine
        .destinations()
        .create(NewDestination {
            id: Some("sink".into()),
            display_name: String::new(),
            destination_type: destination_type.into(),
            config: obj(config),
            enabled: None,
        })
        .await?;
    engine
        .mappings()
        .create(NewMapping {
            id: Some(MAPPING_ID.into()),
            display_name: String::new(),
            model_id: "customers".into(),
            destination_id: "sink".into(),
            action: action.into(),
            fields: COLUMNS[1..]
                .iter()
                .map(|c| FieldMapping {
                    field: (*c).to_string(),
                    source: FieldSource::Column((*c).to_string()),
                })
                .collect(),
            selection: None,
            sync_mode: None,
            null_values: Default::default(),
            initial_sync: InitialSync::Backfill,
            enabled: None,
            schedule: None,
            retry_policy: None,
            alerts: None,
        })
        .await?;
    Ok(())
}

/// Triggers the mapping and waits for the final run record.
async fn sync(engine: &Engine) -> Result<(SyncRun, f64), BenchError> {
    let t = Instant::now();
    let run = engine
        .syncs()
        .trigger(MAPPING_ID, TriggerOptions::default())
        .await?;
    let mut rx = engine.syncs().watch(run.id.as_str())?;
    while !rx.borrow().status.is_terminal() {
        if rx.changed().await.is_err() {
            break;
        }
    }
    let wall = t.elapsed().as_secs_f64();
    let done = engine.syncs().get(run.id.as_str())?;
    Ok((done, wall))
}

/// What the counts of the run must be.
fn expected_counts(args: &ScenarioArgs) -> (u64, u64, u64, u64) {
    let e: Expected = args.data.expected;
    match args.scenario {
        Scenario::Incremental | Scenario::IncrementalUnordered => {
            (e.added, e.updated, e.deleted, e.unchanged)
        }
        Scenario::RateLimited => (args.data.rows.min(RATE_LIMITED_ROWS), 0, 0, 0),
        Scenario::Postgres => (args.data.rows.min(POSTGRES_ROWS), 0, 0, 0),
        Scenario::Initial | Scenario::Http | Scenario::InitialUnordered => {
            (args.data.rows, 0, 0, 0)
        }
    }
}

/// Fails loudly when the run did not find exactly the generated changes.
fn check(args: &ScenarioArgs, run: &SyncRun) -> Result<(), BenchError> {
    let (added, updated, deleted, unchanged) = expected_counts(args);
    let c = &run.counts;
    let expected_delivered = added + updated + deleted;
    let problems = [
        (run.status != RunStatus::Succeeded).then(|| {
            format!(
                "status {} (error: {})",
                run.status.as_str(),
                run.error.as_deref().unwrap_or("-")
            )
        }),
        (c.added != added).then(|| format!("added {} != {added}", c.added)),
        (c.updated != updated).then(|| format!("updated {} != {updated}", c.updated)),
        (c.deleted != deleted).then(|| format!("deleted {} != {deleted}", c.deleted)),
        (c.unchanged != unchanged).then(|| format!("unchanged {} != {unchanged}", c.unchanged)),
        (c.delivered != expected_delivered)
            .then(|| format!("delivered {} != {expected_delivered}", c.delivered)),
        (c.rejected + c.failed != 0)
            .then(|| format!("rejected {} failed {}", c.rejected, c.failed)),
    ];
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BenchError::msg(format!(
            "scenario {}: retl's counts differ from the generated changes: {}",
            args.scenario.number(),
            problems.join("; ")
        )))
    }
}

/// Runs one scenario in this process and returns its result (counts checked).
pub async fn run(args: ScenarioArgs) -> Result<ScenarioResult, BenchError> {
    let dir = args.scenario.work_dir(&args.work);
    let parquet_target = dir.join("warehouse").join("customers.parquet");
    match args.scenario {
        incremental if incremental.is_incremental() => {
            if !dir.join("retl-data").exists() {
                return Err(BenchError::msg(format!(
                    "scenario {} needs the state of scenario {}: run that first",
                    incremental.number(),
                    incremental.initial().number()
                )));
            }
            place(&args.data, Day::One, &parquet_target)?;
        }
        Scenario::Postgres => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        _ => {
            let _ = std::fs::remove_dir_all(&dir);
            place(&args.data, Day::Zero, &parquet_target)?;
        }
    }
    let engine = open_engine(&dir).await?;
    if !args.scenario.is_incremental() {
        define(&engine, &args, &dir).await?;
    }
    let (run, wall_secs) = sync(&engine).await?;
    engine.shutdown().await;
    check(&args, &run)?;
    Ok(ScenarioResult {
        scenario: args.scenario,
        rows: run.counts.extracted,
        wall_secs,
        peak_rss_bytes: peak_rss_bytes()?,
        counts: run.counts,
        timings: run.timings,
    })
}
