//! PostgreSQL driver and server errors worded as `SourceError`s: SQLSTATE codes, lost
//! connections told from failing statements, TLS hints.

use std::error::Error as StdError;

use datafusion_table_providers::sql::db_connection_pool::dbconnection::Error as DbError;
use retl_engine::source::SourceError;

use super::config::ValidConfig;

/// The first `tokio_postgres::Error` in an error's source chain.
pub(crate) fn find_pg_error<'a>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a tokio_postgres::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() {
            return Some(pg);
        }
        current = e.source();
    }
    None
}

/// The first table-providers connection error in an error's source chain.
pub(super) fn find_db_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a DbError> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(db) = e.downcast_ref::<DbError>() {
            return Some(db);
        }
        current = e.source();
    }
    None
}

/// The server's own words for an error (tokio-postgres prints only "db error"), with the
/// chain of causes for client-side errors.
pub(crate) fn pg_message(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    text
}

/// Whether a driver error's text says the connection went away (as opposed to a statement
/// that failed and would fail again).
pub(super) fn lost_connection(text: &str) -> bool {
    const MARKERS: &[&str] = &[
        "connection closed",
        "connection reset",
        "broken pipe",
        "unexpected eof",
        "error communicating with the server",
        "terminating connection due to administrator command",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "server closed the connection unexpectedly",
    ];
    let lower = text.to_ascii_lowercase();
    MARKERS.iter().any(|marker| lower.contains(marker))
}

/// Words a failure to connect (or a failed statement) for the user.
pub(crate) fn classify(c: &ValidConfig, error: &(dyn StdError + 'static)) -> SourceError {
    let address = c.address();
    let Some(pg) = find_pg_error(error) else {
        return SourceError::Unavailable {
            message: format!("cannot use PostgreSQL at {address}: {error}"),
        };
    };
    let detail = pg_message(pg);
    match pg.code().map(|code| code.code()) {
        Some("28P01") => SourceError::Authentication {
            message: format!(
                "password authentication failed for user '{}' on {address}: check the user and password (and that the role has LOGIN)",
                c.user
            ),
        },
        Some("28000") => SourceError::Authentication {
            message: format!(
                "the server refused user '{}' for database '{}': {detail}; check the user name, and that pg_hba.conf allows this client",
                c.user, c.database
            ),
        },
        Some("3D000") => SourceError::InvalidConfig {
            field: "database".to_string(),
            message: format!(
                "database '{}' does not exist on {address}; check the name (it is case-sensitive) or create it",
                c.database
            ),
        },
        Some("42501") => SourceError::PermissionDenied {
            message: format!(
                "user '{}' may not do this in database '{}': {detail}; grant it (GRANT CONNECT ON DATABASE {} TO {}, GRANT USAGE ON SCHEMA ..., GRANT SELECT ON ...)",
                c.user, c.database, c.database, c.user
            ),
        },
        Some("57014") => SourceError::Read {
            message: format!(
                "the query was cancelled by the server: {detail}; if it hit statement_timeout, raise the source's query_timeout_ms"
            ),
        },
        Some(code)
            if code.starts_with("53") || code.starts_with("57") || code.starts_with("08") =>
        {
            SourceError::Unavailable {
                message: format!(
                    "PostgreSQL at {address} cannot serve the connection now: {detail}"
                ),
            }
        }
        Some(_) => SourceError::Read {
            message: format!("PostgreSQL at {address} reported: {detail}"),
        },
        None => {
            let lower = detail.to_ascii_lowercase();
            let hint = if lower.contains("certificate") {
                format!(
                    "; the server's TLS certificate was not accepted with sslmode={}: set sslrootcert to the certificate authority that signed it (or use sslmode=require to encrypt without verifying), and with verify-full check that the host name matches the certificate",
                    c.sslmode.as_str()
                )
            } else if lower.contains("tls") || lower.contains("ssl") {
                format!(
                    "; the TLS handshake failed with sslmode={}: check the server's TLS setup or choose another sslmode",
                    c.sslmode.as_str()
                )
            } else {
                String::new()
            };
            SourceError::Unavailable {
                message: format!("cannot talk to PostgreSQL at {address}: {detail}{hint}"),
            }
        }
    }
}

/// Words an error raised while rows were being read: a lost connection is `Unavailable`
/// (retried by the engine); `None` leaves it to the engine (a `Read` error, not retried).
pub(super) fn classify_read(
    c: &ValidConfig,
    error: &(dyn StdError + 'static),
) -> Option<SourceError> {
    if let Some(pg) = find_pg_error(error) {
        return Some(classify(c, pg));
    }
    // The table providers' row stream hands the driver's error over as text only
    // ("Failed to fetch batch: Query execution failed.\n<driver error>\nFor details, ..."),
    // so a lost connection can only be told by its words.
    let text = error.to_string();
    let detail = text
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with("For details")
                && !line.ends_with("Query execution failed.")
        })
        .collect::<Vec<_>>()
        .join(" ");
    lost_connection(&text).then(|| SourceError::Unavailable {
        message: format!(
            "the connection to PostgreSQL at {} was lost while reading ({detail}); check that the server is up and look at its log",
            c.address()
        ),
    })
}
