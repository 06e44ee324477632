//! Mappings at run time: record selection, field evaluation into payloads, and validation of a
//! mapping against its model's columns and its action's fields.

pub mod plan;
pub mod selection;
pub mod value;

pub use plan::MappingPlan;
