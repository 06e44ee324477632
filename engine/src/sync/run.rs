//! [`SyncRun`]: the record of one sync run, its counts, timings and per-record errors.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::destination::spec::ChangeKind;
use crate::id::{MappingId, RunId};

/// At most this many per-record errors are kept in a run record; the rest are counted.
pub const MAX_RECORD_ERRORS: usize = 1000;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting to start.
    Queued,
    /// In progress.
    Running,
    /// Finished; every selected record was delivered.
    Succeeded,
    /// Finished; some records were rejected, failed or held back (see counts and errors).
    PartiallyFailed,
    /// Stopped by an error; see `error`.
    Failed,
    /// Stopped by `CancelSyncRun`.
    Cancelled,
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::PartiallyFailed => "partially_failed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// The stage a run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStage {
    /// Not started.
    Queued,
    /// Running the model and staging the extract.
    Extracting,
    /// Comparing the extract with the state and delivering changes.
    Delivering,
    /// Delivering deletes after the extract was found complete.
    DeliveringDeletes,
    /// Finished.
    Done,
}

impl RunStage {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStage::Queued => "queued",
            RunStage::Extracting => "extracting",
            RunStage::Delivering => "delivering",
            RunStage::DeliveringDeletes => "delivering_deletes",
            RunStage::Done => "done",
        }
    }
}

/// Record counts of a run. They add up:
/// `extracted = added + updated + unchanged + rejected` and
/// `selected = delivered + failed + given_up` (once the run has ended; `given_up` counts the
/// selected records skipped because earlier runs gave them up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Rows the model returned.
    pub extracted: u64,
    /// Rows whose key is not in the state.
    pub added: u64,
    /// Rows whose mapped values changed.
    pub updated: u64,
    /// Rows whose mapped values did not change.
    pub unchanged: u64,
    /// Rows rejected before delivery (null or duplicate key, unmappable value).
    pub rejected: u64,
    /// Keys in the state that are gone from the (complete) extract.
    pub deleted: u64,
    /// Deletes held back by the mass-delete safety stop (included in `deleted`).
    pub deletes_held_back: u64,
    /// Changes the mapping's record selection sends.
    pub selected: u64,
    /// Changes not selected; their state advanced without a send.
    pub not_selected: u64,
    /// Selected records the destination accepted.
    pub delivered: u64,
    /// Selected records rejected or not delivered (retries exhausted, run cancelled); sent again
    /// by the next run.
    pub failed: u64,
    /// Selected records not sent because they were given up in earlier runs (unchanged since;
    /// `retl sync failures`).
    #[serde(default)]
    pub given_up: u64,
    /// Records of `failed` given up in this run (the mapping's retry policy was reached).
    #[serde(default)]
    pub newly_given_up: u64,
    /// Requests sent to the destination (retries included).
    #[serde(default)]
    pub requests: u64,
    /// Requests that failed as a whole (error answer, timeout, no connection).
    #[serde(default)]
    pub request_errors: u64,
    /// Requests the destination answered with a throttle (HTTP 429 or its equivalent).
    #[serde(default)]
    pub throttled: u64,
    /// Requests that re-sent records not yet settled.
    #[serde(default)]
    pub retries: u64,
}

/// Wall-clock milliseconds spent per stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTimings {
    /// Waiting in the queue.
    pub queued_ms: u64,
    /// Running the model and staging the extract.
    pub extract_ms: u64,
    /// Sorting the extract and comparing it with the state.
    pub diff_ms: u64,
    /// Waiting on the destination (including rate limiting and retries).
    pub deliver_ms: u64,
    /// Writing acknowledged records to the state.
    pub commit_ms: u64,
    /// The requests' own time, summed request by request (divided by `counts.requests`, the
    /// destination's mean latency in this run).
    #[serde(default)]
    pub request_ms: u64,
    /// From start to end.
    pub total_ms: u64,
}

/// Why one record was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    /// The record's unique id as text (`<null>` for a null key).
    pub key: String,
    /// The change, when known.
    pub change: Option<ChangeKind>,
    /// Where it failed: `validate`, `map` or `deliver`.
    pub stage: String,
    /// Why.
    pub reason: String,
}

/// The record of one sync run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    /// Id.
    pub id: RunId,
    /// The mapping run.
    pub mapping_id: MappingId,
    /// Status.
    pub status: RunStatus,
    /// Current stage.
    pub stage: RunStage,
    /// What started it: `manual` or `schedule`.
    pub trigger: String,
    /// When it was requested.
    #[serde(with = "crate::timestamp")]
    pub create_time: DateTime<Utc>,
    /// When it started.
    #[serde(with = "crate::timestamp::option")]
    pub start_time: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(with = "crate::timestamp::option")]
    pub end_time: Option<DateTime<Utc>>,
    /// Counts.
    pub counts: RunCounts,
    /// Timings.
    pub timings: StageTimings,
    /// Per-record errors (at most `MAX_RECORD_ERRORS`).
    pub record_errors: Vec<RecordError>,
    /// Per-record errors beyond the kept ones.
    pub record_errors_omitted: u64,
    /// Why the run failed, when it did.
    pub error: Option<String>,
    /// Things the user should know (e.g. deletes held back by the safety stop).
    pub warnings: Vec<String>,
    /// Where the extract was staged.
    pub staging_path: Option<String>,
}

impl SyncRun {
    /// A new queued run.
    pub fn queued(mapping_id: MappingId, trigger: &str) -> Self {
        SyncRun {
            id: RunId::generate(),
            mapping_id,
            status: RunStatus::Queued,
            stage: RunStage::Queued,
            trigger: trigger.to_string(),
            create_time: Utc::now(),
            start_time: None,
            end_time: None,
            counts: RunCounts::default(),
            timings: StageTimings::default(),
            record_errors: Vec::new(),
            record_errors_omitted: 0,
            error: None,
            warnings: Vec::new(),
            staging_path: None,
        }
    }

    /// Records a per-record error, keeping at most `MAX_RECORD_ERRORS`.
    pub fn push_record_error(&mut self, error: RecordError) {
        if self.record_errors.len() < MAX_RECORD_ERRORS {
            self.record_errors.push(error);
        } else {
            self.record_errors_omitted += 1;
        }
    }
}
