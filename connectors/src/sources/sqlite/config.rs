//! SQLite source configuration.

use std::path::PathBuf;
use std::time::Duration;

use retl_engine::destination::{ConfigField, FieldType};
use retl_engine::source::SourceError;
use serde::Deserialize;

use crate::sources::config::{invalid, query_timeout};

/// The configuration of a SQLite source: one database file, opened read-only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqliteConfig {
    /// Absolute path of the database file. retl opens it read-only and never creates it.
    pub(crate) path: String,
    /// How long a read waits for another process's write lock before it fails as busy
    /// (default 5 000 ms; 0 = fail at once).
    #[serde(default)]
    pub(crate) busy_timeout_ms: Option<u64>,
    /// Longest time one query may run before it is interrupted (default 3 600 000 ms =
    /// 1 hour; 0 = no limit).
    #[serde(default)]
    pub(crate) query_timeout_ms: Option<u64>,
}

/// The config fields, as served by `ListSourceTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "path",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Absolute path of the SQLite database file; retl opens it read-only and never creates or changes it.",
    },
    ConfigField {
        name: "busy_timeout_ms",
        field_type: FieldType::Integer,
        required: false,
        secret: false,
        description: "How long a read waits while another process holds a write lock on the file, in milliseconds (default 5000; 0 = fail at once).",
    },
    ConfigField {
        name: "query_timeout_ms",
        field_type: FieldType::Integer,
        required: false,
        secret: false,
        description: "Longest a query may run before it is interrupted, in milliseconds (default 3600000; 0 = no limit).",
    },
];

/// Default busy timeout.
const DEFAULT_BUSY_TIMEOUT_MS: u64 = 5_000;
/// Longest busy timeout accepted.
const MAX_BUSY_TIMEOUT_MS: u64 = 600_000;

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The database file (absolute).
    pub(crate) path: PathBuf,
    /// How long a read waits for a lock.
    pub(crate) busy_timeout: Duration,
    /// Longest a query may run; `None` = no limit.
    pub(crate) query_timeout: Option<Duration>,
}

impl ValidConfig {
    /// The path, for messages.
    pub(crate) fn display_path(&self) -> String {
        self.path.display().to_string()
    }
}

impl SqliteConfig {
    /// Checks the shape of every field; touches no filesystem.
    pub(crate) fn validate(&self) -> Result<ValidConfig, SourceError> {
        let path = self.path.trim();
        if path.is_empty() {
            return Err(invalid(
                "path",
                "must not be empty; give the absolute path of the database file, e.g. /var/lib/app/app.db",
            ));
        }
        if path.contains('\0') {
            return Err(invalid("path", "must not contain a NUL character"));
        }
        if path == ":memory:" || path.starts_with("file:") {
            return Err(invalid(
                "path",
                format!(
                    "'{path}' is not a file path (in-memory databases and URI file names are not supported); give the absolute path of the database file"
                ),
            ));
        }
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(invalid(
                "path",
                format!(
                    "'{}' is relative; give an absolute path (the daemon does not resolve paths against the directory the client runs in)",
                    path.display()
                ),
            ));
        }
        let busy_timeout_ms = self.busy_timeout_ms.unwrap_or(DEFAULT_BUSY_TIMEOUT_MS);
        if busy_timeout_ms > MAX_BUSY_TIMEOUT_MS {
            return Err(invalid(
                "busy_timeout_ms",
                format!("must be between 0 and {MAX_BUSY_TIMEOUT_MS} milliseconds"),
            ));
        }
        let query_timeout = query_timeout(self.query_timeout_ms)?;
        Ok(ValidConfig {
            path,
            busy_timeout: Duration::from_millis(busy_timeout_ms),
            query_timeout,
        })
    }
}

#[cfg(test)]
mod drift {
    /// The catalog's config fields are exactly the typed config's fields.
    #[test]
    fn config_fields_match_the_typed_config() {
        retl_engine::config_fields::check_config_fields::<super::SqliteConfig>(
            super::CONFIG_FIELDS,
        )
        .unwrap();
    }
}
