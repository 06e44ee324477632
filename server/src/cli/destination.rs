//! `retl destination ...`.

use clap::{Args, Subcommand};
use retl_proto::v1;

use crate::cli::output::{Output, details, list, out, outln, print_json, table, time};
use crate::cli::{CliError, Context, parse_config};
use crate::grpc::convert::map_to_struct;
use crate::grpc::json;

/// Destination commands.
#[derive(Debug, Subcommand)]
pub enum DestinationCommand {
    /// List destination types, or show one type's config fields and actions.
    Types {
        /// Show only this type, with its fields.
        name: Option<String>,
    },
    /// Create a destination.
    Create(CreateArgs),
    /// List destinations.
    List,
    /// Show a destination (secret config values are never shown).
    Get {
        /// Destination id.
        id: String,
    },
    /// Change a destination's display name or config keys.
    Update(UpdateArgs),
    /// Delete a destination no mapping uses.
    Delete {
        /// Destination id.
        id: String,
    },
    /// Check that the destination is reachable and the credentials work.
    Test {
        /// Destination id.
        id: String,
    },
    /// List the fields an action takes for this destination's account (custom properties and
    /// table columns included).
    Fields {
        /// Destination id.
        id: String,
        /// The action.
        action: String,
    },
    /// Let syncs deliver to the destination.
    Enable {
        /// Destination id.
        id: String,
    },
    /// Stop syncs from delivering to the destination.
    Disable {
        /// Destination id.
        id: String,
    },
}

/// Options of `retl destination create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Id: a-z, 0-9, '-', '_' (max 63).
    pub id: String,
    /// Destination type, e.g. `webhook`, `file` (see `retl destination types`).
    #[arg(long = "type")]
    pub destination_type: String,
    /// Config value `key=value` (value parsed as JSON when valid, else a string); repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Config as a JSON object; `--config` pairs override its keys.
    #[arg(long)]
    pub config_json: Option<String>,
    /// Human name (defaults to the id).
    #[arg(long)]
    pub display_name: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
}

/// Options of `retl destination update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Destination id.
    pub id: String,
    /// What to change.
    #[command(flatten)]
    pub changes: super::ConfigUpdateArgs,
}

/// Prints one destination.
pub fn print_destination(out: Output, d: &v1::Destination) {
    match out {
        Output::Json => print_json(&json::destination(d)),
        Output::Table | Output::Csv => {
            let config = json::destination(d)["config"].to_string();
            out!(
                "{}",
                details(&[
                    ("id", d.id.clone()),
                    ("display name", d.display_name.clone()),
                    ("type", d.r#type.clone()),
                    ("enabled", d.enabled.unwrap_or(false).to_string()),
                    ("config", config),
                    ("secrets set", list(&d.secret_fields_set)),
                    ("created", time(d.create_time.as_ref())),
                    ("updated", time(d.update_time.as_ref())),
                ])
            );
        }
    }
}

fn kind_name(kind: i32) -> &'static str {
    match v1::ActionKind::try_from(kind) {
        Ok(v1::ActionKind::Upsert) => "upsert (added, updated)",
        Ok(v1::ActionKind::Delete) => "delete (deleted)",
        Ok(v1::ActionKind::Mirror) => "mirror (added, updated, deleted)",
        _ => "?",
    }
}

fn type_name(t: i32) -> &'static str {
    v1::FieldType::try_from(t).map_or("?", |t| match t {
        v1::FieldType::Unspecified => "?",
        v1::FieldType::String => "string",
        v1::FieldType::Integer => "integer",
        v1::FieldType::Number => "number",
        v1::FieldType::Boolean => "boolean",
        v1::FieldType::Datetime => "datetime",
        v1::FieldType::Object => "object",
        v1::FieldType::Array => "array",
        v1::FieldType::Any => "any",
    })
}

/// One row per field; nested fields follow their parent as `parent.child` (`parent[].child`
/// inside an array of objects).
fn field_rows(fields: &[v1::FieldSpec]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    push_field_rows(&mut rows, "", fields);
    rows
}

fn push_field_rows(rows: &mut Vec<Vec<String>>, prefix: &str, fields: &[v1::FieldSpec]) {
    for f in fields {
        let mut flags = Vec::new();
        if f.required {
            flags.push("required");
        }
        if f.secret {
            flags.push("secret");
        }
        let name = format!("{prefix}{}", f.name);
        rows.push(vec![
            name.clone(),
            type_name(f.r#type).to_string(),
            flags.join(","),
            f.description.clone(),
        ]);
        if !f.children.is_empty() {
            let inner = if f.r#type == v1::FieldType::Array as i32 {
                format!("{name}[].")
            } else {
                format!("{name}.")
            };
            push_field_rows(rows, &inner, &f.children);
        }
    }
}

fn print_type_details(t: &v1::DestinationType) {
    outln!("{} ({}): {}", t.name, t.display_name, t.description);
    outln!("\nconfig:");
    out!(
        "{}",
        table(
            &["FIELD", "TYPE", "FLAGS", "DESCRIPTION"],
            &field_rows(&t.config_fields)
        )
    );
    for a in &t.actions {
        let modes: Vec<String> = a
            .sync_modes
            .iter()
            .filter_map(|m| v1::SyncMode::try_from(*m).ok())
            .map(|m| {
                m.as_str_name()
                    .trim_start_matches("SYNC_MODE_")
                    .to_lowercase()
            })
            .collect();
        outln!(
            "\naction {} ({}), {}{}{}: {}",
            a.name,
            a.display_name,
            kind_name(a.kind),
            if a.open_fields {
                ", accepts any field"
            } else {
                ""
            },
            if modes.is_empty() {
                String::new()
            } else {
                format!(", sync modes: {}", modes.join(", "))
            },
            a.description
        );
        if !a.fields.is_empty() {
            out!(
                "{}",
                table(
                    &["FIELD", "TYPE", "FLAGS", "DESCRIPTION"],
                    &field_rows(&a.fields)
                )
            );
        }
    }
    if let Some(l) = &t.default_limits {
        outln!(
            "\ndefault limits: {} req/s (burst {}), {} records per request, {} in flight, {} attempts",
            l.requests_per_second,
            l.burst,
            l.batch_size,
            l.max_in_flight,
            l.max_attempts
        );
    }
}

/// Runs a destination command.
///
/// # Errors
/// Usage errors and the daemon's answer.
pub async fn run(ctx: &Context, command: DestinationCommand) -> Result<(), CliError> {
    let mut api = ctx.client.destinations();
    match command {
        DestinationCommand::Types { name } => {
            let types: Vec<v1::DestinationType> = api
                .list_destination_types(v1::ListDestinationTypesRequest {})
                .await?
                .into_inner()
                .destination_types
                .into_iter()
                .filter(|t| name.as_ref().is_none_or(|n| &t.name == n))
                .collect();
            if let (Some(n), true) = (&name, types.is_empty()) {
                return Err(CliError::Usage(format!(
                    "no destination type '{n}'; run `retl destination types` to list them"
                )));
            }
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({
                    "destination_types": types.iter().map(json::destination_type).collect::<Vec<_>>()
                })),
                Output::Table if name.is_some() => types.iter().for_each(print_type_details),
                Output::Table | Output::Csv => {
                    let rows: Vec<Vec<String>> = types
                        .iter()
                        .map(|t| {
                            vec![
                                t.name.clone(),
                                t.actions
                                    .iter()
                                    .map(|a| a.name.clone())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                t.description.clone(),
                            ]
                        })
                        .collect();
                    out!("{}", table(&["TYPE", "ACTIONS", "DESCRIPTION"], &rows));
                }
            }
        }
        DestinationCommand::Create(args) => {
            let config = parse_config(args.config_json.as_deref(), &args.config)?;
            let destination = api
                .create_destination(v1::CreateDestinationRequest {
                    destination_id: args.id,
                    destination: Some(v1::Destination {
                        display_name: args.display_name.unwrap_or_default(),
                        r#type: args.destination_type,
                        config: Some(map_to_struct(config)),
                        enabled: Some(!args.disabled),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner();
            print_destination(ctx.output, &destination);
        }
        DestinationCommand::List => {
            let all = super::fetch_all(|page_token| {
                let mut api = api.clone();
                async move {
                    let page = api
                        .list_destinations(v1::ListDestinationsRequest {
                            page_size: 1000,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((page.destinations, page.next_page_token))
                }
            })
            .await?;
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({
                    "destinations": all.iter().map(json::destination).collect::<Vec<_>>()
                })),
                Output::Table | Output::Csv => {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|d| {
                            vec![
                                d.id.clone(),
                                d.r#type.clone(),
                                d.enabled.unwrap_or(false).to_string(),
                                d.display_name.clone(),
                                time(d.update_time.as_ref()),
                            ]
                        })
                        .collect();
                    out!(
                        "{}",
                        table(&["ID", "TYPE", "ENABLED", "DISPLAY NAME", "UPDATED"], &rows)
                    );
                }
            }
        }
        DestinationCommand::Get { id } => {
            let d = api
                .get_destination(v1::GetDestinationRequest { destination_id: id })
                .await?
                .into_inner();
            print_destination(ctx.output, &d);
        }
        DestinationCommand::Update(args) => {
            let update = args.changes.into_update()?;
            let d = api
                .update_destination(v1::UpdateDestinationRequest {
                    destination: Some(v1::Destination {
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
            print_destination(ctx.output, &d);
        }
        DestinationCommand::Delete { id } => {
            api.delete_destination(v1::DeleteDestinationRequest {
                destination_id: id.clone(),
            })
            .await?;
            super::print_deleted(ctx.output, "destination", &id);
        }
        DestinationCommand::Test { id } => {
            let r = api
                .test_destination(v1::TestDestinationRequest { destination_id: id })
                .await?
                .into_inner();
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({"message": r.message})),
                Output::Table | Output::Csv => outln!("ok: {}", r.message),
            }
        }
        DestinationCommand::Fields { id, action } => {
            let r = api
                .list_action_fields(v1::ListActionFieldsRequest {
                    destination_id: id,
                    action,
                })
                .await?
                .into_inner();
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({
                    "fields": r.fields.iter().map(json::field_spec).collect::<Vec<_>>()
                })),
                Output::Table | Output::Csv => out!(
                    "{}",
                    table(
                        &["FIELD", "TYPE", "FLAGS", "DESCRIPTION"],
                        &field_rows(&r.fields)
                    )
                ),
            }
        }
        DestinationCommand::Enable { id } => set_enabled(ctx, id, true).await?,
        DestinationCommand::Disable { id } => set_enabled(ctx, id, false).await?,
    }
    Ok(())
}

async fn set_enabled(ctx: &Context, id: String, enabled: bool) -> Result<(), CliError> {
    let d = ctx
        .client
        .destinations()
        .update_destination(v1::UpdateDestinationRequest {
            destination: Some(v1::Destination {
                id,
                enabled: Some(enabled),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["enabled".to_string()],
            }),
        })
        .await?
        .into_inner();
    match ctx.output {
        Output::Json => print_json(&json::destination(&d)),
        Output::Table | Output::Csv => outln!(
            "destination {} is now {}",
            d.id,
            if enabled { "enabled" } else { "disabled" }
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, r#type: v1::FieldType, children: Vec<v1::FieldSpec>) -> v1::FieldSpec {
        v1::FieldSpec {
            name: name.to_string(),
            r#type: r#type as i32,
            children,
            ..Default::default()
        }
    }

    #[test]
    fn nested_fields_are_listed_under_their_parent() {
        let fields = [
            field("email", v1::FieldType::String, vec![]),
            field(
                "address",
                v1::FieldType::Object,
                vec![field("city", v1::FieldType::String, vec![])],
            ),
            field(
                "lines",
                v1::FieldType::Array,
                vec![field("sku", v1::FieldType::String, vec![])],
            ),
        ];
        let names: Vec<_> = field_rows(&fields)
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        assert_eq!(
            names,
            ["email", "address", "address.city", "lines", "lines[].sku"]
        );
    }
}
