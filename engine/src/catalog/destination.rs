//! Destination definitions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::source::ConfigMap;
use crate::id::DestinationId;
use crate::secret::Secret;

/// The config key holding delivery limit overrides (see `DeliveryLimits`).
pub const LIMITS_KEY: &str = "limits";

/// A stored destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationDef {
    /// Id.
    pub id: DestinationId,
    /// Human name.
    pub display_name: String,
    /// Registered destination type name (`webhook`, `file`, ...).
    pub destination_type: String,
    /// Non-secret configuration, with an optional `limits` object overriding the defaults.
    pub config: ConfigMap,
    /// Secret configuration fields; persisted apart, never returned by the API.
    #[serde(skip)]
    pub secrets: BTreeMap<String, Secret>,
    /// The user's overrides of the type's default delivery limits (the `limits` object of the
    /// config; not passed to the connector).
    #[serde(default)]
    pub limits: ConfigMap,
    /// Whether syncs may deliver to it.
    pub enabled: bool,
    /// When it was created.
    #[serde(with = "crate::timestamp")]
    pub create_time: DateTime<Utc>,
    /// When it was last changed.
    #[serde(with = "crate::timestamp")]
    pub update_time: DateTime<Utc>,
}

/// A destination to create.
#[derive(Debug, Clone, Default)]
pub struct NewDestination {
    /// Wanted id; generated when `None`.
    pub id: Option<String>,
    /// Human name; defaults to the id.
    pub display_name: String,
    /// Destination type name.
    pub destination_type: String,
    /// Configuration, secret fields included.
    pub config: ConfigMap,
    /// Whether it starts enabled (default true).
    pub enabled: Option<bool>,
}

/// Changes to a destination; config keys merge as in `SourcePatch`.
#[derive(Debug, Clone, Default)]
pub struct DestinationPatch {
    /// New human name.
    pub display_name: Option<String>,
    /// Config keys to change.
    pub config: Option<ConfigMap>,
    /// New enabled flag.
    pub enabled: Option<bool>,
}
