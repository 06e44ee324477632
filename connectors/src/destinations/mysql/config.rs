//! `mysql` destination configuration: the connection (as the `mysql` source's, checked by the
//! same code) and the table written.

use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::invalid_config;
use crate::destinations::table::from_source_error;
use crate::sources::mysql::config::{MySqlConfig, SslMode, ValidConfig};

/// MySQL's identifier length limit (tables, columns).
const MAX_IDENTIFIER: usize = 64;

/// The configuration of a `mysql` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MySqlDestinationConfig {
    /// Host name or IP address of the server.
    pub(crate) host: String,
    /// TCP port (default 3306).
    #[serde(default)]
    pub(crate) port: Option<u16>,
    /// The database holding the table.
    pub(crate) database: String,
    /// The user to log in as (needs SELECT, INSERT, UPDATE and DELETE on the table).
    pub(crate) user: String,
    /// The user's password.
    #[serde(default, deserialize_with = "crate::sources::config::password")]
    pub(crate) password: Option<Secret>,
    /// TLS mode: `disabled`, `preferred` (default), `required` or `verify_identity`.
    #[serde(default)]
    pub(crate) sslmode: Option<SslMode>,
    /// A PEM file of the CA certificates to trust for `verify_identity`.
    #[serde(default)]
    pub(crate) sslrootcert: Option<String>,
    /// The table written.
    pub(crate) table: String,
    /// The column holding the record's key (default: the table's one-column primary key).
    #[serde(default)]
    pub(crate) key_column: Option<String>,
    /// Create the table on the first delivery when it does not exist.
    #[serde(default)]
    pub(crate) create_table: bool,
    /// How long to wait for the server to accept a connection (default 10 000 ms).
    #[serde(default)]
    pub(crate) connect_timeout_ms: Option<u64>,
}

/// The config fields, as served by `ListDestinationTypes`.
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
        description: "The database holding the table.",
    },
    ConfigField {
        name: "user",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The user to log in as; it needs SELECT, INSERT, UPDATE and DELETE on the table (CREATE on the database with create_table).",
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
        name: "table",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "The table the records are written to; its columns are the fields of the upsert action.",
    },
    ConfigField {
        name: "key_column",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "The column that holds the record's key; it needs a unique index (default: the table's one-column primary key).",
    },
    ConfigField {
        name: "create_table",
        field_type: FieldType::Boolean,
        required: false,
        secret: false,
        description: "Create the table on the first delivery when it does not exist: the key column as primary key, one column per mapped field typed from the first values (default false).",
    },
    ConfigField {
        name: "connect_timeout_ms",
        field_type: FieldType::Integer,
        required: false,
        secret: false,
        description: "How long to wait for a connection, in milliseconds (default 10000).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidDestinationConfig {
    /// The connection (its query timeout is the delivery timeout, per statement).
    pub(crate) connection: ValidConfig,
    /// The table's name.
    pub(crate) table: String,
    /// The key column, when configured.
    pub(crate) key_column: Option<String>,
    /// Whether a missing table is created.
    pub(crate) create_table: bool,
}

impl ValidDestinationConfig {
    /// The table's name for messages: `database.table`.
    pub(crate) fn table_name(&self) -> String {
        format!("{}.{}", self.connection.database, self.table)
    }
}

/// An identifier of the config (`table`, `key_column`): not empty, within MySQL's limit.
fn identifier(field: &str, name: &str) -> Result<(), DestinationError> {
    if name.trim().is_empty() {
        return Err(invalid_config(field, "must not be empty"));
    }
    if name.chars().count() > MAX_IDENTIFIER || name.contains('\0') || name.ends_with(' ') {
        return Err(invalid_config(
            field,
            format!(
                "'{name}' is not a valid MySQL name (at most {MAX_IDENTIFIER} characters, no NUL, no trailing space)"
            ),
        ));
    }
    Ok(())
}

impl MySqlDestinationConfig {
    /// Checks the shape of every field, with `timeout` as the per-statement limit; touches no
    /// network.
    pub(crate) fn validate(
        &self,
        timeout: std::time::Duration,
    ) -> Result<ValidDestinationConfig, DestinationError> {
        identifier("table", &self.table)?;
        if let Some(key) = &self.key_column {
            identifier("key_column", key)?;
        }
        let connection = MySqlConfig {
            host: self.host.clone(),
            port: self.port,
            database: self.database.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            sslmode: self.sslmode,
            sslrootcert: self.sslrootcert.clone(),
            connect_timeout_ms: self.connect_timeout_ms,
            query_timeout_ms: None,
        }
        .validate()
        .map_err(from_source_error)?;
        Ok(ValidDestinationConfig {
            connection: ValidConfig {
                query_timeout: Some(timeout),
                ..connection
            },
            table: self.table.clone(),
            key_column: self.key_column.clone(),
            create_table: self.create_table,
        })
    }
}

#[cfg(test)]
mod drift {
    /// The catalog's config fields are exactly the typed config's fields.
    #[test]
    fn config_fields_match_the_typed_config() {
        retl_engine::config_fields::check_config_fields::<super::MySqlDestinationConfig>(
            super::CONFIG_FIELDS,
        )
        .unwrap();
    }
}
