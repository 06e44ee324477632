//! Intercom actions: their specs, and the encoding of one record as the body of
//! `POST /contacts` (create) or `PUT /contacts/{id}` (update).

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Map, Value, json};

use crate::destinations::event_fields::{self, Identity, identity, open_object, parse_time};

const fn field(name: &'static str, field_type: FieldType, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        field_type,
        required: false,
        description,
        children: &[],
    }
}

/// The contact's own (non-custom) attributes retl sends as they are mapped, with their type.
const STANDARD: [(&str, FieldType); 6] = [
    ("email", FieldType::String),
    ("phone", FieldType::String),
    ("name", FieldType::String),
    ("avatar", FieldType::String),
    ("owner_id", FieldType::Integer),
    ("unsubscribed_from_emails", FieldType::Boolean),
];

/// The time attributes, sent as UNIX seconds.
const TIMES: [&str; 2] = ["signed_up_at", "last_seen_at"];

static CONTACT_FIELDS: [FieldSpec; 10] = [
    field(
        "external_id",
        FieldType::String,
        "The user's unique id in your systems (Intercom's external_id), which matches the contact; the record's unique id when unmapped (archives always use the unique id).",
    ),
    field("email", FieldType::String, "Email address"),
    field("phone", FieldType::String, "Phone number"),
    field("name", FieldType::String, "Full name"),
    field("avatar", FieldType::String, "URL of the avatar image"),
    field(
        "signed_up_at",
        FieldType::Datetime,
        "When the user signed up (RFC 3339 or epoch seconds/milliseconds); sent as UNIX seconds",
    ),
    field(
        "last_seen_at",
        FieldType::Datetime,
        "When the user was last seen (RFC 3339 or epoch seconds/milliseconds); sent as UNIX seconds",
    ),
    field(
        "owner_id",
        FieldType::Integer,
        "Id of the teammate who owns the contact",
    ),
    field(
        "unsubscribed_from_emails",
        FieldType::Boolean,
        "Whether the contact is unsubscribed from emails",
    ),
    field(
        "custom_attributes",
        FieldType::Object,
        "Custom data attributes (they must exist in the workspace: Settings > Data > People); any field the action does not declare is added to them.",
    ),
];

/// The actions of the Intercom destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert_contact",
        display_name: "Upsert Contact",
        description: "Creates or updates the user contact whose external_id is the record's (upsert), or only updates an existing one (update); undeclared fields are custom attributes. One contact per request.",
        kind: ActionKind::Upsert,
        fields: &CONTACT_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert, SyncMode::Update],
    },
    ActionSpec {
        name: "archive_contact",
        display_name: "Archive Contact",
        description: "Archives the user contact whose external_id is the record's unique id; a contact that is not there counts as archived.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// An Intercom action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntercomAction {
    /// `upsert_contact`.
    UpsertContact,
    /// `archive_contact`.
    ArchiveContact,
}

impl IntercomAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_contact" => Some(IntercomAction::UpsertContact),
            "archive_contact" => Some(IntercomAction::ArchiveContact),
            _ => None,
        }
    }
}

/// One record as a contact: its `external_id` and the attributes of the request body
/// (without `role`, which only a create carries).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Contact {
    /// The contact's `external_id`.
    pub(crate) external_id: String,
    /// `external_id`, the mapped standard attributes and `custom_attributes`.
    pub(crate) attributes: Map<String, Value>,
}

impl Contact {
    /// The body of `POST /contacts`: the attributes with `role: user` (a contact with an
    /// `external_id` is a user; leads have none).
    pub(crate) fn create_body(&self) -> Value {
        let mut body = self.attributes.clone();
        body.insert("role".to_string(), json!("user"));
        Value::Object(body)
    }

    /// The body of `PUT /contacts/{id}`.
    pub(crate) fn update_body(&self) -> Value {
        Value::Object(self.attributes.clone())
    }
}

/// Encodes one added or updated record.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn contact(spec: &ActionSpec, payload: &Payload) -> Result<Contact, String> {
    let external_id = match identity(payload, "external_id") {
        Identity::Mapped(id) | Identity::Key(id) => id,
        Identity::Missing => return Err("field 'external_id' is null or empty".to_string()),
    };
    let mut attributes = Map::new();
    attributes.insert("external_id".to_string(), json!(external_id));
    for (name, field_type) in STANDARD {
        let Some(value) = payload.fields.get(name) else {
            continue;
        };
        attributes.insert(name.to_string(), standard_value(name, field_type, value)?);
    }
    for name in TIMES {
        match payload.fields.get(name) {
            None => {}
            Some(Value::Null) => {
                attributes.insert(name.to_string(), Value::Null);
            }
            Some(value) => {
                let time = parse_time(name, value)?;
                attributes.insert(name.to_string(), json!(time.timestamp()));
            }
        }
    }
    let custom = open_object(spec, payload, "custom_attributes")?;
    for (name, value) in &custom {
        if matches!(value, Value::Object(_) | Value::Array(_)) {
            return Err(format!(
                "custom attribute '{name}' is {}; Intercom custom attributes are text, numbers, booleans or dates: map each part to its own attribute",
                if value.is_object() {
                    "an object"
                } else {
                    "an array"
                }
            ));
        }
    }
    if !custom.is_empty() {
        attributes.insert("custom_attributes".to_string(), Value::Object(custom));
    }
    Ok(Contact {
        external_id,
        attributes,
    })
}

/// A standard attribute's value in the type Intercom expects; `null` is sent as `null`.
fn standard_value(name: &str, field_type: FieldType, value: &Value) -> Result<Value, String> {
    let ok = match (field_type, value) {
        (_, Value::Null) => true,
        (FieldType::String, Value::String(_)) => true,
        (FieldType::String, Value::Number(n)) => return Ok(json!(n.to_string())),
        (FieldType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (FieldType::Integer, Value::String(s)) => {
            return s
                .trim()
                .parse::<i64>()
                .map(|n| json!(n))
                .map_err(|_| format!("field '{name}' must be a whole number, not {value}"));
        }
        (FieldType::Boolean, Value::Bool(_)) => true,
        _ => false,
    };
    if ok {
        Ok(value.clone())
    } else {
        Err(format!(
            "field '{name}' must be {}, not {value}",
            match field_type {
                FieldType::Integer => "a whole number",
                FieldType::Boolean => "true or false",
                _ => "text",
            }
        ))
    }
}

/// The external id an archive names: the record's unique id.
///
/// # Errors
/// When the key is null or empty.
pub(crate) fn archive_id(payload: &Payload) -> Result<String, String> {
    event_fields::id_text(&payload.key)
        .ok_or_else(|| "the record's unique id is null or empty".to_string())
}
