//! Schedules between `retl.v1.Schedule` and the engine's [`Schedule`].

use retl_engine::id::MappingId;
use retl_engine::schedule::scheduler::ScheduleStatus;
use retl_engine::schedule::{Schedule, ScheduleKind};
use retl_proto::v1;
use tonic::Status;

use super::timestamp;

fn invalid(field: &str, message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {message}"))
}

/// A schedule from proto; `None` when no kind is set (the mapping runs only when triggered).
/// The engine checks the values (ranges, time zone, cron syntax).
pub fn schedule_from(field: &str, schedule: v1::Schedule) -> Result<Option<Schedule>, Status> {
    use v1::schedule::Schedule as Kind;
    let Some(kind) = schedule.schedule else {
        if !schedule.time_zone.is_empty() {
            return Err(invalid(
                field,
                "time_zone is set but no schedule is: set interval, daily_at, cron, day_and_time or after_mapping",
            ));
        }
        return Ok(None);
    };
    let kind = match kind {
        Kind::Interval(d) => {
            if d.seconds < 0 || d.nanos != 0 {
                return Err(invalid(
                    &format!("{field}.interval"),
                    "must be a whole, positive number of seconds (at least 60)",
                ));
            }
            ScheduleKind::Interval {
                seconds: u64::try_from(d.seconds).unwrap_or(0),
            }
        }
        Kind::DailyAt(text) => {
            let Some((hour, minute)) = retl_engine::schedule::text::time_of_day(&text) else {
                return Err(invalid(
                    &format!("{field}.daily_at"),
                    format!("'{text}' is not a time of day; write HH:MM, e.g. 09:30"),
                ));
            };
            ScheduleKind::DailyAt { hour, minute }
        }
        Kind::Cron(expression) => ScheduleKind::Cron { expression },
        Kind::DayAndTime(dt) => {
            let mut days = Vec::with_capacity(dt.days.len());
            for raw in &dt.days {
                match v1::DayOfWeek::try_from(*raw) {
                    Ok(day) if day != v1::DayOfWeek::Unspecified => {
                        days.push(u8::try_from(*raw).unwrap_or(0));
                    }
                    _ => {
                        return Err(invalid(
                            &format!("{field}.day_and_time.days"),
                            format!("{raw} is not a day of the week; use MONDAY … SUNDAY"),
                        ));
                    }
                }
            }
            ScheduleKind::DayAndTime {
                days,
                hour: u8::try_from(dt.hour).unwrap_or(u8::MAX),
            }
        }
        Kind::AfterMapping(id) => ScheduleKind::After {
            mapping_id: MappingId::new(id),
        },
    };
    Ok(Some(Schedule {
        kind,
        time_zone: (!schedule.time_zone.is_empty()).then_some(schedule.time_zone),
    }))
}

/// A schedule as proto.
pub fn schedule(schedule: &Schedule) -> v1::Schedule {
    use v1::schedule::Schedule as Kind;
    let kind = match &schedule.kind {
        ScheduleKind::Interval { seconds } => Kind::Interval(prost_types::Duration {
            seconds: i64::try_from(*seconds).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        ScheduleKind::DailyAt { hour, minute } => Kind::DailyAt(format!("{hour:02}:{minute:02}")),
        ScheduleKind::Cron { expression } => Kind::Cron(expression.clone()),
        ScheduleKind::DayAndTime { days, hour } => Kind::DayAndTime(v1::DayAndTime {
            days: days.iter().map(|d| i32::from(*d)).collect(),
            hour: u32::from(*hour),
        }),
        ScheduleKind::After { mapping_id } => Kind::AfterMapping(mapping_id.to_string()),
    };
    v1::Schedule {
        schedule: Some(kind),
        time_zone: schedule.time_zone.clone().unwrap_or_default(),
    }
}

/// What the scheduler did and will do, as proto.
pub fn schedule_status(status: ScheduleStatus) -> v1::ScheduleStatus {
    let last = status.last_tick;
    v1::ScheduleStatus {
        next_run_times: status.next_runs.into_iter().map(timestamp).collect(),
        last_tick_time: last.as_ref().map(|t| timestamp(t.due)),
        last_tick_outcome: last
            .as_ref()
            .map(|t| t.outcome.describe())
            .unwrap_or_default(),
        last_tick_missed: last.map_or(0, |t| t.missed),
    }
}
