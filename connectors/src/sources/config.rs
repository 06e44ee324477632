//! Configuration pieces every source connector shares: parsing the JSON config with errors that
//! name the field, the `InvalidConfig` error, the password field, `host:port` for messages, and
//! the connect and query timeouts.

use std::time::Duration;

use retl_engine::config_field;
use retl_engine::destination::ConfigField;
use retl_engine::secret::Secret;
use retl_engine::source::SourceError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// `connect_timeout_ms` when the config does not set it.
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// The longest `connect_timeout_ms` accepted.
const MAX_CONNECT_TIMEOUT_MS: u64 = 300_000;
/// `query_timeout_ms` when the config does not set it (1 hour).
const DEFAULT_QUERY_TIMEOUT_MS: u64 = 3_600_000;
/// The shortest non-zero `query_timeout_ms` accepted.
const MIN_QUERY_TIMEOUT_MS: u64 = 100;

/// Parses a source's JSON config into its typed form. An error names the field (`path`, or
/// `config` when the config is not an object) and, for a value of the wrong type or range,
/// says in words what the field must be, with the field's description from `fields` (the
/// type's catalog entry): "must be a text value (absolute path of ...), not the number 42".
pub(crate) fn parse_config<T: DeserializeOwned>(
    config: &serde_json::Value,
    fields: &[ConfigField],
) -> Result<T, SourceError> {
    config_field::from_json(config).map_err(|e| {
        let top = e.field.split(['.', '[']).next().unwrap_or_default();
        let spec = fields.iter().find(|f| f.name == top);
        let message = match spec {
            Some(spec) if e.expected.is_some() => e.message_with(spec.description),
            Some(spec) if e.message == "is required" => {
                format!("is required: {}", spec.description)
            }
            _ => e.message,
        };
        let field = if e.field.is_empty() {
            "config".to_string()
        } else {
            e.field
        };
        SourceError::InvalidConfig { field, message }
    })
}

/// An `InvalidConfig` error on `field`.
pub(crate) fn invalid(field: &str, message: impl Into<String>) -> SourceError {
    SourceError::InvalidConfig {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Reads a `password` field: a string, or a number (`--config password=1234` parses as JSON).
pub(crate) fn password<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Secret>, D::Error> {
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(Secret::new(s))),
        Some(serde_json::Value::Number(n)) => Ok(Some(Secret::new(n.to_string()))),
        Some(_) => Err(serde::de::Error::custom("password must be a string")),
    }
}

/// `host:port` (`[host]:port` for an IPv6 address), for messages.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The `connect_timeout_ms` field: default 10 s, at most 5 minutes, never 0.
pub(crate) fn connect_timeout(ms: Option<u64>) -> Result<Duration, SourceError> {
    let ms = ms.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
    if ms == 0 || ms > MAX_CONNECT_TIMEOUT_MS {
        return Err(invalid(
            "connect_timeout_ms",
            format!("must be between 1 and {MAX_CONNECT_TIMEOUT_MS} milliseconds"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// The `query_timeout_ms` field: default 1 hour, `None` for 0 (no limit), at least 100 ms.
pub(crate) fn query_timeout(ms: Option<u64>) -> Result<Option<Duration>, SourceError> {
    match ms.unwrap_or(DEFAULT_QUERY_TIMEOUT_MS) {
        0 => Ok(None),
        ms if ms < MIN_QUERY_TIMEOUT_MS => Err(invalid(
            "query_timeout_ms",
            format!(
                "{ms} ms is too short for any query; use at least {MIN_QUERY_TIMEOUT_MS}, or 0 for no limit"
            ),
        )),
        ms => Ok(Some(Duration::from_millis(ms))),
    }
}

/// Reads the `sslrootcert` file (a certificate authority for verifying the server's TLS
/// certificate); a file the daemon cannot read is the config's fault.
pub(crate) fn read_root_cert(path: &str) -> Result<Vec<u8>, SourceError> {
    std::fs::read(path).map_err(|e| {
        invalid(
            "sslrootcert",
            format!(
                "cannot read the certificate authority file '{path}': {e}; give the path of a PEM file the daemon can read"
            ),
        )
    })
}
