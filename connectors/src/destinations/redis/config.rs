//! Redis configuration: the typed config, its catalog field specs and validation.

use std::time::Duration;

use retl_engine::destination::{ConfigField, DestinationError, FieldType};
use retl_engine::secret::Secret;
use serde::Deserialize;

use crate::destinations::invalid_config;

/// Redis's default port.
const DEFAULT_PORT: u16 = 6379;
/// The default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The configuration of a Redis destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisConfig {
    /// Host name or IP address of the server.
    pub(crate) host: String,
    /// TCP port (default 6379).
    #[serde(default)]
    pub(crate) port: Option<u16>,
    /// The logical database (`SELECT`; default 0).
    #[serde(default)]
    pub(crate) database: Option<u32>,
    /// An ACL user (Redis 6+); without it the password is the `default` user's
    /// (`requirepass`).
    #[serde(default)]
    pub(crate) username: Option<String>,
    /// The password. Secret.
    #[serde(default)]
    pub(crate) password: Option<Secret>,
    /// What every key starts with; the record's unique id follows (e.g. `customer:`).
    pub(crate) key_prefix: String,
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
        description: "Host name or IP address of the Redis server.",
    },
    ConfigField {
        name: "port",
        field_type: FieldType::Integer,
        required: false,
        secret: false,
        description: "TCP port (default 6379).",
    },
    ConfigField {
        name: "database",
        field_type: FieldType::Integer,
        required: false,
        secret: false,
        description: "The logical database number (SELECT; default 0).",
    },
    ConfigField {
        name: "username",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "An ACL user (Redis 6 and later); without it, password is the default user's (requirepass).",
    },
    ConfigField {
        name: "password",
        field_type: FieldType::String,
        required: false,
        secret: true,
        description: "The password (AUTH).",
    },
    ConfigField {
        name: "key_prefix",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "What every key starts with; the record's unique id follows, e.g. customer: makes customer:42.",
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
pub(crate) struct ValidConfig {
    /// Server host.
    pub(crate) host: String,
    /// Server port.
    pub(crate) port: u16,
    /// Logical database.
    pub(crate) database: u32,
    /// ACL user.
    pub(crate) username: Option<String>,
    /// Password.
    pub(crate) password: Option<Secret>,
    /// Key prefix.
    pub(crate) key_prefix: String,
    /// Connect timeout.
    pub(crate) connect_timeout: Duration,
}

impl ValidConfig {
    /// `host:port`, for messages.
    pub(crate) fn address(&self) -> String {
        crate::sources::config::host_port(&self.host, self.port)
    }
}

impl RedisConfig {
    /// Checks every field (no network access).
    pub(crate) fn validate(&self) -> Result<ValidConfig, DestinationError> {
        if self.host.trim().is_empty() || self.host.contains(char::is_whitespace) {
            return Err(invalid_config(
                "host",
                "must be a host name or IP address, e.g. 127.0.0.1 or redis.internal",
            ));
        }
        if self.port == Some(0) {
            return Err(invalid_config("port", "must be between 1 and 65535"));
        }
        if self.key_prefix.is_empty() {
            return Err(invalid_config(
                "key_prefix",
                "must not be empty: keys are the prefix and the record's unique id, e.g. customer: makes customer:42",
            ));
        }
        if let Some(username) = &self.username
            && (username.is_empty() || username.contains(char::is_whitespace))
        {
            return Err(invalid_config(
                "username",
                "must be an ACL user name without spaces",
            ));
        }
        if self.username.is_some() && self.password.is_none() {
            return Err(invalid_config("password", "is required with username"));
        }
        let connect_timeout = match self.connect_timeout_ms {
            None => DEFAULT_CONNECT_TIMEOUT,
            Some(0) => {
                return Err(invalid_config(
                    "connect_timeout_ms",
                    "must be at least 1 (milliseconds)",
                ));
            }
            Some(ms) => Duration::from_millis(ms),
        };
        Ok(ValidConfig {
            host: self.host.clone(),
            port: self.port.unwrap_or(DEFAULT_PORT),
            database: self.database.unwrap_or(0),
            username: self.username.clone(),
            password: self.password.clone(),
            key_prefix: self.key_prefix.clone(),
            connect_timeout,
        })
    }
}

#[cfg(test)]
mod drift {
    /// The catalog's config fields are exactly the typed config's fields.
    #[test]
    fn config_fields_match_the_typed_config() {
        retl_engine::config_fields::check_config_fields::<super::RedisConfig>(super::CONFIG_FIELDS)
            .unwrap();
    }
}
