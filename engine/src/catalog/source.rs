//! Source definitions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::id::SourceId;
use crate::secret::Secret;

/// A JSON object of connector configuration.
pub type ConfigMap = serde_json::Map<String, serde_json::Value>;

/// A stored source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceDef {
    /// Id.
    pub id: SourceId,
    /// Human name.
    pub display_name: String,
    /// Registered source type name (`files`, ...).
    pub source_type: String,
    /// Non-secret configuration.
    pub config: ConfigMap,
    /// Secret configuration fields; persisted apart, never returned by the API.
    #[serde(skip)]
    pub secrets: BTreeMap<String, Secret>,
    /// How the engine extracts from this source (not passed to the connector).
    #[serde(default)]
    pub extraction: ExtractionSettings,
    /// When it was created.
    #[serde(with = "crate::timestamp")]
    pub create_time: DateTime<Utc>,
    /// When it was last changed.
    #[serde(with = "crate::timestamp")]
    pub update_time: DateTime<Utc>,
}

/// A source to create.
#[derive(Debug, Clone, Default)]
pub struct NewSource {
    /// Wanted id; generated when `None`.
    pub id: Option<String>,
    /// Human name; defaults to the id.
    pub display_name: String,
    /// Source type name.
    pub source_type: String,
    /// Configuration, secret fields included (they are split off by the type's field specs).
    pub config: ConfigMap,
}

/// Changes to a source. `None` keeps a value. Config keys merge: a present key replaces,
/// a `null` removes, an absent key is kept (so secrets need not be re-sent).
#[derive(Debug, Clone, Default)]
pub struct SourcePatch {
    /// New human name.
    pub display_name: Option<String>,
    /// Config keys to change.
    pub config: Option<ConfigMap>,
}

/// The source config key holding the maximum of concurrent extractions.
pub const MAX_EXTRACTIONS_KEY: &str = "max_concurrent_extractions";

/// The source config key holding how often an extract whose connection was lost or refused is
/// started again before the run fails.
pub const CONNECTION_RETRIES_KEY: &str = "connection_retries";

/// The largest `max_concurrent_extractions` accepted.
const MAX_EXTRACTIONS_LIMIT: u64 = 64;

/// The largest `connection_retries` accepted.
const CONNECTION_RETRIES_LIMIT: u64 = 10;

/// Settings the engine reads itself from a source's config: every source accepts them besides
/// its own fields, and the connector never sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtractionSettings {
    /// Extractions of this source that may run at once; further runs queue (1 to 64).
    pub max_concurrent_extractions: usize,
    /// How often an extract whose connection was lost or refused starts again before the run
    /// fails (0 to 10).
    pub connection_retries: u32,
}

impl Default for ExtractionSettings {
    fn default() -> Self {
        ExtractionSettings {
            max_concurrent_extractions: 1,
            connection_retries: 2,
        }
    }
}

/// A setting's value: `None` for `null` (the default), else a whole number in `min..=max`.
fn whole_number(
    key: &str,
    value: serde_json::Value,
    min: u64,
    max: u64,
    what: &str,
) -> Result<Option<u64>, Error> {
    if value.is_null() {
        return Ok(None);
    }
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(Error::invalid(
            format!("source.config.{key}"),
            format!("must be a whole number from {min} to {max} ({what}), not {value}"),
        )),
    }
}

impl ExtractionSettings {
    /// Takes the engine's keys out of `config` and applies them (a `null` restores the default).
    ///
    /// # Errors
    /// `InvalidArgument` naming the key and the accepted range.
    pub fn take_from(&mut self, config: &mut ConfigMap) -> Result<(), Error> {
        let default = ExtractionSettings::default();
        if let Some(v) = config.remove(MAX_EXTRACTIONS_KEY) {
            let what = "extractions of this source that may run at once; further runs queue";
            self.max_concurrent_extractions =
                whole_number(MAX_EXTRACTIONS_KEY, v, 1, MAX_EXTRACTIONS_LIMIT, what)?
                    .map_or(default.max_concurrent_extractions, |n| n as usize);
        }
        if let Some(v) = config.remove(CONNECTION_RETRIES_KEY) {
            let what = "how often an extract whose connection was lost or refused starts again before the run fails";
            self.connection_retries =
                whole_number(CONNECTION_RETRIES_KEY, v, 0, CONNECTION_RETRIES_LIMIT, what)?
                    .map_or(default.connection_retries, |n| n as u32);
        }
        Ok(())
    }

    /// The settings that differ from the defaults as config keys, for showing a source's
    /// config as the user wrote it.
    pub fn insert_into(&self, config: &mut ConfigMap) {
        let default = ExtractionSettings::default();
        if self.max_concurrent_extractions != default.max_concurrent_extractions {
            config.insert(
                MAX_EXTRACTIONS_KEY.to_string(),
                serde_json::Value::from(self.max_concurrent_extractions as u64),
            );
        }
        if self.connection_retries != default.connection_retries {
            config.insert(
                CONNECTION_RETRIES_KEY.to_string(),
                serde_json::Value::from(self.connection_retries),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: serde_json::Value) -> ConfigMap {
        match v {
            serde_json::Value::Object(m) => m,
            _ => ConfigMap::new(),
        }
    }

    #[test]
    fn engine_keys_are_taken_out_of_the_config() {
        let mut c = config(
            serde_json::json!({"path": "/x", "max_concurrent_extractions": 3, "connection_retries": 0}),
        );
        let mut s = ExtractionSettings::default();
        s.take_from(&mut c).unwrap();
        assert_eq!(s.max_concurrent_extractions, 3);
        assert_eq!(s.connection_retries, 0);
        assert_eq!(c.keys().collect::<Vec<_>>(), vec!["path"]);
        let mut c = config(serde_json::json!({"max_concurrent_extractions": null}));
        s.take_from(&mut c).unwrap();
        assert_eq!(s.max_concurrent_extractions, 1);
    }

    #[test]
    fn out_of_range_settings_name_the_key_and_the_range() {
        for (key, value) in [
            (MAX_EXTRACTIONS_KEY, serde_json::json!(0)),
            (MAX_EXTRACTIONS_KEY, serde_json::json!(65)),
            (MAX_EXTRACTIONS_KEY, serde_json::json!("two")),
            (CONNECTION_RETRIES_KEY, serde_json::json!(11)),
            (CONNECTION_RETRIES_KEY, serde_json::json!(-1)),
        ] {
            let mut c = ConfigMap::new();
            c.insert(key.to_string(), value);
            let err = ExtractionSettings::default().take_from(&mut c).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(key) && text.contains("whole number"),
                "{text}"
            );
        }
    }
}
