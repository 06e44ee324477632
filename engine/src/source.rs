//! The [`Source`] trait: a configured warehouse connection.

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::category::ErrorCategory;

/// A configured warehouse connection (files, PostgreSQL, MySQL, SQLite, ...).
///
/// Duties:
/// 1. `register` makes every table the model SQL may name resolvable in the given
///    `SessionContext` as a DataFusion `TableProvider`, so models are planned (and validated) by
///    DataFusion and pushed down where the provider allows.
/// 2. `test` checks reachability, credentials and read access without reading data; its error
///    says what to fix.
/// 3. `list_tables` lists what the configured user can read, with columns.
///
/// # Errors
/// Every method returns a [`SourceError`] whose message names the object and the fix. A source
/// MUST NOT report success for a read that returned fewer rows than the warehouse holds: a
/// failure mid-read is an error, so that no extract is taken for complete when it is not.
#[async_trait]
pub trait Source: Send + Sync + std::fmt::Debug {
    /// Checks reachability and credentials; returns warnings (e.g. more privileges than needed).
    async fn test(&self) -> Result<SourceTestReport, SourceError>;
    /// Tables (and views) the configured user can read.
    async fn list_tables(&self) -> Result<Vec<TableInfo>, SourceError>;
    /// Registers this source's tables in `ctx`.
    async fn register(&self, ctx: &SessionContext) -> Result<(), SourceError>;
    /// Words an error raised while this source's rows were being read (it arrives wrapped in
    /// DataFusion's error). A lost or refused connection must come back as
    /// [`SourceError::Unavailable`]: the engine retries the extract for those, and for nothing
    /// else. `None` (the default) keeps it a [`SourceError::Read`], which is not retried.
    fn classify_read_error(
        &self,
        error: &(dyn std::error::Error + 'static),
    ) -> Option<SourceError> {
        let _ = error;
        None
    }
}

/// What `Source::test` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTestReport {
    /// A one-line summary of what was checked.
    pub message: String,
    /// Non-fatal findings the user should know about.
    pub warnings: Vec<String>,
}

/// A table or view of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    /// Schema (namespace) of the table; empty for file sources.
    pub schema: String,
    /// Table name as it is written in model SQL.
    pub name: String,
    /// `table`, `view` or `file`.
    pub kind: String,
    /// Where the table comes from (a path for file sources).
    pub location: String,
    /// Columns in order.
    pub columns: Vec<ColumnInfo>,
}

/// A column of a table or of a model's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// The Arrow data type, as text (e.g. `Int64`, `Utf8`, `Timestamp(µs, "UTC")`).
    pub data_type: String,
    /// Whether the column may hold nulls.
    pub nullable: bool,
}

impl ColumnInfo {
    /// Describes an Arrow field.
    pub fn from_field(field: &datafusion::arrow::datatypes::Field) -> Self {
        ColumnInfo {
            name: field.name().clone(),
            data_type: field.data_type().to_string(),
            nullable: field.is_nullable(),
        }
    }
}

/// A source failure.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source's configuration is invalid.
    #[error("invalid source config field '{field}': {message}")]
    InvalidConfig {
        /// The config field.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The warehouse (or path) cannot be reached.
    #[error("source unavailable: {message}")]
    Unavailable {
        /// What could not be reached and what to check.
        message: String,
    },
    /// The credentials were refused.
    #[error("source authentication failed: {message}")]
    Authentication {
        /// What was refused and what to check.
        message: String,
    },
    /// Read access to an object was denied.
    #[error("permission denied: {message}")]
    PermissionDenied {
        /// The object and the grant that is missing.
        message: String,
    },
    /// The model SQL is invalid for this source (syntax, unknown table or column).
    #[error("{message}")]
    Query {
        /// The planner's message with guidance.
        message: String,
    },
    /// A column has a type retl cannot carry.
    #[error(
        "column '{column}' has type {data_type}, which retl does not support; cast it in the model SQL (for example to text)"
    )]
    UnsupportedType {
        /// The column.
        column: String,
        /// The warehouse type.
        data_type: String,
    },
    /// Reading failed in a way a retry does not fix (data a decoder rejects, a corrupt file,
    /// a statement the warehouse refuses, a query timeout); the extract is incomplete. A lost
    /// connection is [`SourceError::Unavailable`] instead.
    #[error("reading from the source failed: {message}")]
    Read {
        /// What failed.
        message: String,
    },
}

impl SourceError {
    /// Whether trying again may succeed: the warehouse was unreachable or the connection was
    /// lost. Everything else (bad SQL, credentials, grants, data a decoder cannot read) fails
    /// the same way every time.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Unavailable { .. })
    }

    /// The same error with `prefix` in front of its message (the category is kept).
    pub fn with_prefix(self, prefix: &str) -> SourceError {
        let prefixed = |message: String| format!("{prefix}{message}");
        match self {
            SourceError::InvalidConfig { field, message } => SourceError::InvalidConfig {
                field,
                message: prefixed(message),
            },
            SourceError::Unavailable { message } => SourceError::Unavailable {
                message: prefixed(message),
            },
            SourceError::Authentication { message } => SourceError::Authentication {
                message: prefixed(message),
            },
            SourceError::PermissionDenied { message } => SourceError::PermissionDenied {
                message: prefixed(message),
            },
            SourceError::Query { message } => SourceError::Query {
                message: prefixed(message),
            },
            SourceError::Read { message } => SourceError::Read {
                message: prefixed(message),
            },
            unsupported @ SourceError::UnsupportedType { .. } => unsupported,
        }
    }

    /// The category of this error.
    pub fn category(&self) -> ErrorCategory {
        match self {
            SourceError::InvalidConfig { .. }
            | SourceError::Query { .. }
            | SourceError::UnsupportedType { .. } => ErrorCategory::InvalidArgument,
            SourceError::Unavailable { .. } => ErrorCategory::Unavailable,
            // Not retried by the engine (see `is_transient`), so not UNAVAILABLE to clients
            // either: a corrupt file or a row a decoder rejects fails the same way until the
            // user fixes the data, the model or a timeout.
            SourceError::Read { .. } => ErrorCategory::FailedPrecondition,
            SourceError::Authentication { .. } => ErrorCategory::ExternalAuth,
            SourceError::PermissionDenied { .. } => ErrorCategory::PermissionDenied,
        }
    }
}
