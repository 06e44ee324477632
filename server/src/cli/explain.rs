//! `retl explain <mapping> <unique id>`: why one record was or was not sent.

use clap::Args;
use retl_proto::v1;

use crate::cli::output::{Output, out, print_json, time};
use crate::cli::{CliError, Context};
use crate::grpc::json;

/// Options of `retl explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Mapping id.
    pub mapping: String,
    /// The record's unique id, as text (as `retl.state` shows it).
    pub key: String,
    /// Run the model now and compare that extract, instead of the latest staged one.
    #[arg(long)]
    pub fresh: bool,
}

/// Runs `retl explain`.
///
/// # Errors
/// The daemon's answer.
pub async fn run(ctx: &Context, args: ExplainArgs) -> Result<(), CliError> {
    let explanation = ctx
        .client
        .syncs()
        .explain_record(v1::ExplainRecordRequest {
            mapping_id: args.mapping,
            key: args.key,
            fresh: args.fresh,
        })
        .await?
        .into_inner();
    match ctx.output {
        Output::Json => print_json(&json::record_explanation(&explanation)),
        Output::Table | Output::Csv => out!("{}", summary(&explanation)),
    }
    Ok(())
}

/// The explanation for people.
pub fn summary(e: &v1::RecordExplanation) -> String {
    let mut out = format!(
        "record {} of mapping {}: {}\n  {}\n",
        e.key, e.mapping_id, e.verdict, e.reason
    );
    out.push_str(&format!(
        "  extract:   run {} ({}): {} row(s) with this id\n",
        e.extract_run_id,
        time(e.extract_time.as_ref()),
        e.rows_in_extract
    ));
    if !e.last_seen_run_id.is_empty() {
        out.push_str(&format!(
            "  last seen: in the extract of run {} ({})\n",
            e.last_seen_run_id,
            time(e.last_seen_time.as_ref())
        ));
    }
    if !e.left_run_id.is_empty() {
        out.push_str(&format!(
            "  left with: the extract of run {} ({})\n",
            e.left_run_id,
            time(e.left_time.as_ref())
        ));
    }
    if !e.extract_fingerprint.is_empty() {
        out.push_str(&format!(
            "  extract fingerprint: {}\n",
            e.extract_fingerprint
        ));
    }
    match &e.state {
        Some(s) => {
            let run = if s.run_id.is_empty() {
                "a run no longer recorded".to_string()
            } else {
                format!("run {}", s.run_id)
            };
            let how = match s.sent {
                Some(true) => "sent, acknowledged by the destination",
                Some(false) => "recorded without sending",
                None => "written before runs were recorded",
            };
            out.push_str(&format!(
                "  state:     fingerprint {}, by {run} ({}): {how}\n",
                s.fingerprint,
                time(s.synced_time.as_ref())
            ));
        }
        None => out.push_str("  state:     nothing\n"),
    }
    if let Some(f) = &e.failure {
        out.push_str(&format!(
            "  failures:  {} run(s), last in run {}{}: {}\n",
            f.attempts,
            f.last_run_id,
            if f.given_up { ", given up" } else { "" },
            f.last_error
        ));
    }
    if !e.next_outcome.is_empty() {
        let change = v1::ChangeKind::try_from(e.next_change)
            .map(|c| {
                c.as_str_name()
                    .trim_start_matches("CHANGE_KIND_")
                    .to_lowercase()
            })
            .unwrap_or_default();
        out.push_str(&format!("  next run:  {change} -> {}\n", e.next_outcome));
    }
    if !e.payload_fields_json.is_empty() {
        out.push_str(&format!("  payload:   {}\n", e.payload_fields_json));
    }
    if !e.detail.is_empty() {
        out.push_str(&format!("  detail:    {}\n", e.detail));
    }
    for err in &e.errors {
        out.push_str(&format!(
            "  error in run {} ({}): {}\n",
            err.run_id, err.stage, err.reason
        ));
    }
    for b in &e.blockers {
        out.push_str(&format!("  blocked:   {b}\n"));
    }
    out
}
