//! What connectors register: descriptors of source and destination types, and the [`Registry`]
//! that holds them. A descriptor is both the catalog entry (served by `ListDestinationTypes`)
//! and the factory that turns stored configuration into a live connector. [`build`] turns
//! stored definitions into live connectors.

pub mod build;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::destination::{ActionSpec, ConfigField, DeliveryLimits, Destination, DestinationError};
use crate::error::Error;
use crate::source::{Source, SourceError};

/// Builds a source from its configuration (a JSON object, secrets included).
pub type BuildSource = fn(&serde_json::Value) -> Result<Arc<dyn Source>, SourceError>;

/// Builds a destination from its configuration (secrets included, engine-owned keys such as
/// `limits` removed) and its effective limits, which the engine computed from the type's
/// `default_limits` and the destination's overrides.
pub type BuildDestination =
    fn(&serde_json::Value, DeliveryLimits) -> Result<Arc<dyn Destination>, DestinationError>;

/// A kind of source, as a connector registers it.
#[derive(Debug, Clone)]
pub struct SourceType {
    /// snake_case name, e.g. `files`, `postgres`.
    pub name: &'static str,
    /// Human name.
    pub display_name: &'static str,
    /// What it connects to.
    pub description: &'static str,
    /// Configuration fields (those marked `secret` are stored apart and never returned).
    pub config: &'static [ConfigField],
    /// Factory.
    pub build: BuildSource,
}

/// A kind of destination, as a connector registers it.
#[derive(Debug, Clone)]
pub struct DestinationType {
    /// snake_case name, e.g. `webhook`, `hubspot`.
    pub name: &'static str,
    /// Human name.
    pub display_name: &'static str,
    /// What it delivers to.
    pub description: &'static str,
    /// Configuration fields (those marked `secret` are stored apart and never returned).
    pub config: &'static [ConfigField],
    /// The actions it offers.
    pub actions: &'static [ActionSpec],
    /// Documented default limits; a destination's `limits` config object overrides them.
    pub default_limits: fn() -> DeliveryLimits,
    /// Factory.
    pub build: BuildDestination,
}

impl DestinationType {
    /// The action spec with this name, or an error listing the valid ones.
    pub fn action(&self, name: &str) -> Result<&'static ActionSpec, DestinationError> {
        self.actions.iter().find(|a| a.name == name).ok_or_else(|| {
            DestinationError::UnknownAction {
                destination_type: self.name.to_string(),
                action: name.to_string(),
                available: self
                    .actions
                    .iter()
                    .map(|a| a.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })
    }
}

/// Every connector type retl knows, by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    sources: BTreeMap<&'static str, SourceType>,
    destinations: BTreeMap<&'static str, DestinationType>,
    alert_sink: Option<std::sync::Arc<dyn crate::alert::AlertSink>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source type (a later registration of the same name replaces the earlier one).
    pub fn register_source(&mut self, source_type: SourceType) -> &mut Self {
        self.sources.insert(source_type.name, source_type);
        self
    }

    /// Sets how alerts reach their webhook targets.
    pub fn set_alert_sink(
        &mut self,
        sink: std::sync::Arc<dyn crate::alert::AlertSink>,
    ) -> &mut Self {
        self.alert_sink = Some(sink);
        self
    }

    /// How alerts reach their targets (`None`: alerts are only logged).
    pub fn alert_sink(&self) -> Option<std::sync::Arc<dyn crate::alert::AlertSink>> {
        self.alert_sink.clone()
    }

    /// Adds a destination type.
    pub fn register_destination(&mut self, destination_type: DestinationType) -> &mut Self {
        self.destinations
            .insert(destination_type.name, destination_type);
        self
    }

    /// All source types, by name.
    pub fn source_types(&self) -> impl Iterator<Item = &SourceType> {
        self.sources.values()
    }

    /// All destination types, by name.
    pub fn destination_types(&self) -> impl Iterator<Item = &DestinationType> {
        self.destinations.values()
    }

    /// The source type with this name, or an `InvalidArgument` error listing the valid ones.
    pub fn source_type(&self, name: &str) -> Result<&SourceType, Error> {
        self.sources.get(name).ok_or_else(|| {
            Error::invalid(
                "source.type",
                format!(
                    "unknown source type '{name}'; valid types: {}",
                    self.sources.keys().copied().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// The destination type with this name, or an `InvalidArgument` error listing the valid ones.
    pub fn destination_type(&self, name: &str) -> Result<&DestinationType, Error> {
        self.destinations.get(name).ok_or_else(|| {
            Error::invalid(
                "destination.type",
                format!(
                    "unknown destination type '{name}'; valid types: {}",
                    self.destinations
                        .keys()
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }
}
