//! The connection pool of a PostgreSQL server, shared by the `postgres` source (read-only
//! sessions) and the `postgres` destination (writing sessions): the driver's parameters, a
//! fast reachability check, and the handshake bounded by the connect timeout.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion_table_providers::UnsupportedTypeAction;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use datafusion_table_providers::util::secrets::to_secret_map;
use retl_engine::source::SourceError;

use super::config::{Flavor, ValidConfig};
use super::errors;

/// What the pool's sessions may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    /// `default_transaction_read_only=on`: a model can never write, whatever SQL reaches the
    /// server (the source).
    ReadOnly,
    /// Sessions that write (the destination).
    ReadWrite,
}

/// The driver's connection parameters (password included).
fn params(c: &ValidConfig, session: Session, size: usize) -> HashMap<String, String> {
    let mut params = HashMap::from([
        ("host".to_string(), c.host.clone()),
        ("port".to_string(), c.port.to_string()),
        ("db".to_string(), c.database.clone()),
        ("user".to_string(), c.user.clone()),
        ("sslmode".to_string(), c.sslmode.as_str().to_string()),
        ("connection_pool_size".to_string(), size.max(1).to_string()),
        ("application_name".to_string(), "retl".to_string()),
    ]);
    if let Some(password) = &c.password {
        params.insert("pass".to_string(), password.expose().to_string());
    }
    if let Some(path) = &c.sslrootcert {
        params.insert("sslrootcert".to_string(), path.clone());
    }
    if c.flavor == Flavor::Postgres {
        let mut options = Vec::new();
        if session == Session::ReadOnly {
            options.push("-c default_transaction_read_only=on".to_string());
        }
        if let Some(timeout) = c.query_timeout {
            options.push(format!("-c statement_timeout={}", timeout.as_millis()));
        }
        if !options.is_empty() {
            params.insert("options".to_string(), options.join(" "));
        }
    }
    params
}

/// A TCP connection within the connect timeout, so an unreachable host fails fast with its own
/// message (the driver's own check blocks for 30 s per address).
pub(crate) async fn check_reachable(c: &ValidConfig) -> Result<(), SourceError> {
    crate::sources::check_reachable(
        &c.host,
        c.port,
        c.connect_timeout,
        "PostgreSQL",
        "listen_addresses",
    )
    .await
}

/// Opens a pool of at most `size` connections: checks the certificate file and that the server
/// is reachable, then completes the handshake (authentication included) within the connect
/// timeout.
pub(crate) async fn open(
    c: &ValidConfig,
    session: Session,
    size: usize,
) -> Result<Arc<PostgresConnectionPool>, SourceError> {
    if let Some(path) = &c.sslrootcert {
        crate::sources::config::read_root_cert(path)?;
    }
    check_reachable(c).await?;
    let params = to_secret_map(params(c, session, size));
    let timeout = c.connect_timeout;
    let pool = tokio::time::timeout(timeout, PostgresConnectionPool::new(params))
        .await
        .map_err(|_| SourceError::Unavailable {
            message: format!(
                "{} accepted the TCP connection but did not complete the PostgreSQL handshake within {} ms; check that it is a PostgreSQL server and the sslmode",
                c.address(),
                timeout.as_millis()
            ),
        })?
        .map_err(|e| errors::classify(c, &e))?
        .with_unsupported_type_action(UnsupportedTypeAction::String);
    Ok(Arc::new(pool))
}
