//! The file as a DataFusion catalog with one schema, `main`: tables and views are looked up
//! in `sqlite_schema` the moment the SQL names them, and typed from their declared types.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion_table_providers::sql::db_connection_pool::DbConnectionPool;
use datafusion_table_providers::sqlite::sql_table::SQLiteTable;
use retl_engine::source::SourceError;
use rusqlite::Connection;

use super::database::{Database, SCHEMA, blocking};
use super::errors::Phase;
use super::types;
use crate::sources::catalog::TableLoader;

/// Tables and views of the file, in name order (SQLite's own `sqlite_*` tables left out).
const TABLES_SQL: &str = "SELECT name, type FROM sqlite_schema \
     WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name";

/// One table or view by name, case-insensitively as SQLite resolves names.
const LOOKUP_SQL: &str = "SELECT name, type FROM sqlite_schema \
     WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE \
     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'";

/// The readable columns of a table or view (generated columns included, the hidden columns
/// of virtual tables left out).
const COLUMNS_SQL: &str = "SELECT name, type, \"notnull\" FROM pragma_table_xinfo(?1) \
     WHERE hidden IN (0, 2, 3) ORDER BY cid";

/// A table or view as the schema describes it.
#[derive(Debug, Clone)]
pub(super) struct TableShape {
    /// The name as stored.
    name: String,
    /// `table` or `view`.
    kind: String,
    /// (name, declared type, declared NOT NULL), in order.
    columns: Vec<(String, String, bool)>,
}

/// Every table and view with its kind.
pub(super) fn table_names(conn: &Connection) -> Result<Vec<(String, String)>, rusqlite::Error> {
    let mut stmt = conn.prepare(TABLES_SQL)?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// The columns of one table or view.
pub(super) fn columns(
    conn: &Connection,
    table: &str,
) -> Result<Vec<(String, String, bool)>, rusqlite::Error> {
    let mut stmt = conn.prepare(COLUMNS_SQL)?;
    let rows = stmt.query_map([table], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            row.get::<_, i64>(2)? != 0,
        ))
    })?;
    rows.collect()
}

impl TableShape {
    /// The Arrow schema retl reads this table as, or the error naming the column that cannot
    /// be read. Every field is nullable: SQLite's NOT NULL is reported by `list_tables` but
    /// not relied on.
    pub(super) fn schema(&self) -> Result<SchemaRef, SourceError> {
        let fields = self
            .columns
            .iter()
            .map(|(column, declared, _)| match types::arrow_type(declared) {
                Ok(data_type) => Ok(Field::new(column, data_type, true)),
                Err(unsupported) => Err(SourceError::Query {
                    message: format!(
                        "{} {} cannot be read: column '{column}' has declared type {declared}, which retl cannot map to a column type ({}); create a view that converts it and use the view, e.g. CREATE VIEW {}_v AS SELECT ..., CAST({column} AS TEXT) AS {column} FROM {} (or CAST to INTEGER or REAL), or declare the column with a supported type (INTEGER, REAL, TEXT, BLOB, DECIMAL(p,s), BOOLEAN, DATE, DATETIME)",
                        self.kind, self.name, unsupported.reason, self.name, self.name
                    ),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }
}

impl Database {
    /// The table or view named `requested` (case-insensitively), if any (blocking).
    pub(super) fn describe(&self, requested: &str) -> Result<Option<TableShape>, SourceError> {
        let conn = self.open()?;
        let found = conn.query_row(LOOKUP_SQL, [requested], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        });
        let (name, kind) = match found {
            Ok(found) => found,
            Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(None),
            Err(e) => return Err(self.classify(&e, Phase::Read)),
        };
        let columns = columns(&conn, &name).map_err(|e| SourceError::Query {
            message: format!(
                "{kind} {name} cannot be read: SQLite cannot describe it ({e}); a view over a table that no longer exists must be fixed or dropped"
            ),
        })?;
        Ok(Some(TableShape {
            name,
            kind,
            columns,
        }))
    }
}

/// How the catalog looks a table or view up: the database and the pool. The catalog has one
/// schema, `main`.
pub(super) struct Resolver {
    /// The database file.
    pub(super) db: Arc<Database>,
    /// The pool the providers run pushed-down models through.
    pub(super) pool: Arc<dyn DbConnectionPool<Arc<Database>, ()> + Send + Sync>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TableLoader for Resolver {
    fn schema_names(&self) -> Vec<String> {
        vec![SCHEMA.to_string()]
    }

    fn has_schema(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(SCHEMA)
    }

    /// Looks a table or view up: `None` when it does not exist (DataFusion then reports the
    /// unknown table), an error naming the column when it cannot be read.
    async fn load(
        &self,
        _schema: &str,
        name: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, SourceError> {
        let db = Arc::clone(&self.db);
        let requested = name.to_string();
        let Some(shape) = blocking(move || db.describe(&requested)).await? else {
            return Ok(None);
        };
        let schema = shape.schema()?;
        let table = SQLiteTable::new_with_schema(
            &self.pool,
            schema,
            TableReference::bare(shape.name.as_str()),
        );
        let provider: Arc<dyn TableProvider> = Arc::new(
            Arc::new(table)
                .create_federated_table_provider()
                .map_err(|e| SourceError::Query {
                    message: format!("registering {} {} failed: {e}", shape.kind, shape.name),
                })?,
        );
        Ok(Some(provider))
    }
}
