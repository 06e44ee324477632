//! Schedules: when a mapping runs by itself.
//!
//! - [`spec`]: the forms a schedule takes (interval, daily at, days and hour, cron, after another
//!   mapping), their checks, and when each fires next (time zones and DST by `croner` and
//!   `chrono-tz`).
//! - [`text`]: the short text forms the CLI reads and prints (`every 15m`, `daily 09:30`,
//!   `mon,wed,fri 9h`, `cron */5 * * * *`, `after <mapping>`).
//! - [`clock`]: the time source ([`clock::SystemClock`]; a manual clock for tests).
//! - [`state`]: what the scheduler remembers per mapping across restarts.
//! - [`scheduler`]: the passes that start due mappings and chained ones.

pub mod clock;
pub mod scheduler;
pub mod spec;
pub mod state;
#[cfg(test)]
mod tests;
pub mod text;

pub use clock::{Clock, ManualClock, SystemClock};
pub use scheduler::Scheduler;
pub use spec::{CompiledSchedule, Schedule, ScheduleKind};
pub use state::{ScheduleState, Tick, TickOutcome};
