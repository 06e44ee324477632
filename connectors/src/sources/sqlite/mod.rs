//! `sqlite`: one SQLite database file, opened read-only, with whole-query pushdown by
//! [`datafusion-federation`](https://github.com/datafusion-contrib/datafusion-federation)
//! through the SQLite dialect and table of
//! [`datafusion-table-providers`](https://github.com/datafusion-contrib/datafusion-table-providers)
//! (SQLite itself: <https://www.sqlite.org/datatype3.html>, <https://www.sqlite.org/lockingv3.html>).
//!
//! # Files
//! - `config.rs`: `SqliteConfig`, its catalog field specs, `validate()` (shape only).
//! - `database.rs`: the database file, its read-only connections, the blocking pool.
//! - `source.rs`: `impl Source`.
//! - `catalog.rs`: the file as a DataFusion catalog, resolving tables and views lazily from
//!   `sqlite_schema`.
//! - `executor.rs`: the streaming reader a pushed-down model runs through, and the table
//!   providers' connection pool over it.
//! - `errors.rs`: SQLite failures worded as `SourceError`s.
//! - `types.rs`: SQLite declared type → Arrow type (the full table is there).
//! - `decode.rs`: SQLite values → Arrow arrays of the column's type, checked value by value;
//!   `values.rs`: exact reading of single values (decimals, dates, times).
//! - `tests.rs`: config unit tests, and tests against real database files in temp dirs.
//!
//! # Configuration
//! | key | required | meaning |
//! |---|---|---|
//! | `path` | yes | absolute path of the database file; relative paths are rejected (the daemon's working directory is not the client's) |
//! | `busy_timeout_ms` | no | how long a read waits while a writer holds the lock; default 5 000; 0 = fail at once |
//! | `query_timeout_ms` | no | longest a query may run (the whole read, until its last row is handed over) before it is interrupted; default 3 600 000; 0 = none |
//!
//! Attached databases are not supported: one source reads one file (its `main` schema).
//!
//! # What the user needs
//! Read permission on the file (and on its `-wal`/`-shm` files when the database is in WAL
//! mode; SQLite may need to create `-shm`, i.e. write access to the directory, if it is
//! missing). retl opens the file with `SQLITE_OPEN_READ_ONLY` and without `SQLITE_OPEN_CREATE`:
//! it never creates, converts (no `journal_mode` change) or writes the file, so `test` has no
//! write privileges to warn about.
//!
//! # How models run
//! Nothing is opened when the source is built. `register` opens the file once (a missing,
//! unreadable or non-SQLite file fails there, with an error naming `path`), installs the
//! federation planner, and registers the file as the session's default catalog with one
//! schema, `main`: a table or view is looked up (`sqlite_schema` + `pragma_table_xinfo`) the
//! moment the SQL names it, case-insensitively as SQLite resolves names. Listing every table
//! at register time would be cheap too, but lazily a table whose columns retl cannot read
//! fails only the models that use it.
//!
//! A model whose tables all come from this file is unparsed by DataFusion into one SQLite
//! statement and executed there (joins, aggregates, filters, `LIMIT` included): the plan is a
//! single `VirtualExecutionPlan` holding the SQL text. Each query opens its own read-only
//! connection on a blocking thread and streams rows in Arrow batches of 8 192 rows through a
//! channel two batches deep, so memory stays bounded. A single SELECT sees one consistent
//! snapshot of the file (SQLite holds a shared lock, or a WAL read mark, for the whole
//! statement).
//!
//! Column names keep their case; as in PostgreSQL, the model SQL is planned by DataFusion,
//! which folds unquoted names to lower case, so a column created as `Email` is written
//! `"Email"` in a model. Table names are matched case-insensitively.
//!
//! # Errors
//! Missing file, a directory, not a SQLite database, damaged file → `InvalidConfig` on `path`;
//! file not readable by the daemon → `PermissionDenied`; locked by a writer past
//! `busy_timeout_ms` → `Unavailable` (the engine retries the extract); the file changing or
//! becoming unreadable mid-read (truncated, overwritten without SQLite's locking) →
//! `Unavailable` naming the file, and the extract is incomplete (never a short extract taken
//! as complete); a value that does not fit its column → `Read` naming the column and row; a
//! column of an unmappable declared type → `Query` naming the table, the column, the type and
//! the fix; a statement SQLite rejects → `Query`; the query timeout → `Read`.
//!
//! A file deleted, or replaced by a rename, while an extract runs does not fail it: SQLite
//! keeps reading the file it opened, so the extract is the complete snapshot the statement
//! started on, and the next run reads the new file.
//!
//! # Limits
//! - SQLite stores `DECIMAL(p,s)` values as 64-bit floats (about 15 significant digits) in
//!   SQLite itself; see `types.rs` for what retl accepts and why it never rounds.
//! - Dates and times must be stored as ISO-8601 text; numeric dates are read through a view
//!   (`datetime(col, 'unixepoch')`).
//! - A column without a declared type (including expression columns of views, except a
//!   `CAST`) is read as text; give it a type with a `CAST` in the view or in the model SQL.
//! - The model SQL is DataFusion's dialect unparsed to SQLite's: a DataFusion function SQLite
//!   does not have fails when SQLite compiles the statement (`Query`, naming SQLite's words).
//! - Attached databases, in-memory databases, URI file names and encrypted databases are not
//!   supported.
//! - The table providers' own SQLite pool is not used (it opens files read-write and creates
//!   them, sets WAL mode, reads a result into one batch, and ends a result silently at a read
//!   error); retl plugs its own read-only, streaming connection into their `SQLiteTable`.

mod catalog;
mod config;
mod database;
mod decode;
mod errors;
mod executor;
mod source;
#[cfg(test)]
mod tests;
mod types;
mod values;

use std::sync::Arc;

use retl_engine::connector::SourceType;
use retl_engine::source::{Source, SourceError};

use self::config::{CONFIG_FIELDS, SqliteConfig};
use self::source::SqliteSource;

/// The catalog entry and factory of the `sqlite` source type.
pub(crate) fn source_type() -> SourceType {
    SourceType {
        name: "sqlite",
        display_name: "SQLite",
        description: "Tables and views of a SQLite database file, opened read-only; models over it run in SQLite as one SQL statement.",
        config: CONFIG_FIELDS,
        build,
    }
}

/// Builds a SQLite source from its config; touches no filesystem.
fn build(config: &serde_json::Value) -> Result<Arc<dyn Source>, SourceError> {
    let config: SqliteConfig = crate::sources::config::parse_config(config, CONFIG_FIELDS)?;
    Ok(Arc::new(SqliteSource::new(config.validate()?)))
}
