//! `impl Source` for SQLite over its [`Database`] (`database.rs`): `test`, `list_tables`, and registering the lazily resolving catalog (`catalog.rs`) whose
//! tables read through the streaming reader (`executor.rs`); errors are worded in `errors.rs`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion_table_providers::sql::db_connection_pool::DbConnectionPool;
use retl_engine::source::{ColumnInfo, Source, SourceError, SourceTestReport, TableInfo};

use super::catalog::{Resolver, columns, table_names};
use super::config::ValidConfig;
use super::database::{Database, SCHEMA, blocking};
use super::errors::Phase;
use super::executor::SqlitePool;
use super::types;
use crate::sources::catalog::LazyCatalog;

/// A SQLite database file, read-only.
#[derive(Debug)]
pub(crate) struct SqliteSource {
    db: Arc<Database>,
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
