//! Zendesk actions: their specs, and the encoding of one record as a user object of
//! `create_or_update_many` or an external id of `destroy_many`.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Map, Value, json};

use crate::destinations::event_fields::{self, Identity, identity, open_object};

const fn field(name: &'static str, field_type: FieldType, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        field_type,
        required: false,
        description,
        children: &[],
    }
}

/// The user properties retl sends as they are mapped, with their type.
const STANDARD: [(&str, FieldType); 11] = [
    ("name", FieldType::String),
    ("email", FieldType::String),
    ("phone", FieldType::String),
    ("role", FieldType::String),
    ("organization_id", FieldType::Integer),
    ("tags", FieldType::Array),
    ("details", FieldType::String),
    ("notes", FieldType::String),
    ("time_zone", FieldType::String),
    ("locale", FieldType::String),
    ("verified", FieldType::Boolean),
];

static USER_FIELDS: [FieldSpec; 13] = [
    field(
        "external_id",
        FieldType::String,
        "The user's unique id in your systems (Zendesk external_id), which matches the user; the record's unique id when unmapped (deletes always use the unique id).",
    ),
    field(
        "name",
        FieldType::String,
        "Full name; Zendesk requires it to create a user",
    ),
    field(
        "email",
        FieldType::String,
        "Primary email (also matches an existing user)",
    ),
    field("phone", FieldType::String, "Phone number"),
    field(
        "role",
        FieldType::String,
        "'end-user' (Zendesk's default), 'agent' or 'admin'",
    ),
    field(
        "organization_id",
        FieldType::Integer,
        "Id of the user's organization",
    ),
    field("tags", FieldType::Array, "Tags (an array of text)"),
    field("details", FieldType::String, "Details about the user"),
    field("notes", FieldType::String, "Notes about the user"),
    field(
        "time_zone",
        FieldType::String,
        "Time zone, e.g. 'Europe/Oslo'",
    ),
    field("locale", FieldType::String, "Locale, e.g. 'en-US'"),
    field(
        "verified",
        FieldType::Boolean,
        "Whether the primary identity is verified",
    ),
    field(
        "user_fields",
        FieldType::Object,
        "Custom user fields by key (they must exist: Admin Center > People > User fields); any field the action does not declare is added to them.",
    ),
];

/// The actions of the Zendesk destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert_user",
        display_name: "Upsert User",
        description: "Creates or updates users matched by external_id (or email) through create_or_update_many, 100 per request, and reads each user's result from the job status.",
        kind: ActionKind::Upsert,
        fields: &USER_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert],
    },
    ActionSpec {
        name: "delete_user",
        display_name: "Delete User",
        description: "Deletes the users whose external_id is the record's unique id through destroy_many, 100 per request; a user who is not there counts as deleted.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Zendesk action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZendeskAction {
    /// `upsert_user`: `POST /api/v2/users/create_or_update_many`.
    UpsertUser,
    /// `delete_user`: `DELETE /api/v2/users/destroy_many?external_ids=`.
    DeleteUser,
}

impl ZendeskAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_user" => Some(ZendeskAction::UpsertUser),
            "delete_user" => Some(ZendeskAction::DeleteUser),
            _ => None,
        }
    }
}

/// One record as a user object of `create_or_update_many`.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn user(spec: &ActionSpec, payload: &Payload) -> Result<Value, String> {
    let external_id = match identity(payload, "external_id") {
        Identity::Mapped(id) | Identity::Key(id) => id,
        Identity::Missing => return Err("field 'external_id' is null or empty".to_string()),
    };
    let mut user = Map::new();
    user.insert("external_id".to_string(), json!(external_id));
    for (name, field_type) in STANDARD {
        let Some(value) = payload.fields.get(name) else {
            continue;
        };
        user.insert(name.to_string(), typed(name, field_type, value)?);
    }
    let custom = open_object(spec, payload, "user_fields")?;
    if let Some((name, _)) = custom.iter().find(|(_, v)| matches!(v, Value::Object(_))) {
        return Err(format!(
            "user field '{name}' is an object; Zendesk user fields hold text, numbers, booleans, dates or (multi-select) arrays"
        ));
    }
    if !custom.is_empty() {
        user.insert("user_fields".to_string(), Value::Object(custom));
    }
    Ok(Value::Object(user))
}

/// A property's value in the type Zendesk expects; `null` is sent as `null`.
fn typed(name: &str, field_type: FieldType, value: &Value) -> Result<Value, String> {
    match (field_type, value) {
        (_, Value::Null) => Ok(Value::Null),
        (FieldType::String, Value::String(_)) | (FieldType::Boolean, Value::Bool(_)) => {
            Ok(value.clone())
        }
        (FieldType::String, Value::Number(n)) => Ok(json!(n.to_string())),
        (FieldType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(value.clone()),
        (FieldType::Integer, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(|n| json!(n))
            .map_err(|_| format!("field '{name}' must be a whole number, not {value}")),
        (FieldType::Array, Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(value.clone())
        }
        _ => Err(format!(
            "field '{name}' must be {}, not {value}",
            match field_type {
                FieldType::Integer => "a whole number",
                FieldType::Boolean => "true or false",
                FieldType::Array => "an array of text",
                _ => "text",
            }
        )),
    }
}

/// The external id a delete names: the record's unique id. Commas are refused: the ids travel
/// as one comma-separated query parameter.
///
/// # Errors
/// When the key is null, empty or holds a comma.
pub(crate) fn delete_id(payload: &Payload) -> Result<String, String> {
    let id = event_fields::id_text(&payload.key)
        .ok_or_else(|| "the record's unique id is null or empty".to_string())?;
    if id.contains(',') {
        return Err(format!(
            "the unique id '{id}' holds a comma, which destroy_many's comma-separated external_ids cannot carry"
        ));
    }
    Ok(id)
}
