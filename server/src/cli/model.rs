//! `retl model ...`.

use clap::{Args, Subcommand};
use retl_proto::v1;

use crate::cli::output::{Output, cell, details, out, outln, print_json, table, time};
use crate::cli::{CliError, Context};
use crate::grpc::convert::struct_to_map;
use crate::grpc::json;

/// Model commands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Create a model: SQL over one source plus its unique id column.
    Create(CreateArgs),
    /// List models.
    List,
    /// Show a model and its columns.
    Get {
        /// Model id.
        id: String,
    },
    /// Change a model's SQL, unique id, source or display name (validated again).
    Update(UpdateArgs),
    /// Delete a model no mapping uses.
    Delete {
        /// Model id.
        id: String,
    },
    /// Show the first rows of a model, or of unsaved SQL with --source and --sql.
    Preview(PreviewArgs),
}

/// Options of `retl model create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Id: a-z, 0-9, '-', '_' (max 63).
    pub id: String,
    /// The source the SQL reads.
    #[arg(long)]
    pub source: String,
    /// A single read-only SQL query.
    #[arg(long)]
    pub sql: String,
    /// The output column that identifies a record.
    #[arg(long)]
    pub unique_id: String,
    /// Human name (defaults to the id).
    #[arg(long)]
    pub display_name: Option<String>,
}

/// Options of `retl model update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Model id.
    pub id: String,
    /// New source.
    #[arg(long)]
    pub source: Option<String>,
    /// New SQL.
    #[arg(long)]
    pub sql: Option<String>,
    /// New unique id column.
    #[arg(long)]
    pub unique_id: Option<String>,
    /// New human name.
    #[arg(long)]
    pub display_name: Option<String>,
}

/// Options of `retl model preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Model id (or use --source and --sql).
    #[arg(required_unless_present = "sql", conflicts_with_all = ["source", "sql"])]
    pub id: Option<String>,
    /// Source of unsaved SQL.
    #[arg(long, requires = "sql")]
    pub source: Option<String>,
    /// Unsaved SQL to preview.
    #[arg(long, requires = "source")]
    pub sql: Option<String>,
    /// Rows to show (1 to 1000).
    #[arg(long, default_value_t = 10)]
    pub limit: u32,
    /// Fetch fresh rows instead of the source's cached preview.
    #[arg(long)]
    pub refresh: bool,
}

/// Prints one model.
pub fn print_model(out: Output, m: &v1::Model) {
    match out {
        Output::Json => print_json(&json::model(m)),
        Output::Table | Output::Csv => {
            out!(
                "{}",
                details(&[
                    ("id", m.id.clone()),
                    ("display name", m.display_name.clone()),
                    ("source", m.source_id.clone()),
                    ("unique id", m.unique_id.clone()),
                    ("sql", m.sql.clone()),
                    ("created", time(m.create_time.as_ref())),
                    ("updated", time(m.update_time.as_ref())),
                ])
            );
            let rows: Vec<Vec<String>> = m
                .columns
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.data_type.clone(),
                        if c.nullable { "yes" } else { "no" }.to_string(),
                    ]
                })
                .collect();
            outln!();
            out!("{}", table(&["COLUMN", "TYPE", "NULLABLE"], &rows));
        }
    }
}

/// Runs a model command.
///
/// # Errors
/// Usage errors and the daemon's answer.
pub async fn run(ctx: &Context, command: ModelCommand) -> Result<(), CliError> {
    let mut api = ctx.client.models();
    match command {
        ModelCommand::Create(args) => {
            let model = api
                .create_model(v1::CreateModelRequest {
                    model_id: args.id,
                    model: Some(v1::Model {
                        display_name: args.display_name.unwrap_or_default(),
                        source_id: args.source,
                        sql: args.sql,
                        unique_id: args.unique_id,
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner();
            print_model(ctx.output, &model);
        }
        ModelCommand::List => {
            let all = super::fetch_all(|page_token| {
                let mut api = api.clone();
                async move {
                    let page = api
                        .list_models(v1::ListModelsRequest {
                            page_size: 1000,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((page.models, page.next_page_token))
                }
            })
            .await?;
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({
                    "models": all.iter().map(json::model).collect::<Vec<_>>()
                })),
                Output::Table | Output::Csv => {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|m| {
                            vec![
                                m.id.clone(),
                                m.source_id.clone(),
                                m.unique_id.clone(),
                                m.columns.len().to_string(),
                                one_line(&m.sql, 60),
                            ]
                        })
                        .collect();
                    out!(
                        "{}",
                        table(&["ID", "SOURCE", "UNIQUE ID", "COLUMNS", "SQL"], &rows)
                    );
                }
            }
        }
        ModelCommand::Get { id } => {
            let model = api
                .get_model(v1::GetModelRequest { model_id: id })
                .await?
                .into_inner();
            print_model(ctx.output, &model);
        }
        ModelCommand::Update(args) => {
            let mut paths = Vec::new();
            for (set, path) in [
                (args.source.is_some(), "source_id"),
                (args.sql.is_some(), "sql"),
                (args.unique_id.is_some(), "unique_id"),
                (args.display_name.is_some(), "display_name"),
            ] {
                if set {
                    paths.push(path.to_string());
                }
            }
            if paths.is_empty() {
                return Err(CliError::Usage(
                    "nothing to update: pass --sql, --unique-id, --source or --display-name".into(),
                ));
            }
            let model = api
                .update_model(v1::UpdateModelRequest {
                    model: Some(v1::Model {
                        id: args.id,
                        display_name: args.display_name.unwrap_or_default(),
                        source_id: args.source.unwrap_or_default(),
                        sql: args.sql.unwrap_or_default(),
                        unique_id: args.unique_id.unwrap_or_default(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await?
                .into_inner();
            print_model(ctx.output, &model);
        }
        ModelCommand::Delete { id } => {
            api.delete_model(v1::DeleteModelRequest {
                model_id: id.clone(),
            })
            .await?;
            super::print_deleted(ctx.output, "model", &id);
        }
        ModelCommand::Preview(args) => {
            let target = match (args.id, args.source, args.sql) {
                (Some(id), _, _) => v1::preview_model_request::Target::ModelId(id),
                (None, Some(source_id), Some(sql)) => {
                    v1::preview_model_request::Target::Query(v1::ModelQuery { source_id, sql })
                }
                _ => {
                    return Err(CliError::Usage(
                        "give a model id, or --source and --sql".into(),
                    ));
                }
            };
            let limit = i32::try_from(args.limit)
                .map_err(|_| CliError::Usage("--limit is too large (max 1000)".into()))?;
            let preview = api
                .preview_model(v1::PreviewModelRequest {
                    target: Some(target),
                    limit,
                    refresh: args.refresh,
                })
                .await?
                .into_inner();
            print_preview(ctx.output, &preview);
        }
    }
    Ok(())
}

/// Prints preview rows as a table (or JSON).
pub fn print_preview(out: Output, preview: &v1::PreviewModelResponse) {
    match out {
        Output::Json => print_json(&json::preview(preview)),
        Output::Table | Output::Csv => {
            let headers: Vec<&str> = preview.columns.iter().map(|c| c.name.as_str()).collect();
            let rows: Vec<Vec<String>> = preview
                .rows
                .iter()
                .map(|r| {
                    let row = struct_to_map(r.clone());
                    preview
                        .columns
                        .iter()
                        .map(|c| row.get(&c.name).map(cell).unwrap_or_default())
                        .collect()
                })
                .collect();
            out!("{}", table(&headers, &rows));
            outln!("({} rows)", rows.len());
        }
    }
}

/// Collapses whitespace and cuts text to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}
