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
    /// An operation ran past its time limit (a query's timeout).
    #[error("{message}")]
    DeadlineExceeded {
        /// What ran too long and what to do.
        message: String,
    },
    /// The error of a step several runs shared (one extraction for the mappings of a model
    /// due together): each run reports it.
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),
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
            // Not a bug: a retry once space is back succeeds.
            Error::Storage(e) if e.is_disk_full() => ErrorCategory::Unavailable,
            Error::Storage(_) => ErrorCategory::Internal,
            Error::State(StateError::Corrupt { .. }) => ErrorCategory::FailedPrecondition,
            Error::State(_) => ErrorCategory::Internal,
            Error::Cancelled { .. } => ErrorCategory::Cancelled,
            Error::Stalled { .. } => ErrorCategory::Unavailable,
            Error::Shared(e) => e.category(),
            Error::DeadlineExceeded { .. } => ErrorCategory::DeadlineExceeded,
            Error::Unimplemented { .. } => ErrorCategory::Unimplemented,
            Error::Internal { .. } => ErrorCategory::Internal,
        }
    }
}

/// A failure of the local RocksDB store or of local files in the data directory.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB reported an error.
    #[error("local store error during {operation}: {source}{}", disk_full_hint(source.as_ref()))]
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
    #[error("local file error at {path}: {source}{}", disk_full_hint(&source.to_string()))]
    Io {
        /// The path involved.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What to do when the data directory's disk is full.
const DISK_FULL_HINT: &str = "; the disk of the data directory is full: free space on it (or move the data directory to a larger disk), then run the sync again; nothing that was not acknowledged was committed";

/// What to do when RocksDB refuses writes after a failed write-ahead-log append.
const STOPPED_WRITER_HINT: &str = "; the local store stopped accepting writes after an earlier write failed (most often a full disk): free space in the data directory, and the store reopens itself at the next write (no restart needed); nothing that was not acknowledged was committed";

fn disk_full_hint(message: &str) -> &'static str {
    if is_stopped_writer_message(message) {
        STOPPED_WRITER_HINT
    } else if is_disk_full_message(message) {
        DISK_FULL_HINT
    } else {
        ""
    }
}

fn is_disk_full_message(message: &str) -> bool {
    message.contains("No space left on device") || message.contains("Disk quota exceeded")
}

/// RocksDB's answer to every write after its write-ahead log failed to append.
fn is_stopped_writer_message(message: &str) -> bool {
    message.contains("Writer has previous error")
}

impl StorageError {
    /// Whether the disk of the data directory is full (`ENOSPC`, `EDQUOT`), or the store stopped
    /// accepting writes after a write failed on a full disk.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StorageError::Rocks { source, .. } => {
                let message = source.to_string();
                is_disk_full_message(&message) || is_stopped_writer_message(&message)
            }
            StorageError::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(28 | 122))
                    || is_disk_full_message(&source.to_string())
            }
            StorageError::Decode { .. } => false,
        }
    }

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
