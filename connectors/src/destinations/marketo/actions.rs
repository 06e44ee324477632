//! Marketo actions: their specs, and the encoding of a batch as the `input` of a leads sync.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Map, Value};

use crate::destinations::event_fields;

/// The field holding the value of the lookup field.
pub(crate) const ID_FIELD: &str = "id";

const fn field(name: &'static str, field_type: FieldType, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        field_type,
        required: false,
        description,
        children: &[],
    }
}

static LEAD_FIELDS: [FieldSpec; 6] = [
    field(
        ID_FIELD,
        FieldType::String,
        "Value of the lookup field (lookup_field, default 'email') that identifies the lead; when not mapped, the record's key.",
    ),
    field("email", FieldType::String, "Email address"),
    field("firstName", FieldType::String, "First name"),
    field("lastName", FieldType::String, "Last name"),
    field("company", FieldType::String, "Company name"),
    field("phone", FieldType::String, "Phone number"),
];

/// The actions of the Marketo destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert_lead",
        display_name: "Upsert Lead",
        description: "Creates or updates leads matched by the lookup field through POST /rest/v1/leads.json (createOrUpdate, updateOnly or createOnly by mode), up to 300 per request; other fields are lead fields by REST API name.",
        kind: ActionKind::Upsert,
        fields: &LEAD_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert, SyncMode::Update, SyncMode::Create],
    },
    ActionSpec {
        name: "delete_lead",
        display_name: "Delete Lead",
        description: "Deletes the leads whose lookup field holds the record's key: their Marketo ids are looked up, then deleted through /rest/v1/leads/delete.json; a lead that is not there counts as deleted.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Marketo action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarketoAction {
    /// `upsert_lead`.
    UpsertLead,
    /// `delete_lead`.
    DeleteLead,
}

impl MarketoAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_lead" => Some(MarketoAction::UpsertLead),
            "delete_lead" => Some(MarketoAction::DeleteLead),
            _ => None,
        }
    }
}

/// The `action` of a leads sync for a sync mode.
pub(crate) fn sync_action(mode: Option<SyncMode>) -> &'static str {
    match mode {
        Some(SyncMode::Update) => "updateOnly",
        Some(SyncMode::Create) => "createOnly",
        _ => "createOrUpdate",
    }
}

/// A lookup value: a non-empty text, or a number as its text.
pub(crate) fn lookup_value(value: &Value, what: &str) -> Result<String, String> {
    event_fields::id_text(value)
        .filter(|v| !v.trim().is_empty() && !v.contains(','))
        .ok_or_else(|| {
            format!("{what} must be a non-empty text or number without commas to match a Marketo lead, not {value}")
        })
}

/// One record as a lead object: every field but `id`, with the lookup field set to the lookup
/// value. Objects and arrays are refused: lead fields are flat.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn lead(lookup_field: &str, payload: &Payload) -> Result<Value, String> {
    let value = match payload.fields.get(ID_FIELD) {
        Some(v) => lookup_value(v, "field 'id'")?,
        None => lookup_value(&payload.key, "the record's key")?,
    };
    let mut lead = Map::new();
    for (name, v) in payload.fields.iter() {
        if name == ID_FIELD {
            continue;
        }
        if v.is_object() || v.is_array() {
            return Err(format!(
                "field '{name}' is {}; Marketo lead fields are flat",
                if v.is_object() {
                    "an object"
                } else {
                    "an array"
                }
            ));
        }
        lead.insert(name.to_string(), v.clone());
    }
    lead.insert(lookup_field.to_string(), Value::String(value));
    Ok(Value::Object(lead))
}
