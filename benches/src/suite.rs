//! The suite: generates (or reuses) the data, runs each scenario in a child process of this
//! binary, hosts the HTTP sink and the PostgreSQL server those children use, runs the baselines,
//! and prints a markdown table with the ratios and the targets of issue 4.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use retl_testkit::{HttpSink, RateLimit, SinkOptions, SinkStats};
use serde::{Deserialize, Serialize};

use crate::BenchError;
use crate::baseline::{self, Baseline};
use crate::generate::DataSet;
use crate::scenario::{PgTarget, RATE_LIMIT_PER_SECOND, Scenario, ScenarioResult};

/// What to run.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Rows of day 0.
    pub rows: u64,
    /// Generator seed.
    pub seed: u64,
    /// Where generated data is cached.
    pub cache: PathBuf,
    /// Where the scenarios keep their data directories (wiped per run).
    pub work: PathBuf,
    /// Where results are saved as JSON (one file per row count).
    pub results: PathBuf,
    /// The scenarios to run.
    pub scenarios: Vec<Scenario>,
    /// Run the DuckDB baseline.
    pub duckdb: bool,
    /// Run the PostgreSQL baseline.
    pub postgres: bool,
    /// The Python venv for DuckDB.
    pub venv: PathBuf,
    /// `benches/duckdb_diff.py`.
    pub duckdb_script: PathBuf,
    /// The command line to print with the table.
    pub command: String,
}

/// What the HTTP sink counted during a scenario.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SinkSummary {
    /// Requests received.
    pub requests: u64,
    /// Requests answered 200.
    pub accepted_requests: u64,
    /// Requests answered 429.
    pub throttled_requests: u64,
    /// Records in accepted requests.
    pub records: u64,
    /// Accepted requests per second (first to last accepted request).
    pub accepted_rate: f64,
    /// The sink's limit, requests per second, when it had one.
    pub limit_per_second: Option<f64>,
}

impl SinkSummary {
    fn from_stats(s: SinkStats, limit: Option<RateLimit>) -> Self {
        SinkSummary {
            requests: s.requests,
            accepted_requests: s.accepted_requests,
            throttled_requests: s.throttled_requests,
            records: s.records,
            accepted_rate: s.accepted_rate(),
            limit_per_second: limit.map(|l| f64::from(l.requests) / l.per.as_secs_f64()),
        }
    }
}

/// One scenario's row of the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioRow {
    /// The child's result.
    pub result: ScenarioResult,
    /// The sink's counters (scenarios 3 and 4).
    pub sink: Option<SinkSummary>,
}

/// The machine the suite ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: usize,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu: String,
    /// `MemTotal` of `/proc/meminfo`, bytes.
    pub memory_bytes: u64,
}

impl Machine {
    /// Reads this machine's description.
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
                .unwrap_or_else(|| "unknown CPU".to_string()),
            memory_bytes: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024),
        }
    }
}

/// Everything one suite run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteReport {
    /// Rows of day 0.
    pub rows: u64,
    /// Seed.
    pub seed: u64,
    /// UTC date.
    pub date: String,
    /// The machine.
    pub machine: Machine,
    /// The command.
    pub command: String,
    /// Seconds spent generating data in this run (0 when cached).
    pub generation_secs: f64,
    /// The scenarios.
    pub scenarios: Vec<ScenarioRow>,
    /// The baselines.
    pub baselines: Vec<Baseline>,
}

/// Runs one scenario as a child process of this binary and parses its result.
async fn child(
    opts: &SuiteOptions,
    scenario: Scenario,
    sink_url: Option<&str>,
    pg: Option<&PgTarget>,
) -> Result<ScenarioResult, BenchError> {
    let exe = std::env::current_exe().map_err(BenchError::io(Path::new("current_exe")))?;
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.arg("scenario")
        .arg(scenario.number().to_string())
        .arg("--rows")
        .arg(opts.rows.to_string())
        .arg("--seed")
        .arg(opts.seed.to_string())
        .arg("--cache")
        .arg(&opts.cache)
        .arg("--work")
        .arg(&opts.work);
    if let Some(url) = sink_url {
        cmd.arg("--sink-url").arg(url);
    }
    if let Some(pg) = pg {
        let json = serde_json::to_string(pg).map_err(|e| BenchError::msg(e.to_string()))?;
        cmd.arg("--pg").arg(json);
    }
    eprintln!(
        "scenario {}: {} ({} rows) ...",
        scenario.number(),
        scenario.title(),
        opts.rows
    );
    let output = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .stdout(Stdio::piped())
        .output()
        .await
        .map_err(BenchError::io(&exe))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(BenchError::msg(format!(
            "scenario {} failed ({}); see its error above",
            scenario.number(),
            output.status
        )));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| {
            BenchError::msg(format!(
                "scenario {} printed no RESULT line",
                scenario.number()
            ))
        })?;
    let result: ScenarioResult =
        serde_json::from_str(line).map_err(|e| BenchError::msg(format!("scenario result: {e}")))?;
    eprintln!(
        "scenario {}: {:.2} s, {:.0} rows/s, peak RSS {} MB",
        scenario.number(),
        result.wall_secs,
        result.rows_per_sec(),
        result.peak_rss_bytes / 1_000_000
    );
    Ok(result)
}

/// Deletes a scenario's work directory once it is measured (10M rows of state and staging take
/// over a GB per scenario). Scenario 1's is kept for scenario 2.
fn remove_work_dir(opts: &SuiteOptions, scenario: Scenario) {
    let dir = scenario.work_dir(&opts.work);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("could not remove {}: {e}", dir.display());
    }
}

/// Today's UTC date, `YYYY-MM-DD`.
fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Runs the suite and returns its report (also saved under `results`).
pub async fn run(opts: &SuiteOptions) -> Result<SuiteReport, BenchError> {
    let data = DataSet::at(&opts.cache, opts.rows, opts.seed);
    let wants = |s: Scenario| opts.scenarios.contains(&s);
    let need_pg = opts.postgres || wants(Scenario::Postgres);
    let generation_secs = data.ensure(need_pg)?;
    std::fs::create_dir_all(&opts.work).map_err(BenchError::io(&opts.work))?;
    let mut report = SuiteReport {
        rows: opts.rows,
        seed: opts.seed,
        date: today(),
        machine: Machine::this(),
        command: opts.command.clone(),
        generation_secs,
        scenarios: Vec::new(),
        baselines: Vec::new(),
    };

    for &scenario in &opts.scenarios {
        match scenario {
            Scenario::Initial
            | Scenario::Incremental
            | Scenario::InitialUnordered
            | Scenario::IncrementalUnordered => {
                let result = child(opts, scenario, None, None).await?;
                report.scenarios.push(ScenarioRow { result, sink: None });
                if scenario.is_incremental() {
                    remove_work_dir(opts, scenario);
                }
            }
            Scenario::Http | Scenario::RateLimited => {
                let limit = (scenario == Scenario::RateLimited).then_some(RateLimit {
                    requests: RATE_LIMIT_PER_SECOND,
                    per: std::time::Duration::from_secs(1),
                });
                let sink = HttpSink::start(SinkOptions { rate_limit: limit })
                    .await
                    .map_err(BenchError::io(Path::new("127.0.0.1:0")))?;
                let result = child(opts, scenario, Some(&sink.url()), None).await?;
                remove_work_dir(opts, scenario);
                let stats = sink.stats();
                if stats.records != result.counts.delivered {
                    return Err(BenchError::msg(format!(
                        "scenario {}: the sink counted {} records, retl reported {} delivered",
                        scenario.number(),
                        stats.records,
                        result.counts.delivered
                    )));
                }
                report.scenarios.push(ScenarioRow {
                    result,
                    sink: Some(SinkSummary::from_stats(stats, limit)),
                });
            }
            Scenario::Postgres => {}
        }
    }

    if opts.duckdb {
        eprintln!("baseline: DuckDB ...");
        report
            .baselines
            .extend(baseline::duckdb(&data, &opts.venv, &opts.duckdb_script)?);
    }

    save(opts, &report)?;
    if need_pg {
        eprintln!("baseline: PostgreSQL (start, load, diff) ...");
        let pg = baseline::start_postgres().await?;
        let result = baseline::postgres(&pg, &data).await?;
        if opts.postgres {
            report.baselines.push(result);
        }
        if wants(Scenario::Postgres) {
            let target = PgTarget {
                host: pg.host().to_string(),
                port: pg.port(),
                user: pg.user().to_string(),
                password: pg.superuser_password().to_string(),
                database: pg.database().to_string(),
            };
            let result = child(opts, Scenario::Postgres, None, Some(&target)).await?;
            remove_work_dir(opts, Scenario::Postgres);
            report.scenarios.push(ScenarioRow { result, sink: None });
        }
    }

    save(opts, &report)?;
    Ok(report)
}

/// Saves a report as `<results>/<rows>.json` (also before the PostgreSQL part, so a failure
/// there keeps what was measured).
fn save(opts: &SuiteOptions, report: &SuiteReport) -> Result<(), BenchError> {
    std::fs::create_dir_all(&opts.results).map_err(BenchError::io(&opts.results))?;
    let path = opts.results.join(format!("{}.json", opts.rows));
    let json = serde_json::to_vec_pretty(report).map_err(|e| BenchError::msg(e.to_string()))?;
    std::fs::write(&path, json).map_err(BenchError::io(&path))
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn secs(ms: u64) -> String {
    format!("{:.2}", ms as f64 / 1000.0)
}

fn mb(bytes: u64) -> String {
    format!("{}", bytes / 1_000_000)
}

/// The short size name: `1m`, `10m`, `100k`, or the number.
pub fn size_name(rows: u64) -> String {
    match rows {
        r if r >= 1_000_000 && r % 1_000_000 == 0 => format!("{}m", r / 1_000_000),
        r if r >= 1_000 && r % 1_000 == 0 => format!("{}k", r / 1_000),
        r => r.to_string(),
    }
}

/// The markdown table of a report, with ratios and targets; `other` is the saved report of
/// another size (for the memory-scaling ratio), if any.
pub fn markdown(report: &SuiteReport, other: &[SuiteReport]) -> String {
    let mut s = String::new();
    let m = &report.machine;
    let _ = writeln!(
        s,
        "### {} rows ({}), {}\n\nMachine: {} cores ({}), {:.1} GiB memory. Command: `{}`.\n",
        thousands(report.rows),
        size_name(report.rows),
        report.date,
        m.cores,
        m.cpu,
        m.memory_bytes as f64 / (1u64 << 30) as f64,
        report.command
    );
    let _ = writeln!(
        s,
        "| # | scenario | rows | wall (s) | rows/s | peak RSS (MB) | extract (s) | diff (s) | deliver wait (s) | commit (s) | notes |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut rows: Vec<&ScenarioRow> = report.scenarios.iter().collect();
    rows.sort_by_key(|r| r.result.scenario.number());
    for row in rows {
        let r = &row.result;
        let t = &r.timings;
        let c = &r.counts;
        let notes = match (r.scenario, &row.sink) {
            (Scenario::Incremental | Scenario::IncrementalUnordered, _) => format!(
                "found +{} ~{} −{}, {} unchanged (as generated)",
                thousands(c.added),
                thousands(c.updated),
                thousands(c.deleted),
                thousands(c.unchanged)
            ),
            (Scenario::RateLimited, Some(k)) => {
                let limit = k.limit_per_second.unwrap_or(f64::NAN);
                format!(
                    "{} requests of {}; {:.1} req/s achieved of {limit:.0} allowed ({:.1}%); {} throttled ({:.2}%)",
                    thousands(k.requests),
                    crate::scenario::RATE_LIMITED_BATCH,
                    k.accepted_rate,
                    100.0 * k.accepted_rate / limit,
                    k.throttled_requests,
                    100.0 * k.throttled_requests as f64 / (k.requests.max(1)) as f64
                )
            }
            (_, Some(k)) => format!(
                "{} requests, sink counted {} records",
                thousands(k.requests),
                thousands(k.records)
            ),
            _ => format!("{} delivered", thousands(c.delivered)),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario.number(),
            r.scenario.title(),
            thousands(r.rows),
            r.wall_secs,
            thousands(r.rows_per_sec() as u64),
            mb(r.peak_rss_bytes),
            secs(t.extract_ms),
            secs(t.diff_ms),
            secs(t.deliver_ms),
            secs(t.commit_ms),
            notes
        );
    }
    let wall_of = |scenario: Scenario| {
        report
            .scenarios
            .iter()
            .find(|r| r.result.scenario == scenario)
            .map(|r| r.result.wall_secs)
    };
    let ratio = |wall: Option<f64>, diff: f64| {
        wall.map_or("—".to_string(), |w| format!("{:.2}", w / diff))
    };
    let (s2, s7) = (
        wall_of(Scenario::Incremental),
        wall_of(Scenario::IncrementalUnordered),
    );
    if !report.baselines.is_empty() {
        let _ = writeln!(
            s,
            "\n| baseline: warehouse-side diff (FULL OUTER JOIN on the key, row hash) | load (s) | diff (s) | peak RSS (MB) | retl scenario 2 / baseline diff | retl scenario 7 / baseline diff |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for b in &report.baselines {
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} | {} | {} | {} |",
                b.name,
                b.load_secs.map_or("—".to_string(), |l| format!("{l:.2}")),
                b.diff_secs,
                b.peak_rss_bytes.map_or("—".to_string(), mb),
                ratio(s2, b.diff_secs),
                ratio(s7, b.diff_secs)
            );
        }
    }
    let _ = writeln!(s, "\n{}", targets(report, other));
    s
}

/// The targets, each met or missed by how much.
fn targets(report: &SuiteReport, other: &[SuiteReport]) -> String {
    let mut lines: Vec<String> = Vec::new();
    let find = |s: Scenario| report.scenarios.iter().find(|r| r.result.scenario == s);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let duck = report
        .baselines
        .iter()
        .filter(|b| b.name.starts_with("DuckDB"))
        .map(|b| b.diff_secs)
        .fold(f64::INFINITY, f64::min);
    if let Some(r2) = find(Scenario::Incremental) {
        let w = r2.result.wall_secs;
        if duck.is_finite() {
            lines.push(format!(
                "- scenario 2 / fastest DuckDB diff = {:.2} (target <= 1.0): {}",
                w / duck,
                verdict(w <= duck)
            ));
        }
        if let Some(pg) = report
            .baselines
            .iter()
            .find(|b| b.name.starts_with("PostgreSQL"))
        {
            lines.push(format!(
                "- PostgreSQL diff / scenario 2 = {:.2}x (target >= 3x): {}",
                pg.diff_secs / w,
                verdict(pg.diff_secs / w >= 3.0)
            ));
        }
    }
    if let Some(r7) = find(Scenario::IncrementalUnordered) {
        let w = r7.result.wall_secs;
        if duck.is_finite() {
            lines.push(format!(
                "- scenario 7 (scenario 2 with an extract not in key order) / fastest DuckDB diff = {:.2} (target <= 1.0): {}",
                w / duck,
                verdict(w <= duck)
            ));
        }
    }
    if let Some(r3) = find(Scenario::Http) {
        let rate = r3.result.rows_per_sec();
        lines.push(format!(
            "- scenario 3: {} rows/s (target >= 500,000): {}",
            thousands(rate as u64),
            verdict(rate >= 500_000.0)
        ));
    }
    if let Some(r4) = find(Scenario::RateLimited)
        && let Some(k) = r4.sink
    {
        let share = k.accepted_rate / k.limit_per_second.unwrap_or(f64::NAN);
        let throttled = k.throttled_requests as f64 / k.requests.max(1) as f64;
        lines.push(format!(
            "- scenario 4: {:.1}% of the allowed rate (target >= 95%), {:.2}% throttled (target <= 1%): {}",
            100.0 * share,
            100.0 * throttled,
            verdict(share >= 0.95 && throttled <= 0.01)
        ));
    }
    let peak = report
        .scenarios
        .iter()
        .map(|r| r.result.peak_rss_bytes)
        .max()
        .unwrap_or(0);
    if report.rows >= 10_000_000 {
        lines.push(format!(
            "- peak RSS at {} rows: {} MB (target <= 300 MB): {}",
            thousands(report.rows),
            mb(peak),
            verdict(peak <= 300_000_000)
        ));
    } else {
        lines.push(format!(
            "- peak RSS at {} rows: {} MB",
            thousands(report.rows),
            mb(peak)
        ));
    }
    // Scaling is judged between the sizes (1M, 10M, 100M), 10x apart.
    let scaling_pair = |o: &&SuiteReport| {
        let (a, b) = (o.rows.min(report.rows), o.rows.max(report.rows));
        a >= 1_000_000 && b == 10 * a
    };
    for o in other.iter().filter(scaling_pair) {
        let (small, large) = if o.rows < report.rows {
            (o, report)
        } else {
            (report, o)
        };
        for row in &large.scenarios {
            let Some(base) = small
                .scenarios
                .iter()
                .find(|r| r.result.scenario == row.result.scenario)
            else {
                continue;
            };
            let ratio = row.result.peak_rss_bytes as f64 / base.result.peak_rss_bytes.max(1) as f64;
            let tratio = row.result.wall_secs / base.result.wall_secs.max(1e-9);
            lines.push(format!(
                "- scenario {}: RSS({}) / RSS({}) = {ratio:.2} (target <= 1.5: {}); time ratio {tratio:.1} for {:.0}x the rows",
                row.result.scenario.number(),
                size_name(large.rows),
                size_name(small.rows),
                verdict(ratio <= 1.5),
                large.rows as f64 / small.rows as f64
            ));
        }
    }
    format!("Targets (issue 4):\n{}", lines.join("\n"))
}
