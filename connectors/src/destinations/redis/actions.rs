//! Redis actions: their specs, `RedisAction`, and one record → its commands (`HSET` and
//! `HDEL` of one hash, or `DEL`).

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, Payload, SyncMode};
use serde_json::Value;

/// The actions of the Redis destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "set_hash",
        display_name: "Set Hash Fields",
        description: "Writes each record as a hash at key_prefix + its unique id: every mapped field is a hash field (HSET), text as it is, numbers, booleans, objects and arrays as JSON; a null field is removed from the hash (HDEL); fields not mapped are kept.",
        kind: ActionKind::Upsert,
        fields: &[],
        open_fields: true,
        sync_modes: &[SyncMode::Upsert],
    },
    ActionSpec {
        name: "delete_hash",
        display_name: "Delete Hash",
        description: "Deletes the key key_prefix + the record's unique id (DEL); a key that is already gone counts as deleted.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Redis action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedisAction {
    /// `set_hash`.
    SetHash,
    /// `delete_hash`.
    DeleteHash,
}

impl RedisAction {
    /// The action of a spec of [`ACTIONS`].
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "set_hash" => Some(RedisAction::SetHash),
            "delete_hash" => Some(RedisAction::DeleteHash),
            _ => None,
        }
    }
}

/// One command of a record: its name and arguments (the key first).
pub(crate) type Command = (&'static str, Vec<String>);

/// The key of a record: `prefix` + its unique id as text.
pub(crate) fn key(prefix: &str, payload: &Payload) -> Result<String, String> {
    match &payload.key {
        Value::Null => Err("the record has no unique id".to_string()),
        Value::String(s) if s.is_empty() => Err("the unique id is empty".to_string()),
        Value::String(s) => Ok(format!("{prefix}{s}")),
        other => Ok(format!("{prefix}{other}")),
    }
}

/// A field's value as a hash field's text: text as it is, anything else as JSON.
pub(crate) fn field_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The commands writing a record: `HSET key field value ...` for its non-null fields and
/// `HDEL key field ...` for its null ones (a record with neither sends nothing), or
/// `DEL key`.
pub(crate) fn commands(
    action: RedisAction,
    prefix: &str,
    payload: &Payload,
) -> Result<Vec<Command>, String> {
    let key = key(prefix, payload)?;
    if action == RedisAction::DeleteHash {
        return Ok(vec![("DEL", vec![key])]);
    }
    let mut set = vec![key.clone()];
    let mut removed = vec![key];
    for (name, value) in payload.fields.iter() {
        if value.is_null() {
            removed.push(name.to_string());
        } else {
            set.push(name.to_string());
            set.push(field_text(value));
        }
    }
    let mut commands = Vec::new();
    if set.len() > 1 {
        commands.push(("HSET", set));
    }
    if removed.len() > 1 {
        commands.push(("HDEL", removed));
    }
    Ok(commands)
}
