//! Segment actions: their specs and the encoding of one record as a Tracking API message.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Map, Value, json};

use crate::destinations::event_fields::{
    self, Identity, identity, open_object, optional_object, optional_text, required_text,
};

const USER_ID: FieldSpec = FieldSpec {
    name: "user_id",
    field_type: FieldType::String,
    required: false,
    description: "Segment userId. When neither user_id nor anonymous_id is mapped, the record's unique id is the userId.",
    children: &[],
};
const ANONYMOUS_ID: FieldSpec = FieldSpec {
    name: "anonymous_id",
    field_type: FieldType::String,
    required: false,
    description: "Segment anonymousId, for a record without a userId.",
    children: &[],
};
const TIMESTAMP: FieldSpec = FieldSpec {
    name: "timestamp",
    field_type: FieldType::Datetime,
    required: false,
    description: "When it happened (RFC 3339, or epoch seconds or milliseconds); Segment uses the time it received the message when unmapped.",
    children: &[],
};
const CONTEXT: FieldSpec = FieldSpec {
    name: "context",
    field_type: FieldType::Object,
    required: false,
    description: "Segment context object (ip, locale, campaign, ...), sent as is.",
    children: &[],
};
const TRAITS: FieldSpec = FieldSpec {
    name: "traits",
    field_type: FieldType::Object,
    required: false,
    description: "Traits object; any field the action does not declare (e.g. 'plan') is added to it.",
    children: &[],
};
const PROPERTIES: FieldSpec = FieldSpec {
    name: "properties",
    field_type: FieldType::Object,
    required: false,
    description: "Properties object; any field the action does not declare (e.g. 'revenue') is added to it.",
    children: &[],
};

static IDENTIFY_FIELDS: [FieldSpec; 5] = [USER_ID, ANONYMOUS_ID, TRAITS, TIMESTAMP, CONTEXT];
static TRACK_FIELDS: [FieldSpec; 6] = [
    USER_ID,
    ANONYMOUS_ID,
    FieldSpec {
        name: "event",
        field_type: FieldType::String,
        required: true,
        description: "Event name, e.g. 'Order Completed'.",
        children: &[],
    },
    PROPERTIES,
    TIMESTAMP,
    CONTEXT,
];
static GROUP_FIELDS: [FieldSpec; 6] = [
    USER_ID,
    ANONYMOUS_ID,
    FieldSpec {
        name: "group_id",
        field_type: FieldType::String,
        required: true,
        description: "Segment groupId: the account or company the user belongs to.",
        children: &[],
    },
    TRAITS,
    TIMESTAMP,
    CONTEXT,
];
static PAGE_FIELDS: [FieldSpec; 6] = [
    USER_ID,
    ANONYMOUS_ID,
    FieldSpec {
        name: "name",
        field_type: FieldType::String,
        required: false,
        description: "Page name, e.g. 'Pricing'.",
        children: &[],
    },
    PROPERTIES,
    TIMESTAMP,
    CONTEXT,
];

/// The actions of the Segment destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 4] = [
    ActionSpec {
        name: "identify",
        display_name: "Identify",
        description: "An identify call per added or updated record: who the user is and their traits.",
        kind: ActionKind::Upsert,
        fields: &IDENTIFY_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert],
    },
    ActionSpec {
        name: "track",
        display_name: "Track",
        description: "A track call per added or updated record: an event the user did, with properties.",
        kind: ActionKind::Upsert,
        fields: &TRACK_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Add],
    },
    ActionSpec {
        name: "group",
        display_name: "Group",
        description: "A group call per added or updated record: the user's account or company and its traits.",
        kind: ActionKind::Upsert,
        fields: &GROUP_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Upsert],
    },
    ActionSpec {
        name: "page",
        display_name: "Page",
        description: "A page call per added or updated record: a page the user viewed, with properties.",
        kind: ActionKind::Upsert,
        fields: &PAGE_FIELDS,
        open_fields: true,
        sync_modes: &[SyncMode::Add],
    },
];

/// A Segment action: the message type it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentAction {
    /// `identify`.
    Identify,
    /// `track`.
    Track,
    /// `group`.
    Group,
    /// `page`.
    Page,
}

impl SegmentAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "identify" => Some(SegmentAction::Identify),
            "track" => Some(SegmentAction::Track),
            "group" => Some(SegmentAction::Group),
            "page" => Some(SegmentAction::Page),
            _ => None,
        }
    }

    /// The message `type` (the same as the spec's name).
    pub(crate) fn message_type(self) -> &'static str {
        match self {
            SegmentAction::Identify => "identify",
            SegmentAction::Track => "track",
            SegmentAction::Group => "group",
            SegmentAction::Page => "page",
        }
    }

    /// The object field the action's undeclared fields join.
    fn object_field(self) -> &'static str {
        match self {
            SegmentAction::Identify | SegmentAction::Group => "traits",
            SegmentAction::Track | SegmentAction::Page => "properties",
        }
    }
}

/// The message for one record, with `messageId` = `message_id`.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection): no userId or anonymousId, a
/// required field null, a field of the wrong shape.
pub(crate) fn message(
    action: SegmentAction,
    spec: &ActionSpec,
    payload: &Payload,
    message_id: &str,
) -> Result<Value, String> {
    let mut message = Map::new();
    message.insert("type".into(), json!(action.message_type()));
    message.insert("messageId".into(), json!(message_id));
    let user = identity(payload, "user_id");
    let anonymous = optional_text(payload, "anonymous_id")?.filter(|a| !a.is_empty());
    match (user, anonymous) {
        (Identity::Mapped(user), anonymous) => {
            message.insert("userId".into(), json!(user));
            if let Some(anonymous) = anonymous {
                message.insert("anonymousId".into(), json!(anonymous));
            }
        }
        // With anonymous_id mapped, the key is not a userId.
        (Identity::Key(key), None) if payload.fields.get("anonymous_id").is_none() => {
            message.insert("userId".into(), json!(key));
        }
        (_, Some(anonymous)) => {
            message.insert("anonymousId".into(), json!(anonymous));
        }
        (_, None) => {
            return Err(
                "Segment needs a userId or an anonymousId: user_id and anonymous_id are both null or empty".to_string(),
            );
        }
    }
    match action {
        SegmentAction::Track => {
            message.insert("event".into(), json!(required_text(payload, "event")?));
        }
        SegmentAction::Group => {
            message.insert("groupId".into(), json!(required_text(payload, "group_id")?));
        }
        SegmentAction::Page => {
            if let Some(name) = optional_text(payload, "name")? {
                message.insert("name".into(), json!(name));
            }
        }
        SegmentAction::Identify => {}
    }
    let object = open_object(spec, payload, action.object_field())?;
    message.insert(action.object_field().into(), Value::Object(object));
    if let Some(value) = payload.fields.get("timestamp").filter(|v| !v.is_null()) {
        let time = event_fields::parse_time("timestamp", value)?;
        message.insert("timestamp".into(), json!(event_fields::rfc3339(time)));
    }
    if let Some(context) = optional_object(payload, "context")? {
        message.insert("context".into(), context);
    }
    Ok(Value::Object(message))
}
