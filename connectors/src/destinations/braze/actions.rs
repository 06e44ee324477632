//! Braze actions: their specs and the encoding of one record as an attributes object, an
//! event object, or an external id to delete.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Value, json};

use crate::destinations::event_fields::{
    self, Identity, identity, open_object, parse_time, required_text,
};

const EXTERNAL_ID: FieldSpec = FieldSpec {
    name: "external_id",
    field_type: FieldType::String,
    required: false,
    description: "Braze external_id of the user; the record's unique id when unmapped (deletes always use the unique id).",
    children: &[],
};

static PROFILE_FIELDS: [FieldSpec; 2] = [
    EXTERNAL_ID,
    FieldSpec {
        name: "attributes",
        field_type: FieldType::Object,
        required: false,
        description: "Profile attributes (standard such as email, first_name, or custom); any field the action does not declare is added to them.",
        children: &[],
    },
];

static EVENT_FIELDS: [FieldSpec; 4] = [
    EXTERNAL_ID,
    FieldSpec {
        name: "name",
        field_type: FieldType::String,
        required: true,
        description: "Custom event name, e.g. 'plan_upgraded'.",
        children: &[],
    },
    FieldSpec {
        name: "time",
        field_type: FieldType::Datetime,
        required: true,
        description: "When it happened (RFC 3339, or epoch seconds or milliseconds); sent as ISO 8601.",
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

/// The actions of the Braze destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "update_user_profile",
        display_name: "Update User Profile",
        description: "Sets profile attributes of added and updated records through /users/track: upsert creates missing users, update changes only existing ones (_update_existing_only).",
        kind: ActionKind::Upsert,
        fields: &PROFILE_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert, SyncMode::Update],
    },
    ActionSpec {
        name: "track_event",
        display_name: "Track Event",
        description: "Records a custom event per added or updated record through /users/track.",
        kind: ActionKind::Upsert,
        fields: &EVENT_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Add],
    },
    ActionSpec {
        name: "delete_user",
        display_name: "Delete User",
        description: "Deletes the user whose external_id is the record's unique id through /users/delete; an unknown user is success.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Braze action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BrazeAction {
    /// `update_user_profile`: `/users/track` `attributes`.
    UpdateUserProfile,
    /// `track_event`: `/users/track` `events`.
    TrackEvent,
    /// `delete_user`: `/users/delete` `external_ids`.
    DeleteUser,
}

impl BrazeAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "update_user_profile" => Some(BrazeAction::UpdateUserProfile),
            "track_event" => Some(BrazeAction::TrackEvent),
            "delete_user" => Some(BrazeAction::DeleteUser),
            _ => None,
        }
    }

    /// The `/users/track` array it fills (`None` for deletes).
    pub(crate) fn input_array(self) -> Option<&'static str> {
        match self {
            BrazeAction::UpdateUserProfile => Some("attributes"),
            BrazeAction::TrackEvent => Some("events"),
            BrazeAction::DeleteUser => None,
        }
    }
}

fn external_id(payload: &Payload) -> Result<String, String> {
    match identity(payload, "external_id") {
        Identity::Mapped(id) | Identity::Key(id) => Ok(id),
        Identity::Missing => Err("field 'external_id' is null or empty".to_string()),
    }
}

/// The attributes object of one record; `update_only` sets `_update_existing_only`.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn attributes(
    spec: &ActionSpec,
    payload: &Payload,
    update_only: bool,
) -> Result<Value, String> {
    let mut object = open_object(spec, payload, "attributes")?;
    for reserved in ["external_id", "_update_existing_only"] {
        if object.contains_key(reserved) {
            return Err(format!(
                "attribute '{reserved}' is set by retl; map the user id to field external_id"
            ));
        }
    }
    object.insert("external_id".into(), json!(external_id(payload)?));
    object.insert("_update_existing_only".into(), json!(update_only));
    Ok(Value::Object(object))
}

/// The event object of one record.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn event(spec: &ActionSpec, payload: &Payload) -> Result<Value, String> {
    let name = required_text(payload, "name")?;
    let time = payload
        .fields
        .get("time")
        .filter(|v| !v.is_null())
        .ok_or("field 'time' is required and is null")?;
    let time = event_fields::rfc3339(parse_time("time", time)?);
    let properties = open_object(spec, payload, "properties")?;
    let mut event = json!({"external_id": external_id(payload)?, "name": name, "time": time});
    if !properties.is_empty() {
        event["properties"] = Value::Object(properties);
    }
    Ok(event)
}

/// The external id a delete names: the record's unique id.
///
/// # Errors
/// When the key is null or empty.
pub(crate) fn delete_id(payload: &Payload) -> Result<String, String> {
    event_fields::id_text(&payload.key)
        .ok_or_else(|| "the record's unique id is null or empty".to_string())
}
