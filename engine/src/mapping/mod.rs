//! Mappings: their definitions ([`spec`]), record selection ([`select`]), and field evaluation
//! into payloads with validation against the model's columns and the action's fields
//! ([`plan`], [`value`]).

pub mod plan;
pub mod select;
pub mod spec;
pub mod value;

pub use plan::MappingPlan;
