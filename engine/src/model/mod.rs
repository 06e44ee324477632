//! Models: planning and validating model SQL with DataFusion, and executing extracts.

pub mod plan;

pub use plan::{ModelSession, validate_output};
