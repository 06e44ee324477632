//! Plain data describing connector configs, actions, their fields and delivery limits, plus the
//! [`Payload`] that actions send. Connectors declare these as `&'static` items; they are served by
//! `ListSourceTypes`/`ListDestinationTypes` and drive secret splitting and mapping validation.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The type of an action field or of a connector config field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// True or false.
    Boolean,
    /// An RFC 3339 timestamp.
    Datetime,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// Any JSON value.
    Any,
}

impl FieldType {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Datetime => "datetime",
            FieldType::Object => "object",
            FieldType::Array => "array",
            FieldType::Any => "any",
        }
    }
}

/// A key of a connector's configuration (a source's or a destination's), as its type declares
/// it. Distinct from [`FieldSpec`]: config keys can be secret and never nest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigField {
    /// The key in the config object.
    pub name: &'static str,
    /// Expected value type.
    pub field_type: FieldType,
    /// Whether a config must provide it.
    pub required: bool,
    /// Whether it is a credential: stored apart from the rest of the config and never returned
    /// by the API (the engine's secret splitting reads this).
    pub secret: bool,
    /// User-facing description.
    pub description: &'static str,
}

/// A field of an action: what a mapping may (or must) send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// Field name as it appears in payloads and mappings.
    pub name: &'static str,
    /// Expected value type.
    pub field_type: FieldType,
    /// Whether a mapping must provide it.
    pub required: bool,
    /// User-facing description.
    pub description: &'static str,
    /// The fields inside it: of the object for [`FieldType::Object`], of each element for an
    /// [`FieldType::Array`] of objects; empty for scalars (and for free-form objects).
    pub children: &'static [FieldSpec],
}

/// An action field as a destination's account has it, returned by
/// [`Destination::fields`](super::Destination::fields): the static [`FieldSpec`]s converted, or
/// fields discovered at run time (e.g. a CRM's custom properties). Owned (names and
/// descriptions are [`Cow`]s, children a `Vec`) so that discovered fields need no `'static`
/// data, while converting a static spec copies no strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldInfo {
    /// Field name as it appears in payloads and mappings.
    pub name: Cow<'static, str>,
    /// Expected value type.
    pub field_type: FieldType,
    /// Whether a mapping must provide it.
    pub required: bool,
    /// User-facing description.
    pub description: Cow<'static, str>,
    /// Nested fields (objects and arrays of objects); empty for scalars.
    pub children: Vec<FieldInfo>,
}

impl From<&'static FieldSpec> for FieldInfo {
    fn from(spec: &'static FieldSpec) -> Self {
        FieldInfo {
            name: Cow::Borrowed(spec.name),
            field_type: spec.field_type,
            required: spec.required,
            description: Cow::Borrowed(spec.description),
            children: FieldInfo::from_specs(spec.children),
        }
    }
}

impl FieldInfo {
    /// Every spec of a static list, converted (the default of `Destination::fields`).
    pub fn from_specs(specs: &'static [FieldSpec]) -> Vec<FieldInfo> {
        specs.iter().map(FieldInfo::from).collect()
    }
}

/// Which kinds of change an action handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// Receives added and updated records.
    Upsert,
    /// Receives deleted records (payload carries the key only).
    Delete,
    /// Receives added, updated and deleted records, each tagged with its change.
    Mirror,
}

/// How an action treats a record the destination may or may not already hold: Segment's
/// "sync modes". An action lists the modes its API supports ([`ActionSpec::sync_modes`], the
/// first being the default) and a mapping picks one; the connector reads it from
/// [`DeliveryContext::sync_mode`](super::DeliveryContext::sync_mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Create the record, or update it when it exists.
    Upsert,
    /// Update records that exist; a record the destination does not hold is rejected.
    Update,
    /// Create records that do not exist; a record the destination already holds is rejected.
    Create,
    /// Append (events, list memberships): every record is a new entry.
    Add,
    /// Remove the record (or its membership) from the destination.
    Remove,
}

impl SyncMode {
    /// Every mode, in declaration order.
    pub const ALL: [SyncMode; 5] = [
        SyncMode::Upsert,
        SyncMode::Update,
        SyncMode::Create,
        SyncMode::Add,
        SyncMode::Remove,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Upsert => "upsert",
            SyncMode::Update => "update",
            SyncMode::Create => "create",
            SyncMode::Add => "add",
            SyncMode::Remove => "remove",
        }
    }

    /// The mode named `name` (snake_case), if any.
    pub fn parse(name: &str) -> Option<SyncMode> {
        SyncMode::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// One operation a destination offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSpec {
    /// snake_case verb phrase, e.g. `upsert`, `upsert_contact`.
    pub name: &'static str,
    /// Human name, e.g. "Upsert Contact".
    pub display_name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Which changes it accepts.
    pub kind: ActionKind,
    /// Its fields. Empty with `open_fields` = any field name is accepted.
    pub fields: &'static [FieldSpec],
    /// Whether mappings may add fields not listed in `fields` (e.g. a webhook's free-form body).
    pub open_fields: bool,
    /// The sync modes the API supports for this action, the default first; empty = the action
    /// has one behaviour and a mapping names no mode.
    pub sync_modes: &'static [SyncMode],
}

impl ActionSpec {
    /// The mode a mapping gets when it names none: the first listed, if any.
    pub fn default_sync_mode(&self) -> Option<SyncMode> {
        self.sync_modes.first().copied()
    }

    /// Whether the action accepts this change kind.
    pub fn accepts(&self, change: ChangeKind) -> bool {
        match self.kind {
            ActionKind::Upsert => matches!(change, ChangeKind::Added | ChangeKind::Updated),
            ActionKind::Delete => change == ChangeKind::Deleted,
            ActionKind::Mirror => true,
        }
    }
}

/// Delivery limits of a destination: the type's documented defaults, overridable per destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryLimits {
    /// Requests per second allowed (sustained).
    pub requests_per_second: f64,
    /// Requests that may be sent at once above the sustained rate.
    pub burst: u32,
    /// Records per request.
    pub batch_size: usize,
    /// Serialized payload bytes per request (approximate, JSON).
    pub max_batch_bytes: usize,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Attempts per request including the first.
    pub max_attempts: u32,
    /// First backoff delay in milliseconds.
    pub initial_backoff_ms: u64,
    /// Largest backoff delay in milliseconds.
    pub max_backoff_ms: u64,
    /// Request timeout in milliseconds.
    pub timeout_ms: u64,
    /// Requests a day the account may spend on retl (an API quota shared with other tools);
    /// a dry run warns when a run would go past it. `None`: no budget.
    pub daily_request_budget: Option<u64>,
}

impl Default for DeliveryLimits {
    fn default() -> Self {
        DeliveryLimits {
            requests_per_second: 10.0,
            burst: 10,
            batch_size: 100,
            max_batch_bytes: 5 * 1024 * 1024,
            max_in_flight: 4,
            max_attempts: 5,
            initial_backoff_ms: 200,
            max_backoff_ms: 30_000,
            timeout_ms: 30_000,
            daily_request_budget: None,
        }
    }
}

impl DeliveryLimits {
    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Checks that every limit is usable; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, msg: &str| Err((format!("limits.{field}"), msg.to_string()));
        if !(self.requests_per_second > 0.0 && self.requests_per_second.is_finite()) {
            return bad("requests_per_second", "must be a positive number");
        }
        if self.burst == 0 {
            return bad("burst", "must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if self.max_batch_bytes < 1024 {
            return bad("max_batch_bytes", "must be at least 1024");
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight", "must be at least 1");
        }
        if self.max_attempts == 0 {
            return bad("max_attempts", "must be at least 1");
        }
        if self.timeout_ms == 0 {
            return bad("timeout_ms", "must be at least 1");
        }
        Ok(())
    }
}

impl DeliveryLimits {
    /// These limits with the user's overrides (a destination config's `limits` object, e.g.
    /// `{"batch_size": 50}`) applied and checked. The error is `(field, message)`, the field
    /// named as in the destination config (`limits.batch_size`) and the message saying in
    /// words what it must be ("must be a whole number, 0 or more, not the text "ten"").
    pub fn with_overrides(
        &self,
        overrides: &serde_json::Value,
    ) -> Result<DeliveryLimits, (String, String)> {
        const EXAMPLE: &str = "{\"requests_per_second\": 5, \"batch_size\": 50}";
        let serde_json::Value::Object(overrides) = overrides else {
            return Err((
                "limits".to_string(),
                format!("must be an object, e.g. {EXAMPLE}"),
            ));
        };
        let mut merged = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                return Err((
                    "limits".to_string(),
                    "the default limits could not be read (a bug in retl)".to_string(),
                ));
            }
        };
        for (key, value) in overrides {
            merged.insert(key.clone(), value.clone());
        }
        let limits: DeliveryLimits =
            crate::config_field::from_json(&serde_json::Value::Object(merged)).map_err(|e| {
                let field = if e.field.is_empty() {
                    "limits".to_string()
                } else {
                    format!("limits.{}", e.field)
                };
                (field, e.message)
            })?;
        limits.validate()?;
        Ok(limits)
    }
}

/// The kind of change a record represents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A key not in the state.
    Added,
    /// A key in the state whose fingerprint changed.
    Updated,
    /// A key in the state missing from a complete extract.
    Deleted,
}

impl ChangeKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// One record to deliver: the key, the change, and the mapped fields (empty for deletes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payload {
    /// The unique id's value.
    pub key: serde_json::Value,
    /// What changed.
    pub change: ChangeKind,
    /// Mapped destination fields.
    pub fields: Fields,
    /// The fingerprint of the mapped values (added and updated records); with the mapping and
    /// the key it makes the record's idempotency key
    /// ([`DeliveryContext::idempotency_key`](super::DeliveryContext::idempotency_key)).
    #[serde(skip)]
    pub fingerprint: Option<u128>,
}

impl Payload {
    /// A delete: the key only.
    pub fn delete(key: serde_json::Value) -> Self {
        Payload {
            key,
            change: ChangeKind::Deleted,
            fields: Fields::default(),
            fingerprint: None,
        }
    }
}

/// A payload's destination fields in the mapping's order, serialized as one JSON object.
///
/// The field names are shared by every payload of a mapping (one reference count each), so a
/// payload allocates its values only; a map per payload with its own copy of every name was a
/// fifth of an initial sync's profile.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fields {
    names: Arc<[String]>,
    values: Vec<serde_json::Value>,
}

impl Fields {
    /// Fields `names[i] = values[i]`; `None` when the lengths differ.
    pub fn new(names: Arc<[String]>, values: Vec<serde_json::Value>) -> Option<Self> {
        (names.len() == values.len()).then_some(Fields { names, values })
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.values.get(i))
    }

    /// `(name, value)` pairs in the mapping's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &serde_json::Value)> {
        self.names.iter().map(String::as_str).zip(&self.values)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none (a delete).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for Fields {
    fn from(map: serde_json::Map<String, serde_json::Value>) -> Self {
        let (names, values): (Vec<String>, Vec<serde_json::Value>) = map.into_iter().unzip();
        Fields {
            names: names.into(),
            values,
        }
    }
}

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static ADDRESS: [FieldSpec; 1] = [FieldSpec {
        name: "city",
        field_type: FieldType::String,
        required: true,
        description: "City",
        children: &[],
    }];
    static FIELDS: [FieldSpec; 2] = [
        FieldSpec {
            name: "email",
            field_type: FieldType::String,
            required: true,
            description: "Email",
            children: &[],
        },
        FieldSpec {
            name: "address",
            field_type: FieldType::Object,
            required: false,
            description: "Postal address",
            children: &ADDRESS,
        },
    ];

    #[test]
    fn field_info_keeps_the_nested_tree() {
        let info = FieldInfo::from_specs(&FIELDS);
        assert_eq!(info.len(), 2);
        assert_eq!(info[0].name, "email");
        assert!(info[0].children.is_empty());
        assert_eq!(info[1].field_type, FieldType::Object);
        assert_eq!(info[1].children.len(), 1);
        assert_eq!(info[1].children[0].name, "city");
        assert!(info[1].children[0].required);
        // Discovered fields are owned.
        let custom = FieldInfo {
            name: Cow::Owned(format!("custom_{}", 1)),
            field_type: FieldType::Number,
            required: false,
            description: Cow::Owned("from the account".to_string()),
            children: Vec::new(),
        };
        assert_eq!(custom.name, "custom_1");
    }

    #[test]
    fn fields_serialize_as_one_object_in_mapping_order() {
        let names: Arc<[String]> = vec!["email".to_string(), "age".to_string()].into();
        let fields = Fields::new(
            Arc::clone(&names),
            vec![serde_json::json!("a@b.c"), serde_json::json!(7)],
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&fields).unwrap(),
            r#"{"email":"a@b.c","age":7}"#
        );
        assert_eq!(fields.get("age"), Some(&serde_json::json!(7)));
        assert_eq!(fields.get("nope"), None);
        assert!(Fields::new(names, vec![]).is_none());
        let delete = Payload::delete(serde_json::json!(1));
        assert_eq!(
            serde_json::to_string(&delete).unwrap(),
            r#"{"key":1,"change":"deleted","fields":{}}"#
        );
    }

    #[test]
    fn limit_overrides_name_the_field_and_the_expected_form() {
        let defaults = DeliveryLimits::default();
        let limits = defaults
            .with_overrides(&serde_json::json!({"batch_size": 50, "requests_per_second": 2.5}))
            .unwrap();
        assert_eq!(limits.batch_size, 50);
        assert_eq!(limits.requests_per_second, 2.5);
        assert_eq!(limits.burst, defaults.burst);
        assert_eq!(
            defaults.with_overrides(&serde_json::json!({})).unwrap(),
            defaults
        );

        let error = |overrides: serde_json::Value| defaults.with_overrides(&overrides).unwrap_err();
        assert_eq!(
            error(serde_json::json!({"batch_size": "ten"})),
            (
                "limits.batch_size".to_string(),
                "must be a whole number, 0 or more, not the text \"ten\"".to_string()
            )
        );
        assert_eq!(
            error(serde_json::json!({"batch_size": 2.5})),
            (
                "limits.batch_size".to_string(),
                "must be a whole number, 0 or more, not the number 2.5".to_string()
            )
        );
        assert_eq!(
            error(serde_json::json!({"burst": -1})).1,
            "must be a whole number from 0 to 4294967295, not the number -1"
        );
        assert_eq!(
            error(serde_json::json!({"requests_per_second": "fast"})),
            (
                "limits.requests_per_second".to_string(),
                "must be a number, not the text \"fast\"".to_string()
            )
        );
        let (field, message) = error(serde_json::json!({"batch_sise": 5}));
        assert_eq!(field, "limits.batch_sise");
        assert!(message.contains("batch_size"), "{message}");
        let (field, message) = error(serde_json::json!(5));
        assert_eq!(field, "limits");
        assert!(message.contains("must be an object"), "{message}");
        // The values are checked too.
        assert_eq!(
            error(serde_json::json!({"batch_size": 0})),
            (
                "limits.batch_size".to_string(),
                "must be at least 1".to_string()
            )
        );
    }
}
