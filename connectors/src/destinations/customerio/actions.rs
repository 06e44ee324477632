//! Customer.io actions: their specs and the encoding of one record as a Track API v2 batch
//! entry (a person's identify, event or delete).

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Map, Value, json};

use crate::destinations::event_fields::{
    Identity, id_text, identity, open_object, parse_time, required_text,
};

/// Documented limits of a person's data (<https://docs.customer.io/journeys/invalid-api-requests/>).
pub(crate) mod limits {
    /// Attributes in one identify.
    pub(crate) const ATTRIBUTES: usize = 300;
    /// Bytes of an attribute name.
    pub(crate) const ATTRIBUTE_NAME_BYTES: usize = 150;
    /// Bytes of an attribute value.
    pub(crate) const ATTRIBUTE_VALUE_BYTES: usize = 1000;
    /// Bytes of an event name.
    pub(crate) const EVENT_NAME_BYTES: usize = 100;
}

const ID: FieldSpec = FieldSpec {
    name: "id",
    field_type: FieldType::String,
    required: false,
    description: "The person's id in Customer.io (identifiers.id); the record's unique id when unmapped.",
    children: &[],
};

static IDENTIFY_FIELDS: [FieldSpec; 2] = [
    ID,
    FieldSpec {
        name: "attributes",
        field_type: FieldType::Object,
        required: false,
        description: "Person attributes (at most 300; values at most 1000 bytes); any field the action does not declare (e.g. 'email', 'plan') is added to them.",
        children: &[],
    },
];

static EVENT_FIELDS: [FieldSpec; 4] = [
    ID,
    FieldSpec {
        name: "name",
        field_type: FieldType::String,
        required: true,
        description: "Event name (at most 100 bytes), e.g. 'plan_upgraded'.",
        children: &[],
    },
    FieldSpec {
        name: "timestamp",
        field_type: FieldType::Datetime,
        required: false,
        description: "When it happened (RFC 3339, or epoch seconds or milliseconds), sent as epoch seconds; Customer.io uses the time it receives the event when unmapped.",
        children: &[],
    },
    FieldSpec {
        name: "attributes",
        field_type: FieldType::Object,
        required: false,
        description: "Event data; any field the action does not declare is added to it.",
        children: &[],
    },
];

/// The actions of the Customer.io destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "identify",
        display_name: "Identify Person",
        description: "Creates or updates a person per added or updated record (Track API v2 batch, action identify).",
        kind: ActionKind::Upsert,
        fields: &IDENTIFY_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert],
    },
    ActionSpec {
        name: "track_event",
        display_name: "Track Event",
        description: "Records an event on a person per added or updated record (Track API v2 batch, action event).",
        kind: ActionKind::Upsert,
        fields: &EVENT_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Add],
    },
    ActionSpec {
        name: "delete_person",
        display_name: "Delete Person",
        description: "Deletes the person whose id is the record's unique id (Track API v2 batch, action delete); a person that is already gone is success.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Customer.io action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CustomerioAction {
    /// `identify`.
    Identify,
    /// `track_event`.
    TrackEvent,
    /// `delete_person`.
    DeletePerson,
}

impl CustomerioAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "identify" => Some(CustomerioAction::Identify),
            "track_event" => Some(CustomerioAction::TrackEvent),
            "delete_person" => Some(CustomerioAction::DeletePerson),
            _ => None,
        }
    }
}

/// The batch entry of one record.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection), naming the documented limit.
pub(crate) fn entry(
    action: CustomerioAction,
    spec: &ActionSpec,
    payload: &Payload,
) -> Result<Value, String> {
    if action == CustomerioAction::DeletePerson {
        let id = id_text(&payload.key).ok_or("the record's unique id is null or empty")?;
        return Ok(json!({"type": "person", "identifiers": {"id": id}, "action": "delete"}));
    }
    let id = match identity(payload, "id") {
        Identity::Mapped(id) | Identity::Key(id) => id,
        Identity::Missing => return Err("field 'id' is null or empty".to_string()),
    };
    let attributes = open_object(spec, payload, "attributes")?;
    let mut entry = Map::new();
    entry.insert("type".into(), json!("person"));
    entry.insert("identifiers".into(), json!({"id": id}));
    if action == CustomerioAction::Identify {
        check_attributes(&attributes)?;
        entry.insert("action".into(), json!("identify"));
    } else {
        let name = required_text(payload, "name")?;
        if name.len() > limits::EVENT_NAME_BYTES {
            return Err(format!(
                "event name is {} bytes, over Customer.io's 100",
                name.len()
            ));
        }
        entry.insert("action".into(), json!("event"));
        entry.insert("name".into(), json!(name));
        if let Some(time) = payload.fields.get("timestamp").filter(|v| !v.is_null()) {
            entry.insert(
                "timestamp".into(),
                json!(parse_time("timestamp", time)?.timestamp()),
            );
        }
    }
    entry.insert("attributes".into(), Value::Object(attributes));
    Ok(Value::Object(entry))
}

/// Checks identify attributes against the documented limits.
fn check_attributes(attributes: &Map<String, Value>) -> Result<(), String> {
    if attributes.len() > limits::ATTRIBUTES {
        return Err(format!(
            "{} attributes, over the 300 Customer.io takes in one identify",
            attributes.len()
        ));
    }
    for (name, value) in attributes {
        if name.len() > limits::ATTRIBUTE_NAME_BYTES {
            return Err(format!("attribute name '{name}' is longer than 150 bytes"));
        }
        let size = match value {
            Value::String(text) => text.len(),
            other => other.to_string().len(),
        };
        if size > limits::ATTRIBUTE_VALUE_BYTES {
            return Err(format!(
                "attribute '{name}' is {size} bytes, over Customer.io's 1000"
            ));
        }
    }
    Ok(())
}
