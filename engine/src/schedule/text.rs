//! The short text forms of a schedule, read by the CLI (`--schedule`) and printed by it:
//!
//! | text | schedule |
//! |---|---|
//! | `every 15m`, `every 2h`, `every 1d`, `every 90s` | interval (at least 1 minute) |
//! | `daily 09:30` | every day at 09:30 |
//! | `mon,wed,fri 9h`, `mon-fri 14h`, `sat 0h` | those days at the top of the hour |
//! | `cron 0 9 * * MON-FRI` | a 5-field cron expression |
//! | `after <mapping>` | after each successful run of that mapping |
//!
//! The time zone is given separately (`--time-zone Europe/Paris`, default UTC).

use crate::id::MappingId;
use crate::schedule::spec::{ACCEPTED_FORMS, Schedule, ScheduleKind};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(name: &str) -> Option<u8> {
    let name = name.trim().to_ascii_lowercase();
    let short = name.get(..3)?;
    DAYS.iter()
        .position(|d| *d == short)
        .and_then(|i| u8::try_from(i + 1).ok())
}

/// `15m`, `2h`, `1d`, `90s` (or `15 minutes`, `2 hours`, ...) → seconds.
pub fn duration_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit_seconds = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit_seconds)
}

/// `HH:MM` (`9:05` too) → hour and minute, unchecked ranges; `None` when not of that shape.
pub fn time_of_day(text: &str) -> Option<(u8, u8)> {
    let (h, m) = text.split_once(':')?;
    Some((h.trim().parse().ok()?, m.trim().parse().ok()?))
}

fn bad(text: &str) -> String {
    format!(
        "'{text}' is not a schedule; write one of: every 15m | daily 09:30 | mon,wed,fri 9h | cron 0 9 * * MON-FRI | after <mapping> ({ACCEPTED_FORMS})"
    )
}

/// Reads a schedule's text form with an optional IANA time zone; the error lists the forms.
pub fn parse(text: &str, time_zone: Option<&str>) -> Result<Schedule, String> {
    let trimmed = text.trim();
    let (word, rest) = trimmed
        .split_once(char::is_whitespace)
        .map_or((trimmed, ""), |(w, r)| (w, r.trim()));
    let kind = match word.to_ascii_lowercase().as_str() {
        "every" => ScheduleKind::Interval {
            seconds: duration_seconds(rest).ok_or_else(|| bad(text))?,
        },
        "daily" => {
            let (hour, minute) = time_of_day(rest).ok_or_else(|| bad(text))?;
            ScheduleKind::DailyAt { hour, minute }
        }
        "cron" if !rest.is_empty() => ScheduleKind::Cron {
            expression: rest.to_string(),
        },
        "after" if !rest.is_empty() => ScheduleKind::After {
            mapping_id: MappingId::new(rest),
        },
        _ => {
            let hour = rest
                .strip_suffix('h')
                .and_then(|h| h.trim().parse::<u8>().ok())
                .ok_or_else(|| bad(text))?;
            let mut days = Vec::new();
            for part in word.split(',') {
                match part.split_once('-') {
                    Some((from, to)) => {
                        let (from, to) = (day(from), day(to));
                        let (Some(from), Some(to)) = (from, to) else {
                            return Err(bad(text));
                        };
                        if from > to {
                            return Err(bad(text));
                        }
                        days.extend(from..=to);
                    }
                    None => days.push(day(part).ok_or_else(|| bad(text))?),
                }
            }
            ScheduleKind::DayAndTime { days, hour }
        }
    };
    Ok(Schedule {
        kind,
        time_zone: time_zone.map(str::to_string),
    })
}

fn every(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("every {}d", s / 86_400),
        s if s % 3600 == 0 => format!("every {}h", s / 3600),
        s if s % 60 == 0 => format!("every {}m", s / 60),
        s => format!("every {s}s"),
    }
}

/// The text form of a schedule (what [`parse`] reads), with its time zone when set.
pub fn format(schedule: &Schedule) -> String {
    let text = match &schedule.kind {
        ScheduleKind::Interval { seconds } => every(*seconds),
        ScheduleKind::DailyAt { hour, minute } => format!("daily {hour:02}:{minute:02}"),
        ScheduleKind::DayAndTime { days, hour } => {
            let names: Vec<&str> = days
                .iter()
                .filter_map(|d| DAYS.get(usize::from(*d).wrapping_sub(1)).copied())
                .collect();
            format!("{} {hour}h", names.join(","))
        }
        ScheduleKind::Cron { expression } => format!("cron {expression}"),
        ScheduleKind::After { mapping_id } => format!("after {mapping_id}"),
    };
    match &schedule.time_zone {
        Some(tz) => format!("{text} ({tz})"),
        None => text,
    }
}
