//! `retl`: the Reverse ETL daemon (gRPC) and its CLI client, in one binary.
//!
//! `retl serve` opens the engine over a data directory and serves the `retl.v1` API on one port
//! with gRPC health and reflection; every other subcommand is a client of that API (the same
//! tonic client code the quickstart and tests use).
//!
//! # Layout
//! - [`daemon`]: [`daemon::serve`] (listener + config + shutdown future), and
//!   [`daemon::spawn_in_process`] for tests and the quickstart.
//! - [`auth`]: the bearer-token interceptors (server check, client header).
//! - [`grpc`]: the six services over [`retl_engine::Engine`], proto conversion, error codes.
//! - [`flight`]: Arrow Flight SQL over the same SQL as `QueryService` (ADBC, JDBC, pyarrow).
//! - [`metrics`]: the Prometheus `/metrics` endpoint (its own listener, same token).
//! - [`cli`]: clap commands, output formatting, progress display, `retl quickstart`.
//!
//! # Invariants
//! - Secrets never leave the daemon: API responses carry only the names of the secret config
//!   fields that are set, and nothing logs config values or record payloads.
//! - Every call except `grpc.health.v1.Health` requires the token when one is configured; without
//!   a token the daemon only serves on a loopback address.

#![deny(missing_docs)]

pub mod auth;
pub mod cli;
pub mod daemon;
pub mod flight;
pub mod grpc;
pub mod metrics;
pub mod serve_error;

pub use daemon::{DaemonConfig, InProcessDaemon, ServeError, serve, spawn_in_process};

/// The connector registry the daemon serves: every connector retl ships.
pub fn registry() -> retl_engine::connector::Registry {
    retl_connectors::registry()
}
