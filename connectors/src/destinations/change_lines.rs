//! The JSON-lines form of a batch of changes, shared by the destinations that write files
//! (`file`, `s3`): one line per record,
//! `{"op":"upsert","change":"added","key":1,"fields":{...},"mapping":"m","run":"r"}`.

use retl_engine::destination::spec::{ChangeKind, Fields};
use retl_engine::destination::{DeliveryContext, DestinationError, Payload};
use serde::Serialize;

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
/// `{"op":"upsert","change":"added","key":1,"fields":{...},"mapping":"m","run":"r"}`; a
/// deleted record's line has no `fields`.
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
