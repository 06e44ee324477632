//! The `Action` of the MySQL destination: one transaction per batch, statements split under the
//! server's `max_allowed_packet` and placeholder limit, and when a record's data breaks the batch
//! (a constraint, a value its column cannot take) the batch again record by record, each in a
//! savepoint, so only the offending records are rejected.

use std::sync::Arc;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, TxOpts};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Exchange, Payload,
    RecordOutcome,
};
use serde_json::{Value, json};

use super::actions::{Chunk, chunks, delete, existing, insert, row_params, trace_rows, update};
use super::client::{Described, MySqlClient, statement_error};
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
    pub(crate) client: Arc<MySqlClient>,
    /// The table, once described.
    pub(crate) table: tokio::sync::OnceCell<Described>,
}

impl BoundAction {
    /// The table (described once per run), created first when it is missing and
    /// `create_table` is on.
    async fn described(
        &self,
        conn: &mut Conn,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<&Described, DestinationError> {
        self.table
            .get_or_try_init(|| async {
                if let Some(described) = self.client.describe(conn).await? {
                    return Ok(described);
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

/// Runs one statement, recording it in the test record's trace; the rows it returns.
async fn execute<Q: Queryable>(
    conn: &mut Q,
    ctx: &DeliveryContext,
    sql: &str,
    params: Vec<mysql_async::Value>,
    rows: &Value,
) -> Result<Vec<Row>, mysql_async::Error> {
    let result = async {
        let mut result = conn.exec_iter(sql, Params::Positional(params)).await?;
        let rows: Vec<Row> = result.collect().await?;
        let affected = result.affected_rows();
        result.drop_result().await?;
        Ok::<_, mysql_async::Error>((rows, affected))
    }
    .await;
    ctx.record(|| Exchange {
        request: sql.to_string(),
        request_body: rows.clone(),
        status: None,
        response_body: match &result {
            Ok((_, affected)) => json!({"affected_rows": affected}),
            Err(e) => json!({"error": e.to_string()}),
        },
    });
    result.map(|(rows, _)| rows)
}

/// Writes `members` (records of `chunk`) with one statement (two for the sync modes that
/// look up existing rows first); whether each record was written.
async fn write<Q: Queryable>(
    conn: &mut Q,
    ctx: &DeliveryContext,
    operation: Operation,
    table: &Table,
    chunk: &Chunk,
    members: &[usize],
    batch: &[Payload],
) -> Result<Vec<bool>, mysql_async::Error> {
    let payloads: Vec<&Payload> = members.iter().map(|&i| &batch[i]).collect();
    let columns = &chunk.columns;
    let rows = trace_rows(table, columns, &payloads);
    let params = |payloads: &[&Payload]| -> Vec<mysql_async::Value> {
        payloads
            .iter()
            .flat_map(|p| row_params(table, columns, p))
            .collect()
    };
    let exists = if operation.may_skip() {
        let mut lookup = Vec::with_capacity(payloads.len() * 2);
        for (n, p) in payloads.iter().enumerate() {
            lookup.push(mysql_async::Value::UInt(n as u64 + 1));
            lookup.extend(row_params(table, &columns[..1], p));
        }
        let found = execute(conn, ctx, &existing(table, payloads.len()), lookup, &rows).await?;
        let found: Vec<u64> = found
            .iter()
            .filter_map(|row| row.get_opt::<u64, _>(0).and_then(Result::ok))
            .collect();
        (1..=payloads.len() as u64)
            .map(|n| found.contains(&n))
            .collect()
    } else {
        vec![false; payloads.len()]
    };
    match operation {
        Operation::Upsert => {
            let sql = insert(table, columns, payloads.len(), true);
            execute(conn, ctx, &sql, params(&payloads), &rows).await?;
            Ok(vec![true; payloads.len()])
        }
        Operation::Delete => {
            let keys = payloads
                .iter()
                .flat_map(|p| row_params(table, &columns[..1], p))
                .collect();
            execute(conn, ctx, &delete(table, payloads.len()), keys, &rows).await?;
            Ok(vec![true; payloads.len()])
        }
        Operation::Update => {
            let present: Vec<&Payload> = payloads
                .iter()
                .zip(&exists)
                .filter(|(_, e)| **e)
                .map(|(p, _)| *p)
                .collect();
            if !present.is_empty()
                && let Some(sql) = update(table, columns, present.len())
            {
                let rows = trace_rows(table, columns, &present);
                execute(conn, ctx, &sql, params(&present), &rows).await?;
            }
            Ok(exists)
        }
        Operation::Create => {
            let absent: Vec<&Payload> = payloads
                .iter()
                .zip(&exists)
                .filter(|(_, e)| !**e)
                .map(|(p, _)| *p)
                .collect();
            if !absent.is_empty() {
                let sql = insert(table, columns, absent.len(), false);
                let rows = trace_rows(table, columns, &absent);
                execute(conn, ctx, &sql, params(&absent), &rows).await?;
            }
            Ok(exists.iter().map(|e| !e).collect())
        }
    }
}

/// The outcome of a record `written` or not by `operation`.
fn outcome(operation: Operation, table: &Table, payload: &Payload, written: bool) -> RecordOutcome {
    if written {
        RecordOutcome::Accepted
    } else {
        RecordOutcome::Rejected {
            reason: operation.not_written_reason(&table.display, &payload.key),
        }
    }
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
        let connection = self.client.connection().await?;
        let mut guard = connection.conn.lock().await;
        let conn: &mut Conn = &mut guard;
        let described = self.described(conn, ctx, batch).await?;
        let table = &described.table;
        let operation = Operation::of(self.action, ctx.sync_mode);
        table.check(operation, batch)?;
        let (chunks, oversized) = chunks(table, operation, batch, described.max_packet);
        let mut outcomes = vec![RecordOutcome::Accepted; batch.len()];
        for record in &oversized {
            outcomes[record.index] = RecordOutcome::Rejected {
                reason: format!(
                    "the row takes about {} bytes, more than the server's max_allowed_packet ({} bytes) allows in one statement; raise max_allowed_packet on the server, or send smaller values",
                    record.bytes, described.max_packet
                ),
            };
        }
        let fatal = |e: &mysql_async::Error| match statement_error(e) {
            StatementError::Data(message) => DestinationError::Rejected { message },
            StatementError::Fatal(fatal) => self.client.fatal(fatal),
        };

        // The whole batch in one transaction.
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(|e| fatal(&e))?;
        let mut broken = false;
        for chunk in &chunks {
            match write(&mut tx, ctx, operation, table, chunk, &chunk.members, batch).await {
                Ok(written) => {
                    for (&i, written) in chunk.members.iter().zip(written) {
                        outcomes[i] = outcome(operation, table, &batch[i], written);
                    }
                }
                Err(e) => match statement_error(&e) {
                    StatementError::Data(_) => {
                        broken = true;
                        break;
                    }
                    StatementError::Fatal(error) => return Err(self.client.fatal(error)),
                },
            }
        }
        if !broken {
            tx.commit().await.map_err(|e| fatal(&e))?;
            return Ok(BatchOutcome { records: outcomes });
        }
        tx.rollback().await.map_err(|e| fatal(&e))?;

        // A record's data broke the batch: each record alone, in a savepoint.
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(|e| fatal(&e))?;
        for chunk in &chunks {
            for &i in &chunk.members {
                tx.query_drop("SAVEPOINT retl_record")
                    .await
                    .map_err(|e| fatal(&e))?;
                match write(&mut tx, ctx, operation, table, chunk, &[i], batch).await {
                    Ok(written) => {
                        tx.query_drop("RELEASE SAVEPOINT retl_record")
                            .await
                            .map_err(|e| fatal(&e))?;
                        let written = written.first().copied().unwrap_or(false);
                        outcomes[i] = outcome(operation, table, &batch[i], written);
                    }
                    Err(e) => match statement_error(&e) {
                        StatementError::Data(message) => {
                            tx.query_drop("ROLLBACK TO SAVEPOINT retl_record")
                                .await
                                .map_err(|e| fatal(&e))?;
                            outcomes[i] = RecordOutcome::Rejected {
                                reason: format!("MySQL refused the row: {message}"),
                            };
                        }
                        StatementError::Fatal(error) => return Err(self.client.fatal(error)),
                    },
                }
            }
        }
        tx.commit().await.map_err(|e| fatal(&e))?;
        Ok(BatchOutcome { records: outcomes })
    }
}
