//! Mappings: their definitions ([`spec`]), record selection ([`select`]), and field evaluation
//! into payloads with validation against the model's columns and the action's fields
//! ([`plan`]): columns and literals, [`template`]s, SQL [`expression`]s, dotted [`target`]
//! paths into objects, [`coerce`]ion to field types, Arrow -> JSON [`value`]s, and
//! [`suggest`]ed mappings.

pub mod coerce;
pub mod expression;
pub mod plan;
pub mod select;
pub mod spec;
pub mod suggest;
pub mod target;
pub mod template;
pub mod value;

pub use plan::MappingPlan;
