//! SQL over what retl extracted and what it keeps: the [`QueryService`] behind Arrow Flight SQL,
//! `QueryService.ExecuteQuery` and `retl sql`.
//!
//! Tables (catalog `retl`):
//! - schema `staging` (the default): `<model>`, the newest complete extract of a model, and
//!   `"<model>@<run id>"` for every kept extract ([`staged`]); how many are kept per model is
//!   the engine's `staging_runs_kept`;
//! - schema `retl`: the system tables ([`system`]): `sync_runs`, `run_errors`, `pending`,
//!   `state`, `sources`, `models`, `destinations`, `mappings`;
//! - the table function `retl.diff('<mapping>')` ([`diff_table`]): what the next run of a
//!   mapping would do, computed without changing anything;
//! - `information_schema`, so `SHOW TABLES` and standard clients' catalog queries work.
//!
//! One read-only statement per query (SELECT, WITH, SHOW, EXPLAIN); anything else is refused
//! before planning, and the plan is checked again. Every query has a row limit and a timeout.

pub mod diff_table;
pub mod staged;
pub mod state_table;
pub mod system;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Ident, ObjectName, Statement, visit_relations_mut};
use futures::StreamExt;

use crate::error::Error;
use crate::model::guard::{check_depth, forward_from_sql_runtime, on_sql_runtime, sql_runtime};
use crate::model::plan::session_context_with;
use diff_table::DiffFunction;
use staged::StagedSchema;
use system::{SYSTEM_TABLES, SystemSchema, SystemSources};

/// The catalog queries run in.
pub const CATALOG: &str = "retl";
/// The schema of the staged extracts (the default schema).
pub const STAGING_SCHEMA: &str = "staging";
/// The schema of the system tables.
pub const SYSTEM_SCHEMA: &str = "retl";

/// Limits of one query.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Most rows a query returns (a smaller limit may be asked per query).
    pub max_rows: u64,
    /// Longest a query may run, from planning to its last batch.
    pub timeout: Duration,
    /// Working memory of a query before it spills to disk.
    pub memory_bytes: usize,
}

/// A query's result: its schema and its rows as they come.
pub struct QueryResult {
    /// The result's schema.
    pub schema: SchemaRef,
    /// The rows.
    pub stream: SendableRecordBatchStream,
}

impl std::fmt::Debug for QueryResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryResult")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Runs read-only SQL over the staged extracts and the system tables.
#[derive(Debug, Clone)]
pub struct QueryService {
    sources: SystemSources,
    data_dir: PathBuf,
    limits: QueryLimits,
}

/// What the refusal of a statement says.
const READ_ONLY: &str = "only one read-only statement is accepted: SELECT, WITH ... SELECT, VALUES, SHOW TABLES, SHOW COLUMNS or EXPLAIN";

impl QueryService {
    /// A service over the data directory and the system tables' sources.
    pub fn new(sources: SystemSources, data_dir: PathBuf, limits: QueryLimits) -> Self {
        QueryService {
            sources,
            data_dir,
            limits,
        }
    }

    /// The limits every query runs under.
    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    /// A session with the tables as they are now.
    ///
    /// # Errors
    /// `Internal` when the session cannot be built.
    pub fn session(&self) -> Result<SessionContext, Error> {
        self.session_over(Arc::new(StagedSchema::scan(&self.data_dir)))
    }

    /// A session over `staged` and the system tables.
    fn session_over(&self, staged: Arc<StagedSchema>) -> Result<SessionContext, Error> {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, STAGING_SCHEMA)
            .with_create_default_catalog_and_schema(true)
            .with_information_schema(true);
        let ctx = session_context_with(
            config,
            self.limits.memory_bytes,
            Some(&self.data_dir.join("tmp")),
        )?;
        let catalog = ctx
            .catalog(CATALOG)
            .ok_or_else(|| Error::internal("the query catalog is missing"))?;
        let register = |name: &str, schema| {
            catalog
                .register_schema(name, schema)
                .map_err(|e| Error::internal(format!("registering schema {name}: {e}")))
        };
        register(STAGING_SCHEMA, staged)?;
        ctx.register_udtf(
            diff_table::FUNCTION,
            Arc::new(DiffFunction::new(Arc::clone(&self.sources.syncs))),
        );
        register(
            SYSTEM_SCHEMA,
            Arc::new(SystemSchema::new(self.sources.clone())),
        )?;
        Ok(ctx)
    }

    /// A session for one non-empty statement, and the table names its errors list (one look
    /// at the staging directory serves both).
    fn session_for(&self, sql: &str) -> Result<(SessionContext, Vec<String>), Error> {
        if sql.trim().is_empty() {
            return Err(Error::invalid("sql", "the query is empty; write a SELECT"));
        }
        let staged = Arc::new(StagedSchema::scan(&self.data_dir));
        let tables = table_names(&staged);
        Ok((self.session_over(staged)?, tables))
    }

    /// The tables a query can read now, as `schema.table`.
    pub fn table_names(&self) -> Vec<String> {
        table_names(&StagedSchema::scan(&self.data_dir))
    }

    /// Runs one read-only statement; at most `limit` rows (0: the service's maximum).
    ///
    /// # Errors
    /// `InvalidArgument` on `sql`: empty, a syntax error, more than one statement, anything but
    /// a read-only query, an unknown table (the message lists the tables) or column (the message
    /// lists the columns); `DeadlineExceeded` past the timeout.
    pub async fn execute(&self, sql: &str, limit: u64) -> Result<QueryResult, Error> {
        let limit = match limit {
            0 => self.limits.max_rows,
            n => n.min(self.limits.max_rows),
        };
        let timeout = self.limits.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let (ctx, tables) = self.session_for(sql)?;
        let sql = sql.to_string();
        let planned = on_sql_runtime(async move {
            let plan = plan_read_only(&ctx, &sql, &tables).await?;
            // EXPLAIN must stay the plan's root; its output is a few rows anyway.
            let explains = matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_));
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let df = ctx
                .execute_logical_plan(plan)
                .await
                .and_then(|df| {
                    if explains {
                        Ok(df)
                    } else {
                        df.limit(0, Some(limit))
                    }
                })
                .map_err(|e| query_error(e, &tables))?;
            df.execute_stream()
                .await
                .map_err(|e| query_error(e, &tables))
        });
        let stream = match tokio::time::timeout_at(deadline, planned).await {
            Ok(stream) => stream?,
            Err(_) => return Err(timed_out(timeout)),
        };
        let stream = forward_from_sql_runtime(&sql_runtime()?, stream);
        let schema = stream.schema();
        Ok(QueryResult {
            schema: Arc::clone(&schema),
            stream: with_deadline(stream, deadline, timeout),
        })
    }

    /// The schema of the result `sql` would have, without running it: the same checks as
    /// [`QueryService::execute`] (one read-only statement, known tables and columns, no
    /// parameters), within the same timeout.
    ///
    /// # Errors
    /// As [`QueryService::execute`] before its first row.
    pub async fn schema(&self, sql: &str) -> Result<SchemaRef, Error> {
        let timeout = self.limits.timeout;
        let (ctx, tables) = self.session_for(sql)?;
        let sql = sql.to_string();
        let planned = on_sql_runtime(async move {
            let plan = plan_read_only(&ctx, &sql, &tables).await?;
            Ok(Arc::clone(plan.schema().inner()))
        });
        match tokio::time::timeout(timeout, planned).await {
            Ok(schema) => schema,
            Err(_) => Err(timed_out(timeout)),
        }
    }
}

/// Parses, checks and plans one read-only statement (run on the SQL runtime).
async fn plan_read_only(
    ctx: &SessionContext,
    sql: &str,
    tables: &[String],
) -> Result<LogicalPlan, Error> {
    let state = ctx.state();
    let dialect = state.config_options().sql_parser.dialect;
    let mut statement = state
        .sql_to_statement(sql, &dialect)
        .map_err(|e| query_error(e, tables))?;
    rewrite_table_functions(&mut statement);
    check_read_only(&statement)?;
    check_depth(&statement).map_err(|e| match e {
        Error::InvalidArgument { message, .. } => Error::invalid("sql", message),
        other => other,
    })?;
    let plan = state
        .statement_to_plan(statement)
        .await
        .map_err(|e| query_error(e, tables))?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| Error::invalid("sql", format!("{READ_ONLY}; {}", e.find_root())))?;
    let parameters = plan
        .get_parameter_types()
        .map_err(|e| query_error(e, tables))?;
    if !parameters.is_empty() {
        let mut names: Vec<&String> = parameters.keys().collect();
        names.sort();
        let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        return Err(Error::invalid(
            "sql",
            format!(
                "query parameters are not supported ({}); write the values into the SQL",
                names.join(", ")
            ),
        ));
    }
    Ok(plan)
}

/// The tables of `staged` and the system tables, as `schema.table`.
fn table_names(staged: &StagedSchema) -> Vec<String> {
    let mut names: Vec<String> = datafusion::catalog::SchemaProvider::table_names(staged)
        .into_iter()
        .map(|t| format!("{STAGING_SCHEMA}.{}", quote_if_needed(&t)))
        .collect();
    names.extend(SYSTEM_TABLES.iter().map(|t| format!("{SYSTEM_SCHEMA}.{t}")));
    names
}

fn timed_out(timeout: Duration) -> Error {
    Error::DeadlineExceeded {
        message: format!(
            "the query ran longer than its timeout of {} s; add a filter or a LIMIT, or raise the daemon's --query-timeout",
            timeout.as_secs_f64()
        ),
    }
}

/// Ends `stream` with a timeout error once `deadline` passes.
fn with_deadline(
    stream: SendableRecordBatchStream,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let limited = futures::stream::unfold(Some(stream), move |stream| async move {
        let mut stream = stream?;
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(item)) => Some((item, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((
                Err(DataFusionError::External(Box::new(timed_out(timeout)))),
                None,
            )),
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, limited))
}

/// Renames `retl.diff(...)` to the function DataFusion knows (it resolves a table function by
/// the first part of its name only).
fn rewrite_table_functions(statement: &mut DfStatement) {
    let inner = match statement {
        DfStatement::Statement(inner) => inner.as_mut(),
        DfStatement::Explain(explain) => return rewrite_table_functions(&mut explain.statement),
        _ => return,
    };
    let _ = visit_relations_mut(inner, |name: &mut ObjectName| {
        let parts: Vec<Option<&Ident>> = name.0.iter().map(|p| p.as_ident()).collect();
        if let [Some(schema), Some(function)] = parts.as_slice()
            && schema.value.eq_ignore_ascii_case(SYSTEM_SCHEMA)
            && function.value.eq_ignore_ascii_case("diff")
        {
            *name = ObjectName::from(vec![Ident::new(diff_table::FUNCTION)]);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Refuses anything but one read-only statement, before planning.
fn check_read_only(statement: &DfStatement) -> Result<(), Error> {
    match statement {
        DfStatement::Statement(inner) => match inner.as_ref() {
            Statement::Query(_)
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ExplainTable { .. } => Ok(()),
            Statement::Explain { statement, .. } => {
                check_read_only(&DfStatement::Statement(statement.clone()))
            }
            other => Err(refused(&other.to_string())),
        },
        DfStatement::Explain(explain) => check_read_only(&explain.statement),
        DfStatement::CopyTo(_) => Err(refused("COPY")),
        DfStatement::CreateExternalTable(_) => Err(refused("CREATE EXTERNAL TABLE")),
        DfStatement::Reset(_) => Err(refused("RESET")),
    }
}

fn refused(statement: &str) -> Error {
    let first: String = statement
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    Error::invalid("sql", format!("{READ_ONLY}; '{first} ...' is not"))
}

/// A DataFusion error in the user's terms: what is wrong with the SQL, naming what exists
/// (`tables`, listed when a table is unknown).
pub fn query_error(e: DataFusionError, tables: &[String]) -> Error {
    if let DataFusionError::External(inner) = &e
        && let Some(Error::DeadlineExceeded { message }) = inner.downcast_ref::<Error>()
    {
        return Error::DeadlineExceeded {
            message: message.clone(),
        };
    }
    if let DataFusionError::External(inner) = e.find_root()
        && let Some(engine_error) = inner.downcast_ref::<Error>()
    {
        return match engine_error {
            Error::NotFound { .. } | Error::FailedPrecondition { .. } | Error::Cancelled { .. } => {
                Error::precondition(engine_error.to_string())
            }
            Error::InvalidArgument { message, .. } => Error::invalid("sql", message.clone()),
            other => Error::internal(other.to_string()),
        };
    }
    let root = e.find_root();
    let message = match root {
        DataFusionError::SQL(inner, _) => format!("SQL syntax error: {inner}"),
        DataFusionError::ResourcesExhausted(inner) => {
            return Error::precondition(format!(
                "the query needs more memory than a query may use ({inner}); add a filter or a LIMIT"
            ));
        }
        other => other.to_string(),
    };
    let message = if message.contains("only supports a single SQL statement") {
        format!("{READ_ONLY}: send one statement per query ({message})")
    } else if message.contains("table '") && message.contains("not found") {
        format!("{message}; the tables are: {}", tables.join(", "))
    } else {
        message
    };
    Error::invalid("sql", message)
}

/// A table name as SQL must write it: quoted when it is not a plain lower-case identifier.
pub fn quote_if_needed(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}
