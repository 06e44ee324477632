//! Salesforce actions: their specs, and the encoding of a batch into sObject Collections
//! records and SOQL lookups.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, Payload, RecordOutcome, SyncMode};
use serde_json::{Map, Value, json};

/// The actions of the Salesforce destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert_record",
        display_name: "Upsert Record",
        description: "Creates or updates records of the configured object matched by its external id field (sObject Collections; upsert, update or create by mode). Fields are the object's field API names (listed by `retl destination fields`); the external id field, when not mapped, is the record's key.",
        kind: ActionKind::Upsert,
        fields: &[],
        open_fields: true,
        sync_modes: &[SyncMode::Upsert, SyncMode::Update, SyncMode::Create],
    },
    ActionSpec {
        name: "delete_record",
        display_name: "Delete Record",
        description: "Deletes the records whose external id field value is the record's key; a record that is already gone counts as deleted.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Salesforce action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SalesforceAction {
    /// `upsert_record`.
    Upsert,
    /// `delete_record`.
    Delete,
}

impl SalesforceAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_record" => Some(SalesforceAction::Upsert),
            "delete_record" => Some(SalesforceAction::Delete),
            _ => None,
        }
    }
}

/// The records of a batch that can be sent, with their external id values, and the outcome of
/// those refused before sending.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// For each sendable record: its batch index, external id value (as text) and fields.
    pub(crate) sent: Vec<(usize, String, Map<String, Value>)>,
    /// One slot per record: `Some` for a record refused before sending.
    pub(crate) outcomes: Vec<Option<RecordOutcome>>,
}

/// The external id value of a record: the mapped field named like the external id field,
/// else the record's key; a non-empty string or a number.
fn external_value(payload: &Payload, field: &str) -> Result<String, String> {
    let (value, what) = match payload.fields.get(field) {
        Some(v) => (v, format!("field '{field}'")),
        None => (&payload.key, "the record's key".to_string()),
    };
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "{what} must be a non-empty string or a number to match the external id field {field}, not {other}"
        )),
    }
}

/// Prepares added/updated records: each record's fields with the external id value set.
pub(crate) fn prepare_writes(external_id_field: &str, batch: &[Payload]) -> Prepared {
    let mut sent = Vec::new();
    let mut outcomes = vec![None; batch.len()];
    for (index, payload) in batch.iter().enumerate() {
        match external_value(payload, external_id_field) {
            Ok(value) => {
                let mut fields: Map<String, Value> = payload
                    .fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                fields.insert(external_id_field.to_string(), Value::String(value.clone()));
                sent.push((index, value, fields));
            }
            Err(reason) => outcomes[index] = Some(RecordOutcome::Rejected { reason }),
        }
    }
    Prepared { sent, outcomes }
}

/// Prepares deleted records: their keys as external id values.
pub(crate) fn prepare_deletes(batch: &[Payload]) -> Prepared {
    let mut sent = Vec::new();
    let mut outcomes = vec![None; batch.len()];
    for (index, payload) in batch.iter().enumerate() {
        match external_value(payload, "") {
            Ok(value) => sent.push((index, value, Map::new())),
            Err(reason) => outcomes[index] = Some(RecordOutcome::Rejected { reason }),
        }
    }
    Prepared { sent, outcomes }
}

/// One sObject of a collection: `{"attributes": {"type": object}, ...fields}`, plus `"id"`
/// when updating by record id.
pub(crate) fn sobject(object: &str, fields: &Map<String, Value>, id: Option<&str>) -> Value {
    let mut record = Map::new();
    record.insert("attributes".to_string(), json!({ "type": object }));
    if let Some(id) = id {
        record.insert("id".to_string(), json!(id));
    }
    for (k, v) in fields {
        record.insert(k.clone(), v.clone());
    }
    Value::Object(record)
}

/// The body of a collection write: `{"allOrNone": false, "records": [...]}`.
pub(crate) fn collection(records: Vec<Value>) -> Value {
    json!({"allOrNone": false, "records": records})
}

/// `SELECT Id, <field> FROM <object> WHERE <field> IN ('a','b')`, values quoted as SOQL
/// string literals.
pub(crate) fn lookup_query(object: &str, field: &str, values: &[&str]) -> String {
    let quoted: Vec<String> = values
        .iter()
        .map(|v| {
            let mut s = String::with_capacity(v.len() + 2);
            s.push('\'');
            for c in v.chars() {
                match c {
                    '\'' | '\\' => {
                        s.push('\\');
                        s.push(c);
                    }
                    '\n' => s.push_str("\\n"),
                    '\r' => s.push_str("\\r"),
                    '\t' => s.push_str("\\t"),
                    c => s.push(c),
                }
            }
            s.push('\'');
            s
        })
        .collect();
    format!(
        "SELECT Id, {field} FROM {object} WHERE {field} IN ({})",
        quoted.join(",")
    )
}
