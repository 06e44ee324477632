//! DataFusion planning of model SQL: read-only checks, unique-id checks, execution.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

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

/// A DataFusion session limited to `memory_bytes` of working memory, spilling to `spill_dir`.
pub fn session_context(
    memory_bytes: usize,
    spill_dir: Option<&Path>,
) -> Result<SessionContext, Error> {
    let mut runtime = RuntimeEnvBuilder::new().with_memory_limit(memory_bytes, 1.0);
    if let Some(dir) = spill_dir {
        runtime = runtime.with_temp_file_path(dir);
    }
    let runtime = runtime
        .build_arc()
        .map_err(|e| Error::internal(format!("building the query runtime: {e}")))?;
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(false);
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
    /// # Errors
    /// `InvalidArgument` on `model.sql`: a syntax error, more than one statement, DDL/DML/`SET`,
    /// or an unknown table or column (the planner's message, which names it).
    pub async fn plan(&self, sql: &str) -> Result<LogicalPlan, Error> {
        if sql.trim().is_empty() {
            return Err(Error::invalid(
                "model.sql",
                "SQL is empty; write a SELECT query",
            ));
        }
        let plan = self
            .ctx
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(sql_error)?;
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

    /// Executes a planned model, streaming its rows.
    pub async fn execute(&self, plan: LogicalPlan) -> Result<SendableRecordBatchStream, Error> {
        let df = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(sql_error)?;
        df.execute_stream()
            .await
            .map_err(|e| match source_error(e) {
                Ok(source) => Error::Source(source),
                Err(e) => Error::from(SourceError::Read {
                    message: e.to_string(),
                }),
            })
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
