//! Models: planning and validating model SQL with DataFusion ([`plan`]), and previewing a
//! model's first rows ([`preview`]).

pub mod guard;
pub mod plan;
pub mod preview;

pub use guard::{MAX_EXPRESSION_DEPTH, SQL_THREAD_STACK_BYTES};
pub use plan::{ModelSession, validate_output};
