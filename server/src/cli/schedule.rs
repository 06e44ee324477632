//! Schedules on the command line: `--schedule` / `--time-zone` of `retl mapping create`,
//! `retl mapping schedule <id> ...` (set, remove, `--preview` the next three runs), and the
//! schedule rows of `retl mapping get`.

use clap::Args;
use retl_engine::schedule::text;
use retl_proto::v1;

use crate::cli::output::{Output, details, out, print_json, time};
use crate::cli::{CliError, Context};
use crate::grpc::convert;
use crate::grpc::json;

/// Schedule options of `retl mapping create`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// When the mapping runs by itself: `every 15m`, `daily 09:30`, `mon,wed,fri 9h`,
    /// `cron 0 9 * * MON-FRI` or `after <mapping>` (default: only when triggered).
    #[arg(long, value_name = "SCHEDULE")]
    pub schedule: Option<String>,
    /// IANA time zone of daily, day-and-time and cron schedules, e.g. Europe/Paris (default UTC).
    #[arg(long, value_name = "ZONE", requires = "schedule")]
    pub time_zone: Option<String>,
}

/// Options of `retl mapping schedule`.
#[derive(Debug, Args)]
pub struct ScheduleCommand {
    /// Mapping id.
    pub id: String,
    /// The schedule: `every 15m`, `daily 09:30`, `mon,wed,fri 9h`, `cron 0 9 * * MON-FRI`,
    /// `after <mapping>`.
    #[arg(value_name = "SCHEDULE", required_unless_present = "manual")]
    pub schedule: Option<String>,
    /// IANA time zone of daily, day-and-time and cron schedules (default UTC).
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// Remove the schedule: the mapping runs only when triggered.
    #[arg(long, conflicts_with_all = ["schedule", "preview"])]
    pub manual: bool,
    /// Show the next three runs of the schedule without saving it.
    #[arg(long)]
    pub preview: bool,
}

/// A schedule's text form as proto; the error lists the forms.
///
/// # Errors
/// [`CliError::Usage`] for text that is not a schedule.
pub fn proto_schedule(schedule: &str, time_zone: Option<&str>) -> Result<v1::Schedule, CliError> {
    let parsed = text::parse(schedule, time_zone).map_err(CliError::Usage)?;
    Ok(convert::schedule(&parsed))
}

/// The `retl mapping get` rows of a mapping's schedule.
pub fn rows(m: &v1::Mapping) -> Vec<(&'static str, String)> {
    let schedule = m
        .schedule
        .clone()
        .and_then(|s| convert::schedule_from("schedule", s).ok().flatten());
    let Some(schedule) = schedule else {
        return vec![("schedule", "manual (runs when triggered)".to_string())];
    };
    let mut rows = vec![("schedule", text::format(&schedule))];
    if let Some(status) = &m.schedule_status {
        for (i, t) in status.next_run_times.iter().enumerate() {
            rows.push((if i == 0 { "next runs" } else { "" }, time(Some(t))));
        }
        if status.last_tick_time.is_some() {
            let mut last = format!(
                "{}: {}",
                time(status.last_tick_time.as_ref()),
                status.last_tick_outcome
            );
            if status.last_tick_missed > 0 {
                last.push_str(&format!(
                    " (caught up {} missed times in one run)",
                    status.last_tick_missed
                ));
            }
            rows.push(("last tick", last));
        }
    }
    rows
}

/// Runs `retl mapping schedule`.
///
/// # Errors
/// Usage errors and the daemon's answer.
pub async fn run(ctx: &Context, args: ScheduleCommand) -> Result<(), CliError> {
    let schedule = match (&args.schedule, args.manual) {
        (_, true) => None,
        (Some(text), false) => Some(proto_schedule(text, args.time_zone.as_deref())?),
        (None, false) => {
            return Err(CliError::Usage(
                "give a schedule (e.g. 'every 15m') or --manual".to_string(),
            ));
        }
    };
    if args.preview {
        return preview(&args, ctx.output);
    }
    let m = ctx
        .client
        .mappings()
        .update_mapping(v1::UpdateMappingRequest {
            mapping: Some(v1::Mapping {
                id: args.id,
                schedule,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["schedule".to_string()],
            }),
        })
        .await?
        .into_inner();
    match ctx.output {
        Output::Json => print_json(&json::mapping(&m)),
        Output::Table | Output::Csv => out!("{}", details(&rows(&m))),
    }
    Ok(())
}

/// Prints the next three runs of the schedule of `args`, without saving it or calling the
/// daemon.
///
/// # Errors
/// [`CliError::Usage`] for text that is not a valid schedule.
pub fn preview(args: &ScheduleCommand, output: Output) -> Result<(), CliError> {
    let Some(text) = &args.schedule else {
        return Err(CliError::Usage("--preview needs a schedule".to_string()));
    };
    let parsed = text::parse(text, args.time_zone.as_deref()).map_err(CliError::Usage)?;
    let compiled = parsed.compile(&args.id).map_err(CliError::Usage)?;
    let next = compiled.upcoming(chrono::Utc::now(), 3);
    match output {
        Output::Json => print_json(&serde_json::json!({
            "schedule": text::format(&parsed),
            "next_run_times": next.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>(),
        })),
        Output::Table | Output::Csv => {
            let mut pairs = vec![("schedule", text::format(&parsed))];
            if next.is_empty() {
                pairs.push((
                    "next runs",
                    "after each successful run of the mapping it follows".to_string(),
                ));
            }
            for (i, t) in next.iter().enumerate() {
                pairs.push((
                    if i == 0 { "next runs" } else { "" },
                    t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                ));
            }
            out!("{}", details(&pairs));
        }
    }
    Ok(())
}
