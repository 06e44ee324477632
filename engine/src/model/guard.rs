//! What keeps one user's SQL from taking the daemon down: a bound on expression depth, checked on
//! the parsed statement before planning, and a dedicated runtime with large thread stacks where
//! DataFusion plans and executes model SQL.
//!
//! DataFusion and sqlparser recurse once per level of an expression tree, and a left-deep chain
//! such as `1+1+...+1`, `'a'||'a'||...`, `a AND b AND ...` or `a OR b OR ...` is one level per
//! term. The parser's own recursion limit does not see such chains (it parses them in a loop),
//! and on a 2 MiB worker stack a debug build overflowed at about 240 terms, aborting the whole
//! process. [`check_depth`] refuses trees deeper than [`MAX_EXPRESSION_DEPTH`] with
//! `INVALID_ARGUMENT`; every DataFusion step over user SQL (parse, plan, optimise, execute) runs
//! on [`sql_runtime`], whose threads have [`SQL_THREAD_STACK_BYTES`] of stack, whoever calls:
//! the daemon's handlers, a sync run, and the black-box tests all get the same stack.

use std::ops::ControlFlow;
use std::sync::OnceLock;

use datafusion::arrow::array::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::parser::{CopyToSource, Statement};
use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};
use futures::StreamExt;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::Error;

/// The deepest expression tree a model may have (a chain of `n` `+`, `||`, `AND` or `OR` terms
/// is about `n` levels deep).
pub const MAX_EXPRESSION_DEPTH: usize = 200;

/// The stack of each thread that plans or executes user SQL.
pub const SQL_THREAD_STACK_BYTES: usize = 16 * 1024 * 1024;

/// Refuses a statement whose expressions nest deeper than [`MAX_EXPRESSION_DEPTH`].
///
/// The walk stops at the first level past the limit, so it recurses at most that deep itself.
pub(crate) fn check_depth(statement: &Statement) -> Result<(), Error> {
    let mut depth = DepthLimit {
        depth: 0,
        max: MAX_EXPRESSION_DEPTH,
    };
    let flow = match statement {
        Statement::Statement(inner) => inner.visit(&mut depth),
        Statement::Explain(explain) => return check_depth(&explain.statement),
        Statement::CopyTo(copy) => match &copy.source {
            CopyToSource::Query(query) => query.visit(&mut depth),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        Statement::CreateExternalTable(_) | Statement::Reset(_) => ControlFlow::Continue(()),
    };
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(Error::invalid(
            "model.sql",
            format!(
                "an expression nests more than {MAX_EXPRESSION_DEPTH} levels deep (each term of a chain of +, ||, AND or OR is one level); shorten it: write x IN (a, b, ...) instead of a chain of x = a OR x = b ..., concat(a, b, ...) instead of a || b || ..., or split a long chain into parenthesised groups"
            ),
        )),
    }
}

/// Whether `expr` nests deeper than `max` levels (the walk stops at the first level past it).
pub(crate) fn too_deep(expr: &Expr, max: usize) -> bool {
    let mut depth = DepthLimit { depth: 0, max };
    expr.visit(&mut depth).is_break()
}

struct DepthLimit {
    depth: usize,
    max: usize,
}

impl Visitor for DepthLimit {
    type Break = ();

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > self.max {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }
}

/// The runtime that plans and executes user SQL: its threads (workers and blocking pool) have
/// [`SQL_THREAD_STACK_BYTES`] of stack. Built on first use and kept for the life of the process.
pub(crate) fn sql_runtime() -> Result<Handle, Error> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("retl-sql")
                .thread_stack_size(SQL_THREAD_STACK_BYTES)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map(|runtime| runtime.handle().clone())
        .map_err(|e| Error::internal(format!("could not start the SQL runtime: {e}")))
}

/// Runs `work` on [`sql_runtime`] and waits for it.
pub(crate) async fn on_sql_runtime<T, F>(work: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    sql_runtime()?
        .spawn(work)
        .await
        .map_err(|e| Error::internal(format!("a SQL planning task ended abnormally: {e}")))?
}

/// Batches in flight between the SQL runtime and the consumer of an extract.
const FORWARD_BUFFER: usize = 2;

/// Polls `stream` on [`sql_runtime`] (so that DataFusion's recursion during execution has the
/// large stack, and the tasks it spawns run there too) and hands its batches to the caller.
///
/// The forwarding stops as soon as the returned stream is dropped. If the forwarding task ends
/// abnormally (a panic in DataFusion), the returned stream ends with an error, never early
/// without one: a truncated extract must not pass as complete.
pub(crate) fn forward_from_sql_runtime(
    handle: &Handle,
    mut stream: SendableRecordBatchStream,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let (tx, rx) = mpsc::channel::<Result<RecordBatch, DataFusionError>>(FORWARD_BUFFER);
    let task = handle.spawn(async move {
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                () = tx.closed() => return,
            };
            let Some(item) = item else { return };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    let batches = futures::stream::unfold(Forward::Running(rx, task), |state| async move {
        match state {
            Forward::Running(mut rx, task) => match rx.recv().await {
                Some(item) => Some((item, Forward::Running(rx, task))),
                None => match task.await {
                    Ok(()) => None,
                    Err(e) => Some((
                        Err(DataFusionError::Execution(format!(
                            "the query's execution task ended abnormally: {e}"
                        ))),
                        Forward::Done,
                    )),
                },
            },
            Forward::Done => None,
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, batches))
}

enum Forward {
    Running(
        mpsc::Receiver<Result<RecordBatch, DataFusionError>>,
        JoinHandle<()>,
    ),
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Statement {
        datafusion::sql::parser::DFParser::parse_sql(sql)
            .unwrap()
            .pop_front()
            .unwrap()
    }

    fn chain(op: &str, terms: usize) -> String {
        let term = match op {
            "||" => "'a'",
            "AND" | "OR" => "id = 1",
            _ => "1",
        };
        vec![term; terms].join(&format!(" {op} "))
    }

    #[test]
    fn chains_are_refused_past_the_limit_and_accepted_below_it() {
        for op in ["+", "||", "AND", "OR"] {
            let ok = format!("SELECT id, {} AS s FROM t", chain(op, 100));
            check_depth(&parse(&ok)).unwrap();
            for terms in [MAX_EXPRESSION_DEPTH + 1, 5_000] {
                let deep = format!("SELECT id FROM t WHERE {}", chain(op, terms));
                let err = check_depth(&parse(&deep)).unwrap_err();
                assert!(
                    err.to_string().contains("nests more than 200 levels"),
                    "{op}: {err}"
                );
            }
        }
        // Inside EXPLAIN too.
        let deep = format!("EXPLAIN SELECT {} FROM t", chain("+", 1_000));
        assert!(check_depth(&parse(&deep)).is_err());
    }

    #[tokio::test]
    async fn the_sql_runtime_has_large_stacks() {
        // A recursion that needs far more than a default 2 MiB thread stack.
        fn deep(n: usize) -> usize {
            let pad = std::hint::black_box([0u8; 1024]);
            if n == 0 {
                usize::from(pad[0])
            } else {
                deep(n - 1) + usize::from(pad[n % 1024])
            }
        }
        let sum = on_sql_runtime(async { Ok(deep(3_000)) }).await.unwrap();
        assert_eq!(sum, 0);
    }
}
