//! The S3 destination's action and the name of a batch's object (the encoding of a batch is
//! `destinations/change_files.rs`, one encoder per format).

use std::sync::Arc;

use async_trait::async_trait;
use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Payload,
};
use sha2::{Digest, Sha256};

use super::client::S3Client;
use crate::destinations::change_files::ChangeFormat;

/// The actions of the S3 destination.
pub(crate) static ACTIONS: [ActionSpec; 1] = [ActionSpec {
    name: "write_changes",
    display_name: "Write Changes",
    description: "Writes every change (added, updated, deleted) as one JSON line, CSV row or Parquet row (the destination's format); each batch is one object <prefix><mapping id>/<run id>/part-<hash>.<jsonl|csv|parquet>, so a run's changes are the objects under its folder; any field name is accepted (in CSV and Parquet, none named op, change or key).",
    kind: ActionKind::Mirror,
    fields: &[],
    open_fields: true,
    sync_modes: &[],
}];

/// An S3 destination action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum S3Action {
    /// `write_changes`: a batch's changes as one object in the destination's format.
    WriteChanges,
}

impl S3Action {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "write_changes" => Some(S3Action::WriteChanges),
            _ => None,
        }
    }
}

/// The object key of a batch: `<prefix><mapping id>/<run id>/part-<hash>.<extension>`, the
/// hash (16 hex digits of SHA-256) over the batch's changes and keys, so a batch sent again (a
/// retry after a lost answer) overwrites its own object instead of adding a copy.
pub(crate) fn object_key(
    prefix: &str,
    ctx: &DeliveryContext,
    batch: &[Payload],
    format: ChangeFormat,
) -> String {
    let mut hash = Sha256::new();
    for payload in batch {
        hash.update(format!("{:?}", payload.change).as_bytes());
        hash.update(payload.key.to_string().as_bytes());
        hash.update(b"\n");
    }
    let digest = hex::encode(hash.finalize());
    format!(
        "{prefix}{}/{}/part-{}.{}",
        ctx.mapping_id.as_str(),
        ctx.run_id.as_str(),
        &digest[..16],
        format.extension()
    )
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: S3Action,
    /// The destination's client.
    pub(crate) client: Arc<S3Client>,
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
            S3Action::WriteChanges => {
                let format = self.client.format();
                let body = format.encode(ctx, batch)?;
                let key = object_key(self.client.prefix(), ctx, batch, format);
                self.client
                    .put(ctx, &key, format.content_type(), body)
                    .await?;
                Ok(BatchOutcome::all_accepted(batch.len()))
            }
        }
    }
}
