//! Source definitions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
