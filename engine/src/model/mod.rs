//! Models: planning and validating model SQL with DataFusion ([`plan`]), and previewing a
//! model's first rows ([`preview`]).

pub mod plan;
pub mod preview;

pub use plan::{ModelSession, validate_output};
