//! The pushed-down query executor: runs the SQL of a federated plan (a whole model, unparsed
//! to MySQL's dialect) on a pooled connection of its own, set read-only with the query
//! timeout, and streams its rows as Arrow batches cast to the planned types.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::unparser::dialect::Dialect;
use datafusion_federation::sql::{AstAnalyzer, SQLExecutor};
use datafusion_table_providers::mysql::conn::MySQLConnection;
use datafusion_table_providers::mysql::sql_table::MySQLTable;
use datafusion_table_providers::sql::arrow_sql_gen::mysql::rows_to_arrow;
use futures::{StreamExt, TryStreamExt};
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Row};
use mysql_common::row::new_row_raw;
use retl_engine::source::SourceError;

use super::errors::{classify, classify_read, is_connection_lost};
use super::shared::{Flavor, Shared};
use crate::sources::catalog::external;

/// Rows per Arrow batch (as the table providers decode them).
const BATCH_ROWS: usize = 4_000;
/// Batches decoded ahead of the consumer: memory stays bounded by this many batches.
const BATCHES_AHEAD: usize = 2;

impl Shared {
    /// What each model query's session runs first: a read-only transaction mode and the
    /// query timeout. (A pooled connection is reset when it goes back to the pool, which
    /// clears both.)
    fn session_statements(&self) -> Vec<String> {
        let mut statements = vec!["SET SESSION TRANSACTION READ ONLY".to_string()];
        if let Some(timeout) = self.config.query_timeout {
            statements.push(match self.flavor {
                Flavor::MariaDb => format!(
                    "SET SESSION max_statement_time = {:.3}",
                    timeout.as_secs_f64()
                ),
                Flavor::MySql => {
                    format!("SET SESSION max_execution_time = {}", timeout.as_millis())
                }
            });
        }
        statements
    }

    /// A pooled connection prepared for a model query. A pooled connection the server closed
    /// meanwhile (restart, kill, `wait_timeout`) is replaced once.
    pub(super) async fn model_connection(&self) -> Result<MySQLConnection, SourceError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = self
                .pool
                .connect_direct()
                .await
                .map_err(|e| classify(&self.config, &e))?;
            let setup = {
                let mut guard = conn.conn.lock().await;
                let mut result = Ok(());
                for statement in self.session_statements() {
                    if let Err(e) = guard.query_drop(statement).await {
                        result = Err(e);
                        break;
                    }
                }
                result
            };
            match setup {
                Ok(()) => return Ok(conn),
                Err(e) if attempt < 2 && is_connection_lost(&e) => {
                    tracing::debug!(error = %e, "pooled MySQL connection was closed; taking another");
                }
                Err(e) => return Err(classify(&self.config, &e)),
            }
        }
    }

    /// Runs `sql` and sends its rows to `tx` as Arrow batches of `schema`; stops early when
    /// the receiver is gone. Any failure, including one after some rows, is an error: a read
    /// never ends short without one.
    async fn read_rows(
        &self,
        sql: &str,
        schema: &SchemaRef,
        tx: &tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>,
    ) -> Result<(), SourceError> {
        let conn = self.model_connection().await?;
        let mut guard = conn.conn.lock().await;
        let mut result = guard
            .exec_iter(sql, ())
            .await
            .map_err(|e| classify_read(&self.config, &e))?;
        let Some(mut rows) = result
            .stream::<Row>()
            .await
            .map_err(|e| classify_read(&self.config, &e))?
        else {
            return Ok(());
        };
        let mut chunk = Vec::with_capacity(BATCH_ROWS);
        while let Some(row) = rows.next().await {
            chunk.push(row.map_err(|e| classify_read(&self.config, &e))?);
            if chunk.len() == BATCH_ROWS {
                let batch = to_batch(
                    std::mem::replace(&mut chunk, Vec::with_capacity(BATCH_ROWS)),
                    schema,
                )?;
                if tx.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !chunk.is_empty() {
            let batch = to_batch(chunk, schema)?;
            let _ = tx.send(Ok(batch)).await;
        }
        Ok(())
    }
}

/// The providers' decoder knows `MYSQL_TYPE_BLOB` (how table columns of every blob and text
/// size arrive) but not its sized variants, which the server uses for computed values
/// (`GROUP_CONCAT`, JSON and geometry functions, ...). The bytes are the same: such columns
/// are relabelled `MYSQL_TYPE_BLOB`, keeping their length, so they decode as text or binary.
fn normalize_blob_types(rows: Vec<Row>) -> Vec<Row> {
    let Some(first) = rows.first() else {
        return rows;
    };
    let sized = |c: &Column| {
        matches!(
            c.column_type(),
            ColumnType::MYSQL_TYPE_TINY_BLOB
                | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
                | ColumnType::MYSQL_TYPE_LONG_BLOB
        )
    };
    if !first.columns_ref().iter().any(sized) {
        return rows;
    }
    let columns: Arc<[Column]> = first
        .columns_ref()
        .iter()
        .map(|c| {
            if sized(c) {
                Column::new(ColumnType::MYSQL_TYPE_BLOB)
                    .with_name(c.name_ref())
                    .with_org_name(c.org_name_ref())
                    .with_flags(c.flags())
                    .with_column_length(c.column_length())
                    .with_character_set(c.character_set())
                    .with_decimals(c.decimals())
            } else {
                c.clone()
            }
        })
        .collect();
    rows.into_iter()
        // The cells as they are (none was taken), under the normalised columns.
        .map(|row| new_row_raw(row.unwrap_raw(), Arc::clone(&columns)))
        .collect()
}

/// Decodes `rows` with the table providers' decoder and casts each column to `schema`'s type
/// (columns match by position: the server names computed columns its own way).
fn to_batch(rows: Vec<Row>, schema: &SchemaRef) -> Result<RecordBatch, SourceError> {
    let rows = normalize_blob_types(rows);
    let rows = rows.as_slice();
    let Some(first) = rows.first() else {
        return Ok(RecordBatch::new_empty(Arc::clone(schema)));
    };
    let columns = first.columns_ref();
    if columns.len() != schema.fields().len() {
        return Err(SourceError::Read {
            message: format!(
                "MySQL returned {} columns where the model has {}; this is a bug in retl",
                columns.len(),
                schema.fields().len()
            ),
        });
    }
    let decode_schema = Arc::new(Schema::new(
        columns
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| {
                Field::new(
                    column.name_str().to_string(),
                    field.data_type().clone(),
                    true,
                )
            })
            .collect::<Vec<_>>(),
    ));
    let decoded = rows_to_arrow(rows, &Some(decode_schema)).map_err(|e| SourceError::Read {
        message: format!(
            "a value could not be decoded: {e}; cast the column in the model SQL (for example CAST(col AS CHAR))"
        ),
    })?;
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let arrays = decoded
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| {
            if array.data_type() == field.data_type() {
                Ok(Arc::clone(array))
            } else {
                cast_with_options(array, field.data_type(), &options).map_err(|e| {
                    SourceError::Read {
                        message: format!(
                            "column '{}': MySQL's {} values cannot be read as {}: {e}; cast the column in the model SQL",
                            field.name(),
                            array.data_type(),
                            field.data_type()
                        ),
                    }
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(Arc::clone(schema), arrays, &options).map_err(|e| {
        SourceError::Read {
            message: format!("building a batch of the model's rows failed: {e}"),
        }
    })
}

/// Aborts the reading task when the stream that receives its batches is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the SQL of a federated plan (the whole model, unparsed to MySQL's dialect) on a
/// connection of its own, with the session set up by [`Shared::session_statements`]. The
/// table providers' own executor is kept for everything but running the query.
pub(crate) struct Executor {
    /// The providers' table: name, compute context (which tables federate together),
    /// dialect and AST rewrites.
    table: Arc<MySQLTable>,
    /// The pool and server facts.
    shared: Arc<Shared>,
}

impl Executor {
    /// An executor for the tables of `shared`'s server.
    pub(crate) fn new(table: Arc<MySQLTable>, shared: Arc<Shared>) -> Self {
        Executor { table, shared }
    }
}

#[async_trait]
impl SQLExecutor for Executor {
    fn name(&self) -> &str {
        SQLExecutor::name(self.table.as_ref())
    }

    fn compute_context(&self) -> Option<String> {
        SQLExecutor::compute_context(self.table.as_ref())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        SQLExecutor::dialect(self.table.as_ref())
    }

    fn ast_analyzer(&self) -> Option<AstAnalyzer> {
        SQLExecutor::ast_analyzer(self.table.as_ref())
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> Result<SendableRecordBatchStream, DataFusionError> {
        let shared = Arc::clone(&self.shared);
        let sql = query.to_string();
        let task_schema = Arc::clone(&schema);
        tracing::debug!(sql = %sql, "running the model in MySQL");
        let start = async move {
            let (tx, rx) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
            let task = tokio::spawn(async move {
                if let Err(error) = shared.read_rows(&sql, &task_schema, &tx).await {
                    let _ = tx.send(Err(external(error))).await;
                }
            });
            let batches =
                futures::stream::unfold((rx, AbortOnDrop(task)), |(mut rx, guard)| async move {
                    rx.recv().await.map(|item| (item, (rx, guard)))
                });
            Ok::<_, DataFusionError>(batches)
        };
        let stream = futures::stream::once(start).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    async fn table_names(&self) -> Result<Vec<String>, DataFusionError> {
        SQLExecutor::table_names(self.table.as_ref()).await
    }

    async fn get_table_schema(&self, table_name: &str) -> Result<SchemaRef, DataFusionError> {
        SQLExecutor::get_table_schema(self.table.as_ref(), table_name).await
    }
}
