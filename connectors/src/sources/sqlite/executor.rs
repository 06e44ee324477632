//! The streaming reader: a model pushed down to SQLite runs on a read-only connection of its
//! own, on a blocking thread, and its rows reach DataFusion as Arrow batches through a bounded
//! channel; and the table providers' connection pool ([`SqlitePool`]) that hands it out.
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
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::{
    AsyncDbConnection, DbConnection, Error as DbError, GenericError, TableSchemas,
};
use datafusion_table_providers::sql::db_connection_pool::{DbConnectionPool, JoinPushDown};
use futures::StreamExt;
use retl_engine::source::SourceError;
use tokio::sync::{mpsc, oneshot};

use super::catalog::table_names;
use super::database::{Database, SCHEMA, blocking};
use super::decode::ColumnDecoder;
use super::errors::Phase;
use crate::sources::catalog::external;

/// Rows per Arrow batch.
const BATCH_ROWS: usize = 8_192;
/// Batches buffered between the reader thread and the consumer (memory stays bounded).
const CHANNEL_BATCHES: usize = 2;

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

/// The table providers' pool over [`Database`]: every `connect` is a handle from which each
/// query opens its own read-only connection (opening SQLite is cheap; concurrent reads then
/// never share a connection).
#[derive(Debug)]
pub(super) struct SqlitePool {
    /// The database file.
    pub(super) db: Arc<Database>,
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
