//! Error wording for MySQL and MariaDB: driver, pool and server errors turned into
//! [`SourceError`]s that say what to check or run.

use std::error::Error as StdError;

use datafusion_table_providers::sql::db_connection_pool::mysqlpool::Error as PoolError;
use mysql_async::DriverError;
use retl_engine::source::SourceError;

use super::config::ValidConfig;

/// The first table-providers pool error in an error's source chain.
fn find_pool_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a PoolError> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(pool) = e.downcast_ref::<PoolError>() {
            return Some(pool);
        }
        current = e.source();
    }
    None
}

/// `'user'@'host'` for GRANT statements in messages.
pub(crate) fn account(user: &str) -> String {
    format!("'{}'@'%'", user.replace('\'', "''"))
}

/// `` `name` ``, for SQL in messages and catalog probes.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Words a failure to connect, or a failed catalog statement, for the user.
pub(crate) fn classify(config: &ValidConfig, error: &(dyn StdError + 'static)) -> SourceError {
    let c = config;
    let address = c.address();
    if let Some(pool) = find_pool_error(error) {
        match pool {
            PoolError::InvalidUsernameOrPassword => {
                return SourceError::Authentication {
                    message: format!(
                        "access denied for user '{}' on {address}: check the user and password (error 1045), and that the user may connect from this host ('{}'@'%' or a matching host; an anonymous user ''@'localhost', which a fresh MariaDB install creates, takes precedence over '{}'@'%' for local connections: DROP USER ''@'localhost')",
                        c.user, c.user, c.user
                    ),
                };
            }
            PoolError::UnknownMySQLDatabase { .. } => {
                return unknown_database(c);
            }
            PoolError::InvalidRootCertPathError { path } => {
                return SourceError::InvalidConfig {
                    field: "sslrootcert".to_string(),
                    message: format!("'{path}' does not exist; give the path of a PEM file"),
                };
            }
            PoolError::InvalidHostOrPortError { .. } => {
                return SourceError::Unavailable {
                    message: format!(
                        "cannot connect to MySQL at {address}; check the host and port, and that the server is running"
                    ),
                };
            }
            _ => {}
        }
    }
    let Some(mysql) = find_mysql_error(error) else {
        return SourceError::Unavailable {
            message: format!("cannot use MySQL at {address}: {error}"),
        };
    };
    match mysql {
        mysql_async::Error::Server(server) => match server.code {
            1045 => SourceError::Authentication {
                message: format!(
                    "access denied for user '{}' on {address}: check the user and password (error 1045), and that the user may connect from this host (an anonymous user ''@'localhost' takes precedence over '{}'@'%' for local connections)",
                    c.user, c.user
                ),
            },
            1049 => unknown_database(c),
            1044 => SourceError::PermissionDenied {
                message: format!(
                    "user '{}' may not use database '{}' ({} (error 1044)); run GRANT SELECT ON {}.* TO {}",
                    c.user,
                    c.database,
                    server.message,
                    quote_ident(&c.database),
                    account(&c.user)
                ),
            },
            1129 | 1130 => SourceError::Authentication {
                message: format!(
                    "MySQL at {address} refuses this client: {} (error {}); allow the user to connect from this host (CREATE USER '{}'@'<this host>' ...)",
                    server.message, server.code, c.user
                ),
            },
            1142 | 1143 => SourceError::PermissionDenied {
                message: format!(
                    "user '{}' may not read this: {} (error {}); GRANT SELECT ON the table TO {}",
                    c.user,
                    server.message,
                    server.code,
                    account(&c.user)
                ),
            },
            _ => classify_server(c, server),
        },
        mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer) => {
            SourceError::Unavailable {
                message: format!(
                    "MySQL at {address} does not offer TLS, and sslmode {} requires it; enable TLS on the server, or set sslmode to preferred or disabled",
                    c.sslmode.as_str()
                ),
            }
        }
        mysql_async::Error::Driver(DriverError::UnknownAuthPlugin { name }) => {
            SourceError::Authentication {
                message: format!(
                    "user '{}' authenticates with the plugin '{name}', which retl does not support (or the user does not exist); use mysql_native_password or caching_sha2_password for this user",
                    c.user
                ),
            }
        }
        mysql_async::Error::Io(mysql_async::IoError::Tls(e))
            if e.to_string().to_ascii_lowercase().contains("certificate") =>
        {
            let trusted = match &c.sslrootcert {
                Some(path) => format!("the certificate authority in '{path}'"),
                None => "the system's certificate authorities (sslrootcert is not set)".to_string(),
            };
            SourceError::Unavailable {
                message: format!(
                    "MySQL at {address} presented a TLS certificate that sslmode {} does not accept ({e}); it is checked against {trusted}: set sslrootcert to the PEM file of the authority that signed the server's certificate, check that the certificate names the host '{}', or use sslmode required to encrypt without verifying",
                    c.sslmode.as_str(),
                    c.host
                ),
            }
        }
        mysql_async::Error::Io(mysql_async::IoError::Tls(e)) => SourceError::Unavailable {
            message: format!(
                "the TLS handshake with MySQL at {address} failed with sslmode {}: {e}; check the server's certificate (and sslrootcert), or choose another sslmode",
                c.sslmode.as_str()
            ),
        },
        other => classify_read(c, other),
    }
}

/// The configured database does not exist (error 1049).
fn unknown_database(c: &ValidConfig) -> SourceError {
    SourceError::InvalidConfig {
        field: "database".to_string(),
        message: format!(
            "database '{}' does not exist on {} (error 1049); check the name (it is case-sensitive on Linux) or create it",
            c.database,
            c.address()
        ),
    }
}

/// The first `mysql_async` error in an error's source chain.
pub(crate) fn find_mysql_error<'a>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a mysql_async::Error> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(mysql) = e.downcast_ref::<mysql_async::Error>() {
            return Some(mysql);
        }
        current = e.source();
    }
    None
}

/// Whether the connection itself is gone (server restarted, connection killed or timed out).
pub(crate) fn is_connection_lost(error: &mysql_async::Error) -> bool {
    match error {
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Driver(
            DriverError::ConnectionClosed | DriverError::PoolDisconnected,
        ) => true,
        mysql_async::Error::Server(server) => {
            matches!(server.code, 1053 | 1077 | 1317 | 1927 | 2006 | 2013)
        }
        _ => false,
    }
}

/// Words an error the server answered a statement with.
fn classify_server(c: &ValidConfig, server: &mysql_async::ServerError) -> SourceError {
    let address = c.address();
    let detail = format!("{} (error {})", server.message, server.code);
    match server.code {
        // Server shutting down, connection killed, query killed.
        1053 | 1077 | 1317 | 1927 | 2006 | 2013 => SourceError::Unavailable {
            message: format!(
                "MySQL at {address} ended the connection: {detail}; the server may have restarted or an administrator killed the query"
            ),
        },
        // Too many connections (server-wide or for this user).
        1040 | 1203 | 1226 => SourceError::Unavailable {
            message: format!(
                "MySQL at {address} refuses more connections now: {detail}; lower max_concurrent_extractions or raise the server's limit"
            ),
        },
        // MariaDB max_statement_time, MySQL max_execution_time.
        1969 | 3024 => SourceError::Read {
            message: format!(
                "the query ran longer than the source's query_timeout_ms ({} ms) and the server interrupted it: {detail}; raise query_timeout_ms, or make the model cheaper",
                c.query_timeout.map_or(0, |t| t.as_millis())
            ),
        },
        1142 | 1143 => SourceError::PermissionDenied {
            message: format!(
                "user '{}' may not read this: {detail}; GRANT SELECT ON the table TO {}",
                c.user,
                account(&c.user)
            ),
        },
        1146 => SourceError::Query {
            message: format!("MySQL at {address} does not know a table of the model: {detail}"),
        },
        // Syntax, unknown column or function, wrong arguments: SQL the server refuses.
        1054 | 1064 | 1128 | 1305 | 1582 | 1583 | 1584 | 1630 => SourceError::Query {
            message: format!(
                "MySQL rejected the SQL retl generated for the model: {detail}; write the model with standard SQL functions that MySQL also knows"
            ),
        },
        _ => SourceError::Read {
            message: format!("MySQL at {address} reported: {detail}"),
        },
    }
}

/// Words an error raised while a model's rows were being read.
pub(crate) fn classify_read(c: &ValidConfig, error: &mysql_async::Error) -> SourceError {
    let address = c.address();
    match error {
        mysql_async::Error::Server(server) => classify_server(c, server),
        e if is_connection_lost(e) => SourceError::Unavailable {
            message: format!(
                "the connection to MySQL at {address} was lost: {e}; the server may have restarted, or the connection was killed or timed out"
            ),
        },
        e => SourceError::Read {
            message: format!("reading from MySQL at {address} failed: {e}"),
        },
    }
}
