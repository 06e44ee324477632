//! Mapping definitions (what the catalog stores): model -> one action of a destination, field
//! mappings, record selection.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::destination::spec::SyncMode;
use crate::id::{DestinationId, MappingId, ModelId};
use crate::mapping::select::RecordSelection;
use crate::schedule::spec::Schedule;
use crate::sync::failures::RetryPolicy;

/// Where a destination field's value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldSource {
    /// A model column.
    Column(String),
    /// A constant.
    Literal(serde_json::Value),
    /// A MiniJinja template over the row's columns, e.g. `{{ first_name }} {{ last_name }}` or
    /// `{{ plan | upper }}`; renders to text (coerced to the field's type).
    Template(String),
    /// A SQL expression over the row's columns, e.g. `lower(email)`, `ltv * 100`,
    /// `CASE WHEN ... END`, `named_struct('city', city)`, `make_array(a, b)`; evaluated by
    /// DataFusion a batch at a time.
    Expression(String),
}

impl FieldSource {
    /// The kind's name as the API spells it (`column`, `literal`, `template`, `expression`).
    pub fn kind(&self) -> &'static str {
        match self {
            FieldSource::Column(_) => "column",
            FieldSource::Literal(_) => "literal",
            FieldSource::Template(_) => "template",
            FieldSource::Expression(_) => "expression",
        }
    }
}

/// One destination field and its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldMapping {
    /// Destination field: a name of the action, or a dotted path into an object field
    /// (`traits.plan`, `properties.address.city`).
    pub field: String,
    /// Value source.
    pub source: FieldSource,
}

/// What a mapping does with a field whose value is NULL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullValues {
    /// Send the field with a JSON `null` (clears the value in most tools). The default.
    #[default]
    Send,
    /// Leave the field out of the record.
    Omit,
}

/// How the first run of a mapping treats rows already in the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialSync {
    /// Every row is added and sent (the default).
    #[default]
    Backfill,
    /// Rows present at the first run are taken as already in sync: the state is filled, nothing sent.
    MarkExistingSynced,
}

/// A stored mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingDef {
    /// Id.
    pub id: MappingId,
    /// Human name.
    pub display_name: String,
    /// The model whose changes are sent.
    pub model_id: ModelId,
    /// The destination.
    pub destination_id: DestinationId,
    /// The destination action.
    pub action: String,
    /// Field mappings.
    pub fields: Vec<FieldMapping>,
    /// Which changes are sent.
    pub selection: RecordSelection,
    /// The action's sync mode; `None` = the action's default (or it has none).
    #[serde(default)]
    pub sync_mode: Option<SyncMode>,
    /// What a NULL value does.
    #[serde(default)]
    pub null_values: NullValues,
    /// First-run behaviour.
    pub initial_sync: InitialSync,
    /// Whether it may run.
    pub enabled: bool,
    /// When it runs by itself (`None` = only when triggered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// When records that keep failing are given up.
    #[serde(default)]
    pub retry_policy: RetryPolicy,
    /// Where its alerts go and when failed records alert.
    #[serde(default)]
    pub alerts: crate::alert::AlertPolicy,
    /// When it was created.
    #[serde(with = "crate::timestamp")]
    pub create_time: DateTime<Utc>,
    /// When it was last changed.
    #[serde(with = "crate::timestamp")]
    pub update_time: DateTime<Utc>,
}

/// A mapping to create.
#[derive(Debug, Clone, Default)]
pub struct NewMapping {
    /// Wanted id; generated when `None`.
    pub id: Option<String>,
    /// Human name; defaults to the id.
    pub display_name: String,
    /// Model id.
    pub model_id: String,
    /// Destination id.
    pub destination_id: String,
    /// Action name.
    pub action: String,
    /// Field mappings.
    pub fields: Vec<FieldMapping>,
    /// Record selection; `None` = what the action accepts (upsert: added + updated; delete: deleted).
    pub selection: Option<RecordSelection>,
    /// The action's sync mode; `None` = the action's default.
    pub sync_mode: Option<SyncMode>,
    /// What a NULL value does.
    pub null_values: NullValues,
    /// First-run behaviour.
    pub initial_sync: InitialSync,
    /// Whether it starts enabled (default true).
    pub enabled: Option<bool>,
    /// When it runs by itself (`None` = only when triggered).
    pub schedule: Option<Schedule>,
    /// When records that keep failing are given up (`None` = 5 runs or 14 days).
    pub retry_policy: Option<RetryPolicy>,
    /// Alert targets and threshold (`None` = the defaults: global targets only, 10 %).
    pub alerts: Option<crate::alert::AlertPolicy>,
}

/// Changes to a mapping; `None` keeps a value. Model, destination and action are fixed at
/// creation (their state would not carry over); create a new mapping to change them.
#[derive(Debug, Clone, Default)]
pub struct MappingPatch {
    /// New human name.
    pub display_name: Option<String>,
    /// New field mappings (replaces all).
    pub fields: Option<Vec<FieldMapping>>,
    /// New record selection.
    pub selection: Option<RecordSelection>,
    /// New sync mode.
    pub sync_mode: Option<SyncMode>,
    /// New NULL handling.
    pub null_values: Option<NullValues>,
    /// New enabled flag.
    pub enabled: Option<bool>,
    /// New schedule: `Some(None)` removes it (triggered runs only).
    pub schedule: Option<Option<Schedule>>,
    /// New retry policy.
    pub retry_policy: Option<RetryPolicy>,
    /// New alert settings.
    pub alerts: Option<crate::alert::AlertPolicy>,
}
