//! Resolving a mapping from the catalog: the mapping, its model, source and destination (built),
//! and its action, as a run and a preview need them.

use crate::catalog::destination::DestinationDef;
use crate::catalog::model::ModelDef;
use crate::catalog::source::SourceDef;
use crate::connector::build::{BuiltDestination, build_destination};
use crate::destination::spec::ActionSpec;
use crate::error::Error;
use crate::mapping::spec::MappingDef;

use super::SyncManager;

/// A mapping and what it uses, resolved from the catalog.
pub(super) struct Resolved {
    pub(super) mapping: MappingDef,
    pub(super) destination: DestinationDef,
    pub(super) model: ModelDef,
    pub(super) source: SourceDef,
    pub(super) built: BuiltDestination,
    pub(super) action_spec: &'static ActionSpec,
}

impl Resolved {
    /// Why a run of the mapping would not start (mapping or destination disabled), with the
    /// command that fixes it.
    pub(super) fn disabled(&self) -> Vec<String> {
        let mut why = Vec::new();
        let id = &self.mapping.id;
        if !self.mapping.enabled {
            why.push(format!(
                "mapping '{id}' is disabled; enable it first (retl mapping enable {id})"
            ));
        }
        let d = &self.destination.id;
        if !self.destination.enabled {
            why.push(format!(
                "destination '{d}' is disabled; enable it first (retl destination enable {d})"
            ));
        }
        why
    }
}

impl SyncManager {
    /// A mapping and what it uses, from the catalog, its destination built.
    pub(super) fn resolve(&self, mapping_id: &str) -> Result<Resolved, Error> {
        let mapping = self.catalog.mapping(mapping_id)?;
        let destination = self.catalog.destination(mapping.destination_id.as_str())?;
        let model = self.catalog.model(mapping.model_id.as_str())?;
        let source = self.catalog.source(model.source_id.as_str())?;
        let built = build_destination(&self.registry, &destination)?;
        let action_spec = built.destination_type.action(&mapping.action)?;
        Ok(Resolved {
            mapping,
            destination,
            model,
            source,
            built,
            action_spec,
        })
    }
}
