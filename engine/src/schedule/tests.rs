//! Schedule times: intervals and their jitter, time zones and DST, cron, text forms.

use chrono::{DateTime, TimeZone, Utc};

use super::spec::{Schedule, ScheduleKind, jitter_seconds};
use super::text;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn schedule(kind: ScheduleKind, tz: Option<&str>) -> Schedule {
    Schedule {
        kind,
        time_zone: tz.map(str::to_string),
    }
}

#[test]
fn intervals_tick_on_a_grid_offset_by_a_per_mapping_jitter() {
    let s = schedule(ScheduleKind::Interval { seconds: 900 }, None);
    let c = s.compile("orders").unwrap();
    let offset = jitter_seconds("orders", 900);
    assert!(offset < 90, "a tenth of the period at most: {offset}");
    let times = c.upcoming(at("2026-03-01T10:00:00Z"), 3);
    // 10:00:00 is on the 15-minute grid: the first tick is 10:00 plus the offset.
    let base = at("2026-03-01T10:00:00Z").timestamp();
    assert_eq!(
        times.iter().map(DateTime::timestamp).collect::<Vec<_>>(),
        [0, 900, 1800].map(|d| base + d + i64::try_from(offset).unwrap())
    );
    // A hundred 15-minute mappings do not start in the same second.
    let offsets: std::collections::BTreeSet<u64> = (0..100)
        .map(|i| jitter_seconds(&format!("mapping_{i}"), 900))
        .collect();
    assert!(
        offsets.len() > 50,
        "{} distinct start seconds",
        offsets.len()
    );
    // Long periods spread over at most 5 minutes.
    assert!(jitter_seconds("orders", 86_400) < 300);
}

#[test]
fn day_and_time_runs_at_the_top_of_the_hour_in_its_zone_across_dst() {
    let s = schedule(
        ScheduleKind::DayAndTime {
            days: vec![7],
            hour: 2,
        },
        Some("Europe/Paris"),
    );
    let c = s.compile("m").unwrap();
    // 2026-03-29: Paris skips from 02:00 to 03:00; the 02:00 run happens at 03:00 local.
    assert_eq!(
        c.next_after(at("2026-03-28T12:00:00Z")),
        Some(at("2026-03-29T01:00:00Z"))
    );
    // 2026-10-25: 02:00 happens twice (CEST, then CET); the run happens once, at the first.
    let first = c.next_after(at("2026-10-24T12:00:00Z")).unwrap();
    assert_eq!(first, at("2026-10-25T00:00:00Z"));
    assert_eq!(
        c.next_after(first),
        Some(at("2026-11-01T01:00:00Z")),
        "not again in the repeated hour"
    );
}

#[test]
fn daily_and_cron_schedules_follow_their_zone() {
    let daily = schedule(
        ScheduleKind::DailyAt {
            hour: 9,
            minute: 30,
        },
        Some("America/New_York"),
    );
    let c = daily.compile("m").unwrap();
    assert_eq!(
        c.next_after(at("2026-07-01T00:00:00Z")),
        Some(at("2026-07-01T13:30:00Z")),
        "EDT is UTC-4"
    );
    let cron = schedule(
        ScheduleKind::Cron {
            expression: "*/20 9-10 * * MON-FRI".into(),
        },
        None,
    );
    let c = cron.compile("m").unwrap();
    // 2026-03-06 is a Friday.
    let times = c.upcoming(at("2026-03-06T10:30:00Z"), 3);
    assert_eq!(
        times,
        [
            at("2026-03-06T10:40:00Z"),
            at("2026-03-09T09:00:00Z"),
            at("2026-03-09T09:20:00Z")
        ]
    );
}

#[test]
fn invalid_schedules_say_what_is_wrong() {
    let cases = [
        (ScheduleKind::Interval { seconds: 59 }, None, "too short"),
        (
            ScheduleKind::DailyAt {
                hour: 24,
                minute: 0,
            },
            None,
            "not a time of day",
        ),
        (
            ScheduleKind::DayAndTime {
                days: vec![],
                hour: 9,
            },
            None,
            "at least one day",
        ),
        (
            ScheduleKind::DayAndTime {
                days: vec![8],
                hour: 9,
            },
            None,
            "not a day of the week",
        ),
        (
            ScheduleKind::Cron {
                expression: "0 9 * *".into(),
            },
            None,
            "has 4 fields",
        ),
        (
            ScheduleKind::Cron {
                expression: "0 25 * * *".into(),
            },
            None,
            "is invalid",
        ),
        (
            ScheduleKind::Cron {
                expression: "0 9 * * *".into(),
            },
            Some("Paris"),
            "IANA",
        ),
        (
            ScheduleKind::Interval { seconds: 3600 },
            Some("UTC"),
            "does not take a time zone",
        ),
        (
            ScheduleKind::After {
                mapping_id: crate::id::MappingId::new("m"),
            },
            None,
            "after itself",
        ),
    ];
    for (kind, tz, words) in cases {
        let error = schedule(kind.clone(), tz).compile("m").unwrap_err();
        assert!(error.contains(words), "{kind:?}: {error}");
    }
}

#[test]
fn text_forms_round_trip() {
    for (input, shown) in [
        ("every 15m", "every 15m"),
        ("every 90 minutes", "every 90m"),
        ("every 1d", "every 1d"),
        ("daily 9:05", "daily 09:05"),
        ("mon,wed,fri 9h", "mon,wed,fri 9h"),
        ("mon-fri 14h", "mon,tue,wed,thu,fri 14h"),
        ("cron 0 9 * * MON-FRI", "cron 0 9 * * MON-FRI"),
        ("after orders_to_crm", "after orders_to_crm"),
    ] {
        let parsed = text::parse(input, None).unwrap();
        assert_eq!(text::format(&parsed), shown, "{input}");
        assert_eq!(text::parse(shown, None).unwrap(), parsed, "{shown}");
    }
    let zoned = text::parse("daily 08:00", Some("Europe/Paris")).unwrap();
    assert_eq!(text::format(&zoned), "daily 08:00 (Europe/Paris)");
    for bad in [
        "hourly",
        "every",
        "every 15 parsecs",
        "daily 9",
        "funday 9h",
        "fri-mon 9h",
    ] {
        let error = text::parse(bad, None).unwrap_err();
        assert!(error.contains("every 15m | daily 09:30"), "{bad}: {error}");
    }
}

#[test]
fn a_pattern_that_never_matches_has_no_next_time() {
    let s = schedule(
        ScheduleKind::Cron {
            expression: "0 0 30 2 *".into(),
        },
        None,
    );
    match s.compile("m") {
        Ok(c) => assert_eq!(c.next_after(Utc.timestamp_opt(0, 0).unwrap()), None),
        Err(error) => assert!(error.contains("invalid"), "{error}"),
    }
}
