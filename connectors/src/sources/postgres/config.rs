//! PostgreSQL source configuration.

use std::time::Duration;

use retl_engine::destination::{ConfigField, FieldType};
use retl_engine::secret::Secret;
use retl_engine::source::SourceError;
use serde::Deserialize;

use crate::sources::config::{connect_timeout, host_port, invalid, query_timeout};

/// How the connection uses TLS (libpq's `sslmode` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SslMode {
    /// Plain TCP, never TLS.
    Disable,
    /// TLS when the server offers it, plain TCP otherwise; the certificate is not verified.
    #[default]
    Prefer,
    /// TLS or fail; the certificate is not verified.
    Require,
    /// TLS with the certificate verified against the system roots (and `sslrootcert`), not
    /// the host name.
    VerifyCa,
    /// TLS with the certificate verified against the system roots (and `sslrootcert`) and the
    /// host name.
    VerifyFull,
}

impl SslMode {
    /// The libpq name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Which server speaks the PostgreSQL protocol at the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Flavor {
    /// PostgreSQL 12 or later (and wire-compatible servers that keep PostgreSQL's catalogs).
    #[default]
    Postgres,
    /// Amazon Redshift: default port 5439 and TLS required by default; schemas are read
    /// through Redshift's own catalog views by the table providers. Not tested against a real
    /// Redshift cluster in this repository.
    Redshift,
}

/// The configuration of a PostgreSQL (or Redshift) source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresConfig {
    /// Host name or IP address of the server.
    pub(crate) host: String,
    /// TCP port (default 5432, or 5439 for the `redshift` flavor).
    #[serde(default)]
    pub(crate) port: Option<u16>,
    /// The database to connect to.
    pub(crate) database: String,
    /// The role to log in as; give it read access only (see the module docs for the grants).
    pub(crate) user: String,
    /// The role's password; absent for `trust` or peer authentication.
    #[serde(default, deserialize_with = "crate::sources::config::password")]
    pub(crate) password: Option<Secret>,
    /// TLS mode: `disable`, `prefer` (default), `require`, `verify-ca` or `verify-full`.
    #[serde(default)]
    pub(crate) sslmode: Option<SslMode>,
    /// A PEM (or DER) file of the certificate authority that signed the server's certificate,
    /// trusted besides the system roots (e.g. the Amazon RDS bundle); for `verify-ca` and
    /// `verify-full`.
    #[serde(default)]
    pub(crate) sslrootcert: Option<String>,
    /// The schema that unqualified table names in model SQL resolve to (default `public`);
    /// tables of other schemas are written `schema.table`.
    #[serde(default)]
    pub(crate) schema: Option<String>,
    /// How long to wait for the server to accept a connection (default 10 000 ms).
    #[serde(default)]
    pub(crate) connect_timeout_ms: Option<u64>,
    /// Longest time one query may run in the warehouse before it is cancelled
    /// (PostgreSQL `statement_timeout`; default 3 600 000 ms = 1 hour; 0 = no limit).
    #[serde(default)]
    pub(crate) query_timeout_ms: Option<u64>,
    /// `postgres` (default) or `redshift`.
    #[serde(default)]
    pub(crate) flavor: Flavor,
}

/// The config fields, as served by `ListSourceTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "host",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Host name or IP address of the PostgreSQL server.",
    },
    ConfigField {
        name: "port",
        field_type: FieldType::Integer,
        required: false,
        secret: false,
        description: "TCP port (default 5432; 5439 for the redshift flavor).",
    },
    ConfigField {
        name: "database",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The database to read from.",
    },
    ConfigField {
        name: "user",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The role to log in as; it needs CONNECT on the database, USAGE on the schemas and SELECT on the tables models read, and nothing more.",
    },
    ConfigField {
        name: "password",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "The role's password (omit for trust or peer authentication).",
    },
    ConfigField {
        name: "sslmode",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "TLS: disable, prefer (default; require for redshift), require, verify-ca (certificate verified), or verify-full (certificate and host name verified).",
    },
    ConfigField {
        name: "sslrootcert",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Path of a PEM file with the certificate authority of the server's certificate (trusted besides the system roots), for verify-ca and verify-full.",
    },
    ConfigField {
        name: "schema",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Schema that unqualified table names resolve to (default public); other schemas are written schema.table.",
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
        description: "Longest a query may run in the warehouse, in milliseconds (statement_timeout; default 3600000; 0 = no limit).",
    },
    ConfigField {
        name: "flavor",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "postgres (default) or redshift (Amazon Redshift: port 5439 and TLS required by default).",
    },
];

/// PostgreSQL's identifier length limit (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// Server host.
    pub(crate) host: String,
    /// Server port.
    pub(crate) port: u16,
    /// Database name.
    pub(crate) database: String,
    /// Login role.
    pub(crate) user: String,
    /// Password, if any.
    pub(crate) password: Option<Secret>,
    /// TLS mode.
    pub(crate) sslmode: SslMode,
    /// Extra trusted certificate authority file.
    pub(crate) sslrootcert: Option<String>,
    /// The schema unqualified names resolve to.
    pub(crate) schema: String,
    /// Connect timeout.
    pub(crate) connect_timeout: Duration,
    /// Statement timeout; `None` = no limit.
    pub(crate) query_timeout: Option<Duration>,
    /// Server flavor.
    pub(crate) flavor: Flavor,
}

impl ValidConfig {
    /// `host:port`, for messages.
    pub(crate) fn address(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// Checks a value that goes into the `key=value` connection string of the driver, which
/// cannot quote: no whitespace, quotes, backslashes or `=`.
fn check_conn_value(field: &str, value: &str, example: &str) -> Result<(), SourceError> {
    if value.trim().is_empty() {
        return Err(invalid(field, format!("must not be empty, e.g. {example}")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '\\' | '='))
    {
        return Err(invalid(
            field,
            format!(
                "'{value}' contains {c:?}, which the connection cannot carry; use a name without whitespace, quotes, backslashes or '='"
            ),
        ));
    }
    if field != "host" && value.len() > MAX_IDENTIFIER {
        return Err(invalid(
            field,
            format!("is longer than PostgreSQL's {MAX_IDENTIFIER}-byte name limit"),
        ));
    }
    Ok(())
}

impl PostgresConfig {
    /// Checks the shape of every field; touches no network.
    pub(crate) fn validate(&self) -> Result<ValidConfig, SourceError> {
        check_conn_value("host", &self.host, "db.example.com or 127.0.0.1")?;
        check_conn_value("database", &self.database, "analytics")?;
        check_conn_value("user", &self.user, "retl_reader")?;
        let port = match self.port {
            Some(0) => return Err(invalid("port", "must be between 1 and 65535")),
            Some(port) => port,
            None => match self.flavor {
                Flavor::Postgres => 5432,
                Flavor::Redshift => 5439,
            },
        };
        let schema = match &self.schema {
            None => "public".to_string(),
            Some(schema) if schema.trim().is_empty() => {
                return Err(invalid(
                    "schema",
                    "must not be empty; omit it to use public",
                ));
            }
            Some(schema) if schema.len() > MAX_IDENTIFIER || schema.contains('\0') => {
                return Err(invalid(
                    "schema",
                    format!(
                        "'{schema}' is not a valid schema name (at most {MAX_IDENTIFIER} bytes, no NUL)"
                    ),
                ));
            }
            Some(schema) => schema.clone(),
        };
        let connect_timeout = connect_timeout(self.connect_timeout_ms)?;
        let query_timeout = query_timeout(self.query_timeout_ms)?;
        let sslmode = self.sslmode.unwrap_or(match self.flavor {
            Flavor::Postgres => SslMode::Prefer,
            Flavor::Redshift => SslMode::Require,
        });
        if let Some(path) = &self.sslrootcert {
            if !matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
                return Err(invalid(
                    "sslrootcert",
                    format!(
                        "is only used to verify the server's certificate, which sslmode={} does not do; set sslmode to verify-ca or verify-full",
                        sslmode.as_str()
                    ),
                ));
            }
            if !std::path::Path::new(path).is_absolute() {
                return Err(invalid(
                    "sslrootcert",
                    format!(
                        "'{path}' is not an absolute path; give the full path of the PEM file (the daemon's working directory is not yours)"
                    ),
                ));
            }
        }
        Ok(ValidConfig {
            host: self.host.clone(),
            port,
            database: self.database.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            sslmode,
            sslrootcert: self.sslrootcert.clone(),
            schema,
            connect_timeout,
            query_timeout,
            flavor: self.flavor,
        })
    }
}

#[cfg(test)]
mod drift {
    /// The catalog's config fields are exactly the typed config's fields.
    #[test]
    fn config_fields_match_the_typed_config() {
        retl_engine::config_fields::check_config_fields::<super::PostgresConfig>(
            super::CONFIG_FIELDS,
        )
        .unwrap();
    }
}
