//! `file`: appends every change as one JSON line to local files. The zero-setup destination of
//! the quickstart, and a way to see exactly what a mapping would send.
//!
//! # Files
//! - `config.rs`: `FileConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the `append_changes` action spec, `FileAction`, and the `Action` impl that
//!   encodes the batch (`destinations/change_lines.rs`, shared with `s3`) and calls the writer.
//! - `client.rs`: the writer: one durable append per batch to the run's file.
//! - `tests.rs`: encoding and file layout unit tests, errors, the config drift test.
//!
//! No emulator: the output is local files, which the conformance suite
//! (`tests/it/destinations/file.rs`) reads back.
//!
//! # Configuration
//! | key | required | meaning |
//! |---|---|---|
//! | `directory` | yes | directory written under; created when missing |
//! | `limits` | no | overrides of the delivery limits below (handled by the engine) |
//!
//! # Action `append_changes` (mirror: added, updated and deleted records)
//! Each record becomes one line of `<directory>/<mapping id>/<run id>.jsonl` (one file per run):
//!
//! ```json
//! {"op":"upsert","change":"added","key":42,"fields":{"email":"a@example.com"},"mapping":"m","run":"0192…"}
//! {"op":"delete","change":"deleted","key":7,"mapping":"m","run":"0192…"}
//! ```
//!
//! `op` is `upsert` for added and updated records and `delete` for deleted ones, which carry no
//! `fields`. A batch is acknowledged only after its lines are written and `fsync`ed; a failed
//! write is cut back so a retry never leaves a torn line. Appends of one destination are
//! serialised.
//!
//! # Limits
//! Defaults: 1,000,000 requests/s (effectively unlimited), burst 1,000, 1,000 records and
//! 64 MiB per batch, 1 batch in flight (appends must not interleave), 3 attempts.
//!
//! # Test
//! `TestDestination` creates the directory when missing and writes (then removes) a probe file.
//!
//! # Not covered
//! CSV and Parquet output: a run is one file appended batch by batch, a Parquet file cannot
//! be appended to (its footer ends it), and a CSV header needs the mapped field names, which a
//! run whose first batch holds only deletes does not have. The `s3` destination with a
//! `file:///directory/` URL writes JSON lines, CSV or Parquet locally, one file per batch
//! under a folder per run (`destinations/change_files.rs`).

mod actions;
mod client;
mod config;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use retl_engine::connector::DestinationType;
use retl_engine::destination::{
    Action, ActionSpec, DeliveryLimits, Destination, DestinationError, undeclared_action,
};

use self::actions::{ACTIONS, BoundAction, FileAction};
use self::client::FileWriter;
use self::config::{CONFIG_FIELDS, FileConfig};

/// The catalog entry and factory of the `file` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "file",
        display_name: "Local files (JSON lines)",
        description: "Appends every change as one JSON line to <directory>/<mapping id>/<run id>.jsonl on the daemon's machine.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The documented default limits of local files.
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 1_000_000.0,
        burst: 1_000,
        batch_size: 1_000,
        max_batch_bytes: 64 * 1024 * 1024,
        max_in_flight: 1,
        max_attempts: 3,
        initial_backoff_ms: 100,
        max_backoff_ms: 5_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds a file destination from its config; no filesystem access. The limits are enforced
/// by the engine alone (a local write has no request timeout of its own).
fn build(
    config: &serde_json::Value,
    _limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(FileDestination::new(config)?))
}

/// A configured output directory.
#[derive(Debug)]
pub(crate) struct FileDestination {
    writer: Arc<FileWriter>,
}

impl FileDestination {
    /// Parses and validates the config.
    pub(crate) fn new(config: &serde_json::Value) -> Result<Self, DestinationError> {
        let config: FileConfig = crate::destinations::parse_config(config)?;
        let directory = config.validate()?;
        Ok(FileDestination {
            writer: Arc::new(FileWriter::new(directory)),
        })
    }
}

#[async_trait]
impl Destination for FileDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.writer.check_writable().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action = FileAction::from_spec(spec).ok_or_else(|| undeclared_action("file", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            writer: Arc::clone(&self.writer),
        }))
    }
}
