//! The one home of secret handling in the catalog: splitting a config as written by the user
//! into plain and secret values, and merging them back for the connector that uses them.
//! Encryption at rest, when it comes, goes here.

use std::collections::BTreeMap;

use crate::catalog::source::ConfigMap;
use crate::error::Error;
use crate::secret::Secret;

/// The secret config values of a source or destination, by field name.
pub type Secrets = BTreeMap<String, Secret>;

/// Applies config keys to the plain and secret parts: a key `is_secret` names goes to
/// `secrets`, any other to `plain`, and a `null` removes the key from both.
///
/// # Errors
/// `InvalidArgument` naming `<what>.config.<key>` when a secret value is not a string.
pub fn split_config(
    what: &str,
    is_secret: impl Fn(&str) -> bool,
    config: ConfigMap,
    plain: &mut ConfigMap,
    secrets: &mut Secrets,
) -> Result<(), Error> {
    for (key, value) in config {
        if value.is_null() {
            plain.remove(&key);
            secrets.remove(&key);
        } else if is_secret(&key) {
            let serde_json::Value::String(s) = value else {
                return Err(Error::invalid(
                    format!("{what}.config.{key}"),
                    "a secret field must be a string",
                ));
            };
            plain.remove(&key);
            secrets.insert(key, Secret::new(s));
        } else {
            plain.insert(key, value);
        }
    }
    Ok(())
}

/// The full config (secrets included) a connector's `build` receives.
pub fn merged_config(plain: &ConfigMap, secrets: &Secrets) -> serde_json::Value {
    let mut all = plain.clone();
    for (k, v) in secrets {
        all.insert(k.clone(), serde_json::Value::String(v.expose().to_string()));
    }
    serde_json::Value::Object(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: serde_json::Value) -> ConfigMap {
        match v {
            serde_json::Value::Object(m) => m,
            _ => ConfigMap::new(),
        }
    }

    #[test]
    fn secrets_are_split_from_plain_values_and_merged_back() {
        let (mut plain, mut secrets) = (ConfigMap::new(), Secrets::new());
        let config = map(serde_json::json!({"host": "db", "password": "hunter2"}));
        split_config(
            "source",
            |k| k == "password",
            config,
            &mut plain,
            &mut secrets,
        )
        .unwrap();
        assert_eq!(plain, map(serde_json::json!({"host": "db"})));
        assert_eq!(secrets["password"].expose(), "hunter2");
        let merged = merged_config(&plain, &secrets);
        assert_eq!(
            merged,
            serde_json::json!({"host": "db", "password": "hunter2"})
        );
    }

    #[test]
    fn null_removes_a_key_and_a_secret_must_be_text() {
        let (mut plain, mut secrets) = (ConfigMap::new(), Secrets::new());
        let first = map(serde_json::json!({"host": "db", "password": "x"}));
        split_config(
            "source",
            |k| k == "password",
            first,
            &mut plain,
            &mut secrets,
        )
        .unwrap();
        let removal = map(serde_json::json!({"host": null, "password": null}));
        split_config(
            "source",
            |k| k == "password",
            removal,
            &mut plain,
            &mut secrets,
        )
        .unwrap();
        assert!(plain.is_empty() && secrets.is_empty());
        let bad = map(serde_json::json!({"password": 42}));
        let err =
            split_config("source", |k| k == "password", bad, &mut plain, &mut secrets).unwrap_err();
        assert!(err.to_string().contains("source.config.password"), "{err}");
    }
}
