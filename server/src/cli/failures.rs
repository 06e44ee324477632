//! `retl sync failures <mapping>` (records that failed: pending or given up, with their last
//! error) and `retl sync retry <mapping>` (given-up records sent again by the next run).

use clap::Args;
use retl_proto::v1;

use crate::cli::output::{Output, out, outln, print_json, table, time};
use crate::cli::{CliError, Context};

/// Options of `retl sync failures`.
#[derive(Debug, Args)]
pub struct FailuresArgs {
    /// Mapping id.
    pub mapping: String,
    /// Only the records given up (runs skip them until they change or are retried).
    #[arg(long)]
    pub given_up: bool,
    /// Most records to show.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// Options of `retl sync retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Mapping id.
    pub mapping: String,
    /// Only this record's key (repeatable); default: every given-up record.
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
}

/// The retry policy options of `retl mapping create` and `update`.
#[derive(Debug, Args)]
pub struct RetryPolicyArgs {
    /// Give a failing record up once it failed in this many runs (default 5).
    #[arg(long, value_name = "RUNS")]
    pub retry_runs: Option<u32>,
    /// Give a failing record up this long after its first failure: `14d`, `36h`, `90m`
    /// (default 14d).
    #[arg(long, value_name = "DURATION")]
    pub retry_for: Option<String>,
}

/// `--alert-webhook` and `--alert-failed-share` of `retl mapping create|update`.
#[derive(Debug, Args)]
pub struct AlertArgs {
    /// Send this mapping's alerts (a failed run, failed records above the share, deletes held
    /// back, records given up) to this http(s) webhook; repeat for several (update: replaces).
    #[arg(long = "alert-webhook", value_name = "URL")]
    pub webhooks: Vec<String>,
    /// Alert when more than this share of a run's selected records failed (default 0.1).
    #[arg(long = "alert-failed-share", value_name = "SHARE")]
    pub failed_share: Option<f64>,
}

impl AlertArgs {
    /// The alert settings as proto; `None` when neither option is given.
    pub fn proto(&self) -> Option<v1::AlertPolicy> {
        if self.webhooks.is_empty() && self.failed_share.is_none() {
            return None;
        }
        Some(v1::AlertPolicy {
            webhook_urls: self.webhooks.clone(),
            failed_record_share: self.failed_share.unwrap_or(0.0),
        })
    }
}

impl RetryPolicyArgs {
    /// The policy as proto; `None` when neither option is given (the defaults apply).
    ///
    /// # Errors
    /// [`CliError::Usage`] for a duration that is not one.
    pub fn proto(&self) -> Result<Option<v1::RetryPolicy>, CliError> {
        if self.retry_runs.is_none() && self.retry_for.is_none() {
            return Ok(None);
        }
        let max_age = match &self.retry_for {
            None => None,
            Some(text) => {
                let seconds =
                    retl_engine::schedule::text::duration_seconds(text).ok_or_else(|| {
                        CliError::Usage(format!(
                            "--retry-for expects a duration such as 14d, 36h or 90m, got '{text}'"
                        ))
                    })?;
                Some(prost_types::Duration {
                    seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
                    nanos: 0,
                })
            }
        };
        Ok(Some(v1::RetryPolicy {
            max_runs: self.retry_runs.unwrap_or(0),
            max_age,
        }))
    }
}

/// The name of a change kind.
fn change(raw: i32) -> &'static str {
    match v1::ChangeKind::try_from(raw) {
        Ok(v1::ChangeKind::Added) => "added",
        Ok(v1::ChangeKind::Updated) => "updated",
        Ok(v1::ChangeKind::Deleted) => "deleted",
        _ => "-",
    }
}

/// Runs `retl sync failures`.
///
/// # Errors
/// The daemon's answer.
pub async fn list(ctx: &Context, args: FailuresArgs) -> Result<(), CliError> {
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let mut records = Vec::new();
    let mut page_token = String::new();
    while records.len() < limit {
        let page = ctx
            .client
            .syncs()
            .list_failed_records(v1::ListFailedRecordsRequest {
                mapping_id: args.mapping.clone(),
                given_up_only: args.given_up,
                page_size: i32::try_from(limit.min(1000)).unwrap_or(1000),
                page_token,
            })
            .await?
            .into_inner();
        records.extend(page.records);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    records.truncate(limit);
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({
            "records": records.iter().map(|r| serde_json::json!({
                "key": r.key,
                "change": change(r.change),
                "attempts": r.attempts,
                "first_failure_time": time(r.first_failure_time.as_ref()),
                "last_failure_time": time(r.last_failure_time.as_ref()),
                "last_run_id": r.last_run_id,
                "last_error": r.last_error,
                "given_up": r.given_up,
            })).collect::<Vec<_>>()
        })),
        Output::Table if records.is_empty() => {
            outln!("no failed records for mapping {}", args.mapping);
        }
        Output::Table | Output::Csv => {
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    vec![
                        r.key.clone(),
                        change(r.change).to_string(),
                        r.attempts.to_string(),
                        if r.given_up { "given up" } else { "pending" }.to_string(),
                        time(r.last_failure_time.as_ref()),
                        r.last_error.clone(),
                    ]
                })
                .collect();
            out!(
                "{}",
                table(
                    &[
                        "KEY",
                        "CHANGE",
                        "RUNS",
                        "STATUS",
                        "LAST FAILURE",
                        "LAST ERROR"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}

/// Runs `retl sync retry`.
///
/// # Errors
/// The daemon's answer.
pub async fn retry(ctx: &Context, args: RetryArgs) -> Result<(), CliError> {
    let answer = ctx
        .client
        .syncs()
        .retry_failed_records(v1::RetryFailedRecordsRequest {
            mapping_id: args.mapping.clone(),
            keys: args.keys,
        })
        .await?
        .into_inner();
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({"records": answer.records})),
        Output::Table | Output::Csv => outln!(
            "{} given-up records of mapping {} will be sent by its next run",
            answer.records,
            args.mapping
        ),
    }
    Ok(())
}
