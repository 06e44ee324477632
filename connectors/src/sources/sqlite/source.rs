//! `impl Source` for SQLite: read-only connections, error wording, the streaming reader, the
//! lazily resolving catalog registered in DataFusion, `test` and `list_tables`.
//!
//! The table providers' own SQLite pool is not used: it opens the file read-write (creating
//! a missing file), switches it to WAL mode, reads a whole result into one batch, and ends a
//! result early when SQLite reports an error mid-read. retl keeps their `SQLiteTable` (SQLite
//! dialect, federation) and plugs in [`SqlitePool`], whose connections open the file
//! read-only and stream rows through [`ColumnDecoder`]s.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::{
    AsyncDbConnection, DbConnection, Error as DbError, GenericError, TableSchemas,
};
use datafusion_table_providers::sql::db_connection_pool::{DbConnectionPool, JoinPushDown};
use datafusion_table_providers::sqlite::sql_table::SQLiteTable;
use futures::StreamExt;
use retl_engine::source::{ColumnInfo, Source, SourceError, SourceTestReport, TableInfo};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::config::ValidConfig;
use super::types::{self, ColumnDecoder};
use crate::sources::catalog::{LazyCatalog, TableLoader, external};
use crate::sources::config::invalid;

/// Rows per Arrow batch.
const BATCH_ROWS: usize = 8_192;
/// Batches buffered between the reader thread and the consumer (memory stays bounded).
const CHANNEL_BATCHES: usize = 2;
/// The only schema of a SQLite file (attached databases are not supported).
const SCHEMA: &str = "main";

/// A SQLite database file, read-only.
#[derive(Debug)]
pub(crate) struct SqliteSource {
    db: Arc<Database>,
}

/// The file and how to read it; shared by the source, its pool and its readers.
#[derive(Debug)]
pub(crate) struct Database {
    config: ValidConfig,
}

// ---- connections and errors -----------------------------------------------------------------

/// What was being done when SQLite failed (the same code means different things).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Opening the file and reading its header.
    Open,
    /// Compiling a statement.
    Prepare,
    /// Stepping through rows.
    Read,
}

impl Database {
    /// The source's file, for messages.
    fn path(&self) -> String {
        self.config.display_path()
    }

    /// Words a SQLite failure for the user.
    fn classify(&self, error: &rusqlite::Error, phase: Phase) -> SourceError {
        let path = self.path();
        let rusqlite::Error::SqliteFailure(failure, message) = error else {
            return SourceError::Read {
                message: format!("reading SQLite database {path} failed: {error}"),
            };
        };
        let detail = message.clone().unwrap_or_else(|| failure.to_string());
        match failure.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => SourceError::Unavailable {
                message: format!(
                    "SQLite database {path} is locked by a connection that is writing to it ({detail}), and the lock was not released within busy_timeout_ms = {} ms; try again when the writer is done, raise busy_timeout_ms, or switch the database to WAL mode (PRAGMA journal_mode=WAL) so that readers never wait for writers",
                    self.config.busy_timeout.as_millis()
                ),
            },
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt | ErrorCode::SystemIoFailure
                if phase == Phase::Read =>
            {
                SourceError::Unavailable {
                    message: format!(
                        "SQLite database {path} changed or became unreadable while it was being read ({detail}); was it replaced, truncated or written to without SQLite's locking? The extract is incomplete"
                    ),
                }
            }
            ErrorCode::NotADatabase => invalid(
                "path",
                format!(
                    "{path} is not a SQLite database ({detail}); check the path (an encrypted database cannot be read either)"
                ),
            ),
            ErrorCode::DatabaseCorrupt => invalid(
                "path",
                format!(
                    "SQLite database {path} is damaged ({detail}); restore it from a backup or check it with sqlite3 {path} 'PRAGMA integrity_check'"
                ),
            ),
            ErrorCode::CannotOpen => SourceError::Unavailable {
                message: format!(
                    "SQLite cannot open {path} read-only ({detail}); a database in WAL mode also needs its -wal and -shm files to be readable, or its directory to be writable so that SQLite can create them"
                ),
            },
            ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::AuthorizationForStatementDenied => SourceError::PermissionDenied {
                message: format!(
                    "SQLite refused to read {path} ({detail}); make the file readable by the user the retl daemon runs as"
                ),
            },
            ErrorCode::OperationInterrupted => SourceError::Read {
                message: format!("the query on {path} was interrupted ({detail})"),
            },
            ErrorCode::SystemIoFailure => SourceError::Unavailable {
                message: format!("reading SQLite database {path} failed ({detail})"),
            },
            _ if phase == Phase::Prepare => SourceError::Query {
                message: format!(
                    "SQLite rejected the statement retl generated from the model ({detail}); the model's SQL is planned by DataFusion and run in SQLite, so use functions both know"
                ),
            },
            _ => SourceError::Read {
                message: format!("reading SQLite database {path} failed ({detail})"),
            },
        }
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
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SourceError::Read {
            message: format!("the SQLite worker thread failed: {e}"),
        })?
}

// ---- streaming reads ------------------------------------------------------------------------

/// What the reader thread sends to the stream.
enum Message {
    /// The next rows.
    Batch(RecordBatch),
    /// The read failed; nothing follows.
    Failed(SourceError),
    /// Every row was read.
    Done,
}

impl Database {
    /// Runs `sql` in SQLite and streams its rows as `schema`, in batches of [`BATCH_ROWS`].
    ///
    /// The rows are read on a blocking thread and handed over through a channel of
    /// [`CHANNEL_BATCHES`] batches, so memory stays bounded however many rows there are.
    /// The stream ends only after the reader reported `Done`: an error from SQLite at any row
    /// (or a reader that stopped without finishing) is an error of the stream, never a short
    /// result. Dropping the stream interrupts the query; so does the query timeout.
    pub(crate) fn stream(
        self: &Arc<Self>,
        sql: String,
        schema: SchemaRef,
    ) -> SendableRecordBatchStream {
        let db = Arc::clone(self);
        let out_schema = Arc::clone(&schema);
        let start = async move {
            let (tx, rx) = mpsc::channel::<Message>(CHANNEL_BATCHES);
            let (handle_tx, handle_rx) = oneshot::channel::<rusqlite::InterruptHandle>();
            let (done_tx, done_rx) = oneshot::channel::<()>();
            let timed_out = Arc::new(AtomicBool::new(false));
            let watch_tx = tx.clone();
            let reader_db = Arc::clone(&db);
            let reader_timed_out = Arc::clone(&timed_out);
            tokio::task::spawn_blocking(move || {
                let _done = done_tx;
                let message = match reader_db.read(&sql, &schema, &tx, handle_tx) {
                    Ok(()) => Message::Done,
                    Err(SourceError::Read { .. }) if reader_timed_out.load(Ordering::SeqCst) => {
                        Message::Failed(SourceError::Read {
                            message: format!(
                                "the query on {} ran longer than query_timeout_ms = {} ms and was interrupted; raise the source's query_timeout_ms or make the model cheaper",
                                reader_db.path(),
                                reader_db
                                    .config
                                    .query_timeout
                                    .map(|t| t.as_millis())
                                    .unwrap_or_default()
                            ),
                        })
                    }
                    Err(e) => Message::Failed(e),
                };
                // The consumer may be gone already; then nobody needs the outcome.
                let _ = tx.blocking_send(message);
            });
            let timeout = db.config.query_timeout;
            tokio::spawn(async move {
                let Ok(handle) = handle_rx.await else {
                    return;
                };
                let expired = async {
                    match timeout {
                        Some(t) => tokio::time::sleep(t).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = done_rx => {}
                    _ = watch_tx.closed() => handle.interrupt(),
                    _ = expired => {
                        timed_out.store(true, Ordering::SeqCst);
                        handle.interrupt();
                    }
                }
            });
            futures::stream::unfold(Some(rx), |rx| async move {
                let mut rx = rx?;
                match rx.recv().await {
                    Some(Message::Batch(batch)) => Some((Ok(batch), Some(rx))),
                    Some(Message::Failed(error)) => Some((Err(external(error)), None)),
                    Some(Message::Done) => None,
                    None => Some((
                        Err(external(SourceError::Read {
                            message: "the SQLite reader stopped before the end of the result; the extract is incomplete".to_string(),
                        })),
                        None,
                    )),
                }
            })
        };
        Box::pin(RecordBatchStreamAdapter::new(
            out_schema,
            futures::stream::once(start).flatten(),
        ))
    }

    /// Reads every row of `sql` into batches sent to `tx` (blocking).
    fn read(
        &self,
        sql: &str,
        schema: &SchemaRef,
        tx: &mpsc::Sender<Message>,
        handle_tx: oneshot::Sender<rusqlite::InterruptHandle>,
    ) -> Result<(), SourceError> {
        let conn = self.open()?;
        let _ = handle_tx.send(conn.get_interrupt_handle());
        let mut decoders = schema
            .fields()
            .iter()
            .map(|f| ColumnDecoder::new(f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| SourceError::Query { message })?;
        let mut stmt = conn
            .prepare(sql)
            .map_err(|e| self.classify(&e, Phase::Prepare))?;
        if stmt.column_count() != decoders.len() {
            return Err(SourceError::Read {
                message: format!(
                    "SQLite returned {} columns where the plan expects {}; the statement was: {sql}",
                    stmt.column_count(),
                    decoders.len()
                ),
            });
        }
        let mut rows = stmt.raw_query();
        let mut row_number: u64 = 0;
        let mut in_batch = 0_usize;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(self.classify(&e, Phase::Read)),
            };
            row_number += 1;
            for (i, decoder) in decoders.iter_mut().enumerate() {
                let value = row.get_ref(i).map_err(|e| self.classify(&e, Phase::Read))?;
                decoder
                    .push(value, row_number)
                    .map_err(|e| SourceError::Read {
                        message: format!("{e} (SQLite database {})", self.path()),
                    })?;
            }
            in_batch += 1;
            if in_batch == BATCH_ROWS {
                let batch = finish_batch(schema, &mut decoders, in_batch)?;
                in_batch = 0;
                if tx.blocking_send(Message::Batch(batch)).is_err() {
                    // The consumer is gone (a preview's LIMIT, a cancelled run): stop reading.
                    return Ok(());
                }
            }
        }
        if in_batch > 0 {
            let batch = finish_batch(schema, &mut decoders, in_batch)?;
            let _ = tx.blocking_send(Message::Batch(batch));
        }
        Ok(())
    }
}

/// Cuts a batch of `rows` rows from the decoders.
fn finish_batch(
    schema: &SchemaRef,
    decoders: &mut [ColumnDecoder],
    rows: usize,
) -> Result<RecordBatch, SourceError> {
    let columns = decoders
        .iter_mut()
        .map(ColumnDecoder::finish)
        .collect::<Result<Vec<_>, _>>()
        .and_then(|columns| {
            RecordBatch::try_new_with_options(
                Arc::clone(schema),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(rows)),
            )
        });
    columns.map_err(|e| SourceError::Read {
        message: format!("building a batch of SQLite rows failed: {e}"),
    })
}

// ---- the table providers' connection pool ---------------------------------------------------

/// The table providers' pool over [`Database`]: every `connect` is a handle from which each
/// query opens its own read-only connection (opening SQLite is cheap; concurrent reads then
/// never share a connection).
#[derive(Debug)]
struct SqlitePool {
    db: Arc<Database>,
}

/// The table providers' connection: the database handle.
#[derive(Debug)]
struct SqliteReader {
    db: Arc<Database>,
}

#[async_trait]
impl DbConnectionPool<Arc<Database>, ()> for SqlitePool {
    async fn connect(&self) -> Result<Box<dyn DbConnection<Arc<Database>, ()>>, GenericError> {
        Ok(Box::new(SqliteReader {
            db: Arc::clone(&self.db),
        }))
    }

    fn join_push_down(&self) -> JoinPushDown {
        // Tables of one file can be joined in that file.
        JoinPushDown::AllowedFor(format!("sqlite:{}", self.db.path()))
    }
}

impl DbConnection<Arc<Database>, ()> for SqliteReader {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn as_async(&self) -> Option<&dyn AsyncDbConnection<Arc<Database>, ()>> {
        Some(self)
    }
}

#[async_trait]
impl AsyncDbConnection<Arc<Database>, ()> for SqliteReader {
    fn new(db: Arc<Database>) -> Self {
        SqliteReader { db }
    }

    fn new_with_schemas(db: Arc<Database>, _schemas: Arc<TableSchemas>) -> Self {
        SqliteReader { db }
    }

    async fn tables(&self, _schema: &str) -> Result<Vec<String>, DbError> {
        let db = Arc::clone(&self.db);
        blocking(move || {
            let conn = db.open()?;
            table_names(&conn).map_err(|e| db.classify(&e, Phase::Read))
        })
        .await
        .map(|tables| tables.into_iter().map(|(name, _)| name).collect())
        .map_err(|e| DbError::UnableToGetTables {
            source: Box::new(e),
        })
    }

    async fn schemas(&self) -> Result<Vec<String>, DbError> {
        Ok(vec![SCHEMA.to_string()])
    }

    async fn get_schema(&self, table_reference: &TableReference) -> Result<SchemaRef, DbError> {
        let db = Arc::clone(&self.db);
        let name = table_reference.table().to_string();
        let shape =
            blocking(move || db.describe(&name))
                .await
                .map_err(|e| DbError::UnableToGetSchema {
                    source: Box::new(e),
                })?;
        match shape {
            Some(shape) => shape.schema().map_err(|e| DbError::UnableToGetSchema {
                source: Box::new(e),
            }),
            None => Err(DbError::UndefinedTable {
                table_name: table_reference.to_string(),
                source: "no such table or view".into(),
            }),
        }
    }

    async fn query_arrow(
        &self,
        sql: &str,
        _params: &[()],
        projected_schema: Option<SchemaRef>,
    ) -> Result<SendableRecordBatchStream, GenericError> {
        let Some(schema) = projected_schema else {
            return Err("a SQLite read needs the planned schema of its result".into());
        };
        Ok(self.db.stream(sql.to_string(), schema))
    }

    async fn execute(&self, _sql: &str, _params: &[()]) -> Result<u64, GenericError> {
        Err("retl opens SQLite databases read-only and never writes to them".into())
    }
}

// ---- catalog look-ups -----------------------------------------------------------------------

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
struct TableShape {
    /// The name as stored.
    name: String,
    /// `table` or `view`.
    kind: String,
    /// (name, declared type, declared NOT NULL), in order.
    columns: Vec<(String, String, bool)>,
}

/// Every table and view with its kind.
fn table_names(conn: &Connection) -> Result<Vec<(String, String)>, rusqlite::Error> {
    let mut stmt = conn.prepare(TABLES_SQL)?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// The columns of one table or view.
fn columns(conn: &Connection, table: &str) -> Result<Vec<(String, String, bool)>, rusqlite::Error> {
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
    fn schema(&self) -> Result<SchemaRef, SourceError> {
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
    fn describe(&self, requested: &str) -> Result<Option<TableShape>, SourceError> {
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

// ---- DataFusion registration ----------------------------------------------------------------

/// How the catalog looks a table or view up: the database and the pool. The catalog has one
/// schema, `main`.
struct Resolver {
    db: Arc<Database>,
    pool: Arc<dyn DbConnectionPool<Arc<Database>, ()> + Send + Sync>,
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
