//! Reading a JSON config object into a typed struct with errors a user can act on: the error
//! names the field that failed (`path`, `limits.batch_size`, `tls.ca[0]`) and says in words what
//! it must be and what it was ("must be a whole number, 0 or more, not the text "ten""),
//! instead of serde's `invalid type: string "ten", expected usize` for the whole object.
//!
//! Sources (`connectors/src/sources/config.rs`) and the destination `limits` object
//! ([`DeliveryLimits::with_overrides`](crate::destination::DeliveryLimits::with_overrides))
//! share it.

use serde::de::DeserializeOwned;

/// Why a config object did not deserialize, located at one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The dotted path of the field inside the object (`path`, `ssl.mode`, `hosts[1]`); empty
    /// when the object itself is at fault (not an object at all).
    pub field: String,
    /// What the field must be, in words ("a text value", "a whole number, 0 or more"), when
    /// the error is about the field's type or range.
    pub expected: Option<String>,
    /// What the field held, in words ("the number 42"), when known.
    pub found: Option<String>,
    /// The whole message: "must be {expected}, not {found}", or the deserializer's own words
    /// for other problems (a missing field, an unknown field or variant).
    pub message: String,
}

impl FieldError {
    /// The message with `hint` (what the field is for) after the expected form:
    /// "must be a text value (absolute path of a file), not the number 42".
    pub fn message_with(&self, hint: &str) -> String {
        match (&self.expected, hint.trim()) {
            (Some(expected), hint) if !hint.is_empty() => {
                let hint = hint.trim_end_matches('.');
                // "Absolute path ..." reads "absolute path ..." inside the sentence; an
                // acronym ("CSV only") keeps its case.
                let mut chars = hint.chars();
                let hint = match (chars.next(), chars.next()) {
                    (Some(first), Some(second)) if !second.is_uppercase() => first
                        .to_lowercase()
                        .chain(std::iter::once(second))
                        .chain(chars)
                        .collect::<String>(),
                    _ => hint.to_string(),
                };
                match &self.found {
                    Some(found) => format!("must be {expected} ({hint}), not {found}"),
                    None => format!("must be {expected} ({hint})"),
                }
            }
            _ => self.message.clone(),
        }
    }
}

/// Deserializes `value` into `T`; on failure, the field and the expected form in words.
pub fn from_json<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|error| {
        let segments: Vec<String> = error
            .path()
            .iter()
            .map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => format!("[{index}]"),
                serde_path_to_error::Segment::Map { key } => key.clone(),
                serde_path_to_error::Segment::Enum { variant } => variant.clone(),
                serde_path_to_error::Segment::Unknown => "?".to_string(),
            })
            .collect();
        let found_value = lookup(value, error.path());
        word(&segments, &error.into_inner().to_string(), found_value)
    })
}

/// The value at `path` inside `root`, if it is there.
fn lookup<'a>(
    root: &'a serde_json::Value,
    path: &serde_path_to_error::Path,
) -> Option<&'a serde_json::Value> {
    let mut current = root;
    for segment in path {
        current = match segment {
            serde_path_to_error::Segment::Seq { index } => current.get(index)?,
            serde_path_to_error::Segment::Map { key } => current.get(key)?,
            _ => return None,
        };
    }
    Some(current)
}

/// `a.b[0].c` from path segments.
fn join(segments: &[String]) -> String {
    let mut out = String::new();
    for segment in segments {
        if !out.is_empty() && !segment.starts_with('[') {
            out.push('.');
        }
        out.push_str(segment);
    }
    out
}

/// The text between the first pair of backticks of `text`.
fn quoted(text: &str) -> Option<&str> {
    let start = text.find('`')? + 1;
    let end = start + text[start..].find('`')?;
    Some(&text[start..end])
}

/// Words serde's error `message` at `segments` for the user.
fn word(segments: &[String], message: &str, found: Option<&serde_json::Value>) -> FieldError {
    let at = join(segments);
    if let Some(rest) = message.strip_prefix("missing field ") {
        let name = quoted(rest).unwrap_or(rest);
        let field = if at.is_empty() {
            name.to_string()
        } else {
            format!("{at}.{name}")
        };
        return FieldError {
            field,
            expected: None,
            found: None,
            message: "is required".to_string(),
        };
    }
    let type_problem = message.starts_with("invalid type: ")
        || message.starts_with("invalid value: ")
        || message.starts_with("invalid length ");
    let expected = type_problem
        .then(|| message.rsplit_once(", expected "))
        .flatten()
        .map(|(_, expected)| expected_in_words(expected.trim()));
    match expected {
        Some(expected) => {
            let found = found.map(describe);
            let message = match &found {
                Some(found) => format!("must be {expected}, not {found}"),
                None => format!("must be {expected}"),
            };
            FieldError {
                field: at,
                expected: Some(expected),
                found,
                message,
            }
        }
        None => FieldError {
            field: at,
            expected: None,
            found: None,
            message: message.to_string(),
        },
    }
}

/// serde's "expected ..." (a Rust type or a visitor's words) in a user's words.
fn expected_in_words(expected: &str) -> String {
    let whole = |max: u64| format!("a whole number from 0 to {max}");
    match expected {
        // "string or map": an enum (a name out of a list) read from a JSON value.
        "a string" | "a borrowed string" | "a character" | "a char" | "string or map" => {
            "a text value".to_string()
        }
        "u8" => whole(u8::MAX.into()),
        "u16" => whole(u16::MAX.into()),
        "u32" => whole(u32::MAX.into()),
        "u64" | "usize" | "u128" => "a whole number, 0 or more".to_string(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a boolean" => "true or false".to_string(),
        "a sequence" => "a list".to_string(),
        "a map" => "an object".to_string(),
        other if other.starts_with("struct ") || other.starts_with("a map") => {
            "an object".to_string()
        }
        other => other.to_string(),
    }
}

/// A JSON value as a message shows it: "the number 42", "the text "x"", "a list".
fn describe(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "null".to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => format!("the number {n}"),
        serde_json::Value::String(s) => {
            const MAX: usize = 40;
            if s.chars().count() > MAX {
                format!("the text \"{}…\"", s.chars().take(MAX).collect::<String>())
            } else {
                format!("the text \"{s}\"")
            }
        }
        serde_json::Value::Array(_) => "a list".to_string(),
        serde_json::Value::Object(_) => "an object".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        path: String,
        #[serde(default)]
        port: Option<u16>,
        #[serde(default)]
        batch_size: Option<usize>,
        #[serde(default)]
        rate: Option<f64>,
        #[serde(default)]
        enabled: Option<bool>,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        names: Vec<String>,
    }

    fn error(value: serde_json::Value) -> FieldError {
        from_json::<Config>(&value).unwrap_err()
    }

    #[test]
    fn a_type_error_names_the_field_and_the_expected_form_in_words() {
        let e = error(json!({"path": 42}));
        assert_eq!(e.field, "path");
        assert_eq!(e.expected.as_deref(), Some("a text value"));
        assert_eq!(e.message, "must be a text value, not the number 42");
        assert_eq!(
            e.message_with("Absolute path of a file or directory."),
            "must be a text value (absolute path of a file or directory), not the number 42"
        );
        assert_eq!(
            e.message_with("CSV only: the delimiter"),
            "must be a text value (CSV only: the delimiter), not the number 42"
        );

        let e = error(json!({"path": "/x", "batch_size": "ten"}));
        assert_eq!(e.field, "batch_size");
        assert_eq!(
            e.message,
            "must be a whole number, 0 or more, not the text \"ten\""
        );
        let e = error(json!({"path": "/x", "batch_size": -1}));
        assert_eq!(
            e.message,
            "must be a whole number, 0 or more, not the number -1"
        );
        let e = error(json!({"path": "/x", "port": 70000}));
        assert_eq!(e.field, "port");
        assert_eq!(
            e.message,
            "must be a whole number from 0 to 65535, not the number 70000"
        );
        let e = error(json!({"path": "/x", "rate": "fast"}));
        assert_eq!(e.message, "must be a number, not the text \"fast\"");
        let e = error(json!({"path": "/x", "enabled": "yes"}));
        assert_eq!(e.message, "must be true or false, not the text \"yes\"");
    }

    #[test]
    fn nested_fields_are_named_by_their_path() {
        let e = error(json!({"path": "/x", "inner": {"names": ["a", 7]}}));
        assert_eq!(e.field, "inner.names[1]");
        assert_eq!(e.message, "must be a text value, not the number 7");
        let e = error(json!({"path": "/x", "inner": {}}));
        assert_eq!(e.field, "inner.names");
        assert_eq!(e.message, "is required");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let e = error(json!({}));
        assert_eq!(e.field, "path");
        assert_eq!(e.message, "is required");
        assert_eq!(e.message_with("anything"), "is required");
        let e = error(json!({"path": "/x", "pth": 1}));
        assert_eq!(e.field, "pth");
        assert!(
            e.message.contains("unknown field `pth`") && e.message.contains("`path`"),
            "{}",
            e.message
        );
        let e = error(json!("not an object"));
        assert_eq!(e.field, "");
        assert_eq!(e.expected.as_deref(), Some("an object"));
        assert_eq!(
            e.message,
            "must be an object, not the text \"not an object\""
        );
    }
}
