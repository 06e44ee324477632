//! Attio actions: their specs, and the encoding of one record as the `values` of a record
//! assert.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Map, Value, json};

use crate::destinations::event_fields;

/// The field holding the value of the matching attribute.
pub(crate) const ID_FIELD: &str = "id";

static RECORD_FIELDS: [FieldSpec; 1] = [FieldSpec {
    name: ID_FIELD,
    field_type: FieldType::Any,
    required: false,
    description: "Value of the matching attribute (matching_attribute) that identifies the record; when not mapped, the record's key. Every other field is an attribute by its slug, with Attio's value (a single value, or an array for multi-value attributes).",
    children: &[],
}];

/// The actions of the Attio destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "assert_record",
        display_name: "Assert Record",
        description: "Creates or updates the record of the configured object whose matching attribute holds the value (Attio's assert, one record per request); other fields are attributes by slug.",
        kind: ActionKind::Upsert,
        fields: &RECORD_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert],
    },
    ActionSpec {
        name: "delete_record",
        display_name: "Delete Record",
        description: "Deletes the record whose matching attribute holds the record's key (a query, then a delete); a record that is not there counts as deleted.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// An Attio action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttioAction {
    /// `assert_record`.
    AssertRecord,
    /// `delete_record`.
    DeleteRecord,
}

impl AttioAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "assert_record" => Some(AttioAction::AssertRecord),
            "delete_record" => Some(AttioAction::DeleteRecord),
            _ => None,
        }
    }
}

/// A matching value: a non-empty text, or a number as its text.
fn matching_value(value: &Value, what: &str) -> Result<String, String> {
    event_fields::id_text(value)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            format!(
                "{what} must be a non-empty text or number to match an Attio record, not {value}"
            )
        })
}

/// The body of `PUT /v2/objects/{object}/records?matching_attribute=<attribute>`:
/// `{"data": {"values": {<attribute>: <value>, ...}}}`, and the matching value.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn assert_body(attribute: &str, payload: &Payload) -> Result<(String, Value), String> {
    let value = match payload.fields.get(ID_FIELD) {
        Some(v) => matching_value(v, "field 'id'")?,
        None => matching_value(&payload.key, "the record's key")?,
    };
    let mut values = Map::new();
    for (name, v) in payload.fields.iter() {
        if name != ID_FIELD {
            values.insert(name.to_string(), v.clone());
        }
    }
    if values.contains_key(attribute) {
        return Err(format!(
            "field '{attribute}' is the matching attribute, which retl sets from field 'id' (or the record's key); map the value to 'id'"
        ));
    }
    values.insert(attribute.to_string(), json!(value));
    Ok((value, json!({"data": {"values": values}})))
}

/// The matching value of a deleted record: its key.
///
/// # Errors
/// When the key is null, empty, an object or an array.
pub(crate) fn delete_value(payload: &Payload) -> Result<String, String> {
    matching_value(&payload.key, "the record's key")
}
