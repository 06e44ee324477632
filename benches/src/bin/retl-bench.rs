//! `retl-bench`: the high-volume benchmark suite of retl (issue 4).
//!
//! - `retl-bench suite --rows 1m` generates (or reuses) the data, runs every scenario in its own
//!   process, runs the DuckDB and PostgreSQL baselines and prints a markdown table.
//! - `retl-bench generate --rows 10m` only writes the data set.
//! - `retl-bench scenario <n> ...` runs one scenario in this process (the suite's children).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use retl_benches::generate::DataSet;
use retl_benches::scenario::{self, PgTarget, Scenario, ScenarioArgs};
use retl_benches::suite::{self, SuiteOptions, SuiteReport};
use retl_benches::{BenchError, peak_rss_bytes};

/// retl's benchmark suite.
#[derive(Debug, Parser)]
#[command(name = "retl-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where data and results live by default: `$HOME/.cache/retl/`.
fn cache_root() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache")
        .join("retl")
}

/// Parses `1m`, `10M`, `100k`, `2500000`.
fn parse_rows(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase().replace(['_', ','], "");
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1_000),
        Some('m') => (&t[..t.len() - 1], 1_000_000),
        _ => (t.as_str(), 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("'{text}' is not a row count (e.g. 10k, 1m, 10m, 2500000)"))
}

/// Options shared by every command.
#[derive(Debug, clap::Args)]
struct DataArgs {
    /// Rows of the day-0 snapshot: 10k, 1m, 10m, 100m, ...
    #[arg(long, value_parser = parse_rows, default_value = "1m")]
    rows: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Generated data cache (default `$HOME/.cache/retl/bench-data`).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Scenario work directories (default `$HOME/.cache/retl/bench-work/<rows>`).
    #[arg(long)]
    work: Option<PathBuf>,
}

impl DataArgs {
    fn cache(&self) -> PathBuf {
        self.cache
            .clone()
            .unwrap_or_else(|| cache_root().join("bench-data"))
    }

    fn work(&self) -> PathBuf {
        self.work.clone().unwrap_or_else(|| {
            cache_root()
                .join("bench-work")
                .join(suite::size_name(self.rows))
        })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the suite and prints the table.
    Suite {
        #[command(flatten)]
        data: DataArgs,
        /// Scenarios to run (comma-separated), default all.
        #[arg(long, value_delimiter = ',', default_values = ["1", "2", "3", "4", "5", "6", "7"])]
        scenarios: Vec<Scenario>,
        /// Skip the DuckDB baseline.
        #[arg(long)]
        no_duckdb: bool,
        /// Skip the PostgreSQL baseline (scenario 5 still starts a server when selected).
        #[arg(long)]
        no_postgres: bool,
        /// `benches/duckdb_diff.py` (default: next to this crate's sources).
        #[arg(long)]
        duckdb_script: Option<PathBuf>,
        /// The command to print with the table (set by `benches/run.sh`).
        #[arg(
            long,
            default_value = "cargo run --release -p retl-benches --bin retl-bench -- suite"
        )]
        command_line: String,
    },
    /// Writes the data set (Parquet, and CSV with `--csv`) and prints its expected changes.
    Generate {
        #[command(flatten)]
        data: DataArgs,
        /// Also write the CSV files (for PostgreSQL).
        #[arg(long)]
        csv: bool,
    },
    /// Runs one scenario in this process and prints `RESULT <json>` (used by `suite`).
    Scenario {
        /// Which scenario.
        scenario: Scenario,
        #[command(flatten)]
        data: DataArgs,
        /// The HTTP sink's URL (scenarios 3 and 4).
        #[arg(long)]
        sink_url: Option<String>,
        /// The PostgreSQL server as JSON (scenario 5).
        #[arg(long)]
        pg: Option<String>,
    },
}

fn saved_reports(results: &std::path::Path) -> Vec<SuiteReport> {
    let Ok(entries) = std::fs::read_dir(results) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice::<SuiteReport>(&bytes).ok())
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), BenchError> {
    let cli = Cli::parse();
    match cli.command {
        Command::Suite {
            data,
            scenarios,
            no_duckdb,
            no_postgres,
            duckdb_script,
            command_line,
        } => {
            let mut scenarios = scenarios;
            scenarios.sort_by_key(|s| s.number());
            scenarios.dedup();
            // An incremental scenario syncs the next day onto the state its initial one leaves.
            for incremental in scenarios.clone() {
                let initial = incremental.initial();
                if initial != incremental && !scenarios.contains(&initial) {
                    scenarios.push(initial);
                }
            }
            scenarios.sort_by_key(|s| s.number());
            let results = cache_root().join("bench-results");
            let opts = SuiteOptions {
                rows: data.rows,
                seed: data.seed,
                cache: data.cache(),
                work: data.work(),
                results: results.clone(),
                scenarios,
                duckdb: !no_duckdb,
                postgres: !no_postgres,
                venv: cache_root().join("bench-venv"),
                duckdb_script: duckdb_script.unwrap_or_else(|| {
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("duckdb_diff.py")
                }),
                command: command_line,
            };
            let report = suite::run(&opts).await?;
            let others = saved_reports(&results);
            println!("{}", suite::markdown(&report, &others));
        }
        Command::Generate { data, csv } => {
            let set = DataSet::at(&data.cache(), data.rows, data.seed);
            let secs = set.ensure(csv)?;
            println!(
                "{}: generated in {secs:.1} s (0 = cached); expected {:?}; peak RSS {} MB",
                set.dir.display(),
                set.expected,
                peak_rss_bytes()? / 1_000_000
            );
        }
        Command::Scenario {
            scenario,
            data,
            sink_url,
            pg,
        } => {
            let pg: Option<PgTarget> = pg
                .map(|j| serde_json::from_str(&j))
                .transpose()
                .map_err(|e| BenchError::msg(format!("--pg: {e}")))?;
            let set = DataSet::at(&data.cache(), data.rows, data.seed);
            let result = scenario::run(ScenarioArgs {
                scenario,
                data: set,
                work: data.work(),
                sink_url,
                pg,
            })
            .await?;
            let json =
                serde_json::to_string(&result).map_err(|e| BenchError::msg(e.to_string()))?;
            println!("RESULT {json}");
        }
    }
    Ok(())
}
