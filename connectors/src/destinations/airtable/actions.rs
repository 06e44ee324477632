//! Airtable actions: their specs, the upsert body and the lookup formula of a delete.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, DestinationError, Payload};
use serde_json::{Map, Value, json};

/// Records per request, for upserts and deletes
/// (<https://airtable.com/developers/web/api/update-multiple-records>,
/// <https://airtable.com/developers/web/api/delete-multiple-records>).
pub(crate) const MAX_RECORDS: usize = 10;

/// The actions of the Airtable destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert_records",
        display_name: "Upsert Records",
        description: "Creates or updates records of the table, matched on the merge field (PATCH with performUpsert); mapped fields are the table's field names.",
        kind: ActionKind::Upsert,
        fields: &[],
        open_fields: true,
        sync_modes: &[],
    },
    ActionSpec {
        name: "delete_records",
        display_name: "Delete Records",
        description: "Deletes the records whose merge field holds a deleted record's unique id (looked up with filterByFormula, then DELETE).",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// An Airtable action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AirtableAction {
    /// `upsert_records`.
    Upsert,
    /// `delete_records`.
    Delete,
}

impl AirtableAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_records" => Some(AirtableAction::Upsert),
            "delete_records" => Some(AirtableAction::Delete),
            _ => None,
        }
    }
}

/// The body of `PATCH /v0/{baseId}/{table}`: `{"performUpsert": {"fieldsToMergeOn":
/// [merge]}, "records": [{"fields": {...}}], "typecast": bool}`. A record whose mapping does
/// not set the merge field gets its unique id there.
pub(crate) fn upsert_body(merge_field: &str, typecast: bool, batch: &[Payload]) -> Value {
    let records: Vec<Value> = batch
        .iter()
        .map(|payload| {
            let mut fields: Map<String, Value> = payload
                .fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            fields
                .entry(merge_field.to_string())
                .or_insert_with(|| payload.key.clone());
            json!({ "fields": fields })
        })
        .collect();
    json!({
        "performUpsert": {"fieldsToMergeOn": [merge_field]},
        "records": records,
        "typecast": typecast,
    })
}

/// An Airtable formula literal for a key: a number as written, anything else as a
/// double-quoted string with `\` and `"` escaped.
fn literal(key: &Value) -> String {
    match key {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        other => format!(
            "\"{}\"",
            other.to_string().replace('\\', "\\\\").replace('"', "\\\"")
        ),
    }
}

/// The `filterByFormula` finding the records of these keys: `OR({merge}=1,{merge}="a")`.
pub(crate) fn lookup_formula(merge_field: &str, keys: &[&Value]) -> String {
    let terms: Vec<String> = keys
        .iter()
        .map(|key| format!("{{{merge_field}}}={}", literal(key)))
        .collect();
    format!("OR({})", terms.join(","))
}

/// Whether a cell value matches a key (the same JSON value, or the same text: a number key
/// in a text field).
pub(crate) fn matches(cell: &Value, key: &Value) -> bool {
    cell == key
        || match (cell, key) {
            (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
                *s == n.to_string()
            }
            _ => false,
        }
}

/// The error of a batch over [`MAX_RECORDS`]: the engine halves it.
pub(crate) fn too_many(n: usize) -> DestinationError {
    DestinationError::PayloadTooLarge {
        message: format!(
            "{n} records in one request; Airtable takes at most {MAX_RECORDS}: set limits.batch_size to 10 or less"
        ),
    }
}
