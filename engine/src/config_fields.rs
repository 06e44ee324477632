//! Drift checks between a connector's typed config and the [`ConfigField`]s it declares
//! (test support, behind the `test-util` feature).
//!
//! A connector describes its configuration twice: a `#[derive(Deserialize)]` struct that parses
//! it, and the `ConfigField` list served by `ListSourceTypes`/`ListDestinationTypes` (which also
//! drives secret splitting). [`check_config_fields`] fails when the two name different keys, so
//! a field added to one and forgotten in the other breaks a test instead of a user's config.
//!
//! The struct's field names are read from serde itself: [`struct_fields`] runs the struct's
//! `Deserialize` impl against a deserializer that records the `fields` list the derive passes
//! to `deserialize_struct` (names after `rename`/`rename_all`) and then stops.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use crate::destination::ConfigField;

/// Config keys the engine owns and strips before a connector's `build` sees the config: they
/// belong in neither the typed config nor the connector's `ConfigField`s.
pub const ENGINE_OWNED_KEYS: &[&str] = &[
    // destinations: delivery limit overrides
    "limits",
    // sources: extraction slots and connection retries
    "max_concurrent_extractions",
    "connection_retries",
];

/// The field names of a `#[derive(Deserialize)]` struct `T`, as serde matches them.
///
/// # Errors
/// When `T` does not deserialize as a struct with named fields (a map, an enum, a struct with
/// `#[serde(flatten)]`, which serde reads as a map).
pub fn struct_fields<T: DeserializeOwned>() -> Result<&'static [&'static str], String> {
    let mut captured = None;
    // The deserializer always fails once it has recorded the fields; only `captured` matters.
    let _ = T::deserialize(FieldsCapture {
        captured: &mut captured,
    });
    captured.ok_or_else(|| {
        format!(
            "{} does not deserialize as a struct with named fields",
            std::any::type_name::<T>()
        )
    })
}

/// Checks that `declared` names exactly the fields of the typed config `T`, and that neither
/// names an engine-owned key ([`ENGINE_OWNED_KEYS`]).
///
/// # Errors
/// A message naming every missing and extra key and what to change.
pub fn check_config_fields<T: DeserializeOwned>(declared: &[ConfigField]) -> Result<(), String> {
    let typed = struct_fields::<T>()?;
    let type_name = std::any::type_name::<T>();
    let mut problems = Vec::new();
    for field in typed {
        if !declared.iter().any(|d| d.name == *field) {
            problems.push(format!(
                "'{field}' is a field of {type_name} but has no ConfigField: declare it (with its type, required, secret and description)"
            ));
        }
    }
    for d in declared {
        if !typed.contains(&d.name) {
            problems.push(format!(
                "ConfigField '{}' is not a field of {type_name}: a config using it is refused as an unknown field; remove it or add the field",
                d.name
            ));
        }
    }
    for key in ENGINE_OWNED_KEYS {
        if typed.contains(key) || declared.iter().any(|d| d.name == *key) {
            problems.push(format!(
                "'{key}' is owned by the engine (stripped before build): remove it from the connector"
            ));
        }
    }
    let mut names: Vec<_> = declared.iter().map(|d| d.name).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|p| p[0] == p[1]) {
        problems.push(format!("ConfigField '{}' is declared twice", pair[0]));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Why [`FieldsCapture`] stopped (always).
#[derive(Debug)]
struct Stop(String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Stop(msg.to_string())
    }
}

/// A deserializer that records the `fields` of `deserialize_struct` and fails on everything.
struct FieldsCapture<'a> {
    captured: &'a mut Option<&'static [&'static str]>,
}

impl<'de> Deserializer<'de> for FieldsCapture<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop("not a struct".to_string()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.captured = Some(fields);
        Err(Stop("fields captured".to_string()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::FieldType;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Typed {
        url: String,
        #[serde(rename = "token")]
        secret_token: Option<String>,
        #[serde(default)]
        retries: u32,
    }

    fn field(name: &'static str) -> ConfigField {
        ConfigField {
            name,
            field_type: FieldType::String,
            required: false,
            secret: false,
            description: "",
        }
    }

    #[test]
    fn reads_serde_names_of_a_struct() {
        assert_eq!(
            struct_fields::<Typed>().unwrap(),
            ["url", "token", "retries"]
        );
        assert!(struct_fields::<serde_json::Map<String, serde_json::Value>>().is_err());
        assert!(struct_fields::<String>().is_err());
    }

    #[test]
    fn names_every_drift() {
        let good = [field("url"), field("token"), field("retries")];
        assert_eq!(check_config_fields::<Typed>(&good), Ok(()));
        let drifted = [field("url"), field("secret_token"), field("limits")];
        let message = check_config_fields::<Typed>(&drifted).unwrap_err();
        for part in [
            "'token' is a field",
            "'retries' is a field",
            "ConfigField 'secret_token'",
            "'limits' is owned by the engine",
        ] {
            assert!(message.contains(part), "{part} missing from: {message}");
        }
        let twice = [field("url"), field("token"), field("retries"), field("url")];
        assert!(
            check_config_fields::<Typed>(&twice)
                .unwrap_err()
                .contains("declared twice")
        );
    }
}
