//! Mappings: field mappings, record selection, sync modes, NULL handling.

use retl_engine::mapping::select::RecordSelection;
use retl_engine::mapping::spec::{FieldMapping, FieldSource, InitialSync, MappingDef, NullValues};
use retl_engine::sync::failures::RetryPolicy;
use retl_proto::v1;
use tonic::Status;

use super::{json_to_value, sync_mode, timestamp, value_to_json};
use crate::grpc::status::invalid_argument;

/// NULL handling as proto.
pub fn null_values(n: NullValues) -> v1::NullValues {
    match n {
        NullValues::Send => v1::NullValues::Send,
        NullValues::Omit => v1::NullValues::Omit,
    }
}

/// NULL handling from proto (unspecified = send).
pub fn null_values_from(n: v1::NullValues) -> NullValues {
    match n {
        v1::NullValues::Unspecified | v1::NullValues::Send => NullValues::Send,
        v1::NullValues::Omit => NullValues::Omit,
    }
}

/// A field mapping as proto.
pub fn field_mapping(f: FieldMapping) -> v1::FieldMapping {
    let source = match f.source {
        FieldSource::Column(c) => v1::field_mapping::Source::Column(c),
        FieldSource::Literal(v) => v1::field_mapping::Source::Literal(json_to_value(v)),
        FieldSource::Template(t) => v1::field_mapping::Source::Template(t),
        FieldSource::Expression(e) => v1::field_mapping::Source::Expression(e),
    };
    v1::FieldMapping {
        field: f.field,
        source: Some(source),
    }
}

/// Field mappings from proto; `field` names the request field for errors
/// (e.g. `mapping.fields`).
pub fn field_mappings(
    field: &str,
    fields: Vec<v1::FieldMapping>,
) -> Result<Vec<FieldMapping>, Status> {
    fields
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            if f.field.is_empty() {
                return Err(invalid_argument(
                    &format!("{field}[{i}].field"),
                    "is required",
                ));
            }
            let source = match f.source {
                Some(v1::field_mapping::Source::Column(c)) if !c.is_empty() => {
                    FieldSource::Column(c)
                }
                Some(v1::field_mapping::Source::Column(_)) => {
                    return Err(invalid_argument(
                        &format!("{field}[{i}].column"),
                        "must name a model column",
                    ));
                }
                Some(v1::field_mapping::Source::Literal(v)) => {
                    FieldSource::Literal(value_to_json(v))
                }
                Some(v1::field_mapping::Source::Template(t)) if !t.trim().is_empty() => {
                    FieldSource::Template(t)
                }
                Some(v1::field_mapping::Source::Expression(e)) if !e.trim().is_empty() => {
                    FieldSource::Expression(e)
                }
                Some(v1::field_mapping::Source::Template(_)) => {
                    return Err(invalid_argument(
                        &format!("{field}[{i}].template"),
                        "is empty; write a template such as {{ first_name }} {{ last_name }}",
                    ));
                }
                Some(v1::field_mapping::Source::Expression(_)) => {
                    return Err(invalid_argument(
                        &format!("{field}[{i}].expression"),
                        "is empty; write a SQL expression such as lower(email)",
                    ));
                }
                None => {
                    return Err(invalid_argument(
                        &format!("{field}[{i}]"),
                        "needs a source: set `column`, `literal`, `template` or `expression`",
                    ));
                }
            };
            Ok(FieldMapping {
                field: f.field,
                source,
            })
        })
        .collect()
}

/// A record selection as proto.
pub fn selection(s: RecordSelection) -> v1::RecordSelection {
    v1::RecordSelection {
        added: s.added,
        updated: s.updated,
        deleted: s.deleted,
    }
}

/// A record selection from proto.
pub fn selection_from(s: v1::RecordSelection) -> RecordSelection {
    RecordSelection {
        added: s.added,
        updated: s.updated,
        deleted: s.deleted,
    }
}

/// An initial-sync mode as proto.
pub fn initial_sync(i: InitialSync) -> v1::InitialSync {
    match i {
        InitialSync::Backfill => v1::InitialSync::Backfill,
        InitialSync::MarkExistingSynced => v1::InitialSync::MarkExistingSynced,
    }
}

/// An initial-sync mode from proto (unspecified = backfill).
pub fn initial_sync_from(i: v1::InitialSync) -> InitialSync {
    match i {
        v1::InitialSync::Unspecified | v1::InitialSync::Backfill => InitialSync::Backfill,
        v1::InitialSync::MarkExistingSynced => InitialSync::MarkExistingSynced,
    }
}

/// A mapping as proto.
pub fn mapping(def: MappingDef) -> v1::Mapping {
    v1::Mapping {
        id: def.id.to_string(),
        display_name: def.display_name,
        model_id: def.model_id.to_string(),
        destination_id: def.destination_id.to_string(),
        action: def.action,
        fields: def.fields.into_iter().map(field_mapping).collect(),
        selection: Some(selection(def.selection)),
        initial_sync: initial_sync(def.initial_sync) as i32,
        enabled: Some(def.enabled),
        schedule: def.schedule.as_ref().map(super::schedule),
        schedule_status: None,
        retry_policy: Some(retry_policy(def.retry_policy)),
        alerts: Some(v1::AlertPolicy {
            webhook_urls: def.alerts.webhook_urls.clone(),
            failed_record_share: def.alerts.failed_record_share,
        }),
        sync_mode: def.sync_mode.map_or(v1::SyncMode::Unspecified, sync_mode) as i32,
        null_values: null_values(def.null_values) as i32,
        create_time: Some(timestamp(def.create_time)),
        update_time: Some(timestamp(def.update_time)),
    }
}

/// Alert settings from proto: a share of 0 takes the default (10 %).
pub fn alert_policy_from(p: v1::AlertPolicy) -> retl_engine::alert::AlertPolicy {
    retl_engine::alert::AlertPolicy {
        webhook_urls: p.webhook_urls,
        failed_record_share: if p.failed_record_share == 0.0 {
            retl_engine::alert::DEFAULT_FAILED_RECORD_SHARE
        } else {
            p.failed_record_share
        },
    }
}

/// A retry policy as proto.
pub fn retry_policy(p: RetryPolicy) -> v1::RetryPolicy {
    v1::RetryPolicy {
        max_runs: p.max_runs,
        max_age: Some(prost_types::Duration {
            seconds: i64::try_from(p.max_age.as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        }),
    }
}

/// A retry policy from proto: unset values take the defaults (5 runs, 14 days).
///
/// # Errors
/// A negative `max_age`.
pub fn retry_policy_from(p: v1::RetryPolicy) -> Result<RetryPolicy, Status> {
    let default = RetryPolicy::default();
    let max_age = match p.max_age {
        None => default.max_age,
        Some(d) if d.seconds >= 0 => std::time::Duration::from_secs(d.seconds.unsigned_abs()),
        Some(_) => {
            return Err(Status::invalid_argument(
                "mapping.retry_policy.max_age: must not be negative (at least 1 minute; default 14 days)",
            ));
        }
    };
    Ok(RetryPolicy {
        max_runs: if p.max_runs == 0 {
            default.max_runs
        } else {
            p.max_runs
        },
        max_age,
    })
}
