//! Iterable actions: their specs and the encoding of one record as a `bulkUpdate` user, a
//! `trackBulk` event, or the `userId` of a delete.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, FieldSpec, FieldType, Payload, SyncMode,
};
use serde_json::{Value, json};

use crate::destinations::event_fields::{
    self, Identity, identity, open_object, optional_text, parse_time, required_text,
};

const USER_ID: FieldSpec = FieldSpec {
    name: "user_id",
    field_type: FieldType::String,
    required: false,
    description: "Iterable userId; the record's unique id when unmapped (deletes always use the unique id).",
    children: &[],
};

const EMAIL: FieldSpec = FieldSpec {
    name: "email",
    field_type: FieldType::String,
    required: false,
    description: "The user's email address (sent as the user's email beside the userId).",
    children: &[],
};

static USER_FIELDS: [FieldSpec; 3] = [
    USER_ID,
    EMAIL,
    FieldSpec {
        name: "data_fields",
        field_type: FieldType::Object,
        required: false,
        description: "User profile fields (dataFields); any field the action does not declare is added to them.",
        children: &[],
    },
];

static EVENT_FIELDS: [FieldSpec; 5] = [
    USER_ID,
    EMAIL,
    FieldSpec {
        name: "event_name",
        field_type: FieldType::String,
        required: true,
        description: "Custom event name, e.g. 'plan_upgraded'.",
        children: &[],
    },
    FieldSpec {
        name: "created_at",
        field_type: FieldType::Datetime,
        required: false,
        description: "When it happened (RFC 3339, or epoch seconds or milliseconds); sent as epoch seconds. Iterable uses the arrival time when unmapped.",
        children: &[],
    },
    FieldSpec {
        name: "data_fields",
        field_type: FieldType::Object,
        required: false,
        description: "Event fields (dataFields); any field the action does not declare is added to them.",
        children: &[],
    },
];

/// The actions of the Iterable destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "upsert_user",
        display_name: "Upsert User",
        description: "Creates or updates the users of added and updated records through /api/users/bulkUpdate (dataFields are merged; preferUserId creates unknown userIds).",
        kind: ActionKind::Upsert,
        fields: &USER_FIELDS,
        open_fields: true,
        sync_modes: &[],
    },
    ActionSpec {
        name: "track_event",
        display_name: "Track Event",
        description: "Records a custom event per added or updated record through /api/events/trackBulk; the event id is retl's idempotency key, so a re-sent event replaces itself.",
        kind: ActionKind::Upsert,
        fields: &EVENT_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Add],
    },
    ActionSpec {
        name: "delete_user",
        display_name: "Delete User",
        description: "Deletes the user whose userId is the record's unique id (DELETE /api/users/byUserId/{userId}, one request per record); an unknown user is success.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// An Iterable action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IterableAction {
    /// `upsert_user`: `/api/users/bulkUpdate`.
    UpsertUser,
    /// `track_event`: `/api/events/trackBulk`.
    TrackEvent,
    /// `delete_user`: `DELETE /api/users/byUserId/{userId}`.
    DeleteUser,
}

impl IterableAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert_user" => Some(IterableAction::UpsertUser),
            "track_event" => Some(IterableAction::TrackEvent),
            "delete_user" => Some(IterableAction::DeleteUser),
            _ => None,
        }
    }
}

/// Who a sent user or event is, to find it in the answer's failure lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Its `userId`.
    pub(crate) user_id: String,
    /// Its `email`, when mapped.
    pub(crate) email: Option<String>,
    /// Its `eventName` (events only).
    pub(crate) event_name: Option<String>,
}

fn user_id(payload: &Payload) -> Result<String, String> {
    match identity(payload, "user_id") {
        Identity::Mapped(id) | Identity::Key(id) => Ok(id),
        Identity::Missing => Err("field 'user_id' is null or empty".to_string()),
    }
}

fn data_fields(
    spec: &ActionSpec,
    payload: &Payload,
) -> Result<serde_json::Map<String, Value>, String> {
    let object = open_object(spec, payload, "data_fields")?;
    for reserved in ["userId", "email"] {
        if object.contains_key(reserved) {
            return Err(format!(
                "data field '{reserved}' is set by retl; map it to field {}",
                if reserved == "email" {
                    "email"
                } else {
                    "user_id"
                }
            ));
        }
    }
    Ok(object)
}

/// The `bulkUpdate` user object of one record.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn user(spec: &ActionSpec, payload: &Payload) -> Result<(Value, Sent), String> {
    let id = user_id(payload)?;
    let email = optional_text(payload, "email")?.filter(|e| !e.is_empty());
    let mut user = json!({
        "userId": id,
        "dataFields": Value::Object(data_fields(spec, payload)?),
        "preferUserId": true,
    });
    if let Some(email) = &email {
        user["email"] = json!(email);
    }
    Ok((
        user,
        Sent {
            user_id: id,
            email,
            event_name: None,
        },
    ))
}

/// The `trackBulk` event object of one record; its `id` is the record's idempotency key.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn event(
    spec: &ActionSpec,
    ctx: &DeliveryContext,
    payload: &Payload,
) -> Result<(Value, Sent), String> {
    let id = user_id(payload)?;
    let email = optional_text(payload, "email")?.filter(|e| !e.is_empty());
    let name = required_text(payload, "event_name")?;
    let mut event = json!({
        "id": ctx.idempotency_key(payload),
        "userId": id,
        "eventName": name,
    });
    if let Some(email) = &email {
        event["email"] = json!(email);
    }
    if let Some(time) = payload.fields.get("created_at").filter(|v| !v.is_null()) {
        event["createdAt"] = json!(parse_time("created_at", time)?.timestamp());
    }
    let fields = data_fields(spec, payload)?;
    if !fields.is_empty() {
        event["dataFields"] = Value::Object(fields);
    }
    Ok((
        event,
        Sent {
            user_id: id,
            email,
            event_name: Some(name),
        },
    ))
}

/// The `userId` a delete names: the record's unique id.
///
/// # Errors
/// When the key is null or empty.
pub(crate) fn delete_id(payload: &Payload) -> Result<String, String> {
    event_fields::id_text(&payload.key)
        .ok_or_else(|| "the record's unique id is null or empty".to_string())
}
