//! Sync runs: extract -> stage -> diff -> select -> map -> deliver -> commit -> report.

pub mod run;
