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
//! - [`engine`]: the [`Engine`] facade the server calls.
//! - [`catalog`]: stored definitions and run history.
//! - [`connector`]: descriptors connectors register; [`source`] and [`destination`]: their traits.
//!   `config_fields` (feature `test-util`): the drift check of a connector's typed config
//!   against its declared config fields.
//! - [`model`]: planning and validating model SQL, executing extracts.
//! - [`staging`]: extracts written as Parquet.
//! - [`diff`]: key encoding, fingerprints, key validation, the sort-merge differ, mass-delete guard.
//! - [`state`]: per-mapping sync state ([`state::StateStore`], RocksDB implementation).
//! - [`mapping`]: record selection and field evaluation into payloads.
//! - [`delivery`]: batching, rate limiting, retries.
//! - [`sync`]: the run itself and its record.
//!
//! # Invariants
//! - The state of a mapping advances only for records its destination acknowledged, or for
//!   changes the mapping does not select.
//! - Deletes come only from a complete extract, and a mass drop is held back until confirmed.
//! - Rows with a null or duplicated key are rejected and never touch the state.

#![deny(missing_docs)]

pub mod catalog;
#[cfg(any(test, feature = "test-util"))]
pub mod config_fields;
pub mod connector;
pub mod delivery;
pub mod destination;
pub mod diff;
pub mod engine;
pub mod error;
pub mod id;
pub mod mapping;
pub mod model;
pub mod secret;
pub mod source;
pub mod staging;
pub mod state;
pub mod store;
pub mod sync;
pub mod timestamp;

pub use engine::{Engine, EngineOptions, TriggerOptions};
pub use error::{Error, ErrorCategory, Result};
