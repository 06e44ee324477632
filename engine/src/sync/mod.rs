//! Sync runs: extract -> stage -> diff -> select -> map -> deliver -> commit -> report.
//!
//! # Layout
//! - [`manager`]: trigger, get, list, watch, cancel; limiters and extraction slots; recovery.
//! - [`runner`]: one run, the orchestration of the steps below.
//! - [`extract_job`] (one extraction of a model for one run or for the runs of the mappings of
//!   that model due together), [`extract`] (extract + stage + key indexes), [`collect`] (the diff's sink: select),
//!   [`commit`] (the single writer of state), [`report`] (final status), [`progress`] (the live
//!   record, saved and published).
//! - [`marked`] (the marked rows read back and mapped), [`preview`] (what the next run would
//!   do, record by record, changing nothing) and [`dry_run`] (its report: requests, ETA,
//!   budget).
//! - [`run`]: the run record; [`history`]: stored run records; [`active`]: runs in progress.

pub mod active;
pub mod collect;
pub mod commit;
pub mod dry_run;
pub mod explain;
pub mod extract;
pub mod extract_job;
pub mod failures;
pub mod history;
pub mod housekeeping;
pub mod manager;
pub mod marked;
pub mod preview;
pub mod progress;
pub mod report;
pub mod run;
pub mod runner;
pub mod stop;
pub mod watchdog;

pub use manager::{SyncManager, TriggerOptions};
pub use run::{RunCounts, RunStage, RunStatus, SyncRun};
