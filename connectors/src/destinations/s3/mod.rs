//! `s3`: every change as a JSON line, a CSV row or a Parquet row in objects of an S3 bucket (or
//! an S3-compatible service), through the `object_store` crate DataFusion also uses: one object
//! per batch under a folder per run, `<prefix><mapping id>/<run id>/part-<hash>.<extension>`
//! (`.jsonl`, `.csv` or `.parquet`, from the `format` config field).
//!
//! # Files
//! - `config.rs`: `S3Config`, its catalog config fields, `validate()`.
//! - `actions.rs`: the `write_changes` action spec, `S3Action`, the object key of a batch, and
//!   the `Action` impl (the encodings are `destinations/change_files.rs`: JSON lines from
//!   `destinations/change_lines.rs`, shared with the `file` destination, CSV and Parquet).
//! - `client.rs`: the object store (opened on first use), one `PutObject` per batch with its
//!   `Content-Type`, `LIST` for `test()`, errors.
//! - `tests.rs`: object keys, config, each format read back (Arrow's CSV reader, the Parquet
//!   reader), writes through the object store's local filesystem backend, content types
//!   through its in-memory backend.
//!
//! **Tested against `object_store`'s local filesystem backend** (`url: file:///directory/`),
//! which runs the same object store calls on local files: no S3-compatible server that a Rust
//! crate provides builds cheaply here. The `s3://` path (request signing, S3's answers) is the
//! `object_store` crate's own and is not exercised by retl's tests; the `Content-Type` of an
//! object is checked through `object_store`'s in-memory backend, which keeps it as S3 does (the
//! local filesystem backend keeps none, so it is only set for `s3://`).
//!
//! # API
//! - `PutObject` of the batch's object (`Content-Length` known; no multipart upload): an
//!   object is written whole or not at all, so a batch is acknowledged only after S3 stored it
//!   (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html>). Its
//!   `Content-Type` is `application/x-ndjson`, `text/csv; charset=utf-8; header=present` or
//!   `application/vnd.apache.parquet`.
//! - The object key ends with a hash of the batch's changes and keys: a batch sent again (its
//!   answer lost) overwrites its own object, it is not written twice.
//! - A run's changes are the objects under `<mapping id>/<run id>/`: the engine sends no "run
//!   finished" signal, and a batch must be durable before it is acknowledged, so a run is a
//!   folder of parts (one per batch) rather than one object written at the end.
//! - Authentication: `access_key_id` and `secret_access_key` (and `session_token`), else the
//!   daemon's environment (`AWS_ACCESS_KEY_ID`, ..., instance or container credentials).
//!
//! # Formats (`format`)
//! - `jsonl` (default): a line per record, `{"op":"upsert","change":"added","key":1,
//!   "fields":{...},"mapping":"m","run":"r"}` (`op` `delete` and no `fields` for a deleted
//!   record): the `file` destination's format.
//! - `csv`: RFC 4180 with a header row; columns `op`, `change`, `key`, then the mapped fields
//!   in the mapping's order; nested values as JSON text; a deleted record's field columns are
//!   empty, as are nulls.
//! - `parquet`: the same columns, typed from the batch's values (integers `Int64`, other
//!   numbers `Float64`, booleans `Boolean`; strings, timestamps, objects and arrays, mixed or
//!   all-null columns `Utf8`, nested values as JSON text), zstd-compressed, one row group per
//!   object, the mapping and run ids in the file's metadata.
//!
//! `destinations/change_files.rs` documents the columns and the typing rule. In CSV and
//! Parquet a mapped field may not be named `op`, `change` or `key` (a batch with one is
//! refused, naming the field).
//!
//! # Limits (documented)
//! - One `PutObject` uploads at most 5 GB
//!   (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/upload-objects.html>).
//! - At least 3,500 `PUT`/`COPY`/`POST`/`DELETE` requests per second per partitioned prefix;
//!   above that S3 answers `503 SlowDown`
//!   (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html>),
//!   which is retried with backoff (there is no `Retry-After`).
//!
//! Defaults: 5,000 records or 64 MiB per object (retl's choice, far under 5 GB), 100 objects/s
//! (under 3,500), 4 in flight, 5 attempts, 120 s per request. The object store's own retries are
//! off: the engine retries.
//!
//! # Test
//! `TestDestination` lists the prefix (`ListObjectsV2`, changes nothing; needs
//! `s3:ListBucket`).
//!
//! # Not covered
//! One object per run (a run is a folder of parts), one schema per run for CSV and Parquet
//! (each object is typed from its own batch), Parquet types from the model's Arrow types
//! (the engine hands destinations JSON values), partitioned layouts (`key=value/` folders),
//! compression of JSON lines and CSV, multipart uploads, server-side encryption settings
//! (SSE-KMS keys), object tags and user metadata, Google Cloud Storage and Azure (other
//! `object_store` backends, not enabled), and the `s3://` path against a real S3 or
//! S3-compatible server (untested here).

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

use self::actions::{ACTIONS, BoundAction, S3Action};
use self::client::S3Client;
use self::config::{CONFIG_FIELDS, S3Config};

/// The catalog entry and factory of the `s3` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "s3",
        display_name: "Amazon S3 (JSON lines, CSV, Parquet)",
        description: "Writes every change as a JSON line, CSV row or Parquet row to objects of an S3 bucket or S3-compatible service, one object per batch under <prefix><mapping id>/<run id>/.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 100.0,
        burst: 100,
        batch_size: 5_000,
        max_batch_bytes: 64 * 1024 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 500,
        max_backoff_ms: 30_000,
        timeout_ms: 120_000,
        daily_request_budget: None,
    }
}

/// Builds an S3 destination from its config; touches neither the network nor the filesystem.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(S3Destination::new(config, &limits)?))
}

/// A configured bucket and prefix.
#[derive(Debug)]
pub(crate) struct S3Destination {
    client: Arc<S3Client>,
}

impl S3Destination {
    /// Parses and validates the config.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: S3Config = crate::destinations::parse_config(config)?;
        Ok(S3Destination {
            client: Arc::new(S3Client::new(config.validate()?, limits.timeout())),
        })
    }
}

#[async_trait]
impl Destination for S3Destination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action = S3Action::from_spec(spec).ok_or_else(|| undeclared_action("s3", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
