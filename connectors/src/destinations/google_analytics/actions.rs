//! Google Analytics 4 actions: the `send_event` spec, the encoding of one record as a
//! Measurement Protocol event of one client, and the documented limits checked per record.

use chrono::{Duration as TimeDelta, Utc};
use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Map, Value, json};

use crate::destinations::event_fields::{
    Identity, identity, open_object, optional_object, optional_text, parse_time, required_text,
};

/// Documented limits of a Measurement Protocol request
/// (<https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events#limitations>).
pub(crate) mod limits {
    /// Events per request.
    pub(crate) const EVENTS: usize = 25;
    /// Parameters per event.
    pub(crate) const PARAMS: usize = 25;
    /// User properties per request.
    pub(crate) const USER_PROPERTIES: usize = 25;
    /// Characters of an event or parameter name.
    pub(crate) const NAME: usize = 40;
    /// Characters of a parameter value (standard properties; 500 on GA4 360).
    pub(crate) const PARAM_VALUE: usize = 100;
    /// Characters of a user property name.
    pub(crate) const USER_PROPERTY_NAME: usize = 24;
    /// Characters of a user property value.
    pub(crate) const USER_PROPERTY_VALUE: usize = 36;
    /// Bytes of a request body: "smaller than 130kB".
    pub(crate) const BODY_BYTES: usize = 130 * 1000;
    /// How far back `timestamp_micros` may go: 72 hours.
    pub(crate) const BACKDATE_HOURS: i64 = 72;
}

/// Event names Google Analytics reserves
/// (<https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference#reserved_names>).
const RESERVED_EVENT_NAMES: &[&str] = &[
    "ad_activeview",
    "ad_click",
    "ad_exposure",
    "ad_query",
    "ad_reward",
    "adunit_exposure",
    "app_background",
    "app_clear_data",
    "app_exception",
    "app_remove",
    "app_store_refund",
    "app_store_subscription_cancel",
    "app_store_subscription_convert",
    "app_store_subscription_renew",
    "app_update",
    "app_upgrade",
    "dynamic_link_app_open",
    "dynamic_link_app_update",
    "dynamic_link_first_open",
    "error",
    "first_open",
    "first_visit",
    "in_app_purchase",
    "notification_dismiss",
    "notification_foreground",
    "notification_open",
    "notification_receive",
    "os_update",
    "session_start",
    "session_start_with_rollout",
    "user_engagement",
];

/// Name prefixes reserved for parameters and user properties.
const RESERVED_PREFIXES: &[&str] = &["_", "firebase_", "ga_", "google_", "gtag."];

static SEND_EVENT_FIELDS: [FieldSpec; 6] = [
    FieldSpec {
        name: "client_id",
        field_type: FieldType::String,
        required: false,
        description: "The web client's id (the _ga cookie's, e.g. '1234567890.1700000000'); the record's unique id when unmapped.",
        children: &[],
    },
    FieldSpec {
        name: "user_id",
        field_type: FieldType::String,
        required: false,
        description: "Your own user id (User-ID), at most 256 characters.",
        children: &[],
    },
    FieldSpec {
        name: "name",
        field_type: FieldType::String,
        required: true,
        description: "Event name: a letter, then letters, digits or '_', at most 40 characters, not a reserved name (e.g. 'generate_lead').",
        children: &[],
    },
    FieldSpec {
        name: "params",
        field_type: FieldType::Object,
        required: false,
        description: "Event parameters (at most 25; values at most 100 characters); any field the action does not declare is added to them.",
        children: &[],
    },
    FieldSpec {
        name: "timestamp",
        field_type: FieldType::Datetime,
        required: false,
        description: "When it happened (at most 72 hours ago), sent as timestamp_micros; Google Analytics uses the time of the request when unmapped.",
        children: &[],
    },
    FieldSpec {
        name: "user_properties",
        field_type: FieldType::Object,
        required: false,
        description: "User properties (at most 25; names at most 24 characters, values at most 36).",
        children: &[],
    },
];

/// The actions of the Google Analytics 4 destination.
pub(crate) static ACTIONS: [ActionSpec; 1] = [ActionSpec {
    name: "send_event",
    display_name: "Send Event",
    description: "Sends an event per added or updated record through the Measurement Protocol (/mp/collect).",
    kind: ActionKind::Upsert,
    fields: &SEND_EVENT_FIELDS,
    open_fields: true,
    sync_modes: &[SyncMode::Add],
}];

/// A Google Analytics 4 action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GoogleAnalyticsAction {
    /// `send_event`: `/mp/collect`.
    SendEvent,
}

impl GoogleAnalyticsAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "send_event" => Some(GoogleAnalyticsAction::SendEvent),
            _ => None,
        }
    }
}

/// One record as a Measurement Protocol event and the request-level fields it needs. Only
/// records with equal [`Encoded::request`] share a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Encoded {
    /// The request's fields but `events`: `client_id`, `user_id`, `timestamp_micros`,
    /// `user_properties`.
    pub(crate) request: Map<String, Value>,
    /// `{"name", "params"}`.
    pub(crate) event: Value,
}

/// Whether `name` is a letter followed by letters, digits and `_`, at most `max` long.
fn valid_name(name: &str, max: usize) -> bool {
    name.chars().count() <= max
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn reserved_prefix(name: &str) -> Option<&'static str> {
    RESERVED_PREFIXES
        .iter()
        .copied()
        .find(|p| name.starts_with(p))
}

/// The record's event, checked against the documented limits.
///
/// # Errors
/// Why the record cannot be sent (a per-record rejection): Google Analytics would drop it
/// silently.
pub(crate) fn encode(spec: &ActionSpec, payload: &Payload) -> Result<Encoded, String> {
    let mut request = Map::new();
    let client_id = match identity(payload, "client_id") {
        Identity::Mapped(id) | Identity::Key(id) => id,
        Identity::Missing => return Err("field 'client_id' is null or empty".to_string()),
    };
    request.insert("client_id".into(), json!(client_id));
    if let Some(user_id) = optional_text(payload, "user_id")?.filter(|u| !u.is_empty()) {
        if user_id.chars().count() > 256 {
            return Err("field 'user_id' is longer than 256 characters".to_string());
        }
        request.insert("user_id".into(), json!(user_id));
    }
    if let Some(time) = payload.fields.get("timestamp").filter(|v| !v.is_null()) {
        let time = parse_time("timestamp", time)?;
        if time < Utc::now() - TimeDelta::hours(limits::BACKDATE_HOURS) {
            return Err(format!(
                "field 'timestamp' ({time}) is more than 72 hours ago; the Measurement Protocol backdates events at most 72 hours"
            ));
        }
        request.insert("timestamp_micros".into(), json!(time.timestamp_micros()));
    }
    if let Some(properties) = optional_object(payload, "user_properties")? {
        request.insert("user_properties".into(), user_properties(&properties)?);
    }
    let name = required_text(payload, "name")?;
    if !valid_name(&name, limits::NAME) {
        return Err(format!(
            "event name '{name}' is invalid: a letter, then letters, digits or '_', at most 40 characters"
        ));
    }
    if RESERVED_EVENT_NAMES.contains(&name.as_str()) {
        return Err(format!(
            "event name '{name}' is reserved by Google Analytics"
        ));
    }
    let params = open_object(spec, payload, "params")?;
    check_params(&params)?;
    Ok(Encoded {
        request,
        event: json!({"name": name, "params": params}),
    })
}

/// Checks event parameters against the documented limits.
fn check_params(params: &Map<String, Value>) -> Result<(), String> {
    if params.len() > limits::PARAMS {
        return Err(format!(
            "{} event parameters, over the 25 Google Analytics takes",
            params.len()
        ));
    }
    for (name, value) in params {
        if name.chars().count() > limits::NAME {
            return Err(format!(
                "parameter name '{name}' is longer than 40 characters"
            ));
        }
        if let Some(prefix) = reserved_prefix(name) {
            return Err(format!(
                "parameter name '{name}' uses the reserved prefix '{prefix}'"
            ));
        }
        match value {
            Value::String(text) if text.chars().count() > limits::PARAM_VALUE => {
                return Err(format!(
                    "parameter '{name}' is {} characters, over the 100 Google Analytics keeps",
                    text.chars().count()
                ));
            }
            Value::Array(_) if name == "items" => {}
            Value::Object(_) | Value::Array(_) => {
                return Err(format!(
                    "parameter '{name}' must be a string, a number or a boolean (only 'items' is a list)"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `{name: value}` as the protocol's `{name: {"value": value}}`, checked.
fn user_properties(properties: &Value) -> Result<Value, String> {
    let properties = properties.as_object().cloned().unwrap_or_default();
    if properties.len() > limits::USER_PROPERTIES {
        return Err(format!(
            "{} user properties, over the 25 Google Analytics takes",
            properties.len()
        ));
    }
    let mut out = Map::new();
    for (name, value) in properties {
        if name.chars().count() > limits::USER_PROPERTY_NAME {
            return Err(format!(
                "user property name '{name}' is longer than 24 characters"
            ));
        }
        if let Some(prefix) = reserved_prefix(&name) {
            return Err(format!(
                "user property '{name}' uses the reserved prefix '{prefix}'"
            ));
        }
        let value = match value {
            Value::String(text) if text.chars().count() > limits::USER_PROPERTY_VALUE => {
                return Err(format!(
                    "user property '{name}' is {} characters, over the 36 Google Analytics keeps",
                    text.chars().count()
                ));
            }
            Value::Object(_) | Value::Array(_) => {
                return Err(format!(
                    "user property '{name}' must be a string, a number or a boolean"
                ));
            }
            value => value,
        };
        out.insert(name, json!({"value": value}));
    }
    Ok(Value::Object(out))
}
