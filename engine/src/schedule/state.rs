//! What the scheduler remembers per mapping ([`ScheduleState`], in the `meta` column family
//! under `schedule/<mapping id>`): the schedule the times were computed for, when it is next
//! due, and the last ticks with what each did. Survives restarts.

use chrono::{DateTime, Utc};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::schedule::spec::Schedule;
use crate::store::{CF_META, Store};

/// Ticks kept per mapping.
pub const TICKS_KEPT: usize = 20;

/// What one tick did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum TickOutcome {
    /// A run started.
    Started {
        /// The run.
        run_id: String,
    },
    /// The mapping was still running: nothing started.
    SkippedRunning {
        /// The run in progress.
        run_id: String,
    },
    /// The mapping or its destination is disabled: nothing started.
    SkippedDisabled {
        /// Which, and how to enable it.
        reason: String,
    },
    /// The run could not start.
    Failed {
        /// Why.
        message: String,
    },
}

impl TickOutcome {
    /// A one-line description.
    pub fn describe(&self) -> String {
        match self {
            TickOutcome::Started { run_id } => format!("started run {run_id}"),
            TickOutcome::SkippedRunning { run_id } => {
                format!("skipped: run {run_id} was still in progress")
            }
            TickOutcome::SkippedDisabled { reason } => format!("skipped: {reason}"),
            TickOutcome::Failed { message } => format!("could not start: {message}"),
        }
    }
}

/// One handled tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// When it was due (for a chained mapping: when the other mapping's run succeeded).
    #[serde(with = "crate::timestamp")]
    pub due: DateTime<Utc>,
    /// When the scheduler handled it.
    #[serde(with = "crate::timestamp")]
    pub handled: DateTime<Utc>,
    /// Later ticks that were also missed (the daemon was down): all caught up by this one run.
    #[serde(default)]
    pub missed: u64,
    /// What it did.
    #[serde(flatten)]
    pub outcome: TickOutcome,
}

/// A mapping's scheduling state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The schedule the times were computed for; a changed schedule starts afresh.
    pub schedule: Schedule,
    /// When it is next due (`None`: started by another mapping, or never again).
    #[serde(default, with = "crate::timestamp::option")]
    pub next_due: Option<DateTime<Utc>>,
    /// The last ticks, oldest first (at most [`TICKS_KEPT`]).
    #[serde(default)]
    pub ticks: Vec<Tick>,
}

impl ScheduleState {
    /// Records a tick, keeping the last [`TICKS_KEPT`].
    pub fn record(&mut self, tick: Tick) {
        self.ticks.push(tick);
        if self.ticks.len() > TICKS_KEPT {
            let extra = self.ticks.len() - TICKS_KEPT;
            self.ticks.drain(..extra);
        }
    }
}

/// The scheduling states in the store.
#[derive(Debug, Clone)]
pub struct ScheduleStates {
    store: Store,
}

fn key(mapping_id: &str) -> String {
    format!("schedule/{mapping_id}")
}

impl ScheduleStates {
    /// The states of this store.
    pub fn new(store: Store) -> Self {
        ScheduleStates { store }
    }

    /// A mapping's state.
    pub fn get(&self, mapping_id: &str) -> Result<Option<ScheduleState>, StorageError> {
        self.store
            .get_json(CF_META, &key(mapping_id), "schedule state")
    }

    /// Writes a mapping's state.
    pub fn put(&self, mapping_id: &str, state: &ScheduleState) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.store
            .put_json(&mut batch, CF_META, &key(mapping_id), state)?;
        self.store.write(batch)
    }

    /// Forgets a mapping's state (its schedule was removed, or the mapping deleted).
    pub fn delete(&self, mapping_id: &str) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(
            self.store.handle()?.cf(CF_META)?,
            key(mapping_id).as_bytes(),
        );
        self.store.write(batch)
    }
}
