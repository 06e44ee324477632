//! MySQL / MariaDB source configuration.

use std::time::Duration;

use retl_engine::destination::{ConfigField, FieldType};
use retl_engine::secret::Secret;
use retl_engine::source::SourceError;
use serde::Deserialize;

use crate::sources::config::{connect_timeout, host_port, invalid, query_timeout};

/// How the connection uses TLS (the names of the MySQL client's `--ssl-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SslMode {
    /// Plain TCP, never TLS.
    Disabled,
    /// TLS when the server offers it, plain TCP when it does not; the certificate is not
    /// verified (as the MySQL client's default `PREFERRED`).
    #[default]
    Preferred,
    /// TLS or fail; the certificate is not verified.
    Required,
    /// TLS with the server certificate verified against the system roots (or `sslrootcert`)
    /// and the host name checked.
    VerifyIdentity,
}

impl SslMode {
    /// The configuration name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyIdentity => "verify_identity",
        }
    }
}

/// The configuration of a MySQL or MariaDB source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MySqlConfig {
    /// Host name or IP address of the server.
    pub(crate) host: String,
    /// TCP port (default 3306).
    #[serde(default)]
    pub(crate) port: Option<u16>,
    /// The database that unqualified table names in model SQL resolve to; tables of other
    /// databases are written `database.table`.
    pub(crate) database: String,
    /// The user to log in as; give it `SELECT` only (see the module docs for the grants).
    pub(crate) user: String,
    /// The user's password; absent for a user without one.
    #[serde(default, deserialize_with = "crate::sources::config::password")]
    pub(crate) password: Option<Secret>,
    /// TLS mode: `disabled`, `preferred` (default), `required` or `verify_identity`.
    #[serde(default)]
    pub(crate) sslmode: Option<SslMode>,
    /// A PEM file of the CA certificates to trust for `verify_identity` (default: the system
    /// roots).
    #[serde(default)]
    pub(crate) sslrootcert: Option<String>,
    /// How long to wait for the server to accept a connection (default 10 000 ms).
    #[serde(default)]
    pub(crate) connect_timeout_ms: Option<u64>,
    /// Longest time one model query may run in the server before it is interrupted
    /// (MariaDB `max_statement_time`, MySQL `max_execution_time`; default 3 600 000 ms =
    /// 1 hour; 0 = no limit).
    #[serde(default)]
    pub(crate) query_timeout_ms: Option<u64>,
}

/// The config fields, as served by `ListSourceTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "host",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Host name or IP address of the MySQL or MariaDB server.",
    },
    ConfigField {
        name: "port",
        field_type: FieldType::Integer,
        required: false,
        secret: false,
        description: "TCP port (default 3306).",
    },
    ConfigField {
        name: "database",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The database that unqualified table names resolve to; tables of other databases are written database.table.",
    },
    ConfigField {
        name: "user",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The user to log in as; it needs SELECT on the tables models read, and nothing more.",
    },
    ConfigField {
        name: "password",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "The user's password.",
    },
    ConfigField {
        name: "sslmode",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "TLS: disabled, preferred (default: TLS when the server offers it, certificate not verified), required (TLS, certificate not verified), or verify_identity (certificate and host name verified).",
    },
    ConfigField {
        name: "sslrootcert",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Path of a PEM file with the CA certificates to trust for verify_identity (default: the system roots).",
    },
    ConfigField {
        name: "connect_timeout_ms",
        field_type: FieldType::Integer,
        required: false,
        secret: false,
        description: "How long to wait for a connection, in milliseconds (default 10000).",
    },
    ConfigField {
        name: "query_timeout_ms",
        field_type: FieldType::Integer,
        required: false,
        secret: false,
        description: "Longest a model query may run in the server, in milliseconds (MariaDB max_statement_time, MySQL max_execution_time; default 3600000; 0 = no limit).",
    },
];

/// Default port.
const DEFAULT_PORT: u16 = 3306;
/// MySQL's identifier length limit (database names).
const MAX_IDENTIFIER: usize = 64;
/// MariaDB's user name length limit (MySQL's is 32).
const MAX_USER: usize = 80;

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// Server host.
    pub(crate) host: String,
    /// Server port.
    pub(crate) port: u16,
    /// Default database.
    pub(crate) database: String,
    /// Login user.
    pub(crate) user: String,
    /// Password, if any.
    pub(crate) password: Option<Secret>,
    /// TLS mode.
    pub(crate) sslmode: SslMode,
    /// CA file for `verify_identity`.
    pub(crate) sslrootcert: Option<String>,
    /// Connect timeout.
    pub(crate) connect_timeout: Duration,
    /// Statement timeout; `None` = no limit.
    pub(crate) query_timeout: Option<Duration>,
}

impl ValidConfig {
    /// `host:port`, for messages.
    pub(crate) fn address(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// Checks a name: not empty, no control characters, at most `max` characters.
fn check_name(field: &str, value: &str, example: &str, max: usize) -> Result<(), SourceError> {
    if value.trim().is_empty() {
        return Err(invalid(field, format!("must not be empty, e.g. {example}")));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(invalid(
            field,
            format!(
                "'{}' contains the control character {c:?}",
                value.escape_debug()
            ),
        ));
    }
    if value.chars().count() > max {
        return Err(invalid(
            field,
            format!("is longer than MySQL's {max}-character limit"),
        ));
    }
    Ok(())
}

impl MySqlConfig {
    /// Checks the shape of every field; touches neither the network nor the filesystem.
    pub(crate) fn validate(&self) -> Result<ValidConfig, SourceError> {
        check_name("host", &self.host, "db.example.com or 127.0.0.1", 255)?;
        if let Some(c) = self
            .host
            .chars()
            .find(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '@'))
        {
            return Err(invalid(
                "host",
                format!(
                    "'{}' contains {c:?}; give a host name or IP address only (the port goes in port)",
                    self.host
                ),
            ));
        }
        check_name("database", &self.database, "analytics", MAX_IDENTIFIER)?;
        check_name("user", &self.user, "retl_reader", MAX_USER)?;
        let port = match self.port {
            Some(0) => return Err(invalid("port", "must be between 1 and 65535")),
            Some(port) => port,
            None => DEFAULT_PORT,
        };
        let sslmode = self.sslmode.unwrap_or_default();
        let sslrootcert = match &self.sslrootcert {
            None => None,
            Some(path) if path.trim().is_empty() => {
                return Err(invalid(
                    "sslrootcert",
                    "must not be empty; omit it to trust the system roots",
                ));
            }
            Some(_) if sslmode != SslMode::VerifyIdentity => {
                return Err(invalid(
                    "sslrootcert",
                    format!(
                        "is only used with sslmode verify_identity (sslmode is {}); set sslmode to verify_identity or remove sslrootcert",
                        sslmode.as_str()
                    ),
                ));
            }
            Some(path) => Some(path.clone()),
        };
        let connect_timeout = connect_timeout(self.connect_timeout_ms)?;
        let query_timeout = query_timeout(self.query_timeout_ms)?;
        Ok(ValidConfig {
            host: self.host.clone(),
            port,
            database: self.database.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            sslmode,
            sslrootcert,
            connect_timeout,
            query_timeout,
        })
    }
}

#[cfg(test)]
mod drift {
    /// The catalog's config fields are exactly the typed config's fields.
    #[test]
    fn config_fields_match_the_typed_config() {
        retl_engine::config_fields::check_config_fields::<super::MySqlConfig>(super::CONFIG_FIELDS)
            .unwrap();
    }
}
