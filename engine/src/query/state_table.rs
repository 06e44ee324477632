//! `retl.state`: the sync state read page by page as the query consumes it (a state may hold
//! millions of keys; it is never loaded whole).

use std::sync::Arc;

use std::collections::HashMap;

use datafusion::arrow::array::{BooleanArray, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use crate::diff::key::key_text;
use crate::id::MappingId;
use crate::state::{RunStamp, StateStore};
use crate::sync::history::RunHistory;

/// Keys read per page.
const PAGE: usize = 8192;

/// The one partition of `retl.state`.
pub struct StatePartition {
    state: Arc<dyn StateStore>,
    history: RunHistory,
    mappings: Vec<MappingId>,
    schema: SchemaRef,
}

impl std::fmt::Debug for StatePartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatePartition")
            .field("mappings", &self.mappings)
            .finish_non_exhaustive()
    }
}

impl StatePartition {
    /// The state of `mappings`, with the runs that wrote it from `history`.
    pub fn new(state: Arc<dyn StateStore>, history: RunHistory, mappings: Vec<MappingId>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("mapping_id", DataType::Utf8, false),
            Field::new("key", DataType::Utf8, false),
            Field::new("fingerprint", DataType::Utf8, false),
            // The run that last wrote the entry (NULL for entries written before runs were
            // recorded, or when the run's record was pruned: `synced_at` still says when).
            Field::new("run_id", DataType::Utf8, true),
            Field::new(
                "synced_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            // Whether that run sent the record (false: it advanced the state without sending
            // it — not selected, or marked synced by the mapping's first run).
            Field::new("sent", DataType::Boolean, true),
        ]));
        StatePartition {
            state,
            history,
            mappings,
            schema,
        }
    }

    /// The table's schema.
    pub fn schema_ref(&self) -> &SchemaRef {
        &self.schema
    }
}

/// Where the scan is: the mapping (by index) and the last key read of it, with the run ids
/// of the mapping's stamps looked up so far.
struct Cursor {
    mapping: usize,
    after: Option<Vec<u8>>,
    runs: HashMap<RunStamp, Option<String>>,
}

impl PartitionStream for StatePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let state = Arc::clone(&self.state);
        let history = self.history.clone();
        let mappings = self.mappings.clone();
        let schema = Arc::clone(&self.schema);
        let start = Cursor {
            mapping: 0,
            after: None,
            runs: HashMap::new(),
        };
        let pages = futures::stream::unfold(Some(start), move |cursor| {
            let state = Arc::clone(&state);
            let history = history.clone();
            let mappings = mappings.clone();
            let schema = Arc::clone(&schema);
            async move {
                let cursor = cursor?;
                let page = tokio::task::spawn_blocking(move || {
                    next_page(&*state, &history, &mappings, &schema, cursor)
                })
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))
                .and_then(|r| r);
                match page {
                    Ok(Some((batch, next))) => Some((Ok(batch), next)),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), None)),
                }
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            pages,
        ))
    }
}

/// The next non-empty page from `cursor` on, and where to go on; `None` at the end.
fn next_page(
    state: &dyn StateStore,
    history: &RunHistory,
    mappings: &[MappingId],
    schema: &SchemaRef,
    mut cursor: Cursor,
) -> Result<Option<(RecordBatch, Option<Cursor>)>, DataFusionError> {
    while let Some(mapping) = mappings.get(cursor.mapping) {
        let entries = state
            .scan_entries(mapping, cursor.after.as_deref(), PAGE)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let full = entries.len() >= PAGE;
        let Some((last, _)) = entries.last() else {
            cursor = Cursor {
                mapping: cursor.mapping + 1,
                after: None,
                runs: HashMap::new(),
            };
            continue;
        };
        let mut run_ids = Vec::with_capacity(entries.len());
        for (_, entry) in &entries {
            let id = match entry.synced_by {
                None => None,
                Some(by) => match cursor.runs.get(&by.run) {
                    Some(id) => id.clone(),
                    None => {
                        let id = history
                            .run_id_of(mapping, by.run)
                            .map_err(|e| DataFusionError::External(Box::new(e)))?;
                        cursor.runs.insert(by.run, id.clone());
                        id
                    }
                },
            };
            run_ids.push(id);
        }
        let next = if full {
            Cursor {
                mapping: cursor.mapping,
                after: Some(last.clone()),
                runs: cursor.runs,
            }
        } else {
            Cursor {
                mapping: cursor.mapping + 1,
                after: None,
                runs: HashMap::new(),
            }
        };
        let ids = StringArray::from(vec![mapping.as_str(); entries.len()]);
        let keys: StringArray = entries.iter().map(|(k, _)| Some(key_text(k))).collect();
        let prints: StringArray = entries
            .iter()
            .map(|(_, e)| Some(format!("{:032x}", e.fingerprint.0)))
            .collect();
        let synced_at = TimestampMillisecondArray::from(
            entries
                .iter()
                .map(|(_, e)| {
                    e.synced_by
                        .and_then(|by| by.run.time())
                        .map(|t| t.timestamp_millis())
                })
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC");
        let sent: BooleanArray = entries
            .iter()
            .map(|(_, e)| e.synced_by.map(|by| by.sent))
            .collect();
        let batch = RecordBatch::try_new(
            Arc::clone(schema),
            vec![
                Arc::new(ids),
                Arc::new(keys),
                Arc::new(prints),
                Arc::new(StringArray::from(run_ids)),
                Arc::new(synced_at),
                Arc::new(sent),
            ],
        )?;
        return Ok(Some((batch, Some(next))));
    }
    Ok(None)
}
