//! SQLite failures worded as `SourceError`s: the same code means different things when the
//! file is opened, a statement compiled, or rows stepped through ([`Phase`]).

use retl_engine::source::SourceError;
use rusqlite::ErrorCode;

use crate::sources::config::invalid;

/// What was being done when SQLite failed (the same code means different things).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Opening the file and reading its header.
    Open,
    /// Compiling a statement.
    Prepare,
    /// Stepping through rows.
    Read,
}

/// Words a SQLite failure of the database at `path` for the user.
pub(super) fn classify(
    path: &str,
    busy_timeout: std::time::Duration,
    error: &rusqlite::Error,
    phase: Phase,
) -> SourceError {
    let rusqlite::Error::SqliteFailure(failure, message) = error else {
        return SourceError::Read {
            message: format!("reading SQLite database {path} failed: {error}"),
        };
    };
    let detail = message.clone().unwrap_or_else(|| failure.to_string());
    match failure.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => SourceError::Unavailable {
            message: format!(
                "SQLite database {path} is locked by a connection that is writing to it ({detail}), and the lock was not released within busy_timeout_ms = {} ms; try again when the writer is done, raise busy_timeout_ms, or switch the database to WAL mode (PRAGMA journal_mode=WAL) so that readers never wait for writers",
                busy_timeout.as_millis()
            ),
        },
        ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt | ErrorCode::SystemIoFailure
            if phase == Phase::Read =>
        {
            SourceError::Unavailable {
                message: format!(
                    "SQLite database {path} changed or became unreadable while it was being read ({detail}); was it replaced, truncated or written to without SQLite's locking? The extract is incomplete"
                ),
            }
        }
        ErrorCode::NotADatabase => invalid(
            "path",
            format!(
                "{path} is not a SQLite database ({detail}); check the path (an encrypted database cannot be read either)"
            ),
        ),
        ErrorCode::DatabaseCorrupt => invalid(
            "path",
            format!(
                "SQLite database {path} is damaged ({detail}); restore it from a backup or check it with sqlite3 {path} 'PRAGMA integrity_check'"
            ),
        ),
        ErrorCode::CannotOpen => SourceError::Unavailable {
            message: format!(
                "SQLite cannot open {path} read-only ({detail}); a database in WAL mode also needs its -wal and -shm files to be readable, or its directory to be writable so that SQLite can create them"
            ),
        },
        ErrorCode::PermissionDenied
        | ErrorCode::ReadOnly
        | ErrorCode::AuthorizationForStatementDenied => SourceError::PermissionDenied {
            message: format!(
                "SQLite refused to read {path} ({detail}); make the file readable by the user the retl daemon runs as"
            ),
        },
        ErrorCode::OperationInterrupted => SourceError::Read {
            message: format!("the query on {path} was interrupted ({detail})"),
        },
        ErrorCode::SystemIoFailure => SourceError::Unavailable {
            message: format!("reading SQLite database {path} failed ({detail})"),
        },
        _ if phase == Phase::Prepare => SourceError::Query {
            message: format!(
                "SQLite rejected the statement retl generated from the model ({detail}); the model's SQL is planned by DataFusion and run in SQLite, so use functions both know"
            ),
        },
        _ => SourceError::Read {
            message: format!("reading SQLite database {path} failed ({detail})"),
        },
    }
}
