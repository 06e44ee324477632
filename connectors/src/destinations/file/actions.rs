//! The file destination's action (its line encoding is `destinations/change_lines.rs`, shared
//! with the `s3` destination).

use std::sync::Arc;

use async_trait::async_trait;
use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload,
};

use super::client::FileWriter;
use crate::destinations::change_lines::encode_lines;

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
