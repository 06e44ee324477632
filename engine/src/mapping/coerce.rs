//! Coercion of mapped values to the type an action field declares, and the check, made when a
//! mapping is saved, that a column's type can ever become the field's type.
//!
//! | field type | accepted values |
//! |---|---|
//! | `string` | text; numbers and booleans as their text |
//! | `integer` | whole numbers; floats and decimals without a fractional part; text holding one |
//! | `number` | numbers; text holding one (a decimal beyond `f64` precision is rounded) |
//! | `boolean` | booleans; `0`/`1`; text `true`/`false`/`yes`/`no`/`1`/`0` (any case) |
//! | `datetime` | RFC 3339 text (kept as written); dates (`2024-05-01`), `YYYY-MM-DD HH:MM:SS[.f]` (read as UTC) and epoch numbers (seconds, or milliseconds from 1e11 up) become RFC 3339 text in UTC |
//! | `object` | objects; text holding a JSON object |
//! | `array` | arrays; text holding a JSON array |
//! | `any` | anything, unchanged |
//!
//! NULL stays NULL (what a mapping does with it is its `null_values` choice).

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use datafusion::arrow::datatypes::DataType;
use serde_json::{Number, Value};

use crate::destination::spec::FieldType;

/// Largest integer an `f64` holds exactly (2^53).
const MAX_EXACT_FLOAT_INT: f64 = 9_007_199_254_740_992.0;

/// `value` converted to `ty`, or why it cannot be, naming the value and the type.
pub fn coerce(value: Value, ty: FieldType) -> Result<Value, String> {
    if value.is_null() || ty == FieldType::Any {
        return Ok(value);
    }
    let converted = match ty {
        FieldType::Any => Some(value.clone()),
        FieldType::String => to_string(&value),
        FieldType::Integer => to_integer(&value),
        FieldType::Number => to_number(&value),
        FieldType::Boolean => to_boolean(&value),
        FieldType::Datetime => to_datetime(&value),
        FieldType::Object => parse_json_text(&value).filter(Value::is_object),
        FieldType::Array => parse_json_text(&value).filter(Value::is_array),
    };
    converted.ok_or_else(|| {
        format!(
            "value {} cannot be converted to {} ({})",
            shown(&value),
            ty.as_str(),
            expectation(ty)
        )
    })
}

/// What a value of `ty` must look like, for error messages.
fn expectation(ty: FieldType) -> &'static str {
    match ty {
        FieldType::String => "text, a number or a boolean",
        FieldType::Integer => "a whole number, or text holding one",
        FieldType::Number => "a number, or text holding one",
        FieldType::Boolean => "true/false, 0/1, or text true/false/yes/no",
        FieldType::Datetime => "an RFC 3339 timestamp such as 2024-05-01T12:00:00Z, or a date",
        FieldType::Object => "an object, a struct column, or text holding a JSON object",
        FieldType::Array => "an array, a list column, or text holding a JSON array",
        FieldType::Any => "any value",
    }
}

/// A value quoted for an error message, cut at 80 characters.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn to_string(value: &Value) -> Option<Value> {
    match value {
        Value::String(_) => Some(value.clone()),
        Value::Number(n) => Some(Value::String(n.to_string())),
        Value::Bool(b) => Some(Value::String(b.to_string())),
        _ => None,
    }
}

fn to_integer(value: &Value) -> Option<Value> {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(value.clone()),
        Value::Number(n) => n.as_f64().and_then(integral_float),
        Value::String(s) => integer_text(s.trim()),
        _ => None,
    }
}

/// A float without a fractional part, within the range where floats are exact.
fn integral_float(f: f64) -> Option<Value> {
    // The range check makes the cast exact.
    #[allow(clippy::cast_possible_truncation)]
    (f.fract() == 0.0 && f.abs() <= MAX_EXACT_FLOAT_INT).then(|| Value::from(f as i64))
}

/// Text holding a whole number (`42`, `-7`, `12.000`), as an exact integer.
fn integer_text(text: &str) -> Option<Value> {
    let whole = match text.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|b| b == b'0') => whole,
        Some(_) => return None,
        None => text,
    };
    if let Ok(i) = whole.parse::<i64>() {
        return Some(Value::from(i));
    }
    whole.parse::<u64>().ok().map(Value::from)
}

fn to_number(value: &Value) -> Option<Value> {
    match value {
        Value::Number(_) => Some(value.clone()),
        Value::String(s) => {
            let s = s.trim();
            integer_text(s).filter(|_| !s.contains('.')).or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
            })
        }
        _ => None,
    }
}

fn to_boolean(value: &Value) -> Option<Value> {
    match value {
        Value::Bool(_) => Some(value.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(Value::Bool(false)),
            Some(1) => Some(Value::Bool(true)),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "t" | "y" => Some(Value::Bool(true)),
            "false" | "no" | "0" | "f" | "n" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    }
}

/// Epoch values at or above this are milliseconds, below it seconds (1e11 s is the year 5138,
/// 1e11 ms is 1973).
const EPOCH_MILLIS_FROM: f64 = 1e11;

fn to_datetime(value: &Value) -> Option<Value> {
    let utc = |t: DateTime<chrono::Utc>| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    };
    let s = match value {
        Value::String(s) => s.trim(),
        Value::Number(n) => {
            let x = n.as_f64().filter(|x| x.is_finite())?;
            let millis = if x.abs() >= EPOCH_MILLIS_FROM {
                x
            } else {
                x * 1000.0
            };
            // Whole milliseconds; from_timestamp_millis refuses what is out of range.
            #[allow(clippy::cast_possible_truncation)]
            return DateTime::from_timestamp_millis(millis.round() as i64).map(utc);
        }
        _ => return None,
    };
    if DateTime::parse_from_rfc3339(s).is_ok() {
        return Some(Value::String(s.to_string()));
    }
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|t| utc(t.and_utc()));
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
        .map(|naive| {
            Value::String(
                naive
                    .and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            )
        })
}

/// Objects and arrays as they are; text parsed as JSON (a JSON column).
fn parse_json_text(value: &Value) -> Option<Value> {
    match value {
        Value::Object(_) | Value::Array(_) => Some(value.clone()),
        Value::String(s) => serde_json::from_str(s).ok(),
        _ => None,
    }
}

/// Whether a value of Arrow type `data_type` can ever become `ty` (checked when a mapping is
/// saved; a value that can but does not is a per-record error at run time).
pub fn can_coerce(data_type: &DataType, ty: FieldType) -> bool {
    use DataType as D;
    if ty == FieldType::Any {
        return true;
    }
    let text = matches!(data_type, D::Utf8 | D::LargeUtf8 | D::Utf8View);
    let numeric = data_type.is_numeric();
    let nested = matches!(
        data_type,
        D::Struct(_) | D::Map(_, _) | D::List(_) | D::LargeList(_) | D::FixedSizeList(_, _)
    );
    match data_type {
        D::Null => true,
        D::Dictionary(_, values) => can_coerce(values, ty),
        _ => match ty {
            FieldType::Any => true,
            FieldType::String => !nested,
            FieldType::Integer | FieldType::Number => numeric || text,
            FieldType::Boolean => matches!(data_type, D::Boolean) || data_type.is_integer() || text,
            FieldType::Datetime => data_type.is_temporal() || numeric || text,
            FieldType::Object => matches!(data_type, D::Struct(_) | D::Map(_, _)) || text,
            FieldType::Array => {
                matches!(
                    data_type,
                    D::List(_) | D::LargeList(_) | D::FixedSizeList(_, _)
                ) || text
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_stay_exact_and_text_is_parsed() {
        let big = json!(9_007_199_254_740_993_i64);
        assert_eq!(coerce(big.clone(), FieldType::Integer).unwrap(), big);
        assert_eq!(coerce(json!("42"), FieldType::Integer).unwrap(), json!(42));
        assert_eq!(
            coerce(json!("12.000"), FieldType::Integer).unwrap(),
            json!(12)
        );
        assert_eq!(coerce(json!(3.0), FieldType::Integer).unwrap(), json!(3));
        assert_eq!(
            coerce(json!("18446744073709551615"), FieldType::Integer).unwrap(),
            json!(18_446_744_073_709_551_615_u64)
        );
        let err = coerce(json!("12.5"), FieldType::Integer).unwrap_err();
        assert!(err.contains("\"12.5\"") && err.contains("integer"), "{err}");
        assert!(coerce(json!(true), FieldType::Integer).is_err());
    }

    #[test]
    fn numbers_booleans_and_strings() {
        assert_eq!(coerce(json!("1.5"), FieldType::Number).unwrap(), json!(1.5));
        assert_eq!(coerce(json!("7"), FieldType::Number).unwrap(), json!(7));
        assert!(coerce(json!("seven"), FieldType::Number).is_err());
        assert_eq!(
            coerce(json!("Yes"), FieldType::Boolean).unwrap(),
            json!(true)
        );
        assert_eq!(coerce(json!(0), FieldType::Boolean).unwrap(), json!(false));
        assert!(coerce(json!(2), FieldType::Boolean).is_err());
        assert_eq!(coerce(json!(12), FieldType::String).unwrap(), json!("12"));
        assert!(coerce(json!({"a": 1}), FieldType::String).is_err());
        assert_eq!(
            coerce(Value::Null, FieldType::Integer).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn datetimes_objects_and_arrays() {
        assert_eq!(
            coerce(json!("2024-05-01 10:00:00"), FieldType::Datetime).unwrap(),
            json!("2024-05-01T10:00:00Z")
        );
        let rfc = json!("2024-05-01T10:00:00+02:00");
        assert_eq!(coerce(rfc.clone(), FieldType::Datetime).unwrap(), rfc);
        assert!(coerce(json!("yesterday"), FieldType::Datetime).is_err());
        assert_eq!(
            coerce(json!("2024-05-01"), FieldType::Datetime).unwrap(),
            json!("2024-05-01T00:00:00Z")
        );
        assert_eq!(
            coerce(json!(1_700_000_000_000_i64), FieldType::Datetime).unwrap(),
            json!("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            coerce(json!(1_700_000_000), FieldType::Datetime).unwrap(),
            json!("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            coerce(json!("{\"a\": [1]}"), FieldType::Object).unwrap(),
            json!({"a": [1]})
        );
        assert!(coerce(json!("[1]"), FieldType::Object).is_err());
        assert_eq!(
            coerce(json!("[1, 2]"), FieldType::Array).unwrap(),
            json!([1, 2])
        );
        assert!(coerce(json!(5), FieldType::Array).is_err());
    }

    #[test]
    fn column_types_that_can_never_coerce_are_known() {
        use datafusion::arrow::datatypes::Field;
        use std::sync::Arc;
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        assert!(can_coerce(&list, FieldType::Array));
        assert!(!can_coerce(&list, FieldType::String));
        assert!(!can_coerce(&DataType::Boolean, FieldType::Datetime));
        assert!(can_coerce(&DataType::Utf8, FieldType::Integer));
        assert!(!can_coerce(&DataType::Date32, FieldType::Integer));
        assert!(can_coerce(&DataType::Int64, FieldType::Datetime));
        assert!(can_coerce(&DataType::Int32, FieldType::Boolean));
    }
}
