//! `retl.state`: the sync state read page by page as the query consumes it (a state may hold
//! millions of keys; it is never loaded whole).

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use crate::diff::key::key_text;
use crate::id::MappingId;
use crate::state::StateStore;

/// Keys read per page.
const PAGE: usize = 8192;

/// The one partition of `retl.state`.
pub struct StatePartition {
    state: Arc<dyn StateStore>,
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
    /// The state of `mappings`.
    pub fn new(state: Arc<dyn StateStore>, mappings: Vec<MappingId>) -> Self {
        let schema = Arc::new(Schema::new(vec![
            Field::new("mapping_id", DataType::Utf8, false),
            Field::new("key", DataType::Utf8, false),
            Field::new("fingerprint", DataType::Utf8, false),
        ]));
        StatePartition {
            state,
            mappings,
            schema,
        }
    }

    /// The table's schema.
    pub fn schema_ref(&self) -> &SchemaRef {
        &self.schema
    }
}

/// Where the scan is: the mapping (by index) and the last key read of it.
struct Cursor {
    mapping: usize,
    after: Option<Vec<u8>>,
}

impl PartitionStream for StatePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let state = Arc::clone(&self.state);
        let mappings = self.mappings.clone();
        let schema = Arc::clone(&self.schema);
        let start = Cursor {
            mapping: 0,
            after: None,
        };
        let pages = futures::stream::unfold(Some(start), move |cursor| {
            let state = Arc::clone(&state);
            let mappings = mappings.clone();
            let schema = Arc::clone(&schema);
            async move {
                let cursor = cursor?;
                let page = tokio::task::spawn_blocking(move || {
                    next_page(&*state, &mappings, &schema, cursor)
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
    mappings: &[MappingId],
    schema: &SchemaRef,
    mut cursor: Cursor,
) -> Result<Option<(RecordBatch, Option<Cursor>)>, DataFusionError> {
    while let Some(mapping) = mappings.get(cursor.mapping) {
        let entries = state
            .scan_page(mapping, cursor.after.as_deref(), PAGE)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let full = entries.len() >= PAGE;
        let Some((last, _)) = entries.last() else {
            cursor = Cursor {
                mapping: cursor.mapping + 1,
                after: None,
            };
            continue;
        };
        let next = if full {
            Cursor {
                mapping: cursor.mapping,
                after: Some(last.clone()),
            }
        } else {
            Cursor {
                mapping: cursor.mapping + 1,
                after: None,
            }
        };
        let ids = StringArray::from(vec![mapping.as_str(); entries.len()]);
        let keys: StringArray = entries.iter().map(|(k, _)| Some(key_text(k))).collect();
        let prints: StringArray = entries
            .iter()
            .map(|(_, f)| Some(format!("{:032x}", f.0)))
            .collect();
        let batch = RecordBatch::try_new(
            Arc::clone(schema),
            vec![Arc::new(ids), Arc::new(keys), Arc::new(prints)],
        )?;
        return Ok(Some((batch, Some(next))));
    }
    Ok(None)
}
