//! `mysql`: a MySQL or MariaDB server, read through
//! [`datafusion-table-providers`](https://github.com/datafusion-contrib/datafusion-table-providers)
//! (its `mysql_async` pool and row decoder) with whole-query pushdown by
//! [`datafusion-federation`](https://github.com/datafusion-contrib/datafusion-federation).
//! Tested against MariaDB 10.11; MySQL 8 speaks the same protocol and catalog.
//!
//! # Files
//! - `config.rs`: `MySqlConfig`, its catalog field specs, `validate()` (shape only).
//! - `source.rs`: the connection pool and server facts, `impl Source` (`test`, `list_tables`,
//!   `register`).
//! - `catalog.rs`: the server as a DataFusion catalog, resolving tables lazily from
//!   `information_schema` and wrapping each for federation.
//! - `executor.rs`: the executor that runs a pushed-down model on its own read-only connection
//!   and streams its rows as Arrow batches cast to the planned types.
//! - `errors.rs`: driver, pool and server errors worded as `SourceError`s.
//! - `types.rs`: MySQL type → Arrow type (the full table is there).
//! - `tests.rs`: config unit tests, and tests against a real MariaDB started by the testkit.
//!
//! # Configuration
//! | key | required | meaning |
//! |---|---|---|
//! | `host` | yes | server host name or IP |
//! | `port` | no | default 3306 |
//! | `database` | yes | database that unqualified table names resolve to; others are written `database.table` |
//! | `user` | yes | login user |
//! | `password` | no | secret |
//! | `sslmode` | no | `disabled`; `preferred` (default: TLS when the server offers it, else plain TCP; certificate not verified); `required` (TLS, certificate not verified); `verify_identity` (TLS, certificate and host name verified) |
//! | `sslrootcert` | no | PEM file of CAs to trust for `verify_identity` (default: system roots); checked readable and PEM before connecting |
//! | `connect_timeout_ms` | no | default 10 000 |
//! | `query_timeout_ms` | no | per model query: MariaDB `max_statement_time` / MySQL `max_execution_time`; default 3 600 000; 0 = none |
//!
//! # What the user needs (minimum grants)
//! ```sql
//! CREATE USER 'retl_reader'@'%' IDENTIFIED BY '...';
//! GRANT SELECT ON analytics.* TO 'retl_reader'@'%';   -- or on single tables: analytics.users
//! ```
//! `SELECT` is all retl needs (also for `information_schema`, which shows each user what it may
//! read). `test` warns when the user can also write (`INSERT`, `UPDATE`, `DELETE`, `DROP`,
//! `ALTER`, ... at any level) or holds global privileges such as `SUPER`.
//!
//! # How models run
//! Nothing connects when the source is built. `register` opens a small pool (4 connections,
//! over TCP even to 127.0.0.1, session time zone `+00:00` and `utf8mb4`), installs the
//! federation planner in the session, and registers the server as the session's default
//! catalog: `table` (in `database`) and `other_database.table` are looked up in
//! `information_schema` the moment the SQL names them — one query per table the model uses.
//!
//! A model whose tables all come from this source is unparsed by DataFusion into one MySQL
//! statement and executed there (joins, aggregates, filters, `LIMIT` included): the plan is a
//! single `VirtualExecutionPlan` holding the SQL text. Before it runs, its connection is set
//! to `SET SESSION TRANSACTION READ ONLY` and the query timeout. Rows stream back through the
//! binary protocol without buffering the result, decoded in Arrow batches of 4 000 rows, at
//! most two batches ahead of the consumer. The SQL is DataFusion's dialect: a MySQL-only
//! function the DataFusion planner does not know cannot be used in a model yet.
//!
//! # Errors
//! Unreachable host or port → `Unavailable`; wrong password (1045) or a host the user may not
//! connect from (1130) → `Authentication`; unknown database (1049) → `InvalidConfig`
//! (`database`); no privilege on the database (1044) or table (1142, 1143) →
//! `PermissionDenied` naming the `GRANT`; a column of an unsupported type → `Query` naming the
//! table, the column and the fix; the connection lost or killed mid-read → `Unavailable`
//! (the read fails: a short extract is never taken for complete); the query timeout → `Read`.
//! An `sslrootcert` that cannot be read or holds no PEM certificate → `InvalidConfig`
//! (`sslrootcert`); a server certificate `verify_identity` does not accept → `Unavailable`
//! saying what it was checked against and to set `sslrootcert`; `required` or
//! `verify_identity` against a server without TLS → `Unavailable`.
//!
//! # Limits
//! - `time` values outside 00:00–24:00 (MySQL allows ±838 h) fail the read (decoder limit).
//! - `boolean` is `tinyint(1)` and reads as `Int8`.
//! - `geometry` types and `vector` are unsupported (a view with `ST_AsText` helps).
//! - Read-only session and query timeout apply to models pushed down whole, which is every
//!   model over one source. A plan the federation cannot push down (none known) would read
//!   each table through the providers' own scan, without them; the grants are the control
//!   that matters (a user with `SELECT` only cannot write whatever the session says).
//! - A user whose tables are readable only through a role (`SET ROLE`) is not supported: the
//!   role is not activated.

mod catalog;
pub(crate) mod config;
pub(crate) mod errors;
mod executor;
pub(crate) mod shared;
pub(crate) mod source;
#[cfg(test)]
mod tests;
mod types;

use std::sync::Arc;

use retl_engine::connector::SourceType;
use retl_engine::source::{Source, SourceError};

use self::config::{CONFIG_FIELDS, MySqlConfig};
use self::source::MySqlSource;

/// The catalog entry and factory of the `mysql` source type.
pub(crate) fn source_type() -> SourceType {
    SourceType {
        name: "mysql",
        display_name: "MySQL and MariaDB",
        description: "Tables and views of a MySQL or MariaDB server; models over it run in the server as one SQL statement.",
        config: CONFIG_FIELDS,
        build,
    }
}

/// Builds a MySQL source from its config; touches no network.
fn build(config: &serde_json::Value) -> Result<Arc<dyn Source>, SourceError> {
    let config: MySqlConfig = crate::sources::config::parse_config(config, CONFIG_FIELDS)?;
    Ok(Arc::new(MySqlSource::new(config.validate()?)))
}
