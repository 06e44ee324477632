//! Pipedrive actions: their specs, and the encoding of one record as the body of a person or
//! organization create/update.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Map, Value};

use super::config::MatchField;
use crate::destinations::event_fields;

/// The field holding the value of the match field.
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

static PERSON_FIELDS: [FieldSpec; 7] = [
    field(
        ID_FIELD,
        FieldType::String,
        "Value of the person match field (person_match_field, default 'email') that identifies the person; when not mapped, the record's key.",
    ),
    field(
        "name",
        FieldType::String,
        "Full name; Pipedrive requires it to add a person",
    ),
    field("email", FieldType::String, "Email address"),
    field("phone", FieldType::String, "Phone number"),
    field(
        "org_id",
        FieldType::Integer,
        "Id of the person's organization",
    ),
    field(
        "owner_id",
        FieldType::Integer,
        "Id of the user who owns the person",
    ),
    field(
        "visible_to",
        FieldType::String,
        "Visibility group ('1' owner only, '3' whole company, ...)",
    ),
];

static ORGANIZATION_FIELDS: [FieldSpec; 5] = [
    field(
        ID_FIELD,
        FieldType::String,
        "Value of the organization match field (organization_match_field, default 'name'); when not mapped, the record's key.",
    ),
    field(
        "name",
        FieldType::String,
        "Name; Pipedrive requires it to add an organization",
    ),
    field("address", FieldType::String, "Full address"),
    field("owner_id", FieldType::Integer, "Id of the user who owns it"),
    field(
        "visible_to",
        FieldType::String,
        "Visibility group ('1' owner only, '3' whole company, ...)",
    ),
];

/// The actions of the Pipedrive destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 4] = [
    ActionSpec {
        name: "upsert_person",
        display_name: "Upsert Person",
        description: "Finds the person by the match field (search, exact match) and updates it, or adds it; other fields are custom fields by their key. One person per request.",
        kind: ActionKind::Upsert,
        fields: &PERSON_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert],
    },
    ActionSpec {
        name: "upsert_organization",
        display_name: "Upsert Organization",
        description: "Finds the organization by the match field (search, exact match) and updates it, or adds it; other fields are custom fields by their key.",
        kind: ActionKind::Upsert,
        fields: &ORGANIZATION_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert],
    },
    ActionSpec {
        name: "delete_person",
        display_name: "Delete Person",
        description: "Deletes the person whose match field value is the record's key; a person who is not there counts as deleted.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
    ActionSpec {
        name: "delete_organization",
        display_name: "Delete Organization",
        description: "Deletes the organization whose match field value is the record's key; one that is not there counts as deleted.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Pipedrive object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    /// `persons`.
    Persons,
    /// `organizations`.
    Organizations,
}

impl Object {
    /// The path segment of its endpoints.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Object::Persons => "persons",
            Object::Organizations => "organizations",
        }
    }
}

/// A Pipedrive action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PipedriveAction {
    /// `upsert_person`, `upsert_organization`.
    Upsert(Object),
    /// `delete_person`, `delete_organization`.
    Delete(Object),
}

impl PipedriveAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_person" => Some(PipedriveAction::Upsert(Object::Persons)),
            "upsert_organization" => Some(PipedriveAction::Upsert(Object::Organizations)),
            "delete_person" => Some(PipedriveAction::Delete(Object::Persons)),
            "delete_organization" => Some(PipedriveAction::Delete(Object::Organizations)),
            _ => None,
        }
    }
}

/// A match value: a non-empty string, or a number as its text.
fn match_value(value: &Value, what: &str) -> Result<String, String> {
    event_fields::id_text(value)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            format!("{what} must be a non-empty text or number to find the Pipedrive record, not {value}")
        })
}

/// One added or updated record: its match value and the create/update body (every field but
/// `id`, the match field set to the match value). Objects are refused: Pipedrive fields are
/// flat.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn record(matching: &MatchField, payload: &Payload) -> Result<(String, Value), String> {
    let value = match payload.fields.get(ID_FIELD) {
        Some(v) => match_value(v, "field 'id'")?,
        None => match_value(&payload.key, "the record's key")?,
    };
    let mut body = Map::new();
    for (name, v) in payload.fields.iter() {
        if name == ID_FIELD {
            continue;
        }
        if v.is_object() {
            return Err(format!(
                "field '{name}' is an object; Pipedrive fields are flat: map each part to its own field"
            ));
        }
        body.insert(name.to_string(), v.clone());
    }
    body.insert(matching.key.clone(), Value::String(value.clone()));
    Ok((value, Value::Object(body)))
}

/// The match value of a deleted record: its key.
///
/// # Errors
/// When the key is null, empty, an object or an array.
pub(crate) fn delete_value(payload: &Payload) -> Result<String, String> {
    match_value(&payload.key, "the record's key")
}
