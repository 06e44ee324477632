//! ActiveCampaign actions: their specs and the encoding of one record as a contact sync body,
//! or the email of a contact to delete.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload};
use serde_json::{Value, json};

use crate::destinations::event_fields::{self, open_object, optional_text, required_text};

const fn text(name: &'static str, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        field_type: FieldType::String,
        required: false,
        description,
        children: &[],
    }
}

/// Standard contact fields: (retl field name, ActiveCampaign attribute).
const STANDARD: [(&str, &str); 3] = [
    ("first_name", "firstName"),
    ("last_name", "lastName"),
    ("phone", "phone"),
];

static CONTACT_FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "email",
        field_type: FieldType::String,
        required: true,
        description: "The contact's email address, the key of the sync.",
        children: &[],
    },
    text("first_name", "First name (firstName)."),
    text("last_name", "Last name (lastName)."),
    text("phone", "Phone number."),
    FieldSpec {
        name: "field_values",
        field_type: FieldType::Object,
        required: false,
        description: "Custom field values keyed by the custom field's id (GET /api/3/fields); any field the action does not declare is added to them.",
        children: &[],
    },
];

/// The actions of the ActiveCampaign destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "sync_contact",
        display_name: "Sync Contact",
        description: "Creates or updates the contact of each added and updated record by email (POST /api/3/contact/sync, one request per record).",
        kind: ActionKind::Upsert,
        fields: &CONTACT_FIELDS,
        open_fields: true,
        sync_modes: &[],
    },
    ActionSpec {
        name: "delete_contact",
        display_name: "Delete Contact",
        description: "Deletes the contact whose email is the record's unique id: looked up by email, then DELETE /api/3/contacts/{id}; a contact that is not there is success. The model's unique id must be the email.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// An ActiveCampaign action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActiveCampaignAction {
    /// `sync_contact`: `POST /api/3/contact/sync`.
    SyncContact,
    /// `delete_contact`: lookup by email, then `DELETE /api/3/contacts/{id}`.
    DeleteContact,
}

impl ActiveCampaignAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "sync_contact" => Some(ActiveCampaignAction::SyncContact),
            "delete_contact" => Some(ActiveCampaignAction::DeleteContact),
            _ => None,
        }
    }
}

/// The `/api/3/contact/sync` body of one record.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn sync_body(spec: &ActionSpec, payload: &Payload) -> Result<Value, String> {
    let email = required_text(payload, "email")?;
    let mut contact = json!({ "email": email });
    for (field, attribute) in STANDARD {
        if let Some(value) = optional_text(payload, field)? {
            contact[attribute] = json!(value);
        }
    }
    let values = open_object(spec, payload, "field_values")?;
    if !values.is_empty() {
        let mut list = Vec::with_capacity(values.len());
        for (field, value) in values {
            let value = match value {
                Value::String(s) => s,
                Value::Null => String::new(),
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                other => {
                    return Err(format!(
                        "custom field '{field}' must be text, a number or a boolean, not {other}"
                    ));
                }
            };
            list.push(json!({"field": field, "value": value}));
        }
        contact["fieldValues"] = Value::Array(list);
    }
    Ok(json!({ "contact": contact }))
}

/// The email a delete names: the record's unique id.
///
/// # Errors
/// When the key is not an email address.
pub(crate) fn delete_email(payload: &Payload) -> Result<String, String> {
    event_fields::id_text(&payload.key)
        .filter(|k| k.contains('@'))
        .ok_or_else(|| {
            format!(
                "ActiveCampaign finds contacts to delete by email: the record's unique id {} is not an email address (make the model's unique id the email column)",
                payload.key
            )
        })
}
