//! `impl Source` for MySQL and MariaDB: the connection pool and the server facts shared by
//! every table, `test`, `list_tables` and `register` (which installs the catalog of
//! `catalog.rs`).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion_table_providers::sql::db_connection_pool::mysqlpool::MySQLConnectionPool;
use datafusion_table_providers::util::secrets::to_secret_map;
use mysql_async::Row;
use mysql_async::prelude::Queryable;
use retl_engine::source::{ColumnInfo, Source, SourceError, SourceTestReport, TableInfo};

use super::catalog::Resolver;
use super::config::{SslMode, ValidConfig};
use super::errors::{account, classify, classify_read, find_mysql_error, quote_ident};
use super::shared::{Flavor, Shared, flag, number, text};
use super::types::{self, MySqlType};
use crate::sources::catalog::LazyCatalog;
use crate::sources::some_names;

/// Connections kept by one source's pool (an extract uses one; catalog look-ups another).
const POOL_SIZE: usize = 4;
/// The databases of the server itself, never listed.
const SYSTEM_DATABASES: &str = "'information_schema', 'mysql', 'performance_schema', 'sys'";

/// A MySQL or MariaDB server.
#[derive(Debug)]
pub(crate) struct MySqlSource {
    /// The validated configuration.
    config: ValidConfig,
    /// Created on first use (never by `build`), then shared by every registration.
    shared: tokio::sync::OnceCell<Arc<Shared>>,
}

// ---- connection -----------------------------------------------------------------------------

/// `%XX`-escapes everything but unreserved characters (RFC 3986), for the connection URL.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Checks that `path` (the `sslrootcert`) is a readable file holding a PEM certificate: the
/// driver would otherwise ignore a file that is not one, and report a directory as a lost
/// connection.
fn check_root_cert(path: &str) -> Result<(), SourceError> {
    let bytes = crate::sources::config::read_root_cert(path)?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----") {
        return Err(crate::sources::config::invalid(
            "sslrootcert",
            format!(
                "'{path}' holds no PEM certificate (no -----BEGIN CERTIFICATE----- line); give the certificate authority's certificate in PEM format"
            ),
        ));
    }
    Ok(())
}

impl MySqlSource {
    /// A source over this (validated) config; touches no network.
    pub(crate) fn new(config: ValidConfig) -> Self {
        MySqlSource {
            config,
            shared: tokio::sync::OnceCell::new(),
        }
    }

    /// The driver's connection parameters (password included) with TLS mode `tls` (the table
    /// providers' names: `disabled`, `preferred` = TLS without verification, `required` = TLS
    /// verified).
    fn pool_params(&self, tls: &str) -> HashMap<String, String> {
        let c = &self.config;
        let host = if c.host.contains(':') {
            format!("[{}]", c.host)
        } else {
            c.host.clone()
        };
        let credentials = match &c.password {
            Some(password) => format!("{}:{}", url_encode(&c.user), url_encode(password.expose())),
            None => url_encode(&c.user),
        };
        // A URL rather than separate parameters: it is the only way to keep the driver from
        // switching 127.0.0.1 to the server's Unix socket (prefer_socket) and to turn on TCP
        // keepalive, so a dead server is noticed mid-extract.
        let url = format!(
            "mysql://{credentials}@{host}:{}/{}?pool_min=0&pool_max={POOL_SIZE}&prefer_socket=false&tcp_keepalive=10000",
            c.port,
            url_encode(&c.database)
        );
        let mut params = HashMap::from([
            ("connection_string".to_string(), url),
            ("sslmode".to_string(), tls.to_string()),
        ]);
        if let Some(path) = &c.sslrootcert {
            params.insert("sslrootcert".to_string(), path.clone());
        }
        params
    }

    /// Opens the pool with the table providers' TLS mode `tls`, within the connect timeout.
    async fn open_pool(&self, tls: &str) -> Result<MySQLConnectionPool, SourceError> {
        let timeout = self.config.connect_timeout;
        let params = to_secret_map(self.pool_params(tls));
        tokio::time::timeout(timeout, MySQLConnectionPool::new(params))
            .await
            .map_err(|_| SourceError::Unavailable {
                message: format!(
                    "{} accepted the TCP connection but did not complete the MySQL handshake within {} ms; check that it is a MySQL or MariaDB server and the sslmode",
                    self.config.address(),
                    timeout.as_millis()
                ),
            })?
            .map_err(|e| classify(&self.config, &e))
    }

    /// The pool and server facts, connecting on first use.
    pub(crate) async fn shared(&self) -> Result<Arc<Shared>, SourceError> {
        self.shared
            .get_or_try_init(|| async {
                let c = &self.config;
                if let Some(path) = &c.sslrootcert {
                    check_root_cert(path)?;
                }
                crate::sources::check_reachable(
                    &c.host,
                    c.port,
                    c.connect_timeout,
                    "MySQL",
                    "bind-address in the server's configuration",
                )
                .await?;
                let pool = match c.sslmode {
                    SslMode::Disabled => self.open_pool("disabled").await?,
                    SslMode::Required => self.open_pool("preferred").await?,
                    SslMode::VerifyIdentity => self.open_pool("required").await?,
                    SslMode::Preferred => match self.open_pool("preferred").await {
                        Err(SourceError::Unavailable { message })
                            if message.contains("does not offer TLS") =>
                        {
                            tracing::debug!(
                                address = %c.address(),
                                "server offers no TLS; connecting without (sslmode preferred)"
                            );
                            self.open_pool("disabled").await?
                        }
                        other => other?,
                    },
                };
                let pool = Arc::new(pool);
                let version = {
                    let conn = pool.connect_direct().await.map_err(|e| classify(c, &e))?;
                    let mut conn = conn.conn.lock().await;
                    let version: Option<String> = conn
                        .query_first("SELECT VERSION()")
                        .await
                        .map_err(|e| classify(c, &e))?;
                    version.unwrap_or_default()
                };
                let flavor = if version.to_ascii_lowercase().contains("mariadb") {
                    Flavor::MariaDb
                } else {
                    Flavor::MySql
                };
                Ok(Arc::new(Shared {
                    config: c.clone(),
                    pool,
                    flavor,
                    version,
                }))
            })
            .await
            .map(Arc::clone)
    }

    /// Runs one catalog query on a pooled connection.
    async fn query<P>(&self, sql: &str, params: P) -> Result<Vec<Row>, SourceError>
    where
        P: Into<mysql_async::Params> + Send,
    {
        let shared = self.shared().await?;
        shared.query(sql, params).await
    }
}

// ---- Source -------------------------------------------------------------------------------

/// Every readable column of every table and view outside the system databases.
fn list_sql() -> String {
    format!(
        "
SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE,
       c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.IS_NULLABLE = 'YES'
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t
  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA NOT IN ({SYSTEM_DATABASES})
  AND FIND_IN_SET('select', c.PRIVILEGES) > 0
ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION"
    )
}

/// Who we are, as `user@host`.
const WHOAMI_SQL: &str = "SELECT CURRENT_USER()";

/// Tables of the configured database the user can see, and whether each can be read.
const DATABASE_TABLES_SQL: &str = "
SELECT t.TABLE_NAME, COALESCE(MAX(FIND_IN_SET('select', c.PRIVILEGES) > 0), 0)
FROM information_schema.TABLES t
LEFT JOIN information_schema.COLUMNS c
  ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME
WHERE t.TABLE_SCHEMA = ?
GROUP BY t.TABLE_NAME
ORDER BY t.TABLE_NAME";

/// The user's own grants at every level: scope (`*.*`, `db.*`, `db.table`) and privilege.
const GRANTS_SQL: &str = "
SELECT '*.*', PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?
UNION ALL
SELECT CONCAT(TABLE_SCHEMA, '.*'), PRIVILEGE_TYPE
FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ?
UNION ALL
SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), PRIVILEGE_TYPE
FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = ?";

/// Privileges that change data or schema; retl needs none of them.
const WRITE_PRIVILEGES: &[&str] = &[
    "INSERT",
    "UPDATE",
    "DELETE",
    "DELETE HISTORY",
    "CREATE",
    "DROP",
    "ALTER",
    "INDEX",
    "CREATE VIEW",
    "TRIGGER",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "EVENT",
];

/// `'user'@'host'`, as `information_schema` spells a grantee, from `CURRENT_USER()`.
pub(crate) fn grantee(current_user: &str) -> String {
    let (user, host) = current_user.rsplit_once('@').unwrap_or((current_user, "%"));
    format!("'{user}'@'{host}'")
}

/// `table` or `view`, from `information_schema.TABLES.TABLE_TYPE`.
fn kind_name(table_type: &str) -> &'static str {
    match table_type {
        "VIEW" | "SYSTEM VIEW" => "view",
        _ => "table",
    }
}

impl MySqlSource {
    /// Warnings about privileges beyond `SELECT`.
    async fn privilege_warnings(&self, current_user: &str) -> Result<Vec<String>, SourceError> {
        let grantee = grantee(current_user);
        let rows = self
            .query(GRANTS_SQL, (&grantee, &grantee, &grantee))
            .await?;
        let mut global = Vec::new();
        let mut writable: Vec<String> = Vec::new();
        let mut privileges: Vec<String> = Vec::new();
        for row in &rows {
            let scope = text(row, 0).unwrap_or_default();
            let privilege = text(row, 1).unwrap_or_default().to_ascii_uppercase();
            if !WRITE_PRIVILEGES.contains(&privilege.as_str()) && privilege != "SUPER" {
                continue;
            }
            if scope == "*.*" {
                global.push(privilege.clone());
            } else if !writable.contains(&scope) {
                writable.push(scope);
            }
            if !privileges.contains(&privilege) {
                privileges.push(privilege);
            }
        }
        let mut warnings = Vec::new();
        let account = grantee.clone();
        if !global.is_empty() {
            let admin = if global.iter().any(|p| p == "SUPER") {
                "is an administrator (SUPER) and "
            } else {
                ""
            };
            warnings.push(format!(
                "user {account} {admin}may change every database ({} on *.*); retl only reads, so a user with SELECT grants only is safer (CREATE USER 'retl_reader'@'%' ...; GRANT SELECT ON {}.* TO 'retl_reader'@'%')",
                some_names(&global),
                quote_ident(&self.config.database)
            ));
        } else if !writable.is_empty() {
            warnings.push(format!(
                "user {account} may also change data or tables ({}) on {}; retl only reads, so a user without write privileges is safer (REVOKE {} ON ... FROM {account})",
                some_names(&privileges),
                some_names(&writable),
                privileges.join(", ")
            ));
        }
        Ok(warnings)
    }
}

#[async_trait]
impl Source for MySqlSource {
    async fn test(&self) -> Result<SourceTestReport, SourceError> {
        let shared = self.shared().await?;
        let c = &self.config;
        let current_user = self
            .query(WHOAMI_SQL, ())
            .await?
            .first()
            .and_then(|row| text(row, 0))
            .unwrap_or_else(|| c.user.clone());

        let mut warnings = Vec::new();
        let tables = self.query(DATABASE_TABLES_SQL, (&c.database,)).await?;
        let mut readable = 0_usize;
        let mut unreadable = Vec::new();
        for row in &tables {
            if flag(row, 1) {
                readable += 1;
            } else {
                unreadable.push(text(row, 0).unwrap_or_default());
            }
        }
        if tables.is_empty() {
            warnings.push(format!(
                "user '{current_user}' sees no tables in database '{}': it is empty, or the user may read none of them (GRANT SELECT ON {}.* TO {}); models can name tables of other databases as database.table",
                c.database,
                quote_ident(&c.database),
                account(&c.user)
            ));
        } else if readable == 0 {
            return Err(SourceError::PermissionDenied {
                message: format!(
                    "user '{current_user}' may read none of the {} tables of database '{}' (permission denied on {}); run GRANT SELECT ON {}.* TO {}",
                    tables.len(),
                    c.database,
                    some_names(&unreadable),
                    quote_ident(&c.database),
                    account(&c.user)
                ),
            });
        } else if !unreadable.is_empty() {
            warnings.push(format!(
                "user '{current_user}' may not read {} of the tables of database '{}' ({}); models that use them will fail: GRANT SELECT ON them TO {}",
                unreadable.len(),
                c.database,
                some_names(&unreadable),
                account(&c.user)
            ));
        }
        warnings.extend(self.privilege_warnings(&current_user).await?);

        let server = match shared.flavor {
            Flavor::MariaDb => "MariaDB",
            Flavor::MySql => "MySQL",
        };
        let version = shared.version.split('-').next().unwrap_or(&shared.version);
        Ok(SourceTestReport {
            message: format!(
                "connected to {server} {version} at {} as '{current_user}', database '{}'; {readable} readable tables and views",
                c.address(),
                c.database,
            ),
            warnings,
        })
    }

    async fn list_tables(&self) -> Result<Vec<TableInfo>, SourceError> {
        let rows = self.query(list_sql().as_str(), ()).await?;
        let c = &self.config;
        let mut tables: Vec<TableInfo> = Vec::new();
        for row in &rows {
            let schema = text(row, 0).unwrap_or_default();
            let name = text(row, 1).unwrap_or_default();
            let mysql_type = MySqlType {
                data_type: text(row, 4).unwrap_or_default(),
                column_type: text(row, 5).unwrap_or_default(),
                precision: number(row, 6),
                scale: number(row, 7),
            };
            let column = ColumnInfo {
                name: text(row, 3).unwrap_or_default(),
                data_type: match types::arrow_type(&mysql_type) {
                    Ok(data_type) => data_type.to_string(),
                    Err(unsupported) => unsupported.to_string(),
                },
                nullable: flag(row, 8),
            };
            match tables.last_mut() {
                Some(last) if last.schema == schema && last.name == name => {
                    last.columns.push(column);
                }
                _ => tables.push(TableInfo {
                    location: format!("{}/{schema}.{name}", c.address()),
                    kind: kind_name(&text(row, 2).unwrap_or_default()).to_string(),
                    schema,
                    name,
                    columns: vec![column],
                }),
            }
        }
        Ok(tables)
    }

    async fn register(&self, ctx: &SessionContext) -> Result<(), SourceError> {
        let c = &self.config;
        // A pool that exists already would wait for a server that went away; one TCP connect
        // tells at once.
        if self.shared.initialized() {
            crate::sources::check_reachable(
                &c.host,
                c.port,
                c.connect_timeout,
                "MySQL",
                "bind-address in the server's configuration",
            )
            .await?;
        }
        let shared = self.shared().await?;
        crate::sources::federation::install(ctx);
        let state_ref = ctx.state_ref();
        let catalog_name = {
            let mut state = state_ref.write();
            let options = state.config_mut().options_mut();
            // Unqualified names resolve to the configured database, as MySQL's `USE`.
            options.catalog.default_schema = c.database.clone();
            options.catalog.default_catalog.clone()
        };
        ctx.register_catalog(
            catalog_name,
            Arc::new(LazyCatalog::new(Resolver::new(shared))),
        );
        Ok(())
    }

    /// The executor already raises [`SourceError`]s; this words a driver error that reaches
    /// the engine another way (the providers' own scan, used when a plan is not pushed down).
    fn classify_read_error(&self, error: &(dyn StdError + 'static)) -> Option<SourceError> {
        find_mysql_error(error).map(|e| classify_read(&self.config, e))
    }
}
