//! File destination configuration.

use std::path::PathBuf;

use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use serde::Deserialize;

/// The configuration of a file destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// The directory changes are written under, as `<directory>/<mapping id>/<run id>.jsonl`;
    /// created when missing. A relative path is relative to the daemon's working directory.
    pub(crate) directory: String,
}

/// The config fields, as served by `ListDestinationTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[ConfigField {
    name: "directory",
    field_type: FieldType::String,
    required: true,
    secret: false,
    description: "Directory the changes are written under, one JSON-lines file per mapping and run: <directory>/<mapping id>/<run id>.jsonl. Created when missing.",
}];

impl FileConfig {
    /// Checks the shape of the config (no filesystem access).
    pub(crate) fn validate(&self) -> Result<PathBuf, DestinationError> {
        if self.directory.trim().is_empty() {
            return Err(DestinationError::InvalidConfig {
                field: "directory".to_string(),
                message: "must not be empty; give the directory to write changes under, e.g. /var/lib/retl/out".to_string(),
            });
        }
        if self.directory.contains('\0') {
            return Err(DestinationError::InvalidConfig {
                field: "directory".to_string(),
                message: "must not contain NUL characters".to_string(),
            });
        }
        Ok(PathBuf::from(&self.directory))
    }
}
