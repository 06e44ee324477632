//! `retl sync ...`.

use clap::{Args, Subcommand};
use retl_proto::v1;

use crate::cli::output::{Output, duration_ms, out, outln, print_json, table, time};
use crate::cli::progress::{self, n, stage_name, status_name};
use crate::cli::{CliError, Context};
use crate::grpc::json;

/// Sync commands.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Start a sync of a mapping.
    Run(RunArgs),
    /// List runs, newest first.
    List(ListArgs),
    /// Show a run: status, counts, timings, errors.
    Get {
        /// Run id.
        run: String,
    },
    /// Follow a run until it ends.
    Watch {
        /// Run id.
        run: String,
    },
    /// Ask a run to stop (acknowledged records stay committed).
    Cancel {
        /// Run id.
        run: String,
    },
    /// List a mapping's records that failed: pending (sent again by every run) or given up.
    Failures(crate::cli::failures::FailuresArgs),
    /// Send given-up records again with the mapping's next run.
    Retry(crate::cli::failures::RetryArgs),
}

/// Options of `retl sync run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Mapping id.
    pub mapping: String,
    /// Follow the run with a progress display, then print a summary.
    #[arg(long)]
    pub watch: bool,
    /// Send deletes even when more keys vanished than the safety stop allows (with
    /// `--dry-run`: count them as sent).
    #[arg(long)]
    pub confirm_mass_delete: bool,
    /// Only report what a run would do: run the model and compare, but send nothing and change
    /// no state. Prints the counts, sample payloads, the API requests it would make, an ETA and
    /// the destination's daily request budget.
    #[arg(long, conflicts_with = "watch")]
    pub dry_run: bool,
    /// With `--dry-run`: compare the model's latest staged extract instead of running it now.
    #[arg(long, requires = "dry_run")]
    pub latest: bool,
}

/// Options of `retl sync list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs of this mapping.
    #[arg(long)]
    pub mapping: Option<String>,
    /// Most runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

/// Prints a finished run (summary or JSON) and turns a non-success into an error (exit 1).
///
/// # Errors
/// [`CliError::RunNotSucceeded`] when the run did not succeed.
pub fn finish(out: Output, run: &v1::SyncRun) -> Result<(), CliError> {
    match out {
        Output::Json => print_json(&json::sync_run(run)),
        Output::Table | Output::Csv => out!("{}", progress::summary(run)),
    }
    if run.status() == v1::RunStatus::Succeeded {
        Ok(())
    } else {
        Err(CliError::RunNotSucceeded {
            run_id: run.id.clone(),
            status: status_name(run.status).to_string(),
        })
    }
}

/// Runs a sync command.
///
/// # Errors
/// The daemon's answer; a watched run that did not succeed.
pub async fn run(ctx: &Context, command: SyncCommand) -> Result<(), CliError> {
    let mut api = ctx.client.syncs();
    match command {
        SyncCommand::Run(args) => {
            let run = api
                .trigger_sync(v1::TriggerSyncRequest {
                    mapping_id: args.mapping,
                    confirm_mass_delete: args.confirm_mass_delete,
                    dry_run: args.dry_run,
                    reuse_latest_extract: args.latest,
                })
                .await?
                .into_inner();
            if args.dry_run {
                match ctx.output {
                    Output::Json => print_json(&json::sync_run(&run)),
                    Output::Table | Output::Csv => out!("{}", crate::cli::dry_run::summary(&run)),
                }
                return Ok(());
            }
            if args.watch {
                if ctx.output == Output::Table {
                    eprintln!("started run {}", run.id);
                }
                let done =
                    progress::watch(&ctx.client, &run.id, ctx.output == Output::Table).await?;
                return finish(ctx.output, &done);
            }
            match ctx.output {
                Output::Json => print_json(&json::sync_run(&run)),
                Output::Table | Output::Csv => {
                    outln!("started run {}", run.id);
                    outln!("follow it with: retl sync watch {}", run.id);
                }
            }
        }
        SyncCommand::List(args) => {
            let page_size = i32::try_from(args.limit.min(1000)).unwrap_or(1000);
            let runs = api
                .list_sync_runs(v1::ListSyncRunsRequest {
                    mapping_id: args.mapping.unwrap_or_default(),
                    page_size,
                    page_token: String::new(),
                })
                .await?
                .into_inner()
                .sync_runs;
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({
                    "sync_runs": runs.iter().map(json::sync_run).collect::<Vec<_>>()
                })),
                Output::Table | Output::Csv => {
                    let rows: Vec<Vec<String>> = runs
                        .iter()
                        .map(|r| {
                            let c = r.counts.unwrap_or_default();
                            vec![
                                r.id.clone(),
                                r.mapping_id.clone(),
                                status_name(r.status).to_string(),
                                time(r.create_time.as_ref()),
                                n(c.added),
                                n(c.updated),
                                n(c.deleted),
                                n(c.delivered),
                                n(c.failed),
                                duration_ms(r.timings.unwrap_or_default().total_ms),
                            ]
                        })
                        .collect();
                    out!(
                        "{}",
                        table(
                            &[
                                "RUN",
                                "MAPPING",
                                "STATUS",
                                "CREATED",
                                "ADDED",
                                "UPDATED",
                                "DELETED",
                                "DELIVERED",
                                "FAILED",
                                "TOTAL"
                            ],
                            &rows
                        )
                    );
                }
            }
        }
        SyncCommand::Get { run } => {
            let r = api
                .get_sync_run(v1::GetSyncRunRequest { run_id: run })
                .await?
                .into_inner();
            match ctx.output {
                Output::Json => print_json(&json::sync_run(&r)),
                Output::Table | Output::Csv => {
                    out!("{}", progress::summary(&r));
                    outln!("  stage: {}", stage_name(r.stage));
                    outln!(
                        "  created {}  started {}  ended {}",
                        time(r.create_time.as_ref()),
                        time(r.start_time.as_ref()),
                        time(r.end_time.as_ref())
                    );
                    if !r.staging_path.is_empty() {
                        outln!("  staged extract: {}", r.staging_path);
                    }
                }
            }
        }
        SyncCommand::Watch { run } => {
            let done = progress::watch(&ctx.client, &run, ctx.output == Output::Table).await?;
            return finish(ctx.output, &done);
        }
        SyncCommand::Failures(args) => crate::cli::failures::list(ctx, args).await?,
        SyncCommand::Retry(args) => crate::cli::failures::retry(ctx, args).await?,
        SyncCommand::Cancel { run } => {
            let r = api
                .cancel_sync_run(v1::CancelSyncRunRequest { run_id: run })
                .await?
                .into_inner();
            match ctx.output {
                Output::Json => print_json(&json::sync_run(&r)),
                Output::Table | Output::Csv => outln!(
                    "cancellation requested for run {} (now {}); acknowledged records stay committed",
                    r.id,
                    status_name(r.status)
                ),
            }
        }
    }
    Ok(())
}
