//! The engine's error type, classified by who must act and whether a retry helps.
//!
//! Every error knows its [`ErrorCategory`]; the server maps categories to gRPC codes in one place
//! (`server/src/grpc/status.rs`). Messages name the object, the problem and the fix.

pub use crate::category::ErrorCategory;
use crate::destination::DestinationError;
use crate::source::SourceError;
use crate::state::StateError;

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The engine's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input field is invalid.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The field, e.g. `model.sql` or `mapping.fields[2].column`.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A referenced object does not exist.
    #[error("{kind} '{id}' not found{hint}")]
    NotFound {
        /// The kind of object: `source`, `model`, `destination`, `mapping`, `sync run`, ...
        kind: &'static str,
        /// The id that was looked up.
        id: String,
        /// Extra guidance, starting with `; ` when not empty.
        hint: String,
    },
    /// An object with this id exists already.
    #[error("{kind} '{id}' already exists; choose another id or update the existing one")]
    AlreadyExists {
        /// The kind of object.
        kind: &'static str,
        /// The id that is taken.
        id: String,
    },
    /// The call cannot run in the current state.
    #[error("{message}")]
    FailedPrecondition {
        /// What blocks the call and how to unblock it.
        message: String,
    },
    /// A source (warehouse) failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A destination failed.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// The local store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The sync state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The operation was cancelled.
    #[error("cancelled: {reason}")]
    Cancelled {
        /// Who or what cancelled it.
        reason: String,
    },
    /// A run made no progress for the stall timeout and was stopped.
    #[error("{message}")]
    Stalled {
        /// The stage, what it waited on, for how long, and what to do.
        message: String,
    },
    /// Declared in the API but not built yet.
    #[error("{what} is not implemented yet in this version of retl")]
    Unimplemented {
        /// The feature.
        what: String,
    },
    /// A bug in retl.
    #[error("internal error (this is a bug in retl, please report it): {message}")]
    Internal {
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`] without a hint.
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            id: id.into(),
            hint: String::new(),
        }
    }

    /// Shorthand for [`Error::FailedPrecondition`].
    pub fn precondition(message: impl Into<String>) -> Self {
        Error::FailedPrecondition {
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal {
            message: message.into(),
        }
    }

    /// The category of this error.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::InvalidArgument { .. } => ErrorCategory::InvalidArgument,
            Error::NotFound { .. } => ErrorCategory::NotFound,
            Error::AlreadyExists { .. } => ErrorCategory::AlreadyExists,
            Error::FailedPrecondition { .. } => ErrorCategory::FailedPrecondition,
            Error::Source(e) => e.category(),
            Error::Destination(e) => e.category(),
            Error::Storage(_) => ErrorCategory::Internal,
            Error::State(StateError::Corrupt { .. }) => ErrorCategory::FailedPrecondition,
            Error::State(_) => ErrorCategory::Internal,
            Error::Cancelled { .. } => ErrorCategory::Cancelled,
            Error::Stalled { .. } => ErrorCategory::Unavailable,
            Error::Unimplemented { .. } => ErrorCategory::Unimplemented,
            Error::Internal { .. } => ErrorCategory::Internal,
        }
    }
}

/// A failure of the local RocksDB store or of local files in the data directory.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB reported an error.
    #[error("local store error during {operation}: {source}")]
    Rocks {
        /// What the engine was doing.
        operation: &'static str,
        /// The RocksDB error.
        source: rocksdb::Error,
    },
    /// A stored record could not be decoded (corruption or an incompatible version).
    #[error(
        "stored {what} could not be decoded ({message}); the data directory may be corrupt or from an incompatible retl version"
    )]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// A local file operation failed.
    #[error("local file error at {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl StorageError {
    /// Wraps a RocksDB error with the operation that failed.
    pub fn rocks(operation: &'static str) -> impl FnOnce(rocksdb::Error) -> StorageError {
        move |source| StorageError::Rocks { operation, source }
    }

    /// Wraps an I/O error with the path involved.
    pub fn io(path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.as_ref().display().to_string();
        move |source| StorageError::Io { path, source }
    }
}
