//! The SQLite database file ([`Database`]): its read-only connections, and the blocking pool
//! every SQLite call runs on. Shared by the source, its catalog and its readers.

use retl_engine::source::SourceError;
use rusqlite::{Connection, OpenFlags};

use super::config::ValidConfig;
use super::errors::{self, Phase};
use crate::sources::config::invalid;

/// The only schema of a SQLite file (attached databases are not supported).
pub(super) const SCHEMA: &str = "main";

/// The file and how to read it; shared by the source, its pool and its readers.
#[derive(Debug)]
pub(crate) struct Database {
    /// The validated configuration.
    pub(super) config: ValidConfig,
}

impl Database {
    /// The source's file, for messages.
    pub(super) fn path(&self) -> String {
        self.config.display_path()
    }

    /// Opens the file read-only (never creating it) and reads its header, so that a missing,
    /// unreadable or non-SQLite file fails here with its own message.
    pub(crate) fn open(&self) -> Result<Connection, SourceError> {
        let path = self.path();
        match std::fs::metadata(&self.config.path) {
            Ok(meta) if meta.is_dir() => {
                return Err(invalid(
                    "path",
                    format!("{path} is a directory; give the path of the database file"),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(invalid(
                    "path",
                    format!(
                        "there is no file at {path}; check the path (retl opens SQLite databases read-only and never creates one)"
                    ),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(unreadable(&path, &e));
            }
            Err(e) => {
                return Err(SourceError::Unavailable {
                    message: format!("cannot look at {path}: {e}"),
                });
            }
        }
        if let Err(e) = std::fs::File::open(&self.config.path) {
            return Err(if e.kind() == std::io::ErrorKind::PermissionDenied {
                unreadable(&path, &e)
            } else {
                SourceError::Unavailable {
                    message: format!("cannot open {path}: {e}"),
                }
            });
        }
        // No SQLITE_OPEN_CREATE (a missing file stays missing), no URI names.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.config.path, flags)
            .map_err(|e| self.classify(&e, Phase::Open))?;
        conn.busy_timeout(self.config.busy_timeout)
            .map_err(|e| self.classify(&e, Phase::Open))?;
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| {
            row.get::<_, i64>(0)
        })
        .map_err(|e| self.classify(&e, Phase::Open))?;
        Ok(conn)
    }

    /// Words a SQLite failure for the user.
    pub(super) fn classify(&self, error: &rusqlite::Error, phase: Phase) -> SourceError {
        errors::classify(&self.path(), self.config.busy_timeout, error, phase)
    }
}

/// The file exists but the daemon may not read it.
fn unreadable(path: &str, error: &std::io::Error) -> SourceError {
    SourceError::PermissionDenied {
        message: format!(
            "the retl daemon may not read {path} ({error}); make the file and its directories readable by the user retl runs as (read access is all it needs)"
        ),
    }
}

/// Runs `work` on the blocking pool (SQLite calls block on file I/O and locks).
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
) -> Result<T, SourceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SourceError::Read {
            message: format!("the SQLite worker thread failed: {e}"),
        })?
}
