//! Klaviyo actions: their specs and the encoding of one record as a profile of a bulk import
//! job, an event, or the email of a deletion request (JSON:API resource objects).

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, FieldSpec, FieldType, Payload, SyncMode,
};
use serde_json::{Map, Value, json};

use crate::destinations::event_fields::{
    self, Identity, identity, open_object, optional_text, parse_time, required_text,
};

const EXTERNAL_ID: FieldSpec = FieldSpec {
    name: "external_id",
    field_type: FieldType::String,
    required: false,
    description: "The profile's external_id; the record's unique id when unmapped.",
    children: &[],
};

const EMAIL: FieldSpec = FieldSpec {
    name: "email",
    field_type: FieldType::String,
    required: false,
    description: "The profile's email address.",
    children: &[],
};

const PHONE: FieldSpec = FieldSpec {
    name: "phone_number",
    field_type: FieldType::String,
    required: false,
    description: "The profile's phone number in E.164 format, e.g. +15005550006.",
    children: &[],
};

static PROFILE_FIELDS: [FieldSpec; 6] = [
    EXTERNAL_ID,
    EMAIL,
    PHONE,
    FieldSpec {
        name: "first_name",
        field_type: FieldType::String,
        required: false,
        description: "First name.",
        children: &[],
    },
    FieldSpec {
        name: "last_name",
        field_type: FieldType::String,
        required: false,
        description: "Last name.",
        children: &[],
    },
    FieldSpec {
        name: "properties",
        field_type: FieldType::Object,
        required: false,
        description: "Custom profile properties; any field the action does not declare is added to them.",
        children: &[],
    },
];

static EVENT_FIELDS: [FieldSpec; 7] = [
    EXTERNAL_ID,
    EMAIL,
    PHONE,
    FieldSpec {
        name: "metric",
        field_type: FieldType::String,
        required: true,
        description: "The event's metric name, e.g. 'Plan Upgraded'.",
        children: &[],
    },
    FieldSpec {
        name: "time",
        field_type: FieldType::Datetime,
        required: false,
        description: "When it happened (RFC 3339, or epoch seconds or milliseconds); Klaviyo uses the arrival time when unmapped.",
        children: &[],
    },
    FieldSpec {
        name: "value",
        field_type: FieldType::Number,
        required: false,
        description: "A monetary value of the event.",
        children: &[],
    },
    FieldSpec {
        name: "properties",
        field_type: FieldType::Object,
        required: false,
        description: "Event properties; any field the action does not declare is added to them.",
        children: &[],
    },
];

/// The actions of the Klaviyo destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "upsert_profile",
        display_name: "Upsert Profile",
        description: "Creates or updates the profiles of added and updated records through a bulk profile import job (/api/profile-bulk-import-jobs), optionally adding them to the configured list.",
        kind: ActionKind::Upsert,
        fields: &PROFILE_FIELDS,
        open_fields: true,
        sync_modes: &[],
    },
    ActionSpec {
        name: "track_event",
        display_name: "Track Event",
        description: "Records an event per added or updated record through /api/events (one request each); its unique_id is retl's idempotency key, so Klaviyo drops a re-sent copy.",
        kind: ActionKind::Upsert,
        fields: &EVENT_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Add],
    },
    ActionSpec {
        name: "delete_profile",
        display_name: "Delete Profile",
        description: "Requests the deletion of the profiles whose email is the record's unique id through the data privacy API (/api/data-privacy-deletion-jobs, one request each); the model's unique id must be the email.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Klaviyo action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KlaviyoAction {
    /// `upsert_profile`: a profile bulk import job.
    UpsertProfile,
    /// `track_event`: `/api/events`.
    TrackEvent,
    /// `delete_profile`: a data privacy deletion job.
    DeleteProfile,
}

impl KlaviyoAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_profile" => Some(KlaviyoAction::UpsertProfile),
            "track_event" => Some(KlaviyoAction::TrackEvent),
            "delete_profile" => Some(KlaviyoAction::DeleteProfile),
            _ => None,
        }
    }
}

/// The identifiers of the profile a record names: `external_id` (the key when unmapped),
/// and `email` / `phone_number` when mapped.
fn identifiers(payload: &Payload) -> Result<Map<String, Value>, String> {
    let mut ids = Map::new();
    match identity(payload, "external_id") {
        Identity::Mapped(id) | Identity::Key(id) => {
            ids.insert("external_id".into(), json!(id));
        }
        Identity::Missing => {}
    }
    for field in ["email", "phone_number"] {
        if let Some(value) = optional_text(payload, field)?.filter(|v| !v.is_empty()) {
            ids.insert(field.into(), json!(value));
        }
    }
    if ids.is_empty() {
        return Err("the profile has no identifier: map email, phone_number or external_id".into());
    }
    Ok(ids)
}

/// The profile resource of one record, for a bulk import job.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn profile(spec: &ActionSpec, payload: &Payload) -> Result<Value, String> {
    let mut attributes = identifiers(payload)?;
    for field in ["first_name", "last_name"] {
        if let Some(value) = optional_text(payload, field)? {
            attributes.insert(field.into(), json!(value));
        }
    }
    let properties = open_object(spec, payload, "properties")?;
    if !properties.is_empty() {
        attributes.insert("properties".into(), Value::Object(properties));
    }
    Ok(json!({"type": "profile", "attributes": attributes}))
}

/// The `POST /api/events` body of one record; its `unique_id` is the idempotency key.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn event(
    spec: &ActionSpec,
    ctx: &DeliveryContext,
    payload: &Payload,
) -> Result<Value, String> {
    let metric = required_text(payload, "metric")?;
    let mut attributes = json!({
        "properties": Value::Object(open_object(spec, payload, "properties")?),
        "unique_id": ctx.idempotency_key(payload),
        "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
        "profile": {"data": {"type": "profile", "attributes": identifiers(payload)?}},
    });
    if let Some(time) = payload.fields.get("time").filter(|v| !v.is_null()) {
        attributes["time"] = json!(event_fields::rfc3339(parse_time("time", time)?));
    }
    match payload.fields.get("value") {
        None | Some(Value::Null) => {}
        Some(value @ Value::Number(_)) => attributes["value"] = value.clone(),
        Some(other) => return Err(format!("field 'value' must be a number, not {other}")),
    }
    Ok(json!({"data": {"type": "event", "attributes": attributes}}))
}

/// The deletion request of one record: its unique id must be an email address.
///
/// # Errors
/// When the key is not an email address.
pub(crate) fn deletion(payload: &Payload) -> Result<Value, String> {
    let email = event_fields::id_text(&payload.key)
        .filter(|k| k.contains('@'))
        .ok_or_else(|| {
            format!(
                "Klaviyo deletes profiles by email: the record's unique id {} is not an email address (make the model's unique id the email column)",
                payload.key
            )
        })?;
    Ok(
        json!({"data": {"type": "data-privacy-deletion-job", "attributes": {
        "profile": {"data": {"type": "profile", "attributes": {"email": email}}}}}}),
    )
}
