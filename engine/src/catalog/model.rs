//! Model definitions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{ModelId, SourceId};
use crate::source::ColumnInfo;

/// A stored model: SQL over one source plus the name of its unique identifier column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDef {
    /// Id.
    pub id: ModelId,
    /// Human name.
    pub display_name: String,
    /// The source the SQL reads.
    pub source_id: SourceId,
    /// A single read-only SQL query.
    pub sql: String,
    /// Name of the output column that identifies a record.
    pub unique_id: String,
    /// Output columns, learned when the SQL was last validated.
    pub columns: Vec<ColumnInfo>,
    /// When it was created.
    #[serde(with = "crate::timestamp")]
    pub create_time: DateTime<Utc>,
    /// When it was last changed.
    #[serde(with = "crate::timestamp")]
    pub update_time: DateTime<Utc>,
}

/// A model to create.
#[derive(Debug, Clone, Default)]
pub struct NewModel {
    /// Wanted id; generated when `None`.
    pub id: Option<String>,
    /// Human name; defaults to the id.
    pub display_name: String,
    /// Source id.
    pub source_id: String,
    /// SQL.
    pub sql: String,
    /// Unique identifier column.
    pub unique_id: String,
}

/// Changes to a model; `None` keeps a value. The result is validated again.
#[derive(Debug, Clone, Default)]
pub struct ModelPatch {
    /// New human name.
    pub display_name: Option<String>,
    /// New source.
    pub source_id: Option<String>,
    /// New SQL.
    pub sql: Option<String>,
    /// New unique identifier column.
    pub unique_id: Option<String>,
}

/// What to preview: a stored model, or SQL not saved yet.
#[derive(Debug, Clone)]
pub enum PreviewTarget {
    /// A stored model.
    Model(String),
    /// Unsaved SQL over a source.
    Sql {
        /// Source id.
        source_id: String,
        /// SQL.
        sql: String,
    },
}

/// The first rows of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// Output columns.
    pub columns: Vec<ColumnInfo>,
    /// Rows as JSON objects keyed by column name.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Whether this answer came from the source's preview cache.
    pub cached: bool,
}
