//! retl connectors: every source and destination type retl ships, one folder each, registered in
//! one place ([`registry`]).
//!
//! # Layout
//! - `sources/`: warehouse connections (`impl retl_engine::source::Source`).
//!   - `sources/files/`: local Parquet, CSV and NDJSON files (type `files`).
//!   - `sources/postgres/`: PostgreSQL and Amazon Redshift (type `postgres`), whole models
//!     pushed down through DataFusion federation.
//!   - `sources/mysql/`: MySQL and MariaDB (type `mysql`), whole models pushed down the same
//!     way.
//!   - `sources/sqlite/`: a SQLite database file, opened read-only (type `sqlite`), whole
//!     models pushed down the same way.
//! - `destinations/`: business tools (`impl retl_engine::destination::Destination`).
//!   - `destinations/http.rs`: the shared HTTP pieces (client, status classification,
//!     `Retry-After` parsing).
//!   - `destinations/webhook/`: a generic JSON webhook (type `webhook`), **the reference
//!     connector**: copy it when writing a new HTTP destination.
//!   - `destinations/file/`: JSON lines appended to local files (type `file`), the zero-setup
//!     destination of the quickstart.
//!
//! # Division of labour with the engine
//! The engine batches, rate-limits (one limiter per destination), retries with backoff and
//! jitter, honours `Retry-After`, applies the request timeout and commits acknowledged records.
//! A connector only (1) parses and validates its configuration, (2) declares its catalog entry
//! (config fields, actions and their fields, default [`DeliveryLimits`]), and (3) makes exactly
//! **one** request per batch in `Action::send`, classifying the answer: `Ok(BatchOutcome)` with
//! one outcome per record, or a [`DestinationError`] (`Transient` for 408/425/429/5xx/timeouts
//! with the parsed `Retry-After`, `Authentication` for 401/403, `Rejected` for other 4xx).
//!
//! # How to add a connector
//! There are exactly three touch points:
//!
//! 1. **The folder.** Create `sources/<name>/` or `destinations/<name>/` with the mandatory files
//!    (STYLE.md, "Per-connector file contract"):
//!    - `mod.rs`: `//!` docs (what it connects to, links to the API docs, documented limits, the
//!      response contract) and `pub(crate) fn source_type() -> SourceType` /
//!      `pub(crate) fn destination_type() -> DestinationType`;
//!    - `config.rs`: a typed `Config` (`serde(deny_unknown_fields)`, every field documented,
//!      [`Secret`](retl_engine::secret::Secret) for credentials), its `FieldSpec`s and
//!      `validate()`; `build` must not touch the network or the filesystem;
//!    - sources: `source.rs` (`impl Source`) and `types.rs` (warehouse type → Arrow type);
//!      destinations: `actions.rs` (the `ActionSpec`s, one `enum <Name>Action`, payload
//!      encoding) and `client.rs` (auth, endpoint, the call, response → `BatchOutcome`, error
//!      classification via `destinations/http.rs`);
//!    - `tests.rs`: config, encoding and parsing unit tests plus round-trips against the
//!      emulator.
//!
//!    A folder may hold further files beside the mandatory ones, each named for its role and
//!    listed in `mod.rs`'s docs (e.g. `executor.rs` for a source that runs pushed-down SQL
//!    itself).
//!
//!    Declare the folder with one `mod <name>;` line in `sources/mod.rs` or
//!    `destinations/mod.rs`.
//! 2. **One line in [`registry`].** Never edit a shared enum per connector.
//! 3. **One testkit emulator** (destinations): `tests/testkit/src/emulators/<name>.rs`, enforcing
//!    the API's documented contract (auth, batch limits, per-record errors, 429 +
//!    `Retry-After`), so the connector's `tests.rs` and the black-box suite can run against it.
//!
//! [`DeliveryLimits`]: retl_engine::destination::DeliveryLimits
//! [`DestinationError`]: retl_engine::destination::DestinationError

#![deny(missing_docs)]

mod destinations;
mod sources;

use retl_engine::connector::Registry;

/// Every connector type retl ships: exactly one line per connector.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register_source(sources::files::source_type());
    registry.register_source(sources::postgres::source_type());
    registry.register_source(sources::sqlite::source_type());
    registry.register_source(sources::mysql::source_type());
    registry.register_destination(destinations::webhook::destination_type());
    registry.register_destination(destinations::file::destination_type());
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lists_every_connector_once() {
        let registry = registry();
        let sources: Vec<_> = registry.source_types().map(|s| s.name).collect();
        let destinations: Vec<_> = registry.destination_types().map(|d| d.name).collect();
        assert_eq!(sources, ["files", "mysql", "postgres", "sqlite"]);
        assert_eq!(destinations, ["file", "webhook"]);
        for destination in registry.destination_types() {
            assert!((destination.default_limits)().validate().is_ok());
            assert!(!destination.actions.is_empty());
        }
    }
}
