//! PostHog actions: their specs and the encoding of one record as a capture event (an event,
//! or an `$identify` carrying person properties) or a distinct id to delete.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Value, json};

use crate::destinations::event_fields::{
    self, Identity, identity, open_object, parse_time, required_text,
};

const DISTINCT_ID: FieldSpec = FieldSpec {
    name: "distinct_id",
    field_type: FieldType::String,
    required: false,
    description: "PostHog distinct_id of the person; the record's unique id when unmapped.",
    children: &[],
};

static CAPTURE_FIELDS: [FieldSpec; 4] = [
    FieldSpec {
        name: "event",
        field_type: FieldType::String,
        required: true,
        description: "Event name, e.g. 'plan upgraded'.",
        children: &[],
    },
    DISTINCT_ID,
    FieldSpec {
        name: "timestamp",
        field_type: FieldType::Datetime,
        required: true,
        description: "When it happened (RFC 3339, or epoch seconds or milliseconds). PostHog deduplicates on uuid, event, timestamp and distinct_id, so it must not change between sends.",
        children: &[],
    },
    FieldSpec {
        name: "properties",
        field_type: FieldType::Object,
        required: false,
        description: "Event properties; any field the action does not declare is added to them (a '$set' object inside sets person properties too).",
        children: &[],
    },
];

static IDENTIFY_FIELDS: [FieldSpec; 2] = [
    DISTINCT_ID,
    FieldSpec {
        name: "properties",
        field_type: FieldType::Object,
        required: false,
        description: "Person properties to set; any field the action does not declare (e.g. 'email', 'plan') is added to them.",
        children: &[],
    },
];

/// The actions of the PostHog destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "capture_event",
        display_name: "Capture Event",
        description: "Captures an event per added or updated record through /batch/, with a uuid derived from the record so that PostHog deduplicates re-sends.",
        kind: ActionKind::Upsert,
        fields: &CAPTURE_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Add],
    },
    ActionSpec {
        name: "identify",
        display_name: "Identify Person",
        description: "Sets person properties through an $identify event: $set (upsert) or $set_once (create: only properties the person does not have).",
        kind: ActionKind::Upsert,
        fields: &IDENTIFY_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert, SyncMode::Create],
    },
    ActionSpec {
        name: "delete_person",
        display_name: "Delete Person",
        description: "Deletes the persons whose distinct_id is the record's unique id through the persons API (personal API key); a person that is already gone is success.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A PostHog action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PosthogAction {
    /// `capture_event`: an event in `/batch/`.
    CaptureEvent,
    /// `identify`: an `$identify` event in `/batch/`.
    Identify,
    /// `delete_person`: the persons API's `bulk_delete`.
    DeletePerson,
}

impl PosthogAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "capture_event" => Some(PosthogAction::CaptureEvent),
            "identify" => Some(PosthogAction::Identify),
            "delete_person" => Some(PosthogAction::DeletePerson),
            _ => None,
        }
    }
}

/// An idempotency key (32 hex digits) in the UUID form PostHog's `uuid` field takes.
pub(crate) fn uuid_of(key: &str) -> String {
    if key.len() != 32 || !key.is_ascii() {
        return key.to_string();
    }
    format!(
        "{}-{}-{}-{}-{}",
        &key[..8],
        &key[8..12],
        &key[12..16],
        &key[16..20],
        &key[20..]
    )
}

/// The distinct id of a record: the mapped field, else the key.
fn distinct_id(payload: &Payload) -> Result<String, String> {
    match identity(payload, "distinct_id") {
        Identity::Mapped(id) | Identity::Key(id) => Ok(id),
        Identity::Missing => Err("field 'distinct_id' is null or empty".to_string()),
    }
}

/// The capture event of one record with `uuid`: the event of `capture_event`, or an
/// `$identify` with `$set` (`$set_once` when `create_only`) for `identify`.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn capture(
    action: PosthogAction,
    spec: &ActionSpec,
    payload: &Payload,
    uuid: &str,
    create_only: bool,
) -> Result<Value, String> {
    let distinct_id = distinct_id(payload)?;
    let properties = open_object(spec, payload, "properties")?;
    if action == PosthogAction::Identify {
        let operation = if create_only { "$set_once" } else { "$set" };
        return Ok(json!({
            "event": "$identify",
            "distinct_id": distinct_id,
            "uuid": uuid,
            "properties": {operation: properties},
        }));
    }
    let name = required_text(payload, "event")?;
    let time = payload
        .fields
        .get("timestamp")
        .filter(|v| !v.is_null())
        .ok_or("field 'timestamp' is required and is null")?;
    let time = parse_time("timestamp", time)?;
    Ok(json!({
        "event": name,
        "distinct_id": distinct_id,
        "uuid": uuid,
        "timestamp": event_fields::rfc3339(time),
        "properties": properties,
    }))
}

/// The distinct id a `delete_person` record deletes: its unique id.
///
/// # Errors
/// When the key is null or empty.
pub(crate) fn delete_id(payload: &Payload) -> Result<String, String> {
    event_fields::id_text(&payload.key)
        .ok_or_else(|| "the record's unique id is null or empty".to_string())
}
