//! Source connectors, one folder each (see the crate docs for the file contract).

pub(crate) mod catalog;
pub(crate) mod config;
#[cfg(test)]
pub(crate) mod conformance;
pub(crate) mod federation;
pub(crate) mod files;
pub(crate) mod mysql;
pub(crate) mod postgres;
pub(crate) mod sqlite;
#[cfg(test)]
pub(crate) mod test_support;

use retl_engine::source::SourceError;

/// How many object names a message lists before "and N more".
const NAMES_SHOWN: usize = 5;

/// `a, b, c and 4 more`.
pub(crate) fn some_names(names: &[String]) -> String {
    let shown = names
        .iter()
        .take(NAMES_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NAMES_SHOWN {
        format!("{shown} and {} more", names.len() - NAMES_SHOWN)
    } else {
        shown
    }
}

/// Resolves `host` and opens a TCP connection to `port` within `timeout`, so that an
/// unreachable server fails fast with its own message (drivers' own checks can block for
/// 30 s per address). `server` names the product in the message ("MariaDB"); `hint` says what
/// to check on its side (for example its listen-address setting).
pub(crate) async fn check_reachable(
    host: &str,
    port: u16,
    timeout: std::time::Duration,
    server: &str,
    hint: &str,
) -> Result<(), SourceError> {
    let address = config::host_port(host, port);
    let addrs = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| SourceError::Unavailable {
            message: format!(
                "looking up host '{host}' timed out after {} ms; check the host name and DNS",
                timeout.as_millis()
            ),
        })?
        .map_err(|e| SourceError::Unavailable {
            message: format!("cannot resolve host '{host}': {e}; check the host name"),
        })?;
    let mut last_error = None;
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last_error = Some(e.to_string()),
            Err(_) => last_error = Some(format!("no answer within {} ms", timeout.as_millis())),
        }
    }
    Err(SourceError::Unavailable {
        message: format!(
            "cannot connect to {server} at {address}: {}; check the host and port, that the server is running and listens on that address ({hint}), and that no firewall blocks it",
            last_error.unwrap_or_else(|| "the host name resolves to no address".to_string())
        ),
    })
}
