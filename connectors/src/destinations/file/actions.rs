//! The file destination's action and its line encoding.

use std::sync::Arc;

use async_trait::async_trait;
use retl_engine::destination::spec::{ActionKind, ChangeKind, Fields};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload,
};
use serde::Serialize;

use super::client::FileWriter;

/// The actions of the file destination.
pub(crate) static ACTIONS: [ActionSpec; 1] = [ActionSpec {
    name: "append_changes",
    display_name: "Append Changes",
    description: "Appends every change (added, updated, deleted) as one JSON line to <directory>/<mapping id>/<run id>.jsonl; any field name is accepted.",
    kind: ActionKind::Mirror,
    fields: &[],
    open_fields: true,
    sync_modes: &[],
}];

/// A file destination action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileAction {
    /// `append_changes`: every change as one JSON line.
    AppendChanges,
}

impl FileAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "append_changes" => Some(FileAction::AppendChanges),
            _ => None,
        }
    }
}

/// One line of an output file.
#[derive(Debug, Serialize)]
struct Line<'a> {
    /// `upsert` for added and updated records, `delete` for deleted ones.
    op: &'static str,
    change: ChangeKind,
    key: &'a serde_json::Value,
    /// Absent for deletes.
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a Fields>,
    mapping: &'a str,
    run: &'a str,
}

/// Encodes a batch as JSON lines, each ending in `\n`:
/// `{"op":"upsert","change":"added","key":1,"fields":{...},"mapping":"m","run":"r"}`.
pub(crate) fn encode_lines(
    ctx: &DeliveryContext,
    batch: &[Payload],
) -> Result<Vec<u8>, DestinationError> {
    let mut out = Vec::with_capacity(batch.len() * 128);
    for payload in batch {
        let deleted = payload.change == ChangeKind::Deleted;
        let line = Line {
            op: if deleted { "delete" } else { "upsert" },
            change: payload.change,
            key: &payload.key,
            fields: (!deleted).then_some(&payload.fields),
            mapping: ctx.mapping_id.as_str(),
            run: ctx.run_id.as_str(),
        };
        serde_json::to_writer(&mut out, &line).map_err(|e| DestinationError::Rejected {
            message: format!("a record could not be encoded as JSON: {e}"),
        })?;
        out.push(b'\n');
    }
    Ok(out)
}

/// An action bound to a destination's writer; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: FileAction,
    /// The destination's writer.
    pub(crate) writer: Arc<FileWriter>,
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
        match self.action {
            FileAction::AppendChanges => {
                let lines = encode_lines(ctx, batch)?;
                self.writer.append(ctx, lines).await?;
                Ok(BatchOutcome::all_accepted(batch.len()))
            }
        }
    }
}
