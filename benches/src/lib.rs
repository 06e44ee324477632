//! retl benchmarks: the high-volume sync suite (`retl-bench`) and the criterion
//! micro-benchmarks of the change-detection hot paths (`benches/change_detection.rs`).
//!
//! # Layout
//! - [`generate`]: the deterministic customer-like data set (Parquet + CSV) and its next day
//!   with known changes, cached by size and seed.
//! - [`null_sink`]: the bench-only `null` destination type (acknowledges everything).
//! - [`scenario`]: one scenario in its own process: engine in-process, one sync, counts checked,
//!   wall time, stage timings and peak RSS.
//! - [`baseline`]: the warehouse-side diff in DuckDB and PostgreSQL.
//! - [`suite`]: runs the scenarios as child processes and the baselines, prints the table.
//!
//! Run it with `benches/run.sh 1m` (see the README's Benchmarks section).

#![deny(missing_docs)]

pub mod baseline;
pub mod generate;
pub mod null_sink;
pub mod scenario;
pub mod suite;

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};

/// A benchmark failure, with what went wrong in words.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The engine refused or failed.
    #[error("retl: {0}")]
    Engine(#[from] retl_engine::Error),
    /// A database server of the testkit failed.
    #[error("testkit: {0}")]
    Launch(#[from] retl_testkit::LaunchError),
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Anything else, described.
    #[error("{0}")]
    Message(String),
}

impl BenchError {
    /// A described failure.
    pub fn msg(message: impl Into<String>) -> Self {
        BenchError::Message(message.into())
    }

    /// Maps an I/O error at `path`.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
        move |source| BenchError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Peak resident set size of this process (`VmHWM` of `/proc/self/status`), in bytes.
pub fn peak_rss_bytes() -> Result<u64, BenchError> {
    let path = Path::new("/proc/self/status");
    let status = std::fs::read_to_string(path).map_err(BenchError::io(path))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| BenchError::msg("no VmHWM line in /proc/self/status"))
}

/// `n` rows of an integer key column and two string columns, deterministic.
pub fn sample_columns(n: usize) -> (ArrayRef, Vec<ArrayRef>) {
    let keys: ArrayRef = Arc::new(Int64Array::from_iter_values(
        (0..n as i64).map(|i| i * 7 + 3),
    ));
    let emails: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..n).map(|i| format!("user{i}@example.com")),
    ));
    let plans: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..n).map(|i| ["free", "pro", "enterprise"][i % 3]),
    ));
    (keys, vec![emails, plans])
}
