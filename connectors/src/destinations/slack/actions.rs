//! Slack actions: the `send_message` spec and the encoding of one record as one message.

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload, SyncMode};
use serde_json::{Map, Value};

use crate::destinations::event_fields::required_text;

/// Slack's documented maximum of blocks in one message.
pub(crate) const MAX_BLOCKS: usize = 50;
/// The length after which Slack truncates a message's `text` (characters).
pub(crate) const MAX_TEXT_CHARS: usize = 40_000;

static MESSAGE_FIELDS: [FieldSpec; 2] = [
    FieldSpec {
        name: "text",
        field_type: FieldType::String,
        required: true,
        description: "The message (Slack mrkdwn), e.g. a template '{{ email }} upgraded to {{ plan }}'; with blocks it is the notification fallback.",
        children: &[],
    },
    FieldSpec {
        name: "blocks",
        field_type: FieldType::Array,
        required: false,
        description: "Block Kit layout blocks (a JSON array, or text holding one), at most 50.",
        children: &[],
    },
];

/// The actions of the Slack destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 1] = [ActionSpec {
    name: "send_message",
    display_name: "Send Message",
    description: "Posts one message per added or updated record to the channel of an incoming webhook.",
    kind: ActionKind::Upsert,
    fields: &MESSAGE_FIELDS,
    open_fields: false,
    sync_modes: &[SyncMode::Add],
}];

/// A Slack action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlackAction {
    /// `send_message`: one `POST` of `{"text", "blocks"?}` per record.
    SendMessage,
}

impl SlackAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "send_message" => Some(SlackAction::SendMessage),
            _ => None,
        }
    }
}

/// The message body of one record: `{"text"}` plus `"blocks"` when mapped.
///
/// # Errors
/// Why the record cannot be posted (a per-record rejection): no text, text over Slack's
/// 40,000 characters, blocks that are not an array of objects or more than 50 of them.
pub(crate) fn message(payload: &Payload) -> Result<Value, String> {
    let text = required_text(payload, "text")?;
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(format!(
            "field 'text' has {chars} characters; Slack truncates messages over {MAX_TEXT_CHARS}"
        ));
    }
    let mut body = Map::new();
    body.insert("text".to_string(), Value::String(text));
    if let Some(blocks) = blocks(payload)? {
        body.insert("blocks".to_string(), blocks);
    }
    Ok(Value::Object(body))
}

/// The mapped `blocks`, if any: an array of objects, given as JSON or as text holding JSON.
fn blocks(payload: &Payload) -> Result<Option<Value>, String> {
    let value = match payload.fields.get("blocks") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => serde_json::from_str::<Value>(text)
            .map_err(|e| format!("field 'blocks' is text but not JSON: {e}"))?,
        Some(other) => other.clone(),
    };
    let Value::Array(items) = &value else {
        return Err(format!(
            "field 'blocks' must be a JSON array of Block Kit blocks, not {value}"
        ));
    };
    if items.len() > MAX_BLOCKS {
        return Err(format!(
            "field 'blocks' has {} blocks; Slack takes at most {MAX_BLOCKS} per message",
            items.len()
        ));
    }
    if let Some(bad) = items
        .iter()
        .find(|b| b.get("type").and_then(Value::as_str).is_none())
    {
        return Err(format!(
            "field 'blocks' holds {bad}, which is not a block (an object with a 'type')"
        ));
    }
    Ok(Some(value))
}
