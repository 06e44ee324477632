//! The `Action` of the PostgreSQL destination: one transaction per batch, one statement per set
//! of written columns, and when a record's data breaks the batch (a constraint, a value its
//! column cannot take) the batch again record by record, each in a savepoint, so only the
//! offending records are rejected.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::postgresconn::PostgresConnection;
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Exchange, Payload,
    RecordOutcome,
};
use serde_json::{Value, json};

use super::actions::{document, statement};
use super::client::{PostgresClient, statement_error};
use crate::destinations::invalid_config;
use crate::destinations::table::{Operation, StatementError, Table, TableAction, missing_table};

/// An action bound to a destination's client; the table is described on the first batch
/// (and created then, with `create_table`).
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`super::actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: TableAction,
    /// The destination's client.
    pub(crate) client: Arc<PostgresClient>,
    /// The table, once described.
    pub(crate) table: tokio::sync::OnceCell<Table>,
}

/// The records of a batch that write the same columns, and the statement writing them.
struct Group {
    sql: String,
    members: Vec<usize>,
}

/// The batch's groups ([`Table::groups`]) with their statements.
fn groups(table: &Table, operation: Operation, batch: &[Payload]) -> Vec<Group> {
    table
        .groups(operation, batch)
        .into_iter()
        .map(|group| Group {
            sql: statement(operation, table, &group.columns),
            members: group.members,
        })
        .collect()
}

impl BoundAction {
    /// The table (described once per run), created first when it is missing and
    /// `create_table` is on.
    async fn table(
        &self,
        conn: &PostgresConnection,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<&Table, DestinationError> {
        self.table
            .get_or_try_init(|| async {
                if let Some(table) = self.client.describe(conn).await? {
                    return Ok(table);
                }
                let config = self.client.config();
                if !config.create_table || self.action == TableAction::Delete {
                    return Err(invalid_config(
                        "table",
                        missing_table(&config.table_name(), &config.connection.database),
                    ));
                }
                let key = config.key_column.as_deref().unwrap_or("id");
                let sql = self.client.create_table(conn, key, batch).await?;
                ctx.record(|| Exchange {
                    request: sql,
                    request_body: Value::Null,
                    status: None,
                    response_body: json!("CREATE TABLE"),
                });
                self.client
                    .describe(conn)
                    .await?
                    .ok_or_else(|| DestinationError::Internal {
                        message: format!(
                            "table {} was created but cannot be found",
                            config.table_name()
                        ),
                    })
            })
            .await
    }
}

/// Runs one statement over `payloads`: the ordinals (1-based) it wrote when it returns them.
async fn run(
    client: &tokio_postgres::Transaction<'_>,
    ctx: &DeliveryContext,
    operation: Operation,
    sql: &str,
    table: &Table,
    payloads: &[&Payload],
) -> Result<Option<Vec<i64>>, tokio_postgres::Error> {
    let doc = document(table, payloads);
    let result = if operation.may_skip() {
        client.query(sql, &[&doc]).await.map(|rows| {
            Some(
                rows.iter()
                    .filter_map(|row| row.try_get::<_, i64>(0).ok())
                    .collect::<Vec<i64>>(),
            )
        })
    } else {
        client.execute(sql, &[&doc]).await.map(|_| None)
    };
    ctx.record(|| Exchange {
        request: sql.to_string(),
        request_body: serde_json::from_str(&doc).unwrap_or(Value::Null),
        status: None,
        response_body: match &result {
            Ok(Some(written)) => json!({"rows_written": written.len()}),
            Ok(None) => json!("OK"),
            Err(e) => json!({"error": e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())}),
        },
    });
    result
}

#[async_trait]
impl Action for BoundAction {
    fn spec(&self) -> &'static ActionSpec {
        self.spec
    }

    async fn send(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let mut conn = self.client.connection().await?;
        let table = self.table(&conn, ctx, batch).await?;
        let operation = Operation::of(self.action, ctx.sync_mode);
        table.check(operation, batch)?;
        let groups = groups(table, operation, batch);
        let error = |e: tokio_postgres::Error| self.client.error(&e);

        // The whole batch in one transaction.
        let mut outcomes = vec![RecordOutcome::Accepted; batch.len()];
        let tx = conn.conn.transaction().await.map_err(error)?;
        let mut failed = None;
        for group in &groups {
            let payloads: Vec<&Payload> = group.members.iter().map(|&i| &batch[i]).collect();
            match run(&tx, ctx, operation, &group.sql, table, &payloads).await {
                Ok(written) => {
                    if let Some(written) = written {
                        for (n, &i) in group.members.iter().enumerate() {
                            let ordinal = i64::try_from(n + 1).unwrap_or(i64::MAX);
                            if !written.contains(&ordinal) {
                                outcomes[i] = RecordOutcome::Rejected {
                                    reason: operation
                                        .not_written_reason(&table.display, &batch[i].key),
                                };
                            }
                        }
                    }
                }
                Err(e) => match statement_error(&e) {
                    StatementError::Data(message) => {
                        failed = Some(message);
                        break;
                    }
                    StatementError::Fatal(fatal) => return Err(self.client.fatal(fatal)),
                },
            }
        }
        if failed.is_none() {
            tx.commit().await.map_err(error)?;
            return Ok(BatchOutcome { records: outcomes });
        }
        tx.rollback().await.map_err(error)?;

        // A record's data broke the batch: each record alone, in a savepoint.
        let mut tx = conn.conn.transaction().await.map_err(error)?;
        for group in &groups {
            for &i in &group.members {
                let savepoint = tx.transaction().await.map_err(error)?;
                match run(&savepoint, ctx, operation, &group.sql, table, &[&batch[i]]).await {
                    Ok(written) => {
                        savepoint.commit().await.map_err(error)?;
                        outcomes[i] = match written {
                            Some(written) if written.is_empty() => RecordOutcome::Rejected {
                                reason: operation.not_written_reason(&table.display, &batch[i].key),
                            },
                            _ => RecordOutcome::Accepted,
                        };
                    }
                    Err(e) => match statement_error(&e) {
                        StatementError::Data(message) => {
                            savepoint.rollback().await.map_err(error)?;
                            outcomes[i] = RecordOutcome::Rejected {
                                reason: format!("PostgreSQL refused the row: {message}"),
                            };
                        }
                        StatementError::Fatal(fatal) => return Err(self.client.fatal(fatal)),
                    },
                }
            }
        }
        tx.commit().await.map_err(error)?;
        Ok(BatchOutcome { records: outcomes })
    }
}
