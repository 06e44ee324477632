//! Sync runs: extract -> stage -> diff -> select -> map -> deliver -> commit -> report.

pub mod run;
pub mod runner;

pub use run::{RunCounts, RunStage, RunStatus, SyncRun};
pub use runner::{RunEnv, RunInputs, SyncRunner};
