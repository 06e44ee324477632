//! Models: planning and validating model SQL with DataFusion, and executing extracts.

pub mod guard;
pub mod plan;

pub use guard::{MAX_EXPRESSION_DEPTH, SQL_THREAD_STACK_BYTES};
pub use plan::{ModelSession, validate_output};
