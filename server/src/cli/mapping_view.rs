//! How `retl mapping get` / `create` / `update` print a mapping.

use retl_proto::v1;

use crate::cli::output::{Output, details, out, print_json, time};
use crate::grpc::convert::value_to_json;
use crate::grpc::json;

/// A record selection in words: `added,updated`, `none`, `-` when absent.
pub fn describe_selection(s: Option<&v1::RecordSelection>) -> String {
    let Some(s) = s else {
        return "-".into();
    };
    let names: Vec<&str> = [
        (s.added, "added"),
        (s.updated, "updated"),
        (s.deleted, "deleted"),
    ]
    .into_iter()
    .filter_map(|(on, n)| on.then_some(n))
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

/// A field mapping in words: `email <- column email_address`.
pub fn describe_field(f: &v1::FieldMapping) -> String {
    match &f.source {
        Some(v1::field_mapping::Source::Column(c)) => format!("{} <- column {c}", f.field),
        Some(v1::field_mapping::Source::Literal(v)) => {
            format!("{} <- literal {}", f.field, value_to_json(v.clone()))
        }
        Some(v1::field_mapping::Source::Template(t)) => format!("{} <- template {t}", f.field),
        Some(v1::field_mapping::Source::Expression(e)) => {
            format!("{} <- expression {e}", f.field)
        }
        None => format!("{} <- ?", f.field),
    }
}

/// Prints one mapping.
pub fn print_mapping(out: Output, m: &v1::Mapping) {
    match out {
        Output::Json => print_json(&json::mapping(m)),
        Output::Table | Output::Csv => {
            let initial = match v1::InitialSync::try_from(m.initial_sync) {
                Ok(v1::InitialSync::MarkExistingSynced) => "mark-existing-synced",
                _ => "backfill",
            };
            let mut pairs = vec![
                ("id", m.id.clone()),
                ("display name", m.display_name.clone()),
                ("model", m.model_id.clone()),
                ("destination", m.destination_id.clone()),
                ("action", m.action.clone()),
                ("selection", describe_selection(m.selection.as_ref())),
                (
                    "sync mode",
                    v1::SyncMode::try_from(m.sync_mode)
                        .ok()
                        .filter(|mode| *mode != v1::SyncMode::Unspecified)
                        .map_or("action default".to_string(), |mode| {
                            mode.as_str_name()
                                .trim_start_matches("SYNC_MODE_")
                                .to_lowercase()
                        }),
                ),
                (
                    "null values",
                    match v1::NullValues::try_from(m.null_values) {
                        Ok(v1::NullValues::Omit) => "omit".to_string(),
                        _ => "send".to_string(),
                    },
                ),
                ("initial sync", initial.to_string()),
                ("enabled", m.enabled.unwrap_or(false).to_string()),
            ];
            pairs.extend(crate::cli::schedule::rows(m));
            if let Some(p) = &m.retry_policy {
                let days = p.max_age.as_ref().map_or(0, |d| d.seconds) as f64 / 86_400.0;
                pairs.push((
                    "retry policy",
                    format!(
                        "give a failing record up after {} runs or {days:.1} days",
                        p.max_runs
                    ),
                ));
            }
            if let Some(a) = &m.alerts {
                let targets = if a.webhook_urls.is_empty() {
                    "the daemon's --alert-webhook targets".to_string()
                } else {
                    format!(
                        "{} webhook(s) and the daemon's targets",
                        a.webhook_urls.len()
                    )
                };
                pairs.push((
                    "alerts",
                    format!(
                        "to {targets}; failed records alert above {:.1} %",
                        a.failed_record_share * 100.0
                    ),
                ));
            }
            pairs.extend([
                ("created", time(m.create_time.as_ref())),
                ("updated", time(m.update_time.as_ref())),
            ]);
            if m.fields.is_empty() {
                pairs.push(("fields", "-".into()));
            }
            for (i, f) in m.fields.iter().enumerate() {
                pairs.push((if i == 0 { "fields" } else { "" }, describe_field(f)));
            }
            out!("{}", details(&pairs));
        }
    }
}
