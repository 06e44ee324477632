//! Conversions between `retl.v1` messages and engine types.
//!
//! Secrets never leave: sources and destinations are converted with their secret field *names*
//! only (`secret_fields_set`), never their values.

use chrono::{DateTime, TimeZone, Utc};
use prost_types::value::Kind;
use retl_engine::catalog::destination::{DestinationDef, LIMITS_KEY};
use retl_engine::catalog::model::{ModelDef, Preview};
use retl_engine::catalog::source::{ConfigMap, SourceDef};
use retl_engine::connector::DestinationType;
use retl_engine::destination::spec::{ActionKind, FieldType, SyncMode};
use retl_engine::destination::{ActionSpec, ConfigField, DeliveryLimits, FieldInfo, FieldSpec};
use retl_engine::source::{ColumnInfo, TableInfo};
use retl_proto::v1;

mod mapping;
mod run;
mod schedule;

pub use mapping::*;
pub use run::*;
pub use schedule::*;

// ---- JSON <-> google.protobuf.Struct / Value ----

/// Largest integer an `f64` holds exactly (2^53).
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// A JSON value as a `google.protobuf.Value`. Numbers become doubles (protobuf has no other
/// number kind), except integers beyond ±2^53, which a double would round: those become
/// strings with their exact digits.
pub fn json_to_value(json: serde_json::Value) -> prost_types::Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) if !fits_double(&n) => Kind::StringValue(n.to_string()),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(map_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Whether a double holds the number exactly enough: floats always (they are doubles), integers
/// within ±2^53.
fn fits_double(n: &serde_json::Number) -> bool {
    const LIMIT: u64 = 1 << 53;
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => i.unsigned_abs() <= LIMIT,
        (None, Some(u)) => u <= LIMIT,
        (None, None) => true,
    }
}

/// A JSON object as a `google.protobuf.Struct`.
pub fn map_to_struct(map: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .into_iter()
            .map(|(k, v)| (k, json_to_value(v)))
            .collect(),
    }
}

/// A `google.protobuf.Value` as JSON. Whole numbers within ±2^53 become JSON integers, so that
/// config values like `port: 5432` keep their integer type.
pub fn value_to_json(value: prost_types::Value) -> serde_json::Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::NumberValue(n)) => number_to_json(n),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.into_iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_map(s)),
    }
}

fn number_to_json(n: f64) -> serde_json::Value {
    if n.fract() == 0.0 && n.abs() <= MAX_EXACT_INT {
        // Exact: |n| <= 2^53 and whole.
        #[expect(
            clippy::cast_possible_truncation,
            reason = "checked whole and within ±2^53"
        )]
        let i = n as i64;
        serde_json::Value::from(i)
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// A `google.protobuf.Struct` as a JSON object.
pub fn struct_to_map(s: prost_types::Struct) -> ConfigMap {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, value_to_json(v)))
        .collect()
}

// ---- Timestamp <-> chrono ----

/// A UTC time as a `google.protobuf.Timestamp`.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A `google.protobuf.Timestamp` as a UTC time; `None` when out of range.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.nanos).ok()?;
    Utc.timestamp_opt(t.seconds, nanos).single()
}

// ---- shared ----

fn field_type(t: FieldType) -> v1::FieldType {
    match t {
        FieldType::String => v1::FieldType::String,
        FieldType::Integer => v1::FieldType::Integer,
        FieldType::Number => v1::FieldType::Number,
        FieldType::Boolean => v1::FieldType::Boolean,
        FieldType::Datetime => v1::FieldType::Datetime,
        FieldType::Object => v1::FieldType::Object,
        FieldType::Array => v1::FieldType::Array,
        FieldType::Any => v1::FieldType::Any,
    }
}

/// An action field as proto, with its nested fields.
pub fn field_spec(f: &FieldSpec) -> v1::FieldSpec {
    v1::FieldSpec {
        name: f.name.to_string(),
        r#type: field_type(f.field_type) as i32,
        required: f.required,
        secret: false,
        description: f.description.to_string(),
        children: f.children.iter().map(field_spec).collect(),
    }
}

/// An account's action field as proto.
pub fn field_info(f: &FieldInfo) -> v1::FieldSpec {
    v1::FieldSpec {
        name: f.name.to_string(),
        r#type: field_type(f.field_type) as i32,
        required: f.required,
        secret: false,
        description: f.description.to_string(),
        children: f.children.iter().map(field_info).collect(),
    }
}

/// A connector config field as proto (config fields never nest).
pub fn config_field(f: &ConfigField) -> v1::FieldSpec {
    v1::FieldSpec {
        name: f.name.to_string(),
        r#type: field_type(f.field_type) as i32,
        required: f.required,
        secret: f.secret,
        description: f.description.to_string(),
        children: Vec::new(),
    }
}

/// A column as proto.
pub fn column(c: ColumnInfo) -> v1::Column {
    v1::Column {
        name: c.name,
        data_type: c.data_type,
        nullable: c.nullable,
    }
}

/// The config of a create or update request (absent = empty).
pub fn config(s: Option<prost_types::Struct>) -> ConfigMap {
    s.map(struct_to_map).unwrap_or_default()
}

// ---- sources ----

/// A source as proto: non-secret config plus the names of the secret fields that are set.
pub fn source(def: SourceDef) -> v1::Source {
    let mut config = def.config;
    def.extraction.insert_into(&mut config);
    v1::Source {
        id: def.id.to_string(),
        display_name: def.display_name,
        r#type: def.source_type,
        config: Some(map_to_struct(config)),
        secret_fields_set: def.secrets.into_keys().collect(),
        create_time: Some(timestamp(def.create_time)),
        update_time: Some(timestamp(def.update_time)),
    }
}

/// A table as proto.
pub fn table(t: TableInfo) -> v1::Table {
    v1::Table {
        schema: t.schema,
        name: t.name,
        kind: t.kind,
        location: t.location,
        columns: t.columns.into_iter().map(column).collect(),
    }
}

// ---- models ----

/// A model as proto.
pub fn model(def: ModelDef) -> v1::Model {
    v1::Model {
        id: def.id.to_string(),
        display_name: def.display_name,
        source_id: def.source_id.to_string(),
        sql: def.sql,
        unique_id: def.unique_id,
        columns: def.columns.into_iter().map(column).collect(),
        create_time: Some(timestamp(def.create_time)),
        update_time: Some(timestamp(def.update_time)),
    }
}

/// A preview as proto.
pub fn preview(p: Preview) -> v1::PreviewModelResponse {
    v1::PreviewModelResponse {
        columns: p.columns.into_iter().map(column).collect(),
        rows_json: p
            .rows
            .iter()
            .map(|row| serde_json::Value::Object(row.clone()).to_string())
            .collect(),
        rows: p.rows.into_iter().map(map_to_struct).collect(),
        cached: p.cached,
    }
}

// ---- destinations ----

/// A destination as proto: non-secret config plus the names of the secret fields that are set.
pub fn destination(def: DestinationDef) -> v1::Destination {
    let mut config = def.config;
    if !def.limits.is_empty() {
        config.insert(
            LIMITS_KEY.to_string(),
            serde_json::Value::Object(def.limits),
        );
    }
    v1::Destination {
        id: def.id.to_string(),
        display_name: def.display_name,
        r#type: def.destination_type,
        config: Some(map_to_struct(config)),
        secret_fields_set: def.secrets.into_keys().collect(),
        enabled: Some(def.enabled),
        create_time: Some(timestamp(def.create_time)),
        update_time: Some(timestamp(def.update_time)),
    }
}

fn action_kind(k: ActionKind) -> v1::ActionKind {
    match k {
        ActionKind::Upsert => v1::ActionKind::Upsert,
        ActionKind::Delete => v1::ActionKind::Delete,
        ActionKind::Mirror => v1::ActionKind::Mirror,
    }
}

/// An action spec as proto.
pub fn action(a: &ActionSpec) -> v1::Action {
    v1::Action {
        name: a.name.to_string(),
        display_name: a.display_name.to_string(),
        description: a.description.to_string(),
        kind: action_kind(a.kind) as i32,
        fields: a.fields.iter().map(field_spec).collect(),
        open_fields: a.open_fields,
        sync_modes: a.sync_modes.iter().map(|m| sync_mode(*m) as i32).collect(),
    }
}

/// A sync mode as proto.
pub fn sync_mode(m: SyncMode) -> v1::SyncMode {
    match m {
        SyncMode::Upsert => v1::SyncMode::Upsert,
        SyncMode::Update => v1::SyncMode::Update,
        SyncMode::Create => v1::SyncMode::Create,
        SyncMode::Add => v1::SyncMode::Add,
        SyncMode::Remove => v1::SyncMode::Remove,
    }
}

/// A sync mode from proto (unspecified = the action's default).
pub fn sync_mode_from(m: v1::SyncMode) -> Option<SyncMode> {
    match m {
        v1::SyncMode::Unspecified => None,
        v1::SyncMode::Upsert => Some(SyncMode::Upsert),
        v1::SyncMode::Update => Some(SyncMode::Update),
        v1::SyncMode::Create => Some(SyncMode::Create),
        v1::SyncMode::Add => Some(SyncMode::Add),
        v1::SyncMode::Remove => Some(SyncMode::Remove),
    }
}

/// Delivery limits as proto.
pub fn limits(l: &DeliveryLimits) -> v1::DeliveryLimits {
    v1::DeliveryLimits {
        requests_per_second: l.requests_per_second,
        burst: l.burst,
        batch_size: l.batch_size as u64,
        max_batch_bytes: l.max_batch_bytes as u64,
        max_in_flight: l.max_in_flight as u64,
        max_attempts: l.max_attempts,
        initial_backoff_ms: l.initial_backoff_ms,
        max_backoff_ms: l.max_backoff_ms,
        timeout_ms: l.timeout_ms,
        daily_request_budget: l.daily_request_budget,
    }
}

/// A destination type as proto.
pub fn destination_type(t: &DestinationType) -> v1::DestinationType {
    v1::DestinationType {
        name: t.name.to_string(),
        display_name: t.display_name.to_string(),
        description: t.description.to_string(),
        config_fields: t.config.iter().map(config_field).collect(),
        actions: t.actions.iter().map(action).collect(),
        default_limits: Some(limits(&(t.default_limits)())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_struct() {
        let v = json!({"a": 1, "b": [true, null, "x", 2.5], "c": {"d": -7}, "big": 9007199254740993u64});
        let serde_json::Value::Object(map) = v else {
            unreachable!()
        };
        let back = struct_to_map(map_to_struct(map));
        assert_eq!(back["a"], json!(1));
        assert!(back["a"].is_i64());
        assert_eq!(back["b"], json!([true, null, "x", 2.5]));
        assert_eq!(back["c"], json!({"d": -7}));
        // Beyond 2^53 a double would round it: it crosses as a string with its exact digits.
        assert_eq!(back["big"], json!("9007199254740993"));
    }

    #[test]
    fn timestamps_round_trip() {
        let t = Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .single()
            .unwrap();
        assert_eq!(from_timestamp(&timestamp(t)), Some(t));
    }

    #[test]
    fn field_mappings_need_a_source() {
        let err = field_mappings(
            "mapping.fields",
            vec![v1::FieldMapping {
                field: "email".into(),
                source: None,
            }],
        )
        .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("mapping.fields[0]"));
    }

    #[test]
    fn secrets_are_not_converted() {
        let mut secrets = std::collections::BTreeMap::new();
        secrets.insert(
            "password".to_string(),
            retl_engine::secret::Secret::new("hunter2"),
        );
        let def = SourceDef {
            id: retl_engine::id::SourceId::new("pg"),
            display_name: "pg".into(),
            source_type: "postgres".into(),
            config: ConfigMap::new(),
            secrets,
            extraction: Default::default(),
            create_time: Utc::now(),
            update_time: Utc::now(),
        };
        let proto = source(def);
        assert_eq!(proto.secret_fields_set, vec!["password".to_string()]);
        assert!(!format!("{proto:?}").contains("hunter2"));
    }
}
