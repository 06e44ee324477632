//! Building live connectors from stored definitions: the merged config (secrets included) goes
//! to the type's factory, and a destination's effective delivery limits are its type's
//! documented defaults with the definition's overrides applied.

use std::sync::Arc;

use crate::catalog::destination::DestinationDef;
use crate::catalog::secrets::merged_config;
use crate::catalog::source::{ConfigMap, SourceDef};
use crate::connector::{DestinationType, Registry};
use crate::destination::{DeliveryLimits, Destination};
use crate::error::Error;
use crate::source::Source;

/// A destination built from its definition, with what the engine needs to deliver to it.
#[derive(Debug, Clone)]
pub struct BuiltDestination {
    /// The live destination.
    pub destination: Arc<dyn Destination>,
    /// Its effective delivery limits.
    pub limits: DeliveryLimits,
    /// Its type (action specs, descriptions).
    pub destination_type: DestinationType,
}

/// Builds a source from its definition (no network access).
///
/// # Errors
/// `InvalidArgument` for an unknown type; the connector's error for an invalid config.
pub fn build_source(registry: &Registry, def: &SourceDef) -> Result<Arc<dyn Source>, Error> {
    let source_type = registry.source_type(&def.source_type)?;
    Ok((source_type.build)(&merged_config(
        &def.config,
        &def.secrets,
    ))?)
}

/// Builds a destination from its definition (no network access).
///
/// # Errors
/// `InvalidArgument` for an unknown type or invalid limits; the connector's error for an
/// invalid config.
pub fn build_destination(
    registry: &Registry,
    def: &DestinationDef,
) -> Result<BuiltDestination, Error> {
    let destination_type = registry.destination_type(&def.destination_type)?;
    let limits = effective_limits(destination_type, &def.limits)?;
    let destination =
        (destination_type.build)(&merged_config(&def.config, &def.secrets), limits.clone())?;
    Ok(BuiltDestination {
        destination,
        limits,
        destination_type: destination_type.clone(),
    })
}

/// The type's documented default limits with `overrides` (the `limits` object of a
/// destination's config) applied and validated.
///
/// # Errors
/// `InvalidArgument` naming `destination.config.limits.<field>` and what it accepts.
pub fn effective_limits(
    destination_type: &DestinationType,
    overrides: &ConfigMap,
) -> Result<DeliveryLimits, Error> {
    let defaults = (destination_type.default_limits)();
    if overrides.is_empty() {
        return Ok(defaults);
    }
    defaults
        .with_overrides(&serde_json::Value::Object(overrides.clone()))
        .map_err(|(field, message)| Error::invalid(format!("destination.config.{field}"), message))
}
