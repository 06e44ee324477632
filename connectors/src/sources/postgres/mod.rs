//! `postgres`: a PostgreSQL database (or Amazon Redshift, `flavor: redshift`), read through
//! [`datafusion-table-providers`](https://github.com/datafusion-contrib/datafusion-table-providers)
//! with whole-query pushdown by
//! [`datafusion-federation`](https://github.com/datafusion-contrib/datafusion-federation).
//!
//! # Files
//! - `config.rs`: `PostgresConfig`, its catalog field specs, `validate()` (shape only).
//! - `source.rs`: `impl Source` (`test`, `list_tables`, `register`).
//! - `pool.rs`: the connection pool (driver parameters, reachability, handshake timeout),
//!   also used by the `postgres` destination with writing sessions.
//! - `catalog.rs`: the database as a DataFusion catalog, resolving tables lazily from
//!   `pg_catalog` and checking read access.
//! - `errors.rs`: driver and server errors (SQLSTATE codes, lost connections) worded as
//!   `SourceError`s.
//! - `types.rs`: PostgreSQL type → Arrow type (the full table is there).
//! - `tests.rs`: config unit tests, and tests against a real PostgreSQL started by the testkit.
//!
//! # Configuration
//! | key | required | meaning |
//! |---|---|---|
//! | `host` | yes | server host name or IP |
//! | `port` | no | default 5432 (5439 for `redshift`) |
//! | `database` | yes | database to read |
//! | `user` | yes | login role |
//! | `password` | no | secret; absent for trust/peer authentication |
//! | `sslmode` | no | `disable`, `prefer` (default; `require` for `redshift`), `require`, `verify-ca`, `verify-full` |
//! | `sslrootcert` | no | absolute path of a PEM file with the certificate authority of the server's certificate, trusted besides the system roots (`verify-ca`/`verify-full`) |
//! | `schema` | no | schema that unqualified table names resolve to (default `public`) |
//! | `connect_timeout_ms` | no | default 10 000 |
//! | `query_timeout_ms` | no | `statement_timeout` of every query; default 3 600 000; 0 = none |
//! | `flavor` | no | `postgres` (default) or `redshift` |
//!
//! Host, database and user may not contain whitespace, quotes, backslashes or `=` (the driver
//! builds an unquoted `key=value` connection string); the password may contain anything.
//!
//! # What the user needs (minimum grants)
//! ```sql
//! CREATE ROLE retl_reader LOGIN PASSWORD '...';
//! GRANT CONNECT ON DATABASE analytics TO retl_reader;
//! GRANT USAGE ON SCHEMA public TO retl_reader;
//! GRANT SELECT ON ALL TABLES IN SCHEMA public TO retl_reader;
//! ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO retl_reader;
//! ```
//! `test` warns when the role can also write (or is a superuser).
//!
//! # How models run
//! Nothing connects when the source is built. `register` opens a small pool (4 connections,
//! every session `default_transaction_read_only=on` and `statement_timeout` = the query
//! timeout), installs the federation planner in the session, and registers the database as the
//! session's default catalog: any `schema.table` (and bare names, in `schema`) is looked up in
//! the catalog the moment the SQL names it — one privilege check and one column query per table
//! the model uses, none for the others (listing every table at register time would cost a
//! query per table of the warehouse on every run).
//!
//! A model whose tables all come from this source is unparsed by DataFusion into one
//! PostgreSQL statement and executed there (joins, aggregates, filters, `LIMIT` included):
//! the plan is a single `VirtualExecutionPlan` holding the SQL text. Rows stream back in
//! Arrow batches of 4 000 rows. The SQL is DataFusion's dialect: a PostgreSQL-only function
//! the DataFusion planner does not know cannot be used in a model yet.
//!
//! # Errors
//! Unreachable host or port → `Unavailable`; wrong password or refused role → `Authentication`;
//! missing database or schema → `InvalidConfig` (`database`, `schema`); missing `USAGE` or
//! `SELECT` → `PermissionDenied` naming the grant; a column of an unsupported type → `Query`
//! naming the table, the column and the fix. A failure while reading is `Unavailable` when the
//! connection went away (server stopped or restarted, session terminated, network reset: the
//! engine then starts the extract again, `connection_retries` times, default 2) and `Read`
//! otherwise (a statement that would fail again; not retried). The row stream of the table
//! providers passes driver errors on as text, so a lost connection is recognised by its words
//! (`errors.rs`, `lost_connection`).
//!
//! # Limits
//! Timestamps must lie between 1677 and 2262 (Arrow nanoseconds); numerics keep 28
//! significant digits and arrays may not hold NULL elements (decoder limits, see `types.rs`).
//! The `redshift` flavor sends no startup options (no read-only session, no
//! `statement_timeout`: use Redshift WLM) and is not tested against a real cluster here.

mod catalog;
pub(crate) mod config;
pub(crate) mod errors;
pub(crate) mod pool;
mod source;
#[cfg(test)]
mod tests;
mod types;

use std::sync::Arc;

use retl_engine::connector::SourceType;
use retl_engine::source::{Source, SourceError};

use self::config::{CONFIG_FIELDS, PostgresConfig};
use self::source::PostgresSource;

/// The catalog entry and factory of the `postgres` source type.
pub(crate) fn source_type() -> SourceType {
    SourceType {
        name: "postgres",
        display_name: "PostgreSQL (and Amazon Redshift)",
        description: "Tables and views of a PostgreSQL database (or Amazon Redshift with flavor redshift); models over it run in the database as one SQL statement.",
        config: CONFIG_FIELDS,
        build,
    }
}

/// Builds a PostgreSQL source from its config; touches no network.
fn build(config: &serde_json::Value) -> Result<Arc<dyn Source>, SourceError> {
    let config: PostgresConfig = crate::sources::config::parse_config(config, CONFIG_FIELDS)?;
    Ok(Arc::new(PostgresSource::new(config.validate()?)))
}
