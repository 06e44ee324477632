//! `retl mapping ...`.

use clap::{Args, Subcommand, ValueEnum};
use retl_proto::v1;

use crate::cli::mapping_view::describe_selection;
pub use crate::cli::mapping_view::print_mapping;
use crate::cli::output::{Output, out, outln, print_json, table};
use crate::cli::{CliError, Context, parse_pair};
use crate::grpc::convert::json_to_value;
use crate::grpc::json;

/// Mapping commands.
#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Create a mapping: a model's changes sent to one action of a destination.
    Create(Box<CreateArgs>),
    /// List mappings.
    List,
    /// Show a mapping.
    Get {
        /// Mapping id.
        id: String,
    },
    /// Change a mapping's fields, record selection or display name.
    Update(UpdateArgs),
    /// Delete a mapping and its sync state.
    Delete {
        /// Mapping id.
        id: String,
    },
    /// Suggest which model column fits which field of a destination action.
    Suggest {
        /// The model.
        #[arg(long)]
        model: String,
        /// The destination.
        #[arg(long)]
        destination: String,
        /// The action.
        #[arg(long)]
        action: String,
    },
    /// Map one model row and send it to the destination for real, showing the request and
    /// the answer; the sync state is not touched.
    Test {
        /// Mapping id.
        id: String,
        /// The unique id of the row to send (default: the model's first row).
        #[arg(long)]
        key: Option<String>,
    },
    /// Set when the mapping runs by itself (or `--manual`), or `--preview` a schedule's next
    /// three runs.
    Schedule(crate::cli::schedule::ScheduleCommand),
    /// Let the mapping run.
    Enable {
        /// Mapping id.
        id: String,
    },
    /// Stop the mapping from running.
    Disable {
        /// Mapping id.
        id: String,
    },
}

/// A kind of change a mapping can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Change {
    /// Records whose key is new.
    Added,
    /// Records whose mapped values changed.
    Updated,
    /// Records that left the model.
    Deleted,
}

/// A sync mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncModeArg {
    /// Create or update.
    Upsert,
    /// Update existing records only.
    Update,
    /// Create new records only.
    Create,
    /// Append (events, memberships).
    Add,
    /// Remove.
    Remove,
}

impl SyncModeArg {
    fn proto(self) -> v1::SyncMode {
        match self {
            SyncModeArg::Upsert => v1::SyncMode::Upsert,
            SyncModeArg::Update => v1::SyncMode::Update,
            SyncModeArg::Create => v1::SyncMode::Create,
            SyncModeArg::Add => v1::SyncMode::Add,
            SyncModeArg::Remove => v1::SyncMode::Remove,
        }
    }
}

/// What a NULL value does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NullValuesArg {
    /// Send the field as null.
    Send,
    /// Leave the field out.
    Omit,
}

impl NullValuesArg {
    fn proto(self) -> v1::NullValues {
        match self {
            NullValuesArg::Send => v1::NullValues::Send,
            NullValuesArg::Omit => v1::NullValues::Omit,
        }
    }
}

/// How the first run treats existing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitialSyncArg {
    /// Send every existing row as added (default).
    Backfill,
    /// Take existing rows as already in sync; send only later changes.
    MarkExistingSynced,
}

/// Field mapping options shared by create and update.
#[derive(Debug, Args)]
pub struct FieldArgs {
    /// Map a model column to a destination field, `field=column`; repeatable.
    #[arg(long = "field", value_name = "FIELD=COLUMN")]
    pub fields: Vec<String>,
    /// Map a constant to a destination field, `field=value` (JSON when valid, else a string);
    /// repeatable.
    #[arg(long = "field-literal", value_name = "FIELD=VALUE")]
    pub literals: Vec<String>,
    /// Map a template over the row's columns to a destination field,
    /// `field={{ first_name }} {{ last_name }}`; repeatable.
    #[arg(long = "field-template", value_name = "FIELD=TEMPLATE")]
    pub templates: Vec<String>,
    /// Map a SQL expression over the row's columns to a destination field,
    /// `field=lower(email)`; repeatable.
    #[arg(long = "field-expression", value_name = "FIELD=SQL")]
    pub expressions: Vec<String>,
    /// The action's sync mode (see `retl destination types <type>`; default: the action's
    /// first).
    #[arg(long, value_enum)]
    pub sync_mode: Option<SyncModeArg>,
    /// What a NULL value does: send it as null, or omit the field.
    #[arg(long, value_enum)]
    pub null_values: Option<NullValuesArg>,
    /// Which changes to send, comma-separated (default: what the action accepts).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub select: Vec<Change>,
}

/// Options of `retl mapping create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Id: a-z, 0-9, '-', '_' (max 63).
    pub id: String,
    /// The model whose changes are sent.
    #[arg(long)]
    pub model: String,
    /// The destination.
    #[arg(long)]
    pub destination: String,
    /// The destination action (see `retl destination types <type>`).
    #[arg(long)]
    pub action: String,
    /// Fields and record selection.
    #[command(flatten)]
    pub fields: FieldArgs,
    /// First-run behaviour.
    #[arg(long, value_enum, default_value_t = InitialSyncArg::Backfill)]
    pub initial_sync: InitialSyncArg,
    /// Human name (defaults to the id).
    #[arg(long)]
    pub display_name: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
    /// When it runs by itself.
    #[command(flatten)]
    pub schedule: crate::cli::schedule::ScheduleArgs,
    /// When records that keep failing are given up.
    #[command(flatten)]
    pub retry: crate::cli::failures::RetryPolicyArgs,
    /// Where alerts go.
    #[command(flatten)]
    pub alerts: crate::cli::failures::AlertArgs,
}

/// Options of `retl mapping update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Mapping id.
    pub id: String,
    /// New fields (replace all fields when any --field* flag is given), selection, sync mode and
    /// NULL handling.
    #[command(flatten)]
    pub fields: FieldArgs,
    /// New human name.
    #[arg(long)]
    pub display_name: Option<String>,
    /// New retry policy (both values are replaced; an omitted one takes its default).
    #[command(flatten)]
    pub retry: crate::cli::failures::RetryPolicyArgs,
    /// New alert settings (both values are replaced; an omitted one takes its default).
    #[command(flatten)]
    pub alerts: crate::cli::failures::AlertArgs,
}

/// Field mappings from `--field` and `--field-literal`.
///
/// # Errors
/// [`CliError::Usage`] for a malformed pair.
pub fn field_mappings(args: &FieldArgs) -> Result<Vec<v1::FieldMapping>, CliError> {
    let mut out = Vec::new();
    for pair in &args.fields {
        let Some((field, column)) = pair.split_once('=') else {
            return Err(CliError::Usage(format!(
                "--field expects field=column, got '{pair}'"
            )));
        };
        if field.is_empty() || column.is_empty() {
            return Err(CliError::Usage(format!(
                "--field expects field=column, got '{pair}'"
            )));
        }
        out.push(v1::FieldMapping {
            field: field.to_string(),
            source: Some(v1::field_mapping::Source::Column(column.to_string())),
        });
    }
    for pair in &args.literals {
        let (field, value) = parse_pair("--field-literal", pair)?;
        out.push(v1::FieldMapping {
            field,
            source: Some(v1::field_mapping::Source::Literal(json_to_value(value))),
        });
    }
    for (flag, pairs, source) in [
        (
            "--field-template",
            &args.templates,
            v1::field_mapping::Source::Template as fn(String) -> v1::field_mapping::Source,
        ),
        (
            "--field-expression",
            &args.expressions,
            v1::field_mapping::Source::Expression,
        ),
    ] {
        for pair in pairs {
            let Some((field, text)) = pair
                .split_once('=')
                .filter(|(f, t)| !f.is_empty() && !t.is_empty())
            else {
                return Err(CliError::Usage(format!(
                    "{flag} expects field=text, got '{pair}'"
                )));
            };
            out.push(v1::FieldMapping {
                field: field.to_string(),
                source: Some(source(text.to_string())),
            });
        }
    }
    Ok(out)
}

/// The record selection of `--select`, or `None` when not given.
pub fn selection(select: &[Change]) -> Option<v1::RecordSelection> {
    (!select.is_empty()).then(|| v1::RecordSelection {
        added: select.contains(&Change::Added),
        updated: select.contains(&Change::Updated),
        deleted: select.contains(&Change::Deleted),
    })
}

/// Runs a mapping command.
///
/// # Errors
/// Usage errors and the daemon's answer.
pub async fn run(ctx: &Context, command: MappingCommand) -> Result<(), CliError> {
    let mut api = ctx.client.mappings();
    match command {
        MappingCommand::Create(args) => {
            let args = *args;
            let initial_sync = match args.initial_sync {
                InitialSyncArg::Backfill => v1::InitialSync::Backfill,
                InitialSyncArg::MarkExistingSynced => v1::InitialSync::MarkExistingSynced,
            };
            let m = api
                .create_mapping(v1::CreateMappingRequest {
                    mapping_id: args.id,
                    mapping: Some(v1::Mapping {
                        display_name: args.display_name.unwrap_or_default(),
                        model_id: args.model,
                        destination_id: args.destination,
                        action: args.action,
                        fields: field_mappings(&args.fields)?,
                        selection: selection(&args.fields.select),
                        initial_sync: initial_sync as i32,
                        enabled: Some(!args.disabled),
                        sync_mode: args.fields.sync_mode.map_or(0, |m| m.proto() as i32),
                        null_values: args.fields.null_values.map_or(0, |n| n.proto() as i32),
                        schedule: args
                            .schedule
                            .schedule
                            .as_deref()
                            .map(|s| {
                                crate::cli::schedule::proto_schedule(
                                    s,
                                    args.schedule.time_zone.as_deref(),
                                )
                            })
                            .transpose()?,
                        retry_policy: args.retry.proto()?,
                        alerts: args.alerts.proto(),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner();
            print_mapping(ctx.output, &m);
        }
        MappingCommand::List => {
            let all = super::fetch_all(|page_token| {
                let mut api = api.clone();
                async move {
                    let page = api
                        .list_mappings(v1::ListMappingsRequest {
                            page_size: 1000,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((page.mappings, page.next_page_token))
                }
            })
            .await?;
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({
                    "mappings": all.iter().map(json::mapping).collect::<Vec<_>>()
                })),
                Output::Table | Output::Csv => {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|m| {
                            vec![
                                m.id.clone(),
                                m.model_id.clone(),
                                m.destination_id.clone(),
                                m.action.clone(),
                                describe_selection(m.selection.as_ref()),
                                m.enabled.unwrap_or(false).to_string(),
                            ]
                        })
                        .collect();
                    out!(
                        "{}",
                        table(
                            &["ID", "MODEL", "DESTINATION", "ACTION", "SELECT", "ENABLED"],
                            &rows
                        )
                    );
                }
            }
        }
        MappingCommand::Get { id } => {
            let m = api
                .get_mapping(v1::GetMappingRequest { mapping_id: id })
                .await?
                .into_inner();
            print_mapping(ctx.output, &m);
        }
        MappingCommand::Update(args) => {
            let fields = field_mappings(&args.fields)?;
            let selection = selection(&args.fields.select);
            let mut paths = Vec::new();
            if args.display_name.is_some() {
                paths.push("display_name".to_string());
            }
            if !fields.is_empty() {
                paths.push("fields".to_string());
            }
            if selection.is_some() {
                paths.push("selection".to_string());
            }
            if args.fields.sync_mode.is_some() {
                paths.push("sync_mode".to_string());
            }
            if args.fields.null_values.is_some() {
                paths.push("null_values".to_string());
            }
            let retry_policy = args.retry.proto()?;
            if retry_policy.is_some() {
                paths.push("retry_policy".to_string());
            }
            let alerts = args.alerts.proto();
            if alerts.is_some() {
                paths.push("alerts".to_string());
            }
            if paths.is_empty() {
                return Err(CliError::Usage(
                    "nothing to update: pass --field, --field-literal, --field-template, --field-expression, --select, --sync-mode, --null-values, --retry-runs, --retry-for, --alert-webhook, --alert-failed-share or --display-name"
                        .into(),
                ));
            }
            let m = api
                .update_mapping(v1::UpdateMappingRequest {
                    mapping: Some(v1::Mapping {
                        id: args.id,
                        display_name: args.display_name.unwrap_or_default(),
                        fields,
                        selection,
                        sync_mode: args.fields.sync_mode.map_or(0, |m| m.proto() as i32),
                        null_values: args.fields.null_values.map_or(0, |n| n.proto() as i32),
                        retry_policy,
                        alerts,
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await?
                .into_inner();
            print_mapping(ctx.output, &m);
        }
        MappingCommand::Delete { id } => {
            api.delete_mapping(v1::DeleteMappingRequest {
                mapping_id: id.clone(),
            })
            .await?;
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({})),
                Output::Table | Output::Csv => outln!("deleted mapping {id} and its sync state"),
            }
        }
        MappingCommand::Suggest {
            model,
            destination,
            action,
        } => {
            let r = api
                .suggest_mappings(v1::SuggestMappingsRequest {
                    model_id: model,
                    destination_id: destination,
                    action,
                })
                .await?
                .into_inner();
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({
                    "suggestions": r.suggestions.iter().map(|s| serde_json::json!({
                        "field": s.field, "column": s.column, "score": s.score, "reason": s.reason,
                    })).collect::<Vec<_>>()
                })),
                Output::Table | Output::Csv => {
                    let rows: Vec<Vec<String>> = r
                        .suggestions
                        .iter()
                        .map(|s| {
                            vec![
                                s.field.clone(),
                                s.column.clone(),
                                format!("{:.2}", s.score),
                                s.reason.clone(),
                            ]
                        })
                        .collect();
                    out!("{}", table(&["FIELD", "COLUMN", "SCORE", "WHY"], &rows));
                }
            }
        }
        MappingCommand::Test { id, key } => {
            let r = api
                .send_test_record(v1::SendTestRecordRequest {
                    mapping_id: id,
                    key: key.unwrap_or_default(),
                    mapping: None,
                })
                .await?
                .into_inner();
            super::test_record::print_test_record(ctx.output, &r);
        }
        MappingCommand::Schedule(args) => crate::cli::schedule::run(ctx, args).await?,
        MappingCommand::Enable { id } => set_enabled(ctx, id, true).await?,
        MappingCommand::Disable { id } => set_enabled(ctx, id, false).await?,
    }
    Ok(())
}

async fn set_enabled(ctx: &Context, id: String, enabled: bool) -> Result<(), CliError> {
    let m = ctx
        .client
        .mappings()
        .set_mapping_enabled(v1::SetMappingEnabledRequest {
            mapping_id: id,
            enabled,
        })
        .await?
        .into_inner();
    match ctx.output {
        Output::Json => print_json(&json::mapping(&m)),
        Output::Table | Output::Csv => outln!(
            "mapping {} is now {}",
            m.id,
            if enabled { "enabled" } else { "disabled" }
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::mapping_view::describe_field;

    #[test]
    fn fields_parse() {
        let args = FieldArgs {
            fields: vec!["email=email_address".into()],
            literals: vec!["source=retl".into(), "n=3".into()],
            templates: vec!["name={{ first }} {{ last }}".into()],
            expressions: vec!["mail=lower(email)".into()],
            select: vec![Change::Added, Change::Deleted],
            sync_mode: None,
            null_values: None,
        };
        let f = field_mappings(&args).unwrap();
        assert_eq!(f.len(), 5);
        assert_eq!(
            describe_field(&f[3]),
            "name <- template {{ first }} {{ last }}"
        );
        assert_eq!(describe_field(&f[4]), "mail <- expression lower(email)");
        assert_eq!(describe_field(&f[0]), "email <- column email_address");
        assert_eq!(describe_field(&f[1]), "source <- literal \"retl\"");
        assert_eq!(describe_field(&f[2]), "n <- literal 3");
        let s = selection(&args.select).unwrap();
        assert!(s.added && !s.updated && s.deleted);
        assert!(selection(&[]).is_none());
    }
}
