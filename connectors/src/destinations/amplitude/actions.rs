//! Amplitude actions: their specs and the encoding of one record as an HTTP V2 event or an
//! Identify API identification.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Map, Value, json};

use crate::destinations::event_fields::{
    Identity, identity, open_object, optional_object, optional_text, parse_time, required_text,
};

const USER_ID: FieldSpec = FieldSpec {
    name: "user_id",
    field_type: FieldType::String,
    required: false,
    description: "Amplitude user_id. When neither user_id nor device_id is mapped, the record's unique id is the user_id.",
    children: &[],
};
const DEVICE_ID: FieldSpec = FieldSpec {
    name: "device_id",
    field_type: FieldType::String,
    required: false,
    description: "Amplitude device_id, for a record without a user_id (or with both).",
    children: &[],
};
const USER_PROPERTIES: FieldSpec = FieldSpec {
    name: "user_properties",
    field_type: FieldType::Object,
    required: false,
    description: "User properties to set.",
    children: &[],
};

static TRACK_FIELDS: [FieldSpec; 6] = [
    FieldSpec {
        name: "event_type",
        field_type: FieldType::String,
        required: true,
        description: "Event name, e.g. 'Plan Upgraded'.",
        children: &[],
    },
    USER_ID,
    DEVICE_ID,
    FieldSpec {
        name: "time",
        field_type: FieldType::Datetime,
        required: false,
        description: "When it happened (RFC 3339, or epoch seconds or milliseconds), sent as epoch milliseconds; Amplitude uses the upload time when unmapped.",
        children: &[],
    },
    FieldSpec {
        name: "event_properties",
        field_type: FieldType::Object,
        required: false,
        description: "Event properties; any field the action does not declare is added to them.",
        children: &[],
    },
    USER_PROPERTIES,
];

static IDENTIFY_FIELDS: [FieldSpec; 3] = [
    USER_ID,
    DEVICE_ID,
    FieldSpec {
        name: "user_properties",
        field_type: FieldType::Object,
        required: false,
        description: "User properties to set; any field the action does not declare (e.g. 'plan') is added to them.",
        children: &[],
    },
];

/// The actions of the Amplitude destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "track_event",
        display_name: "Track Event",
        description: "Sends an event per added or updated record through the HTTP V2 API, with insert_id so that Amplitude drops re-sends.",
        kind: ActionKind::Upsert,
        fields: &TRACK_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Add],
    },
    ActionSpec {
        name: "identify_user",
        display_name: "Identify User",
        description: "Sets user properties through the Identify API: $set (upsert) or $setOnce (create: only properties the user does not have).",
        kind: ActionKind::Upsert,
        fields: &IDENTIFY_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert, SyncMode::Create],
    },
];

/// An Amplitude action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AmplitudeAction {
    /// `track_event`: `/2/httpapi`.
    TrackEvent,
    /// `identify_user`: `/identify`.
    IdentifyUser,
}

impl AmplitudeAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "track_event" => Some(AmplitudeAction::TrackEvent),
            "identify_user" => Some(AmplitudeAction::IdentifyUser),
            _ => None,
        }
    }
}

/// `user_id` and/or `device_id` of a record into `object`: the mapped ones, else the key as
/// the `user_id`.
fn ids(payload: &Payload, object: &mut Map<String, Value>) -> Result<(), String> {
    let device = optional_text(payload, "device_id")?.filter(|d| !d.is_empty());
    match (identity(payload, "user_id"), device) {
        (Identity::Mapped(user), device) => {
            object.insert("user_id".into(), json!(user));
            if let Some(device) = device {
                object.insert("device_id".into(), json!(device));
            }
        }
        // With device_id mapped, the key is not a user_id.
        (Identity::Key(key), None) if payload.fields.get("device_id").is_none() => {
            object.insert("user_id".into(), json!(key));
        }
        (_, Some(device)) => {
            object.insert("device_id".into(), json!(device));
        }
        (_, None) => {
            return Err(
                "Amplitude needs a user_id or a device_id: user_id and device_id are both null or empty"
                    .to_string(),
            );
        }
    }
    Ok(())
}

/// The HTTP V2 event of one record, with `insert_id`.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn event(
    spec: &ActionSpec,
    payload: &Payload,
    insert_id: &str,
) -> Result<Value, String> {
    let mut event = Map::new();
    ids(payload, &mut event)?;
    event.insert(
        "event_type".into(),
        json!(required_text(payload, "event_type")?),
    );
    if let Some(time) = payload.fields.get("time").filter(|v| !v.is_null()) {
        event.insert(
            "time".into(),
            json!(parse_time("time", time)?.timestamp_millis()),
        );
    }
    event.insert("insert_id".into(), json!(insert_id));
    let properties = open_object(spec, payload, "event_properties")?;
    event.insert("event_properties".into(), Value::Object(properties));
    if let Some(user_properties) = optional_object(payload, "user_properties")? {
        event.insert("user_properties".into(), user_properties);
    }
    Ok(Value::Object(event))
}

/// The Identify API identification of one record: `user_properties` under `$set`, or
/// `$setOnce` when `create_only`.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn identification(
    spec: &ActionSpec,
    payload: &Payload,
    create_only: bool,
) -> Result<Value, String> {
    let mut identification = Map::new();
    ids(payload, &mut identification)?;
    let properties = open_object(spec, payload, "user_properties")?;
    let operation = if create_only { "$setOnce" } else { "$set" };
    identification.insert("user_properties".into(), json!({operation: properties}));
    Ok(Value::Object(identification))
}
