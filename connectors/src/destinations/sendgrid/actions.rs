//! SendGrid actions: their specs and the encoding of one record as a Marketing Campaigns
//! contact, or the email of a contact to delete.

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

/// The reserved contact fields retl sends at the top level of a contact, beside `email`.
const RESERVED: [&str; 8] = [
    "first_name",
    "last_name",
    "phone_number",
    "address_line_1",
    "city",
    "state_province_region",
    "postal_code",
    "country",
];

static CONTACT_FIELDS: [FieldSpec; 10] = [
    FieldSpec {
        name: "email",
        field_type: FieldType::String,
        required: true,
        description: "The contact's email address, its identifier in SendGrid.",
        children: &[],
    },
    text("first_name", "First name."),
    text("last_name", "Last name."),
    text("phone_number", "Phone number."),
    text("address_line_1", "First line of the postal address."),
    text("city", "City."),
    text("state_province_region", "State, province or region."),
    text("postal_code", "Postal code."),
    text("country", "Country."),
    FieldSpec {
        name: "custom_fields",
        field_type: FieldType::Object,
        required: false,
        description: "Custom field values keyed by the custom field's id (e.g. e1_T, as GET /v3/marketing/field_definitions lists them); any field the action does not declare is added to them. Custom fields must exist in SendGrid.",
        children: &[],
    },
];

/// The actions of the SendGrid destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert_contact",
        display_name: "Upsert Contact",
        description: "Creates or updates Marketing Campaigns contacts of added and updated records (PUT /v3/marketing/contacts), optionally adding them to the configured list.",
        kind: ActionKind::Upsert,
        fields: &CONTACT_FIELDS,
        open_fields: true,
        sync_modes: &[],
    },
    ActionSpec {
        name: "delete_contact",
        display_name: "Delete Contact",
        description: "Deletes the contacts whose email is the record's unique id: their ids are looked up by email, then deleted (DELETE /v3/marketing/contacts?ids=); a contact that is not there is success. The model's unique id must be the email.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A SendGrid action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendgridAction {
    /// `upsert_contact`: `PUT /v3/marketing/contacts`.
    UpsertContact,
    /// `delete_contact`: search by email, then `DELETE /v3/marketing/contacts?ids=`.
    DeleteContact,
}

impl SendgridAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_contact" => Some(SendgridAction::UpsertContact),
            "delete_contact" => Some(SendgridAction::DeleteContact),
            _ => None,
        }
    }
}

/// The contact object of one record.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn contact(spec: &ActionSpec, payload: &Payload) -> Result<Value, String> {
    let email = required_text(payload, "email")?;
    let mut contact = json!({ "email": email });
    for field in RESERVED {
        if let Some(value) = optional_text(payload, field)? {
            contact[field] = json!(value);
        }
    }
    let custom = open_object(spec, payload, "custom_fields")?;
    if !custom.is_empty() {
        contact["custom_fields"] = Value::Object(custom);
    }
    Ok(contact)
}

/// The email a delete names: the record's unique id, lower-cased (SendGrid stores emails in
/// lower case).
///
/// # Errors
/// When the key is not an email address.
pub(crate) fn delete_email(payload: &Payload) -> Result<String, String> {
    event_fields::id_text(&payload.key)
        .filter(|k| k.contains('@'))
        .map(|k| k.to_lowercase())
        .ok_or_else(|| {
            format!(
                "SendGrid finds contacts to delete by email: the record's unique id {} is not an email address (make the model's unique id the email column)",
                payload.key
            )
        })
}
