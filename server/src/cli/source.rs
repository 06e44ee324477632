//! `retl source ...`.

use clap::{Args, Subcommand};
use retl_proto::v1;

use crate::cli::output::{self, Output, details, list, out, outln, print_json, table, time};
use crate::cli::{CliError, Context, parse_config};
use crate::grpc::convert::map_to_struct;
use crate::grpc::json;

/// Source commands.
#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Create a source.
    Create(CreateArgs),
    /// List sources.
    List,
    /// Show a source (secret config values are never shown).
    Get {
        /// Source id.
        id: String,
    },
    /// Change a source's display name or config keys.
    Update(UpdateArgs),
    /// Delete a source no model uses.
    Delete {
        /// Source id.
        id: String,
    },
    /// Check that the source is reachable and the credentials work.
    Test {
        /// Source id.
        id: String,
    },
    /// List the tables the source can read.
    Tables {
        /// Source id.
        id: String,
    },
}

/// Options of `retl source create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Id: a-z, 0-9, '-', '_' (max 63).
    pub id: String,
    /// Source type, e.g. `files`, `postgres`.
    #[arg(long = "type")]
    pub source_type: String,
    /// Config value `key=value` (value parsed as JSON when valid, else a string); repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Config as a JSON object; `--config` pairs override its keys.
    #[arg(long)]
    pub config_json: Option<String>,
    /// Human name (defaults to the id).
    #[arg(long)]
    pub display_name: Option<String>,
}

/// Options of `retl source update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Source id.
    pub id: String,
    /// What to change.
    #[command(flatten)]
    pub changes: super::ConfigUpdateArgs,
}

/// Prints one source.
pub fn print_source(out: Output, s: &v1::Source) {
    match out {
        Output::Json => print_json(&json::source(s)),
        Output::Table | Output::Csv => {
            let config = json::source(s)["config"].to_string();
            out!(
                "{}",
                details(&[
                    ("id", s.id.clone()),
                    ("display name", s.display_name.clone()),
                    ("type", s.r#type.clone()),
                    ("config", config),
                    ("secrets set", list(&s.secret_fields_set)),
                    ("created", time(s.create_time.as_ref())),
                    ("updated", time(s.update_time.as_ref())),
                ])
            );
        }
    }
}

/// Runs a source command.
///
/// # Errors
/// Usage errors and the daemon's answer.
pub async fn run(ctx: &Context, command: SourceCommand) -> Result<(), CliError> {
    let mut api = ctx.client.sources();
    match command {
        SourceCommand::Create(args) => {
            let config = parse_config(args.config_json.as_deref(), &args.config)?;
            let source = api
                .create_source(v1::CreateSourceRequest {
                    source_id: args.id,
                    source: Some(v1::Source {
                        display_name: args.display_name.unwrap_or_default(),
                        r#type: args.source_type,
                        config: Some(map_to_struct(config)),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner();
            print_source(ctx.output, &source);
        }
        SourceCommand::List => {
            let all = super::fetch_all(|page_token| {
                let mut api = api.clone();
                async move {
                    let page = api
                        .list_sources(v1::ListSourcesRequest {
                            page_size: 1000,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((page.sources, page.next_page_token))
                }
            })
            .await?;
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({
                    "sources": all.iter().map(json::source).collect::<Vec<_>>()
                })),
                Output::Table | Output::Csv => {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|s| {
                            vec![
                                s.id.clone(),
                                s.r#type.clone(),
                                s.display_name.clone(),
                                time(s.update_time.as_ref()),
                            ]
                        })
                        .collect();
                    out!(
                        "{}",
                        table(&["ID", "TYPE", "DISPLAY NAME", "UPDATED"], &rows)
                    );
                }
            }
        }
        SourceCommand::Get { id } => {
            let source = api
                .get_source(v1::GetSourceRequest { source_id: id })
                .await?
                .into_inner();
            print_source(ctx.output, &source);
        }
        SourceCommand::Update(args) => {
            let update = args.changes.into_update()?;
            let source = api
                .update_source(v1::UpdateSourceRequest {
                    source: Some(v1::Source {
                        id: args.id,
                        display_name: update.display_name,
                        config: Some(map_to_struct(update.config)),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: update.paths,
                    }),
                })
                .await?
                .into_inner();
            print_source(ctx.output, &source);
        }
        SourceCommand::Delete { id } => {
            api.delete_source(v1::DeleteSourceRequest {
                source_id: id.clone(),
            })
            .await?;
            super::print_deleted(ctx.output, "source", &id);
        }
        SourceCommand::Test { id } => {
            let report = api
                .test_source(v1::TestSourceRequest { source_id: id })
                .await?
                .into_inner();
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({
                    "message": report.message, "warnings": report.warnings,
                })),
                Output::Table | Output::Csv => {
                    outln!("ok: {}", report.message);
                    for w in &report.warnings {
                        outln!("warning: {w}");
                    }
                }
            }
        }
        SourceCommand::Tables { id } => {
            let tables = api
                .list_tables(v1::ListTablesRequest { source_id: id })
                .await?
                .into_inner()
                .tables;
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({
                    "tables": tables.iter().map(json::table).collect::<Vec<_>>()
                })),
                Output::Table | Output::Csv => {
                    let rows: Vec<Vec<String>> = tables
                        .iter()
                        .map(|t| {
                            let name = if t.schema.is_empty() {
                                t.name.clone()
                            } else {
                                format!("{}.{}", t.schema, t.name)
                            };
                            let columns = t
                                .columns
                                .iter()
                                .map(|c| format!("{} {}", c.name, c.data_type))
                                .collect::<Vec<_>>()
                                .join(", ");
                            vec![name, t.kind.clone(), t.location.clone(), columns]
                        })
                        .collect();
                    out!(
                        "{}",
                        output::table(&["TABLE", "KIND", "LOCATION", "COLUMNS"], &rows)
                    );
                }
            }
        }
    }
    Ok(())
}
