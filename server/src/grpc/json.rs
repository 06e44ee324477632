//! `retl.v1` messages as JSON, for `--output json` (prost messages do not implement serde).
//!
//! The shape follows the proto3 JSON mapping with the original (snake_case) field names: enums
//! by value name (`RUN_STATUS_SUCCEEDED`), timestamps as RFC 3339 strings, `Struct`s as objects.
//! 64-bit counts are plain JSON numbers so that `jq` arithmetic works.

use retl_proto::v1;
use serde_json::{Map, Value, json};

use crate::grpc::convert::{from_timestamp, struct_to_map, value_to_json};

fn ts(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(from_timestamp)
        .map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

fn config(s: Option<&prost_types::Struct>) -> Value {
    Value::Object(s.cloned().map(struct_to_map).unwrap_or_default())
}

fn enum_name<E: TryFrom<i32>>(v: i32, name: impl Fn(&E) -> &'static str) -> Value {
    E::try_from(v).map_or_else(|_| json!(v), |e| json!(name(&e)))
}

/// A field spec.
pub fn field_spec(f: &v1::FieldSpec) -> Value {
    json!({
        "name": f.name,
        "type": enum_name(f.r#type, v1::FieldType::as_str_name),
        "required": f.required,
        "secret": f.secret,
        "description": f.description,
        "children": f.children.iter().map(field_spec).collect::<Vec<_>>(),
    })
}

/// A column.
pub fn column(c: &v1::Column) -> Value {
    json!({"name": c.name, "data_type": c.data_type, "nullable": c.nullable})
}

/// A source.
pub fn source(s: &v1::Source) -> Value {
    json!({
        "id": s.id,
        "display_name": s.display_name,
        "type": s.r#type,
        "config": config(s.config.as_ref()),
        "secret_fields_set": s.secret_fields_set,
        "create_time": ts(s.create_time.as_ref()),
        "update_time": ts(s.update_time.as_ref()),
    })
}

/// A table.
pub fn table(t: &v1::Table) -> Value {
    json!({
        "schema": t.schema,
        "name": t.name,
        "kind": t.kind,
        "location": t.location,
        "columns": t.columns.iter().map(column).collect::<Vec<_>>(),
    })
}

/// A model.
pub fn model(m: &v1::Model) -> Value {
    json!({
        "id": m.id,
        "display_name": m.display_name,
        "source_id": m.source_id,
        "sql": m.sql,
        "unique_id": m.unique_id,
        "columns": m.columns.iter().map(column).collect::<Vec<_>>(),
        "create_time": ts(m.create_time.as_ref()),
        "update_time": ts(m.update_time.as_ref()),
    })
}

/// A preview.
pub fn preview(p: &v1::PreviewModelResponse) -> Value {
    json!({
        "columns": p.columns.iter().map(column).collect::<Vec<_>>(),
        "rows": p.rows.iter().map(|r| config(Some(r))).collect::<Vec<_>>(),
        "cached": p.cached,
    })
}

/// A destination.
pub fn destination(d: &v1::Destination) -> Value {
    json!({
        "id": d.id,
        "display_name": d.display_name,
        "type": d.r#type,
        "config": config(d.config.as_ref()),
        "secret_fields_set": d.secret_fields_set,
        "enabled": d.enabled.unwrap_or(false),
        "create_time": ts(d.create_time.as_ref()),
        "update_time": ts(d.update_time.as_ref()),
    })
}

/// Delivery limits.
pub fn limits(l: &v1::DeliveryLimits) -> Value {
    json!({
        "requests_per_second": l.requests_per_second,
        "burst": l.burst,
        "batch_size": l.batch_size,
        "max_batch_bytes": l.max_batch_bytes,
        "max_in_flight": l.max_in_flight,
        "max_attempts": l.max_attempts,
        "initial_backoff_ms": l.initial_backoff_ms,
        "max_backoff_ms": l.max_backoff_ms,
        "timeout_ms": l.timeout_ms,
    })
}

/// An action.
pub fn action(a: &v1::Action) -> Value {
    json!({
        "name": a.name,
        "display_name": a.display_name,
        "description": a.description,
        "kind": enum_name(a.kind, v1::ActionKind::as_str_name),
        "fields": a.fields.iter().map(field_spec).collect::<Vec<_>>(),
        "open_fields": a.open_fields,
        "sync_modes": a.sync_modes.iter().map(|m| enum_name(*m, v1::SyncMode::as_str_name)).collect::<Vec<_>>(),
    })
}

/// A destination type.
pub fn destination_type(t: &v1::DestinationType) -> Value {
    json!({
        "name": t.name,
        "display_name": t.display_name,
        "description": t.description,
        "config_fields": t.config_fields.iter().map(field_spec).collect::<Vec<_>>(),
        "actions": t.actions.iter().map(action).collect::<Vec<_>>(),
        "default_limits": t.default_limits.as_ref().map_or(Value::Null, limits),
    })
}

/// A field mapping.
pub fn field_mapping(f: &v1::FieldMapping) -> Value {
    let mut obj = Map::new();
    obj.insert("field".into(), json!(f.field));
    match &f.source {
        Some(v1::field_mapping::Source::Column(c)) => {
            obj.insert("column".into(), json!(c));
        }
        Some(v1::field_mapping::Source::Literal(v)) => {
            obj.insert("literal".into(), value_to_json(v.clone()));
        }
        Some(v1::field_mapping::Source::Template(t)) => {
            obj.insert("template".into(), json!(t));
        }
        Some(v1::field_mapping::Source::Expression(e)) => {
            obj.insert("expression".into(), json!(e));
        }
        None => {}
    }
    Value::Object(obj)
}

/// A mapping.
pub fn mapping(m: &v1::Mapping) -> Value {
    json!({
        "id": m.id,
        "display_name": m.display_name,
        "model_id": m.model_id,
        "destination_id": m.destination_id,
        "action": m.action,
        "fields": m.fields.iter().map(field_mapping).collect::<Vec<_>>(),
        "selection": m.selection.as_ref().map_or(Value::Null, |s| json!({
            "added": s.added, "updated": s.updated, "deleted": s.deleted,
        })),
        "initial_sync": enum_name(m.initial_sync, v1::InitialSync::as_str_name),
        "sync_mode": enum_name(m.sync_mode, v1::SyncMode::as_str_name),
        "null_values": enum_name(m.null_values, v1::NullValues::as_str_name),
        "enabled": m.enabled.unwrap_or(false),
        "schedule": m.schedule.as_ref().map_or(Value::Null, schedule),
        "retry_policy": m.retry_policy.as_ref().map_or(Value::Null, |p| json!({
            "max_runs": p.max_runs,
            "max_age": p.max_age.as_ref().map(|d| format!("{}s", d.seconds)),
        })),
        "alerts": m.alerts.as_ref().map_or(Value::Null, |a| json!({
            "webhook_urls": a.webhook_urls,
            "failed_record_share": a.failed_record_share,
        })),
        "schedule_status": m.schedule_status.as_ref().map_or(Value::Null, |s| json!({
            "next_run_times": s.next_run_times.iter().map(|t| ts(Some(t))).collect::<Vec<_>>(),
            "last_tick_time": ts(s.last_tick_time.as_ref()),
            "last_tick_outcome": s.last_tick_outcome,
            "last_tick_missed": s.last_tick_missed,
        })),
        "create_time": ts(m.create_time.as_ref()),
        "update_time": ts(m.update_time.as_ref()),
    })
}

/// A schedule, as the API's JSON mapping spells it.
fn schedule(s: &v1::Schedule) -> Value {
    use v1::schedule::Schedule as Kind;
    let mut value = match &s.schedule {
        None => json!({}),
        Some(Kind::Interval(d)) => json!({"interval": format!("{}s", d.seconds)}),
        Some(Kind::DailyAt(t)) => json!({"daily_at": t}),
        Some(Kind::Cron(c)) => json!({"cron": c}),
        Some(Kind::DayAndTime(dt)) => json!({"day_and_time": {
            "days": dt.days.iter().map(|d| enum_name(*d, v1::DayOfWeek::as_str_name)).collect::<Vec<_>>(),
            "hour": dt.hour,
        }}),
        Some(Kind::AfterMapping(m)) => json!({"after_mapping": m}),
    };
    if !s.time_zone.is_empty() {
        value["time_zone"] = json!(s.time_zone);
    }
    value
}

/// A sync run.
pub fn sync_run(r: &v1::SyncRun) -> Value {
    let counts = r.counts.unwrap_or_default();
    let timings = r.timings.unwrap_or_default();
    json!({
        "id": r.id,
        "mapping_id": r.mapping_id,
        "status": enum_name(r.status, v1::RunStatus::as_str_name),
        "stage": enum_name(r.stage, v1::RunStage::as_str_name),
        "trigger": r.trigger,
        "create_time": ts(r.create_time.as_ref()),
        "start_time": ts(r.start_time.as_ref()),
        "end_time": ts(r.end_time.as_ref()),
        "counts": {
            "extracted": counts.extracted,
            "added": counts.added,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "rejected": counts.rejected,
            "deleted": counts.deleted,
            "deletes_held_back": counts.deletes_held_back,
            "selected": counts.selected,
            "not_selected": counts.not_selected,
            "delivered": counts.delivered,
            "failed": counts.failed,
            "given_up": counts.given_up,
            "newly_given_up": counts.newly_given_up,
            "requests": counts.requests,
            "request_errors": counts.request_errors,
            "throttled": counts.throttled,
            "retries": counts.retries,
        },
        "timings": {
            "queued_ms": timings.queued_ms,
            "extract_ms": timings.extract_ms,
            "diff_ms": timings.diff_ms,
            "deliver_ms": timings.deliver_ms,
            "commit_ms": timings.commit_ms,
            "total_ms": timings.total_ms,
            "request_ms": timings.request_ms,
        },
        "record_errors": r.record_errors.iter().map(|e| json!({
            "key": e.key,
            "change": enum_name(e.change, v1::ChangeKind::as_str_name),
            "stage": e.stage,
            "reason": e.reason,
        })).collect::<Vec<_>>(),
        "record_errors_omitted": r.record_errors_omitted,
        "error": r.error,
        "warnings": r.warnings,
        "staging_path": r.staging_path,
        "dry_run": r.dry_run.as_ref().map(dry_run_report),
    })
}

/// An explanation of one record; the payload's fields as a JSON object.
pub fn record_explanation(e: &v1::RecordExplanation) -> Value {
    let or_null = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
    json!({
        "mapping_id": e.mapping_id,
        "key": e.key,
        "verdict": e.verdict,
        "reason": e.reason,
        "extract_run_id": e.extract_run_id,
        "extract_time": ts(e.extract_time.as_ref()),
        "rows_in_extract": e.rows_in_extract,
        "last_seen_run_id": or_null(&e.last_seen_run_id),
        "last_seen_time": ts(e.last_seen_time.as_ref()),
        "left_run_id": or_null(&e.left_run_id),
        "left_time": ts(e.left_time.as_ref()),
        "extract_fingerprint": or_null(&e.extract_fingerprint),
        "state": e.state.as_ref().map(|s| json!({
            "fingerprint": s.fingerprint,
            "run_id": or_null(&s.run_id),
            "synced_time": ts(s.synced_time.as_ref()),
            "sent": s.sent,
        })),
        "failure": e.failure.as_ref().map(|f| json!({
            "change": enum_name(f.change, v1::ChangeKind::as_str_name),
            "attempts": f.attempts,
            "last_run_id": f.last_run_id,
            "last_error": f.last_error,
            "given_up": f.given_up,
        })),
        "next_change": enum_name(e.next_change, v1::ChangeKind::as_str_name),
        "next_outcome": or_null(&e.next_outcome),
        "payload_fields": serde_json::from_str::<Value>(&e.payload_fields_json).ok(),
        "errors": e.errors.iter().map(|r| json!({
            "run_id": r.run_id, "stage": r.stage, "reason": r.reason,
        })).collect::<Vec<_>>(),
        "blockers": e.blockers,
        "detail": or_null(&e.detail),
    })
}

/// A dry run's report; each sample's fields as a JSON object.
fn dry_run_report(r: &v1::DryRunReport) -> Value {
    json!({
        "samples": r.samples.iter().map(|s| json!({
            "change": enum_name(s.change, v1::ChangeKind::as_str_name),
            "key": s.key,
            "fields": serde_json::from_str::<Value>(&s.fields_json)
                .unwrap_or_else(|_| json!(s.fields_json)),
        })).collect::<Vec<_>>(),
        "requests": r.requests,
        "eta_seconds": r.eta_seconds,
        "eta_basis": r.eta_basis,
        "rate_limited_seconds": r.rate_limited_seconds,
        "latency_bound_seconds": r.latency_bound_seconds,
        "mean_latency_ms": r.mean_latency_ms,
        "daily_request_budget": r.daily_request_budget,
        "requests_last_24h": r.requests_last_24h,
        "over_budget": r.over_budget,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_json_uses_enum_names() {
        let run = v1::SyncRun {
            id: "r1".into(),
            status: v1::RunStatus::Succeeded as i32,
            stage: v1::RunStage::Done as i32,
            counts: Some(v1::RunCounts {
                added: 3,
                ..Default::default()
            }),
            ..Default::default()
        };
        let j = sync_run(&run);
        assert_eq!(j["status"], "RUN_STATUS_SUCCEEDED");
        assert_eq!(j["stage"], "RUN_STAGE_DONE");
        assert_eq!(j["counts"]["added"], 3);
    }
}
