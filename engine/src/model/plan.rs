//! DataFusion planning of model SQL: read-only checks, unique-id checks, execution.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

use super::guard::{check_depth, forward_from_sql_runtime, on_sql_runtime, sql_runtime};
use crate::diff::key::is_keyable;
use crate::error::Error;
use crate::source::{ColumnInfo, Source, SourceError};

/// A DataFusion session with one source's tables registered.
pub struct ModelSession {
    ctx: SessionContext,
}

impl std::fmt::Debug for ModelSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSession").finish_non_exhaustive()
    }
}

/// Memory consumers named in a "resources exhausted" error.
const TRACKED_CONSUMERS: NonZeroUsize = NonZeroUsize::MIN.saturating_add(4);

/// A DataFusion session limited to `memory_bytes` of working memory, spilling to `spill_dir`.
///
/// The pool is a [`FairSpillPool`]: each spilling operator (one sorter per partition) may use an
/// equal share of what the non-spilling ones (the sorters' merge buffers) leave. A greedy pool
/// let one partition's sorter take the whole budget, and the other partition's merge then
/// failed with "Not enough memory to continue external sort" (a 10M-row diff with the default
/// 256 MB, found by the benchmark suite).
pub fn session_context(
    memory_bytes: usize,
    spill_dir: Option<&Path>,
) -> Result<SessionContext, Error> {
    let config = SessionConfig::new().with_information_schema(false);
    session_context_with(config, memory_bytes, spill_dir)
}

/// [`session_context`] from `config` (catalog names, information schema).
pub fn session_context_with(
    config: SessionConfig,
    memory_bytes: usize,
    spill_dir: Option<&Path>,
) -> Result<SessionContext, Error> {
    let pool = TrackConsumersPool::new(FairSpillPool::new(memory_bytes), TRACKED_CONSUMERS);
    let mut runtime = RuntimeEnvBuilder::new().with_memory_pool(Arc::new(pool));
    if let Some(dir) = spill_dir {
        runtime = runtime.with_temp_file_path(dir);
    }
    let runtime = runtime
        .build_arc()
        .map_err(|e| Error::internal(format!("building the query runtime: {e}")))?;
    let mut config = config.with_target_partitions(2);
    // Each sorter sets this much aside for merging its spills: DataFusion's 10 MB, or a 16th of
    // a smaller budget so that two sorters' reservations never take most of it.
    let reservation = &mut config.options_mut().execution.sort_spill_reservation_bytes;
    *reservation = (*reservation).min(memory_bytes / 16);
    // One partition per file, not byte ranges of a file read in parallel: a file's rows then
    // arrive in the file's order, so an extract of a file kept in key order reaches the diff in
    // key order and needs no sort (the two halves of a split file would interleave).
    config.options_mut().optimizer.repartition_file_scans = false;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// The connector's own `SourceError` inside a DataFusion error, if a table provider raised one
/// (so that, e.g., a permission problem keeps its category instead of becoming "bad SQL").
pub(crate) fn source_error(e: DataFusionError) -> Result<SourceError, DataFusionError> {
    match e {
        DataFusionError::External(inner) => match inner.downcast::<SourceError>() {
            Ok(source) => Ok(*source),
            Err(other) => Err(DataFusionError::External(other)),
        },
        DataFusionError::Context(context, inner) => {
            source_error(*inner).map_err(|inner| DataFusionError::Context(context, Box::new(inner)))
        }
        other => Err(other),
    }
}

fn sql_error(e: DataFusionError) -> Error {
    let e = match source_error(e) {
        Ok(source) => return Error::Source(source),
        Err(e) => e,
    };
    let message = match e.find_root() {
        DataFusionError::SQL(inner, _) => format!("SQL syntax error: {inner}"),
        other => other.to_string(),
    };
    let message = if message.contains("ambiguous") {
        format!(
            "{message}; give each output column a distinct name (SELECT a.id, b.id AS other_id ...)"
        )
    } else {
        message
    };
    Error::invalid("model.sql", message)
}

impl ModelSession {
    /// A session over `source`'s tables.
    pub async fn new(
        source: &dyn Source,
        memory_bytes: usize,
        spill_dir: Option<&Path>,
    ) -> Result<Self, Error> {
        let ctx = session_context(memory_bytes, spill_dir)?;
        source.register(&ctx).await?;
        Ok(ModelSession { ctx })
    }

    /// The underlying DataFusion context.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plans `sql`, rejecting anything but a single read-only query before anything executes.
    ///
    /// Parsing and planning run on the SQL runtime (large thread stacks, see
    /// [`guard`](super::guard)), after the parsed statement's expression depth is checked.
    ///
    /// # Errors
    /// `InvalidArgument` on `model.sql`: a syntax error, more than one statement, DDL/DML/`SET`,
    /// an expression nested deeper than [`MAX_EXPRESSION_DEPTH`](super::MAX_EXPRESSION_DEPTH), or an unknown table or column
    /// (the planner's message, which names it).
    pub async fn plan(&self, sql: &str) -> Result<LogicalPlan, Error> {
        if sql.trim().is_empty() {
            return Err(Error::invalid(
                "model.sql",
                "SQL is empty; write a SELECT query",
            ));
        }
        let state = self.ctx.state();
        let sql = sql.to_string();
        let plan = on_sql_runtime(async move {
            let dialect = &state.config_options().sql_parser.dialect;
            let statement = state.sql_to_statement(&sql, dialect).map_err(sql_error)?;
            check_depth(&statement)?;
            state.statement_to_plan(statement).await.map_err(sql_error)
        })
        .await?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| {
                Error::invalid(
                    "model.sql",
                    format!(
                        "a model must be a single read-only query (SELECT or WITH ... SELECT); {}",
                        e.find_root()
                    ),
                )
            })?;
        Ok(plan)
    }

    /// Executes a planned model, streaming its rows. Optimisation, physical planning and
    /// execution run on the SQL runtime; the stream hands the batches over.
    pub async fn execute(&self, plan: LogicalPlan) -> Result<SendableRecordBatchStream, Error> {
        let ctx = self.ctx.clone();
        let runtime = sql_runtime()?;
        let stream = on_sql_runtime(async move {
            let df = ctx.execute_logical_plan(plan).await.map_err(sql_error)?;
            df.execute_stream()
                .await
                .map_err(|e| match source_error(e) {
                    Ok(source) => Error::Source(source),
                    Err(e) => Error::from(SourceError::Read {
                        message: e.to_string(),
                    }),
                })
        })
        .await?;
        Ok(forward_from_sql_runtime(&runtime, stream))
    }

    /// Runs a planned model with `LIMIT limit` on the SQL runtime; returns its schema and rows.
    ///
    /// # Errors
    /// `InvalidArgument` on `model.sql` when the limited plan cannot be built; a source read
    /// error when execution fails.
    pub async fn preview(
        &self,
        plan: LogicalPlan,
        limit: usize,
    ) -> Result<(Schema, Vec<RecordBatch>), Error> {
        let ctx = self.ctx.clone();
        on_sql_runtime(async move {
            let df = ctx
                .execute_logical_plan(plan)
                .await
                .and_then(|df| df.limit(0, Some(limit)))
                .map_err(|e| Error::invalid("model.sql", e.to_string()))?;
            let schema = df.schema().as_arrow().clone();
            let batches = df.collect().await.map_err(|e| SourceError::Read {
                message: e.to_string(),
            })?;
            Ok((schema, batches))
        })
        .await
    }
}

impl ModelSession {
    /// The first row of a planned model whose `unique_id` column, as text, equals `key` (any
    /// first row when `key` is `None`), on the SQL runtime. The filter is built as an
    /// expression, never spliced into SQL text.
    ///
    /// # Errors
    /// As [`ModelSession::preview`].
    pub async fn find_row(
        &self,
        plan: LogicalPlan,
        unique_id: &str,
        key: Option<String>,
    ) -> Result<(Schema, Vec<RecordBatch>), Error> {
        use datafusion::common::Column;
        use datafusion::logical_expr::{Expr, cast, lit};
        let ctx = self.ctx.clone();
        let unique_id = unique_id.to_string();
        on_sql_runtime(async move {
            let mut df = ctx
                .execute_logical_plan(plan)
                .await
                .map_err(|e| Error::invalid("model.sql", e.to_string()))?;
            if let Some(key) = key {
                let id = Expr::Column(Column::new_unqualified(unique_id));
                df = df
                    .filter(cast(id, DataType::Utf8).eq(lit(key)))
                    .map_err(|e| Error::invalid("key", e.to_string()))?;
            }
            let df = df
                .limit(0, Some(1))
                .map_err(|e| Error::internal(e.to_string()))?;
            let schema = df.schema().as_arrow().clone();
            let batches = df.collect().await.map_err(|e| SourceError::Read {
                message: e.to_string(),
            })?;
            Ok((schema, batches))
        })
        .await
    }
}

/// Checks a model's output schema: distinct column names, and `unique_id` present and keyable.
/// Returns the output columns.
pub fn validate_output(schema: &Schema, unique_id: &str) -> Result<Vec<ColumnInfo>, Error> {
    let columns: Vec<ColumnInfo> = schema
        .fields()
        .iter()
        .map(|f| ColumnInfo::from_field(f))
        .collect();
    let mut names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::invalid(
            "model.sql",
            format!(
                "the query returns column '{}' more than once; give each output column a distinct name (AS ...)",
                dup[0]
            ),
        ));
    }
    if unique_id.is_empty() {
        return Err(Error::invalid(
            "model.unique_id",
            "unique id column is required: name the column that identifies a record",
        ));
    }
    let Some(field) = schema.fields().iter().find(|f| f.name() == unique_id) else {
        return Err(Error::invalid(
            "model.unique_id",
            format!(
                "the query has no column '{unique_id}'; its columns are: {}",
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    if !is_keyable(field.data_type()) {
        return Err(Error::invalid(
            "model.unique_id",
            format!(
                "column '{unique_id}' has type {}, which cannot be a unique id; use an integer or text column, or cast it in the SQL (e.g. CAST({unique_id} AS VARCHAR))",
                field.data_type()
            ),
        ));
    }
    Ok(columns)
}

/// Plans and validates a model; returns its output columns.
pub async fn validate_model(
    source: &dyn Source,
    sql: &str,
    unique_id: &str,
    memory_bytes: usize,
) -> Result<Vec<ColumnInfo>, Error> {
    let session = ModelSession::new(source, memory_bytes, None).await?;
    let plan = session.plan(sql).await?;
    let schema: Arc<Schema> = Arc::new(plan.schema().as_arrow().clone());
    validate_output(&schema, unique_id)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::col;

    use super::*;

    /// An uneven two-partition sort of about twice the memory budget spills and completes. (The
    /// greedy-pool failure this session setup fixes needed a 10M-row diff to show; the
    /// benchmark suite's scenario 1 at 10M rows is its reproduction.)
    #[tokio::test]
    async fn a_sort_larger_than_memory_spills_and_completes() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, false),
        ]));
        let partition = |p: i64, batches: i64| -> Vec<RecordBatch> {
            (0..batches)
                .map(|b| {
                    let ids: Vec<i64> = (0..4096)
                        .map(|i| (i * 7919 + b * 31 + p) % 1_000_003)
                        .collect();
                    let text: Vec<String> = ids.iter().map(|i| format!("{i:0>48}")).collect();
                    RecordBatch::try_new(
                        Arc::clone(&schema),
                        vec![
                            Arc::new(Int64Array::from(ids)),
                            Arc::new(StringArray::from(text)),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        };
        let table = MemTable::try_new(
            Arc::clone(&schema),
            vec![partition(0, 30), partition(1, 170)],
        )
        .unwrap();
        let spill = tempfile::tempdir().unwrap();
        let ctx = session_context(24 * 1024 * 1024, Some(spill.path())).unwrap();
        let df = ctx
            .read_table(Arc::new(table))
            .unwrap()
            .sort(vec![col("id").sort(true, true)])
            .unwrap();
        let rows: usize = df
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 200 * 4096);
    }
}
