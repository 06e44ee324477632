//! Facebook Custom Audiences actions: their specs and fields, and a batch encoded as the
//! `payload` of `/{audience_id}/users`: a schema and one row of normalised, SHA-256 hashed
//! identifiers per record (hashing in `destinations/hashing.rs`).

use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{ActionSpec, FieldSpec, FieldType, Payload};
use serde_json::{Value, json};

use crate::destinations::hashing;

/// Users per request (<https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences>).
pub(crate) const MAX_USERS: usize = 10_000;

/// Meta's schema key of each identifier field, in the order of [`USER_FIELDS`].
const SCHEMA_KEYS: [&str; 13] = [
    "EMAIL", "PHONE", "FN", "LN", "GEN", "DOBY", "DOBM", "DOBD", "CT", "ST", "ZIP", "COUNTRY",
    "MADID",
];

/// The identifier fields of the actions that take them (schema keys in [`SCHEMA_KEYS`]).
static USER_FIELDS: [FieldSpec; 13] = [
    field(
        "email",
        "Email; trimmed and lowercased, then SHA-256 hashed.",
    ),
    field(
        "phone",
        "Phone with country code; symbols, letters and leading zeros removed (default_phone_country_code added to national numbers), then hashed.",
    ),
    field(
        "first_name",
        "First name; lowercased without punctuation, then hashed.",
    ),
    field(
        "last_name",
        "Last name; lowercased without punctuation, then hashed.",
    ),
    field("gender", "m or f (male/female accepted), then hashed."),
    field("birth_year", "Year of birth, YYYY, then hashed."),
    field("birth_month", "Month of birth, 01 to 12, then hashed."),
    field("birth_day", "Day of birth, 01 to 31, then hashed."),
    field(
        "city",
        "City; lowercased without spaces or punctuation, then hashed.",
    ),
    field(
        "state",
        "State or province (US: two-letter code); lowercased, then hashed.",
    ),
    field(
        "zip",
        "Postal code; lowercased without spaces (US: 5 digits), then hashed.",
    ),
    field(
        "country",
        "ISO 3166-1 alpha-2 country code, lowercased, then hashed.",
    ),
    field(
        "mobile_advertiser_id",
        "Apple IDFA or Android advertising id; lowercased, not hashed.",
    ),
];

const fn field(name: &'static str, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        field_type: FieldType::String,
        required: false,
        description,
        children: &[],
    }
}

/// The actions, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "add_users",
        display_name: "Add Users",
        description: "Adds the model's users to the audience (POST /{audience_id}/users), with the record's unique id as EXTERN_ID.",
        kind: ActionKind::Upsert,
        fields: &USER_FIELDS,
        open_fields: false,
        sync_modes: &[],
    },
    ActionSpec {
        name: "remove_users",
        display_name: "Remove Users",
        description: "Removes the model's users from the audience (DELETE /{audience_id}/users), e.g. a model of opted-out customers.",
        kind: ActionKind::Upsert,
        fields: &USER_FIELDS,
        open_fields: false,
        sync_modes: &[],
    },
    ActionSpec {
        name: "remove_deleted_users",
        display_name: "Remove Users Who Left The Model",
        description: "Removes users whose records left the model, by their unique id as EXTERN_ID (as add_users sent it).",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A Facebook Custom Audiences action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AudienceAction {
    /// `add_users`: `POST`.
    Add,
    /// `remove_users`: `DELETE` with the identifiers.
    Remove,
    /// `remove_deleted_users`: `DELETE` by `EXTERN_ID`.
    RemoveDeleted,
}

impl AudienceAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "add_users" => Some(AudienceAction::Add),
            "remove_users" => Some(AudienceAction::Remove),
            "remove_deleted_users" => Some(AudienceAction::RemoveDeleted),
            _ => None,
        }
    }
}

/// A batch as Meta's `payload`, the records it holds (indexes into the batch) and the
/// records refused before sending.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    /// `{"schema": [...], "data": [[...]]}`.
    pub(crate) payload: Value,
    /// For each row of `data`, the index of its record in the batch.
    pub(crate) rows: Vec<usize>,
    /// For each row, the values sent (to find rows named by `invalid_entry_samples`).
    pub(crate) sent: Vec<Vec<String>>,
    /// Records refused before sending, with the reason.
    pub(crate) refused: Vec<(usize, String)>,
}

/// The text of a field value (strings as is, numbers as written); `None` for null or empty.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// One identifier normalised (and hashed unless it is the MADID).
fn identifier(schema: &str, raw: &str, phone_code: Option<&str>) -> Option<String> {
    match schema {
        "EMAIL" => hashing::hash_normalized(raw, hashing::email),
        "PHONE" => hashing::hash_normalized(raw, |p| hashing::phone_digits(p, phone_code)),
        "FN" | "LN" => hashing::hash_normalized(raw, hashing::name),
        "GEN" => hashing::hash_normalized(raw, hashing::gender),
        "DOBY" => hashing::hash_normalized(raw, hashing::birth_year),
        "DOBM" => hashing::hash_normalized(raw, |m| hashing::two_digits(m, 12)),
        "DOBD" => hashing::hash_normalized(raw, |d| hashing::two_digits(d, 31)),
        "CT" => hashing::hash_normalized(raw, hashing::city),
        "ST" => hashing::hash_normalized(raw, hashing::state),
        "ZIP" => hashing::hash_normalized(raw, hashing::zip),
        "COUNTRY" => hashing::hash_normalized(raw, hashing::country),
        "MADID" => Some(raw.trim().to_lowercase()).filter(|m| !m.is_empty()),
        _ => None,
    }
}

/// The key as `EXTERN_ID` text.
fn extern_id(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Encodes a batch: the schema is `EXTERN_ID` plus every identifier some record maps; a
/// record without any valid identifier (all mapped values fail normalisation) is refused
/// with the reason and not sent. `RemoveDeleted` sends `EXTERN_ID` only.
pub(crate) fn encode(
    action: AudienceAction,
    batch: &[Payload],
    phone_code: Option<&str>,
) -> Encoded {
    let used: Vec<(&FieldSpec, &str)> = if action == AudienceAction::RemoveDeleted {
        Vec::new()
    } else {
        USER_FIELDS
            .iter()
            .zip(SCHEMA_KEYS)
            .filter(|(f, _)| {
                batch
                    .iter()
                    .any(|p| p.fields.get(f.name).and_then(text).is_some())
            })
            .collect()
    };
    let mut encoded = Encoded::default();
    let mut data = Vec::new();
    for (index, payload) in batch.iter().enumerate() {
        let mut row = vec![extern_id(&payload.key)];
        let mut problems = Vec::new();
        let mut matched = action == AudienceAction::RemoveDeleted;
        for (field, schema) in &used {
            let value = match payload.fields.get(field.name).and_then(text) {
                None => String::new(),
                Some(raw) => match identifier(schema, &raw, phone_code) {
                    Some(v) => {
                        matched = true;
                        v
                    }
                    None => {
                        problems.push(format!(
                            "{} cannot be normalised (expected: {})",
                            field.name, field.description
                        ));
                        String::new()
                    }
                },
            };
            row.push(value);
        }
        if !matched {
            let reason = if problems.is_empty() {
                "no identifier is mapped for this record (email, phone, names, ...)".to_string()
            } else {
                format!("no valid identifier: {}", problems.join("; "))
            };
            encoded.refused.push((index, reason));
            continue;
        }
        encoded.sent.push(row.clone());
        encoded.rows.push(index);
        data.push(Value::Array(row.into_iter().map(Value::String).collect()));
    }
    let mut schema = vec!["EXTERN_ID"];
    schema.extend(used.iter().map(|(_, key)| *key));
    encoded.payload = json!({"schema": schema, "data": data});
    encoded
}
