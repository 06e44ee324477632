//! The warehouse-side diff baselines: the same change detection as a FULL OUTER JOIN of the two
//! snapshots on the key comparing a row hash, run by DuckDB (over the same Parquet files) and by
//! PostgreSQL (over the same rows loaded in tables).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use retl_testkit::PostgresServer;
use serde::{Deserialize, Serialize};

use crate::BenchError;
use crate::generate::{DataSet, Day, Expected};

/// One baseline's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    /// `DuckDB 1.x (md5 row hash)`, `PostgreSQL 15 (md5 row hash)`, ...
    pub name: String,
    /// Seconds loading both snapshots (PostgreSQL only).
    pub load_secs: Option<f64>,
    /// Seconds of the diff query.
    pub diff_secs: f64,
    /// Peak RSS of the engine's process, bytes, when measurable.
    pub peak_rss_bytes: Option<u64>,
    /// (added, updated, deleted) the query found.
    pub counts: (u64, u64, u64),
}

/// Fails loudly when a baseline's counts differ from the generated changes.
fn check(name: &str, counts: (u64, u64, u64), e: &Expected) -> Result<(), BenchError> {
    if counts != (e.added, e.updated, e.deleted) {
        return Err(BenchError::msg(format!(
            "{name}: found (added, updated, deleted) = {counts:?}, expected ({}, {}, {})",
            e.added, e.updated, e.deleted
        )));
    }
    Ok(())
}

/// The bench's Python venv with `duckdb` (created on first use).
fn venv_python(venv: &Path) -> Result<PathBuf, BenchError> {
    let python = venv.join("bin").join("python");
    let ok = |p: &Path| {
        Command::new(p)
            .args(["-c", "import duckdb"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok(&python) {
        return Ok(python);
    }
    eprintln!("creating {} with duckdb from PyPI ...", venv.display());
    let status = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(venv)
        .status()
        .map_err(BenchError::io(venv))?;
    if !status.success() {
        return Err(BenchError::msg("python3 -m venv failed"));
    }
    let status = Command::new(venv.join("bin").join("pip"))
        .args(["install", "-q", "duckdb"])
        .status()
        .map_err(BenchError::io(venv))?;
    if !status.success() || !ok(&python) {
        return Err(BenchError::msg("pip install duckdb failed"));
    }
    Ok(python)
}

/// Runs `benches/duckdb_diff.py` with each row hash (`md5`, `native`).
pub fn duckdb(data: &DataSet, venv: &Path, script: &Path) -> Result<Vec<Baseline>, BenchError> {
    let python = venv_python(venv)?;
    let mut out = Vec::new();
    for hash in ["md5", "native"] {
        let output = Command::new(&python)
            .arg(script)
            .arg(data.parquet(Day::Zero))
            .arg(data.parquet(Day::One))
            .args(["--hash", hash])
            .output()
            .map_err(BenchError::io(script))?;
        if !output.status.success() {
            return Err(BenchError::msg(format!(
                "duckdb baseline failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| BenchError::msg(format!("duckdb baseline output: {e}")))?;
        let n = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(u64::MAX)
        };
        let name = format!(
            "DuckDB {} ({} threads, {})",
            v.get("version").and_then(|s| s.as_str()).unwrap_or("?"),
            n("threads"),
            if hash == "md5" {
                "md5 row hash"
            } else {
                "native hash()"
            }
        );
        let counts = (n("added"), n("updated"), n("deleted"));
        check(&name, counts, &data.expected)?;
        out.push(Baseline {
            name,
            load_secs: None,
            diff_secs: v
                .get("diff_secs")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(f64::NAN),
            peak_rss_bytes: Some(n("peak_rss_bytes")),
            counts,
        });
    }
    Ok(out)
}

/// The table definition of a snapshot in PostgreSQL.
const PG_COLUMNS: &str = "id bigint NOT NULL, email text NOT NULL, name text NOT NULL, \
    phone text, plan text NOT NULL, ltv numeric(12,2) NOT NULL, \
    signup_at timestamptz NOT NULL, active boolean";

/// The session settings of the PostgreSQL baseline: the same memory budget as retl's diff sort
/// (256 MB), and parallel workers for the two cores.
pub const PG_SESSION: &str = "SET work_mem = '256MB'; SET max_parallel_workers_per_gather = 2;";

/// Server settings applied before the baseline (then a restart).
pub const PG_SERVER: [&str; 1] = ["ALTER SYSTEM SET shared_buffers = '1GB'"];

/// How long a load or the diff may take (the testkit's 30 s default killed the 10M diff).
const PG_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Starts a PostgreSQL server tuned for the baseline.
pub async fn start_postgres() -> Result<PostgresServer, BenchError> {
    let mut pg = PostgresServer::start().await?;
    for setting in PG_SERVER {
        // ALTER SYSTEM cannot run in the transaction block of a multi-statement -c.
        pg.psql(setting).await?;
    }
    pg.stop().await?;
    pg.start_again().await?;
    Ok(pg)
}

/// Loads both snapshots into tables `day0` and `day1` (timed together), then runs the diff.
///
/// The tables are `UNLOGGED`, as bulk-loaded staging tables of a warehouse-side diff would be:
/// no WAL is written (faster loads, and no WAL of twice the data on disk).
pub async fn postgres(pg: &PostgresServer, data: &DataSet) -> Result<Baseline, BenchError> {
    let t = Instant::now();
    for (table, day) in [("day0", Day::Zero), ("day1", Day::One)] {
        pg.psql(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE UNLOGGED TABLE {table} ({PG_COLUMNS})"
        ))
        .await?;
        // psql's \copy streams the client's file: the server needs no access to it.
        pg.psql_for(
            &format!(
                "\\copy {table} FROM '{}' WITH (FORMAT csv, HEADER true)",
                data.csv(day).display()
            ),
            PG_STATEMENT_TIMEOUT,
        )
        .await?;
    }
    for table in ["day0", "day1"] {
        pg.psql_for(&format!("VACUUM ANALYZE {table}"), PG_STATEMENT_TIMEOUT)
            .await?;
    }
    let load_secs = t.elapsed().as_secs_f64();
    let h = |t: &str| {
        format!(
            "md5(ROW({t}.email, {t}.name, {t}.phone, {t}.plan, {t}.ltv, {t}.signup_at, {t}.active)::text)"
        )
    };
    let sql = format!(
        "{PG_SESSION} \
         SELECT count(*) FILTER (WHERE prev.id IS NULL), \
                count(*) FILTER (WHERE prev.id IS NOT NULL AND cur.id IS NOT NULL AND prev.h <> cur.h), \
                count(*) FILTER (WHERE cur.id IS NULL) \
         FROM (SELECT id, {} AS h FROM day0 p) prev \
         FULL OUTER JOIN (SELECT id, {} AS h FROM day1 c) cur ON prev.id = cur.id",
        h("p"),
        h("c")
    );
    let t = Instant::now();
    let out = pg.psql_for(&sql, PG_STATEMENT_TIMEOUT).await?;
    let diff_secs = t.elapsed().as_secs_f64();
    // psql prints the tags of the SET statements first; the counts are the last line.
    let nums: Vec<u64> = out
        .lines()
        .last()
        .unwrap_or_default()
        .split('|')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let counts = match nums[..] {
        [a, u, d] => (a, u, d),
        _ => {
            return Err(BenchError::msg(format!(
                "postgres baseline: unexpected output {out:?}"
            )));
        }
    };
    let version = pg.psql("SHOW server_version").await.unwrap_or_default();
    let name = format!(
        "PostgreSQL {} (md5 row hash)",
        version.split_whitespace().next().unwrap_or("?")
    );
    check(&name, counts, &data.expected)?;
    Ok(Baseline {
        name,
        load_secs: Some(load_secs),
        diff_secs,
        peak_rss_bytes: None,
        counts,
    })
}
