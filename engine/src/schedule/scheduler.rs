//! [`Scheduler`]: starts the runs of scheduled mappings when they are due, and chained
//! mappings when the mapping they follow succeeds.
//!
//! Rules:
//! - Every pass ([`Scheduler::tick`]) reads the mappings, so a schedule set, changed or removed
//!   through the API applies from the next pass (within [`MAX_IDLE`]).
//! - A new or changed schedule is first due at its next time after the change (never at once).
//! - A due mapping runs once however many of its times passed while the daemon was down: the
//!   tick records how many it caught up (`missed`), and the next due time is computed from now.
//! - A mapping never runs twice at once: a tick that finds it running is recorded as skipped,
//!   as is a tick of a disabled mapping or destination. Every tick is kept in the mapping's
//!   [`ScheduleState`] (the last [`TICKS_KEPT`](super::state::TICKS_KEPT)).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::catalog::destination::DestinationDef;
use crate::catalog::{Catalog, Kind};
use crate::error::Error;
use crate::mapping::spec::MappingDef;
use crate::schedule::clock::Clock;
use crate::schedule::spec::CompiledSchedule;
use crate::schedule::state::{ScheduleState, ScheduleStates, Tick, TickOutcome};
use crate::sync::manager::{SyncManager, TriggerOptions};
use crate::sync::run::{RunStatus, SyncRun};

/// What the API shows of a mapping's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleStatus {
    /// The next due times, soonest first.
    pub next_runs: Vec<DateTime<Utc>>,
    /// The last tick handled.
    pub last_tick: Option<Tick>,
}

/// The longest the scheduler sleeps between passes (so API changes apply soon).
pub const MAX_IDLE: Duration = Duration::from_secs(30);

/// Most missed times counted for one catch-up (beyond, "at least" this many).
const MISSED_COUNT_LIMIT: u64 = 10_000;

/// The scheduler of one engine.
#[derive(Debug, Clone)]
pub struct Scheduler {
    catalog: Catalog,
    states: ScheduleStates,
    clock: Arc<dyn Clock>,
}

impl Scheduler {
    /// A scheduler over the catalog and its states, reading time from `clock`.
    pub fn new(catalog: Catalog, states: ScheduleStates, clock: Arc<dyn Clock>) -> Self {
        Scheduler {
            catalog,
            states,
            clock,
        }
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// One pass at the clock's current time: starts every due mapping; returns the earliest
    /// time a mapping is due next.
    ///
    /// # Errors
    /// The catalog or the states cannot be read or written.
    pub async fn tick(&self, syncs: &SyncManager) -> Result<Option<DateTime<Utc>>, Error> {
        let now = self.clock.now();
        let mut earliest: Option<DateTime<Utc>> = None;
        let mut due_now = Vec::new();
        for mapping in self.catalog.list::<MappingDef>(Kind::Mapping)? {
            let id = mapping.id.as_str();
            let Some(schedule) = &mapping.schedule else {
                if self.states.get(id)?.is_some() {
                    self.states.delete(id)?;
                }
                continue;
            };
            // Stored schedules were checked when they were saved.
            let Ok(compiled) = schedule.compile(id) else {
                continue;
            };
            if compiled.after_mapping().is_some() {
                continue;
            }
            let state = match self.states.get(id)? {
                Some(state) if state.schedule == *schedule => state,
                _ => {
                    let fresh = ScheduleState {
                        schedule: schedule.clone(),
                        next_due: compiled.next_after(now),
                        ticks: Vec::new(),
                    };
                    self.states.put(id, &fresh)?;
                    fresh
                }
            };
            if let Some(due) = state.next_due
                && due <= now
            {
                let missed = missed_between(&compiled, due, now);
                let next = compiled.next_after(now);
                due_now.push((mapping, state, due, missed, next));
                continue;
            }
            if let Some(next) = state.next_due {
                earliest = Some(earliest.map_or(next, |e| e.min(next)));
            }
        }
        // Mappings of one model due together share one extraction.
        let mappings: Vec<&MappingDef> = due_now.iter().map(|d| &d.0).collect();
        let outcomes = self.fire(syncs, &mappings).await;
        for ((mapping, mut state, due, missed, next), outcome) in due_now.into_iter().zip(outcomes)
        {
            state.record(Tick {
                due,
                handled: now,
                missed,
                outcome,
            });
            state.next_due = next;
            self.states.put(mapping.id.as_str(), &state)?;
            if let Some(next) = state.next_due {
                earliest = Some(earliest.map_or(next, |e| e.min(next)));
            }
        }
        Ok(earliest)
    }

    /// Starts the mappings chained after `run`'s mapping, when `run` succeeded.
    ///
    /// # Errors
    /// The catalog or the states cannot be read or written.
    pub async fn after_run(&self, syncs: &SyncManager, run: &SyncRun) -> Result<(), Error> {
        if run.status != RunStatus::Succeeded {
            return Ok(());
        }
        let now = self.clock.now();
        let chained: Vec<MappingDef> = self
            .catalog
            .list::<MappingDef>(Kind::Mapping)?
            .into_iter()
            .filter(|mapping| {
                mapping
                    .schedule
                    .as_ref()
                    .and_then(|s| s.compile(mapping.id.as_str()).ok())
                    .is_some_and(|c| c.after_mapping() == Some(&run.mapping_id))
            })
            .collect();
        let outcomes = self.fire(syncs, &chained.iter().collect::<Vec<_>>()).await;
        for (mapping, outcome) in chained.iter().zip(outcomes) {
            let Some(schedule) = &mapping.schedule else {
                continue;
            };
            let mut state = match self.states.get(mapping.id.as_str())? {
                Some(state) if state.schedule == *schedule => state,
                _ => ScheduleState {
                    schedule: schedule.clone(),
                    next_due: None,
                    ticks: Vec::new(),
                },
            };
            state.record(Tick {
                due: now,
                handled: now,
                missed: 0,
                outcome,
            });
            self.states.put(mapping.id.as_str(), &state)?;
        }
        Ok(())
    }

    /// Starts runs of `mappings` (the mappings of one model share one extraction), or says
    /// why not; one outcome per mapping, in order.
    async fn fire(&self, syncs: &SyncManager, mappings: &[&MappingDef]) -> Vec<TickOutcome> {
        let mut outcomes: Vec<Option<TickOutcome>> =
            mappings.iter().map(|m| self.blocked(syncs, m)).collect();
        let ready: Vec<&str> = mappings
            .iter()
            .zip(&outcomes)
            .filter(|(_, blocked)| blocked.is_none())
            .map(|(m, _)| m.id.as_str())
            .collect();
        let options = TriggerOptions {
            confirm_mass_delete: false,
            trigger: Some("schedule".to_string()),
        };
        let mut started = syncs.trigger_together(&ready, options).await.into_iter();
        for (mapping, outcome) in mappings.iter().zip(outcomes.iter_mut()) {
            if outcome.is_some() {
                continue;
            }
            let id = mapping.id.as_str();
            *outcome = Some(match started.next() {
                Some(Ok(run)) => {
                    tracing::info!(mapping_id = id, run_id = %run.id, "scheduled run started");
                    TickOutcome::Started {
                        run_id: run.id.to_string(),
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(mapping_id = id, error = %e, "scheduled run could not start");
                    TickOutcome::Failed {
                        message: e.to_string(),
                    }
                }
                None => TickOutcome::Failed {
                    message: "the run was not started".to_string(),
                },
            });
        }
        outcomes.into_iter().flatten().collect()
    }

    /// Why `mapping` must not start now (disabled, its destination disabled, already
    /// running), if it must not.
    fn blocked(&self, syncs: &SyncManager, mapping: &MappingDef) -> Option<TickOutcome> {
        let id = mapping.id.as_str();
        if !mapping.enabled {
            return Some(TickOutcome::SkippedDisabled {
                reason: format!("mapping '{id}' is disabled (retl mapping enable {id})"),
            });
        }
        if let Ok(Some(destination)) = self
            .catalog
            .get::<DestinationDef>(Kind::Destination, mapping.destination_id.as_str())
            && !destination.enabled
        {
            return Some(TickOutcome::SkippedDisabled {
                reason: format!(
                    "destination '{}' is disabled (retl destination enable {})",
                    destination.id, destination.id
                ),
            });
        }
        match syncs.running_run_of(id) {
            Ok(Some(run_id)) => Some(TickOutcome::SkippedRunning { run_id }),
            Ok(None) => None,
            Err(e) => Some(TickOutcome::Failed {
                message: e.to_string(),
            }),
        }
    }

    /// Runs passes until `stop` is cancelled: at each due time, at least every [`MAX_IDLE`],
    /// and after every finished run (for chained mappings).
    pub async fn run(
        &self,
        syncs: &SyncManager,
        mut finished: broadcast::Receiver<SyncRun>,
        stop: CancellationToken,
    ) {
        loop {
            let next = match self.tick(syncs).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "the scheduler could not read or record its state; retrying");
                    None
                }
            };
            let idle = self.clock.now()
                + chrono::Duration::from_std(MAX_IDLE).unwrap_or(chrono::Duration::zero());
            let wake = next.map_or(idle, |n| n.min(idle));
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.clock.sleep_until(wake) => {}
                received = finished.recv() => match received {
                    Ok(run) => {
                        if let Err(e) = self.after_run(syncs, &run).await {
                            tracing::error!(error = %e, "could not start the mappings chained after a run");
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "the scheduler missed finished runs; chained mappings of those runs did not start");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// The scheduling state of a mapping.
    ///
    /// # Errors
    /// The state cannot be read.
    pub fn state(&self, mapping_id: &str) -> Result<Option<ScheduleState>, Error> {
        Ok(self.states.get(mapping_id)?)
    }

    /// What `GetMapping` shows of a mapping's schedule: its next `n` due times (from the
    /// scheduler's state when it has one for this schedule) and the last tick; `None` without
    /// a schedule.
    ///
    /// # Errors
    /// The state cannot be read.
    pub fn status(&self, mapping: &MappingDef, n: usize) -> Result<Option<ScheduleStatus>, Error> {
        let Some(schedule) = &mapping.schedule else {
            return Ok(None);
        };
        let Ok(compiled) = schedule.compile(mapping.id.as_str()) else {
            return Ok(None);
        };
        let state = self
            .states
            .get(mapping.id.as_str())?
            .filter(|s| s.schedule == *schedule);
        let next_runs = match state.as_ref().and_then(|s| s.next_due) {
            Some(due) => {
                let mut times = vec![due];
                times.extend(compiled.upcoming(due, n.saturating_sub(1)));
                times
            }
            None => compiled.upcoming(self.clock.now(), n),
        };
        Ok(Some(ScheduleStatus {
            next_runs,
            last_tick: state.and_then(|s| s.ticks.last().cloned()),
        }))
    }
}

/// How many further times of `schedule` passed after `due` up to `now`.
fn missed_between(schedule: &CompiledSchedule, due: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let mut missed = 0;
    let mut at = due;
    while missed < MISSED_COUNT_LIMIT {
        match schedule.next_after(at) {
            Some(next) if next <= now => {
                missed += 1;
                at = next;
            }
            _ => break,
        }
    }
    missed
}
