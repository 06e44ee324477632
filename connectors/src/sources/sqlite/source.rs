//! `impl Source` for SQLite: the database file and its read-only connections ([`Database`]),
//! `test`, `list_tables`, and registering the lazily resolving catalog (`catalog.rs`) whose
//! tables read through the streaming reader (`executor.rs`); errors are worded in `errors.rs`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion_table_providers::sql::db_connection_pool::DbConnectionPool;
use retl_engine::source::{ColumnInfo, Source, SourceError, SourceTestReport, TableInfo};
use rusqlite::{Connection, OpenFlags};

use super::catalog::{Resolver, columns, table_names};
use super::config::ValidConfig;
use super::errors::Phase;
use super::executor::SqlitePool;
use super::types;
use crate::sources::catalog::LazyCatalog;
use crate::sources::config::invalid;

/// The only schema of a SQLite file (attached databases are not supported).
pub(super) const SCHEMA: &str = "main";

/// A SQLite database file, read-only.
#[derive(Debug)]
pub(crate) struct SqliteSource {
    db: Arc<Database>,
}

/// The file and how to read it; shared by the source, its pool and its readers.
#[derive(Debug)]
pub(crate) struct Database {
    /// The validated configuration.
    pub(super) config: ValidConfig,
}

// ---- connections ----------------------------------------------------------------------------

impl Database {
    /// The source's file, for messages.
    pub(super) fn path(&self) -> String {
        self.config.display_path()
    }

    /// Opens the file read-only (never creating it) and reads its header, so that a missing,
    /// unreadable or non-SQLite file fails here with its own message.
    pub(crate) fn open(&self) -> Result<Connection, SourceError> {
        let path = self.path();
        match std::fs::metadata(&self.config.path) {
            Ok(meta) if meta.is_dir() => {
                return Err(invalid(
                    "path",
                    format!("{path} is a directory; give the path of the database file"),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(invalid(
                    "path",
                    format!(
                        "there is no file at {path}; check the path (retl opens SQLite databases read-only and never creates one)"
                    ),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(unreadable(&path, &e));
            }
            Err(e) => {
                return Err(SourceError::Unavailable {
                    message: format!("cannot look at {path}: {e}"),
                });
            }
        }
        if let Err(e) = std::fs::File::open(&self.config.path) {
            return Err(if e.kind() == std::io::ErrorKind::PermissionDenied {
                unreadable(&path, &e)
            } else {
                SourceError::Unavailable {
                    message: format!("cannot open {path}: {e}"),
                }
            });
        }
        // No SQLITE_OPEN_CREATE (a missing file stays missing), no URI names.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.config.path, flags)
            .map_err(|e| self.classify(&e, Phase::Open))?;
        conn.busy_timeout(self.config.busy_timeout)
            .map_err(|e| self.classify(&e, Phase::Open))?;
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| {
            row.get::<_, i64>(0)
        })
        .map_err(|e| self.classify(&e, Phase::Open))?;
        Ok(conn)
    }
}

/// The file exists but the daemon may not read it.
fn unreadable(path: &str, error: &std::io::Error) -> SourceError {
    SourceError::PermissionDenied {
        message: format!(
            "the retl daemon may not read {path} ({error}); make the file and its directories readable by the user retl runs as (read access is all it needs)"
        ),
    }
}

/// Runs `work` on the blocking pool (SQLite calls block on file I/O and locks).
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SourceError::Read {
            message: format!("the SQLite worker thread failed: {e}"),
        })?
}

// ---- Source -------------------------------------------------------------------------------

/// `1 table`, `3 tables`.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

impl SqliteSource {
    /// A source over this (validated) config; touches no filesystem.
    pub(crate) fn new(config: ValidConfig) -> Self {
        SqliteSource {
            db: Arc::new(Database { config }),
        }
    }
}

#[async_trait]
impl Source for SqliteSource {
    async fn test(&self) -> Result<SourceTestReport, SourceError> {
        let db = Arc::clone(&self.db);
        blocking(move || {
            let conn = db.open()?;
            let version: String = conn
                .query_row("SELECT sqlite_version()", [], |row| row.get(0))
                .map_err(|e| db.classify(&e, Phase::Read))?;
            let tables = table_names(&conn).map_err(|e| db.classify(&e, Phase::Read))?;
            let views = tables.iter().filter(|(_, kind)| kind == "view").count();
            let base = tables.len() - views;
            let mut warnings = Vec::new();
            if tables.is_empty() {
                warnings.push(format!(
                    "{} is a SQLite database with no tables or views yet; models will find nothing to read until it has some",
                    db.path()
                ));
            }
            Ok(SourceTestReport {
                message: format!(
                    "opened {} read-only with SQLite {version}: {} and {}; retl never writes to the file, so it needs read permission only",
                    db.path(),
                    counted(base, "table"),
                    counted(views, "view")
                ),
                warnings,
            })
        })
        .await
    }

    async fn list_tables(&self) -> Result<Vec<TableInfo>, SourceError> {
        let db = Arc::clone(&self.db);
        blocking(move || {
            let conn = db.open()?;
            let names = table_names(&conn).map_err(|e| db.classify(&e, Phase::Read))?;
            let mut tables = Vec::with_capacity(names.len());
            for (name, kind) in names {
                // A broken view is listed without columns rather than failing the listing.
                let columns = match columns(&conn, &name) {
                    Ok(columns) => columns,
                    Err(e) => {
                        tracing::warn!(table = %name, error = %e, "cannot describe a SQLite view or table");
                        Vec::new()
                    }
                };
                tables.push(TableInfo {
                    schema: SCHEMA.to_string(),
                    location: format!("{}#{name}", db.path()),
                    kind,
                    columns: columns
                        .into_iter()
                        .map(|(column, declared, not_null)| ColumnInfo {
                            data_type: match types::arrow_type(&declared) {
                                Ok(data_type) => data_type.to_string(),
                                Err(unsupported) => unsupported.to_string(),
                            },
                            name: column,
                            nullable: !not_null,
                        })
                        .collect(),
                    name,
                });
            }
            Ok(tables)
        })
        .await
    }

    async fn register(&self, ctx: &SessionContext) -> Result<(), SourceError> {
        // A missing or non-SQLite file fails here, with its own message, rather than as an
        // unknown table.
        let db = Arc::clone(&self.db);
        blocking(move || db.open().map(drop)).await?;
        crate::sources::federation::install(ctx);
        let pool: Arc<dyn DbConnectionPool<Arc<Database>, ()> + Send + Sync> =
            Arc::new(SqlitePool {
                db: Arc::clone(&self.db),
            });
        let catalog = LazyCatalog::new(Resolver {
            db: Arc::clone(&self.db),
            pool,
        });
        let state_ref = ctx.state_ref();
        let catalog_name = {
            let mut state = state_ref.write();
            let options = state.config_mut().options_mut();
            options.catalog.default_schema = SCHEMA.to_string();
            options.catalog.default_catalog.clone()
        };
        ctx.register_catalog(catalog_name, Arc::new(catalog));
        Ok(())
    }
}
