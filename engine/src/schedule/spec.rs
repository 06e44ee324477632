//! What a schedule is ([`Schedule`], stored with the mapping), its validation, and when it
//! fires next ([`Schedule::next_after`]).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

use crate::id::MappingId;

/// The shortest interval: warehouse extracts more often than this only queue up.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Segment's interval choices ("15 minutes is considered real-time for warehouse syncs"); any
/// other duration of at least [`MIN_INTERVAL`] is accepted too.
pub const SEGMENT_INTERVALS: [Duration; 9] = [
    Duration::from_secs(15 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(4 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(8 * 3600),
    Duration::from_secs(12 * 3600),
    Duration::from_secs(24 * 3600),
];

/// The forms a schedule may take, for error messages.
pub const ACCEPTED_FORMS: &str = "an interval of at least 1 minute (Segment offers 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d), daily at HH:MM, days of the week at an hour (top of the hour), a 5-field cron expression (minute hour day-of-month month day-of-week), each in an IANA time zone (default UTC), or after another mapping's successful run";

/// How a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Every `seconds`, on a grid from the Unix epoch shifted by the mapping's jitter.
    Interval {
        /// The period in seconds (at least 60).
        seconds: u64,
    },
    /// Every day at `hour:minute` local time.
    DailyAt {
        /// 0–23.
        hour: u8,
        /// 0–59.
        minute: u8,
    },
    /// On these days of the week at the top of `hour`, local time.
    DayAndTime {
        /// Days, Monday = 1 … Sunday = 7, without repeats.
        days: Vec<u8>,
        /// 0–23.
        hour: u8,
    },
    /// A 5-field cron expression, local time.
    Cron {
        /// The expression as the user wrote it.
        expression: String,
    },
    /// After every successful run of another mapping.
    After {
        /// The mapping whose success starts this one.
        mapping_id: MappingId,
    },
}

/// When a mapping runs by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// How it fires.
    pub kind: ScheduleKind,
    /// IANA time zone of daily, day-and-time and cron schedules (`None` = UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A schedule checked and ready to compute its times.
#[derive(Debug, Clone)]
pub struct CompiledSchedule {
    /// The definition.
    pub schedule: Schedule,
    timing: Timing,
}

#[derive(Debug, Clone)]
enum Timing {
    Every { period: u64, offset: u64 },
    Pattern { cron: Box<Cron>, tz: Tz },
    Event,
}

/// The deterministic start offset of a mapping's interval ticks, in seconds: spread over a tenth
/// of the period (at most 5 minutes) by a hash of the id, so that many mappings with the same
/// interval do not start in the same second.
pub fn jitter_seconds(mapping_id: &str, period: u64) -> u64 {
    let window = (period / 10).min(300);
    if window == 0 {
        return 0;
    }
    xxhash_rust::xxh3::xxh3_64(mapping_id.as_bytes()) % window
}

fn day_name(day: u8) -> &'static str {
    match day {
        1 => "MON",
        2 => "TUE",
        3 => "WED",
        4 => "THU",
        5 => "FRI",
        6 => "SAT",
        _ => "SUN",
    }
}

/// `1`–`7` (Monday first) of a chrono weekday.
pub fn day_number(day: Weekday) -> u8 {
    u8::try_from(day.number_from_monday()).unwrap_or(7)
}

fn parse_cron(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    if fields != 5 && !expression.trim_start().starts_with('@') {
        return Err(format!(
            "cron expression '{expression}' has {fields} fields; write 5: minute hour day-of-month month day-of-week, e.g. '*/15 * * * *' or '0 9 * * MON-FRI'"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| format!("cron expression '{expression}' is invalid: {e}"))
}

impl Schedule {
    /// Checks the schedule of mapping `mapping_id`; the error says what is wrong and lists the
    /// accepted forms.
    pub fn compile(&self, mapping_id: &str) -> Result<CompiledSchedule, String> {
        let tz = match &self.time_zone {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name.trim()).map_err(|_| {
                format!(
                    "time zone '{name}' is not an IANA time zone name; use e.g. 'UTC', 'Europe/Paris' or 'America/New_York'"
                )
            })?,
        };
        let pattern = |expression: String| -> Result<Timing, String> {
            Ok(Timing::Pattern {
                cron: Box::new(parse_cron(&expression)?),
                tz,
            })
        };
        let timing = match &self.kind {
            ScheduleKind::Interval { seconds } => {
                if *seconds < MIN_INTERVAL.as_secs() {
                    return Err(format!(
                        "an interval of {seconds} s is too short: at least 1 minute (Segment's shortest is 15 minutes, \"considered real-time for warehouse syncs\")"
                    ));
                }
                if self.time_zone.is_some() {
                    return Err("an interval does not take a time zone; set time_zone only with daily, day-and-time and cron schedules".to_string());
                }
                Timing::Every {
                    period: *seconds,
                    offset: jitter_seconds(mapping_id, *seconds),
                }
            }
            ScheduleKind::DailyAt { hour, minute } => {
                if *hour > 23 || *minute > 59 {
                    return Err(format!(
                        "daily at {hour:02}:{minute:02} is not a time of day; use HH:MM from 00:00 to 23:59"
                    ));
                }
                pattern(format!("{minute} {hour} * * *"))?
            }
            ScheduleKind::DayAndTime { days, hour } => {
                if days.is_empty() {
                    return Err(
                        "a day-and-time schedule needs at least one day of the week".to_string()
                    );
                }
                if let Some(day) = days.iter().find(|d| !(1..=7).contains(*d)) {
                    return Err(format!(
                        "day {day} is not a day of the week (1 = Monday … 7 = Sunday)"
                    ));
                }
                if *hour > 23 {
                    return Err(format!("hour {hour} is not an hour of the day (0–23)"));
                }
                let mut sorted = days.clone();
                sorted.sort_unstable();
                sorted.dedup();
                let names: Vec<&str> = sorted.iter().map(|d| day_name(*d)).collect();
                pattern(format!("0 {hour} * * {}", names.join(",")))?
            }
            ScheduleKind::Cron { expression } => pattern(expression.clone())?,
            ScheduleKind::After { mapping_id: other } => {
                if other.as_str() == mapping_id {
                    return Err("a mapping cannot run after itself".to_string());
                }
                if self.time_zone.is_some() {
                    return Err("'after another mapping' does not take a time zone".to_string());
                }
                Timing::Event
            }
        };
        Ok(CompiledSchedule {
            schedule: self.clone(),
            timing,
        })
    }
}

impl CompiledSchedule {
    /// The first time strictly after `after` that the schedule fires; `None` for a schedule
    /// started by another mapping's run (or a pattern that never matches again).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.timing {
            Timing::Every { period, offset } => {
                let now = u64::try_from(after.timestamp()).ok()?;
                let since = now.saturating_sub(*offset);
                let next = (since / period + 1) * period + offset;
                Utc.timestamp_opt(i64::try_from(next).ok()?, 0).single()
            }
            Timing::Pattern { cron, tz } => {
                let local = after.with_timezone(tz);
                cron.find_next_occurrence(&local, false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
            Timing::Event => None,
        }
    }

    /// The next `n` times after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut times = Vec::with_capacity(n);
        let mut from = after;
        while times.len() < n {
            let Some(next) = self.next_after(from) else {
                break;
            };
            times.push(next);
            from = next;
        }
        times
    }

    /// The mapping whose successful runs start this one, for an `after` schedule.
    pub fn after_mapping(&self) -> Option<&MappingId> {
        match &self.schedule.kind {
            ScheduleKind::After { mapping_id } => Some(mapping_id),
            _ => None,
        }
    }
}
