//! Payload helpers shared by the event and marketing destinations (`segment`, `mixpanel`,
//! `braze`): an id as the API's string, a time in the API's form, and an object field filled
//! from the payload's object value plus its undeclared ("open") fields.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use retl_engine::destination::{ActionSpec, Payload};
use serde_json::{Map, Value};

/// Epoch values at or above this are milliseconds, below it seconds (1e11 s is the year 5138,
/// 1e11 ms is 1973).
const MILLIS_THRESHOLD: f64 = 1e11;

/// An identifier as the text an API expects: a string as is, a number or boolean as its JSON
/// text; `None` for null, an empty string, an object or an array.
pub(crate) fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Which identifier a record gets from a field that may be left unmapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// The mapped field's value.
    Mapped(String),
    /// The field is not mapped: the record's key is the identifier.
    Key(String),
    /// The field is mapped but this record's value is null or empty.
    Missing,
}

/// The identifier of `payload` from field `field`: its value when mapped, else the record's key.
pub(crate) fn identity(payload: &Payload, field: &str) -> Identity {
    match payload.fields.get(field) {
        Some(value) => id_text(value).map_or(Identity::Missing, Identity::Mapped),
        None => id_text(&payload.key).map_or(Identity::Missing, Identity::Key),
    }
}

/// A point in time given as an RFC 3339 string or as epoch seconds or milliseconds.
///
/// # Errors
/// A message naming `field` when the value is none of these.
pub(crate) fn parse_time(field: &str, value: &Value) -> Result<DateTime<Utc>, String> {
    let bad = || {
        format!(
            "field '{field}' must be an RFC 3339 timestamp or epoch seconds/milliseconds, not {value}"
        )
    };
    match value {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| bad()),
        Value::Number(n) => {
            let x = n.as_f64().ok_or_else(bad)?;
            let millis = if x.abs() >= MILLIS_THRESHOLD {
                x
            } else {
                x * 1000.0
            };
            if !millis.is_finite() {
                return Err(bad());
            }
            #[allow(clippy::cast_possible_truncation)]
            Utc.timestamp_millis_opt(millis.round() as i64)
                .single()
                .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

/// `time` as RFC 3339 with milliseconds, UTC (`2026-01-02T03:04:05.678Z`).
pub(crate) fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The object sent as `object_field` (e.g. Segment `traits`): the payload's value of that field
/// when it is an object, with every field the action does not declare added to it (a mapping
/// may map `plan` straight to an open action). A declared field never lands in the object.
///
/// # Errors
/// A message when `object_field` is mapped to something other than an object or null.
pub(crate) fn open_object(
    spec: &ActionSpec,
    payload: &Payload,
    object_field: &str,
) -> Result<Map<String, Value>, String> {
    let mut object = match payload.fields.get(object_field) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(other) => {
            return Err(format!(
                "field '{object_field}' must be an object, not {other}; map a JSON or struct column, or map its members as separate fields"
            ));
        }
    };
    for (name, value) in payload.fields.iter() {
        if !spec.fields.iter().any(|f| f.name == name) {
            object.insert(name.to_string(), value.clone());
        }
    }
    Ok(object)
}

/// The value of an optional object field (`context`), if mapped and not null.
///
/// # Errors
/// A message when it is mapped to something other than an object.
pub(crate) fn optional_object(payload: &Payload, field: &str) -> Result<Option<Value>, String> {
    match payload.fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => Ok(Some(value.clone())),
        Some(other) => Err(format!("field '{field}' must be an object, not {other}")),
    }
}

/// The value of an optional text field, if mapped and not null (numbers as their text).
///
/// # Errors
/// A message when it is an object or an array.
pub(crate) fn optional_text(payload: &Payload, field: &str) -> Result<Option<String>, String> {
    match payload.fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(value @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(value.to_string())),
        Some(other) => Err(format!("field '{field}' must be text, not {other}")),
    }
}

/// The value of a required text field (numbers as their text).
///
/// # Errors
/// A message naming the field when it is missing, null, empty, an object or an array.
pub(crate) fn required_text(payload: &Payload, field: &str) -> Result<String, String> {
    match optional_text(payload, field)? {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(format!("field '{field}' is required and is null or empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retl_engine::destination::spec::{ActionKind, ChangeKind};
    use retl_engine::destination::{FieldSpec, FieldType};
    use serde_json::json;

    static FIELDS: [FieldSpec; 2] = [
        FieldSpec {
            name: "user_id",
            field_type: FieldType::String,
            required: false,
            description: "",
            children: &[],
        },
        FieldSpec {
            name: "traits",
            field_type: FieldType::Object,
            required: false,
            description: "",
            children: &[],
        },
    ];
    static SPEC: ActionSpec = ActionSpec {
        name: "identify",
        display_name: "",
        description: "",
        kind: ActionKind::Upsert,
        fields: &FIELDS,
        open_fields: true,
        sync_modes: &[],
    };

    fn payload(key: Value, fields: Value) -> Payload {
        Payload {
            key,
            change: ChangeKind::Added,
            fields: fields.as_object().cloned().unwrap().into(),
            fingerprint: None,
        }
    }

    #[test]
    fn identity_from_the_field_or_the_key() {
        let p = payload(json!(7), json!({"user_id": "u-7"}));
        assert_eq!(identity(&p, "user_id"), Identity::Mapped("u-7".into()));
        let p = payload(json!(7), json!({"email": "a@b.c"}));
        assert_eq!(identity(&p, "user_id"), Identity::Key("7".into()));
        let p = payload(json!(7), json!({"user_id": null}));
        assert_eq!(identity(&p, "user_id"), Identity::Missing);
        assert_eq!(
            id_text(&json!(12345678901234567u64)).unwrap(),
            "12345678901234567"
        );
        assert_eq!(id_text(&json!("")), None);
        assert_eq!(id_text(&json!({"a": 1})), None);
    }

    #[test]
    fn times_in_seconds_millis_or_rfc3339() {
        let expected = "2023-11-14T22:13:20.000Z";
        for value in [
            json!(1_700_000_000),
            json!(1_700_000_000_000u64),
            json!(1_700_000_000.0),
            json!("2023-11-14T22:13:20Z"),
            json!("2023-11-14T23:13:20+01:00"),
        ] {
            assert_eq!(
                rfc3339(parse_time("t", &value).unwrap()),
                expected,
                "{value}"
            );
        }
        assert!(
            parse_time("t", &json!("yesterday"))
                .unwrap_err()
                .contains("'t'")
        );
        assert!(parse_time("t", &json!(true)).is_err());
    }

    #[test]
    fn open_fields_join_the_object() {
        let p = payload(
            json!(1),
            json!({"user_id": "u", "traits": {"a": 1}, "plan": "pro"}),
        );
        assert_eq!(
            Value::Object(open_object(&SPEC, &p, "traits").unwrap()),
            json!({"a": 1, "plan": "pro"})
        );
        let p = payload(json!(1), json!({"traits": "nope"}));
        assert!(
            open_object(&SPEC, &p, "traits")
                .unwrap_err()
                .contains("object")
        );
        let p = payload(json!(1), json!({"plan": "pro"}));
        assert_eq!(
            Value::Object(open_object(&SPEC, &p, "traits").unwrap()),
            json!({"plan": "pro"})
        );
    }

    #[test]
    fn text_fields() {
        let p = payload(json!(1), json!({"event": "Signed Up", "n": 3, "o": {}}));
        assert_eq!(required_text(&p, "event").unwrap(), "Signed Up");
        assert_eq!(optional_text(&p, "n").unwrap().as_deref(), Some("3"));
        assert!(optional_text(&p, "o").is_err());
        assert!(
            required_text(&p, "missing")
                .unwrap_err()
                .contains("'missing'")
        );
        assert_eq!(optional_object(&p, "o").unwrap(), Some(json!({})));
        assert!(optional_object(&p, "event").is_err());
    }
}
