//! Elasticsearch actions: their specs, `ElasticsearchAction`, and one record → the two lines
//! (action, source) or one line (delete) of a `_bulk` NDJSON body.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, Payload, SyncMode};
use serde_json::{Value, json};

/// Elasticsearch's limit on a document `_id`, in bytes.
pub(crate) const MAX_ID_BYTES: usize = 512;

/// The actions of the Elasticsearch destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert_document",
        display_name: "Upsert Documents",
        description: "Writes each record as a document of the index, its unique id as the _id and the mapped fields as the document's fields: merge into the document or create it (update with doc_as_upsert), update existing documents only (update), or create new ones only (create), by sync mode.",
        kind: ActionKind::Upsert,
        fields: &[],
        open_fields: true,
        sync_modes: &[SyncMode::Upsert, SyncMode::Update, SyncMode::Create],
    },
    ActionSpec {
        name: "delete_document",
        display_name: "Delete Documents",
        description: "Deletes the document whose _id is the record's unique id; a document that is already gone counts as deleted.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// An Elasticsearch action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElasticsearchAction {
    /// `upsert_document`.
    Upsert,
    /// `delete_document`.
    Delete,
}

impl ElasticsearchAction {
    /// The action of a spec of [`ACTIONS`].
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_document" => Some(ElasticsearchAction::Upsert),
            "delete_document" => Some(ElasticsearchAction::Delete),
            _ => None,
        }
    }
}

/// The `_bulk` operation a record becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// `update` with `doc_as_upsert: true` (sync mode `upsert`).
    Upsert,
    /// `update` without upsert: a missing document is an error (sync mode `update`).
    Update,
    /// `create`: an existing document is an error (sync mode `create`).
    Create,
    /// `delete`.
    Delete,
}

impl Operation {
    /// The operation of an action in a sync mode.
    pub(crate) fn of(action: ElasticsearchAction, mode: Option<SyncMode>) -> Self {
        match (action, mode) {
            (ElasticsearchAction::Delete, _) => Operation::Delete,
            (ElasticsearchAction::Upsert, Some(SyncMode::Update)) => Operation::Update,
            (ElasticsearchAction::Upsert, Some(SyncMode::Create)) => Operation::Create,
            (ElasticsearchAction::Upsert, _) => Operation::Upsert,
        }
    }

    /// The operation's name in the bulk body and in its answer's items.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Upsert | Operation::Update => "update",
            Operation::Create => "create",
            Operation::Delete => "delete",
        }
    }
}

/// The document `_id` of a record: its unique id as text (at most [`MAX_ID_BYTES`]).
pub(crate) fn document_id(payload: &Payload) -> Result<String, String> {
    let id = match &payload.key {
        Value::String(s) => s.clone(),
        Value::Null => return Err("the record has no unique id".to_string()),
        other => other.to_string(),
    };
    if id.is_empty() {
        return Err("the unique id is empty; Elasticsearch needs a non-empty _id".to_string());
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "the unique id is {} bytes; Elasticsearch's _id is limited to {MAX_ID_BYTES} bytes",
            id.len()
        ));
    }
    Ok(id)
}

/// A record's lines of the `_bulk` body (each ending with a newline).
pub(crate) fn bulk_lines(operation: Operation, payload: &Payload) -> Result<String, String> {
    let id = document_id(payload)?;
    let action = json!({ operation.name(): {"_id": id} });
    let source = match operation {
        Operation::Delete => return Ok(format!("{action}\n")),
        Operation::Upsert => json!({"doc": payload.fields, "doc_as_upsert": true}),
        Operation::Update => json!({"doc": payload.fields}),
        Operation::Create => json!(payload.fields),
    };
    Ok(format!("{action}\n{source}\n"))
}
