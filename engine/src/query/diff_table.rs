//! `retl.diff('<mapping>')`: what the next run of a mapping would do, one row per record it
//! would act on — key, operation, outcome (`send`, `given_up`, `unmappable`, `held_back`, or
//! `not_selected` for deletes the selection leaves out) and the mapped payload as JSON —
//! computed from the model's latest staged extract (`retl.diff('<mapping>', 'fresh')` runs
//! the model first) against the mapping's state, changing nothing. Rows are produced as the
//! query reads them; a query that stops reading stops the comparison.
//!
//! Changes the record selection leaves out and rejected rows are counted by the dry run and
//! explained by `retl explain`; they are not rows here.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableFunctionImpl;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::destination::spec::ChangeKind;
use crate::diff::key::key_text;
use crate::error::Error;
use crate::state::Fingerprint;
use crate::sync::SyncManager;
use crate::sync::manager::PreviewOptions;
use crate::sync::preview::{Outcome, PreviewSink};

/// The name SQL calls it by (`retl.diff(...)` is rewritten to it before planning).
pub const FUNCTION: &str = "retl_diff";

/// Rows per batch handed to the query.
const BATCH_ROWS: usize = 4096;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("operation", DataType::Utf8, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("payload", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, true),
    ]))
}

/// The `retl.diff` table function.
pub struct DiffFunction {
    syncs: Arc<SyncManager>,
}

impl std::fmt::Debug for DiffFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiffFunction").finish_non_exhaustive()
    }
}

impl DiffFunction {
    /// The function over `syncs`.
    pub fn new(syncs: Arc<SyncManager>) -> Self {
        DiffFunction { syncs }
    }
}

fn usage(message: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "{message}; call it as retl.diff('<mapping id>') or retl.diff('<mapping id>', 'fresh')"
    ))
}

fn text_argument(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => {
            Some(s.clone())
        }
        _ => None,
    }
}

impl TableFunctionImpl for DiffFunction {
    fn call(&self, args: &[Expr]) -> DfResult<Arc<dyn TableProvider>> {
        let (mapping, fresh) = match args {
            [mapping] => (text_argument(mapping), Some(false)),
            [mapping, mode] => (
                text_argument(mapping),
                match text_argument(mode).as_deref() {
                    Some("fresh") => Some(true),
                    Some("latest") => Some(false),
                    _ => None,
                },
            ),
            _ => (None, None),
        };
        let Some(mapping) = mapping else {
            return Err(usage("retl.diff takes a mapping id as a text literal"));
        };
        let Some(fresh) = fresh else {
            return Err(usage(
                "retl.diff's second argument is 'latest' (the default) or 'fresh'",
            ));
        };
        // An unknown mapping is named now, not when the rows are read.
        self.syncs
            .mapping_exists(&mapping)
            .map_err(|e| DataFusionError::Plan(e.to_string()))?;
        let partition = DiffPartition {
            syncs: Arc::clone(&self.syncs),
            mapping,
            fresh,
            schema: schema(),
        };
        Ok(Arc::new(StreamingTable::try_new(
            schema(),
            vec![Arc::new(partition)],
        )?))
    }
}

/// The one partition of a `retl.diff` call.
struct DiffPartition {
    syncs: Arc<SyncManager>,
    mapping: String,
    fresh: bool,
    schema: SchemaRef,
}

impl std::fmt::Debug for DiffPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiffPartition")
            .field("mapping", &self.mapping)
            .finish_non_exhaustive()
    }
}

impl PartitionStream for DiffPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = mpsc::channel::<DfResult<RecordBatch>>(2);
        let cancel = CancellationToken::new();
        let syncs = Arc::clone(&self.syncs);
        let mapping = self.mapping.clone();
        let options = PreviewOptions {
            fresh: self.fresh,
            confirm_mass_delete: false,
        };
        let schema = Arc::clone(&self.schema);
        let task_cancel = cancel.clone();
        tokio::spawn(async move {
            let mut sink = RowSink::new(schema, tx.clone());
            let result = syncs
                .preview(&mapping, options, &mut sink, &task_cancel)
                .await;
            let result = match result {
                Ok(_) => sink.flush_all().await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                // Nobody listening any more is how a query that stopped reading ends.
                let _ = tx.send(Err(DataFusionError::External(Box::new(e)))).await;
            }
        });
        // Dropping the stream (the query stopped reading) stops the comparison.
        let guard = cancel.drop_guard();
        let rows = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
            rx.recv().await.map(|item| (item, (rx, guard)))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            rows,
        ))
    }
}

/// Gathers rows into batches and hands them to the query.
struct RowSink {
    schema: SchemaRef,
    tx: mpsc::Sender<DfResult<RecordBatch>>,
    key: StringBuilder,
    operation: StringBuilder,
    outcome: StringBuilder,
    payload: StringBuilder,
    reason: StringBuilder,
    rows: usize,
}

impl RowSink {
    fn new(schema: SchemaRef, tx: mpsc::Sender<DfResult<RecordBatch>>) -> Self {
        RowSink {
            schema,
            tx,
            key: StringBuilder::new(),
            operation: StringBuilder::new(),
            outcome: StringBuilder::new(),
            payload: StringBuilder::new(),
            reason: StringBuilder::new(),
            rows: 0,
        }
    }

    /// Sends the rows gathered so far.
    async fn flush_all(&mut self) -> Result<(), Error> {
        if self.rows == 0 {
            return Ok(());
        }
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.key.finish()),
            Arc::new(self.operation.finish()),
            Arc::new(self.outcome.finish()),
            Arc::new(self.payload.finish()),
            Arc::new(self.reason.finish()),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| Error::internal(format!("building a retl.diff batch: {e}")))?;
        self.tx.send(Ok(batch)).await.map_err(|_| Error::Cancelled {
            reason: "the query stopped reading retl.diff".to_string(),
        })
    }
}

impl PreviewSink for RowSink {
    fn change(
        &mut self,
        key: &[u8],
        change: ChangeKind,
        outcome: Outcome,
        _fingerprint: Option<Fingerprint>,
    ) -> Result<(), Error> {
        let (payload, reason) = match &outcome {
            Outcome::Send(payload) => match serde_json::to_string(payload) {
                Ok(json) => (Some(json), None),
                Err(e) => (None, Some(format!("the payload could not be shown: {e}"))),
            },
            Outcome::Unmappable(reason) => (None, Some(reason.clone())),
            Outcome::GivenUp => (
                None,
                Some(
                    "given up by an earlier run with these values (retl sync failures)".to_string(),
                ),
            ),
            Outcome::HeldBack => (
                None,
                Some("held back by the mass-delete safety stop".to_string()),
            ),
            // Additions and updates the selection leaves out are counted, not listed.
            Outcome::NotSelected | Outcome::MarkedSynced if change != ChangeKind::Deleted => {
                return Ok(());
            }
            Outcome::NotSelected | Outcome::MarkedSynced => (
                None,
                Some("the mapping's record selection does not send deletes".to_string()),
            ),
        };
        self.key.append_value(key_text(key));
        self.operation.append_value(change.as_str());
        self.outcome.append_value(outcome.as_str());
        self.payload.append_option(payload);
        self.reason.append_option(reason);
        self.rows += 1;
        Ok(())
    }

    fn rejected(&mut self, _key: String, _reason: String) {}

    fn flush(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            if self.rows >= BATCH_ROWS {
                self.flush_all().await
            } else {
                Ok(())
            }
        })
    }
}
