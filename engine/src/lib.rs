//! retl engine: the domain of a Reverse ETL sync, with no knowledge of gRPC or of any connector.
//!
//! ```text
//! TriggerSync -> extract (DataFusion plan over the source) -> stage (Parquet)
//!   -> diff (sorted extract merged with RocksDB state: added / updated / deleted)
//!   -> select -> map (field mappings -> payloads) -> deliver (batch, rate limit, retry)
//!   -> commit (only acknowledged records advance the state) -> report (SyncRun)
//! ```
//!
//! # Layout
//! - [`engine`]: the [`Engine`], a thin handle over the services below; [`options`] its settings.
//! - [`catalog`]: stored definitions and their services (create, validate, update, delete);
//!   [`catalog::secrets`] the one home of secret handling.
//! - [`config_field`]: JSON config into typed structs, errors naming the field and its form.
//! - [`connector`]: descriptors connectors register and building them from definitions;
//!   [`source`] and [`destination`]: their traits.
//! - [`model`]: planning and validating model SQL, executing extracts, previews.
//!   `config_fields` (feature `test-util`): the drift check of a connector's typed config
//!   against its declared config fields.
//! - [`staging`]: extracts written as Parquet; [`query`]: read-only SQL over them and the
//!   system tables (runs, errors, pending records, state, catalog).
//! - [`diff`]: key encoding, fingerprints, key validation, the sort-merge differ, mass-delete guard.
//! - [`state`]: per-mapping sync state ([`state::StateStore`], RocksDB implementation).
//! - [`mapping`]: record selection and field evaluation into payloads.
//! - [`delivery`]: batching, rate limiting, retries.
//! - [`metrics`]: the Prometheus metrics the sync manager and delivery update.
//! - [`sync`]: the sync manager, the run, one module per step, run records and history.
//! - [`schedule`]: schedules, their times, the scheduler and its persisted state.
//! - [`error`] and [`category`]: errors by fault category; [`store`]: the RocksDB database;
//!   [`id`], [`secret`], [`timestamp`]: small shared types.
//!
//! # Invariants
//! - The state of a mapping advances only for records its destination acknowledged, or for
//!   changes the mapping does not select.
//! - Deletes come only from a complete extract, and a mass drop is held back until confirmed.
//! - Rows with a null or duplicated key are rejected and never touch the state.

#![deny(missing_docs)]

pub mod alert;
pub mod catalog;
pub mod category;
pub mod config_field;
#[cfg(any(test, feature = "test-util"))]
pub mod config_fields;
pub mod connector;
pub mod crash_point;
pub mod delivery;
pub mod destination;
pub mod diff;
pub mod engine;
pub mod error;
pub mod id;
pub mod mapping;
pub mod metrics;
pub mod model;
pub mod options;
pub mod query;
pub mod schedule;
pub mod secret;
pub mod source;
pub mod staging;
pub mod state;
pub mod store;
pub mod sync;
pub mod timestamp;

pub use engine::Engine;
pub use error::{Error, ErrorCategory, Result};
pub use options::EngineOptions;
pub use sync::TriggerOptions;
