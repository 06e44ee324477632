//! Mixpanel actions: their specs and the encoding of one record as an `/import` event or an
//! `/engage` profile update.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Map, Value, json};

use crate::destinations::event_fields::{
    Identity, identity, open_object, parse_time, required_text,
};

const DISTINCT_ID: FieldSpec = FieldSpec {
    name: "distinct_id",
    field_type: FieldType::String,
    required: false,
    description: "Mixpanel distinct_id of the user; the record's unique id when unmapped.",
    children: &[],
};

static TRACK_FIELDS: [FieldSpec; 4] = [
    FieldSpec {
        name: "event",
        field_type: FieldType::String,
        required: true,
        description: "Event name, e.g. 'Plan Upgraded'.",
        children: &[],
    },
    DISTINCT_ID,
    FieldSpec {
        name: "time",
        field_type: FieldType::Datetime,
        required: true,
        description: "When it happened (RFC 3339, or epoch seconds or milliseconds); sent as epoch milliseconds. Mixpanel deduplicates on event, distinct_id, time and $insert_id, so it must not change between sends.",
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

static PROFILE_FIELDS: [FieldSpec; 2] = [
    DISTINCT_ID,
    FieldSpec {
        name: "properties",
        field_type: FieldType::Object,
        required: false,
        description: "Profile properties to set; any field the action does not declare (e.g. '$email', 'plan') is added to them.",
        children: &[],
    },
];

/// The actions of the Mixpanel destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "track_event",
        display_name: "Track Event",
        description: "Imports an event per added or updated record through /import, with $insert_id so that re-sends are deduplicated.",
        kind: ActionKind::Upsert,
        fields: &TRACK_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Add],
    },
    ActionSpec {
        name: "set_profile",
        display_name: "Set User Profile",
        description: "Sets user profile properties through /engage: $set (upsert) or $set_once (create: only properties the profile does not have).",
        kind: ActionKind::Upsert,
        fields: &PROFILE_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert, SyncMode::Create],
    },
    ActionSpec {
        name: "delete_profile",
        display_name: "Delete User Profile",
        description: "Deletes the user profile whose distinct_id is the record's unique id ($delete); a profile that is already gone is success.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Mixpanel action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MixpanelAction {
    /// `track_event`: `/import`.
    TrackEvent,
    /// `set_profile`: `/engage` `$set` / `$set_once`.
    SetProfile,
    /// `delete_profile`: `/engage` `$delete`.
    DeleteProfile,
}

impl MixpanelAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "track_event" => Some(MixpanelAction::TrackEvent),
            "set_profile" => Some(MixpanelAction::SetProfile),
            "delete_profile" => Some(MixpanelAction::DeleteProfile),
            _ => None,
        }
    }
}

/// The distinct id of a record: the mapped field, else the key.
fn distinct_id(payload: &Payload) -> Result<String, String> {
    match identity(payload, "distinct_id") {
        Identity::Mapped(id) | Identity::Key(id) => Ok(id),
        Identity::Missing => Err("field 'distinct_id' is null or empty".to_string()),
    }
}

/// The `/import` event of one record, with `$insert_id` = `insert_id` (32 hex digits: within
/// Mixpanel's 36 characters of letters, digits and `-`).
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn event(
    spec: &ActionSpec,
    payload: &Payload,
    insert_id: &str,
) -> Result<Value, String> {
    let name = required_text(payload, "event")?;
    let time = payload
        .fields
        .get("time")
        .filter(|v| !v.is_null())
        .ok_or("field 'time' is required and is null")?;
    let time = parse_time("time", time)?;
    let mut properties = open_object(spec, payload, "properties")?;
    properties.insert("time".into(), json!(time.timestamp_millis()));
    properties.insert("distinct_id".into(), json!(distinct_id(payload)?));
    properties.insert("$insert_id".into(), json!(insert_id));
    Ok(json!({"event": name, "properties": properties}))
}

/// The `/engage` update of one record: `$set`/`$set_once` (by `create_only`) for
/// `set_profile`, `$delete` for `delete_profile`.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection).
pub(crate) fn profile_update(
    action: MixpanelAction,
    spec: &ActionSpec,
    payload: &Payload,
    token: &str,
    create_only: bool,
) -> Result<Value, String> {
    let mut update = Map::new();
    update.insert("$token".into(), json!(token));
    if action == MixpanelAction::DeleteProfile {
        let id = crate::destinations::event_fields::id_text(&payload.key)
            .ok_or("the record's unique id is null or empty")?;
        update.insert("$distinct_id".into(), json!(id));
        update.insert("$delete".into(), json!("null"));
    } else {
        update.insert("$distinct_id".into(), json!(distinct_id(payload)?));
        let operation = if create_only { "$set_once" } else { "$set" };
        let properties = open_object(spec, payload, "properties")?;
        update.insert(operation.into(), Value::Object(properties));
    }
    Ok(Value::Object(update))
}
