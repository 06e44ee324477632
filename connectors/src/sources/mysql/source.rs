//! `impl Source` for MySQL and MariaDB: the connection pool, error wording, the lazily
//! resolving catalog registered in DataFusion, `test` and `list_tables`.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::sql::unparser::dialect::Dialect;
use datafusion_federation::FederatedTableProviderAdaptor;
use datafusion_federation::sql::{
    AstAnalyzer, RemoteTableRef, SQLExecutor, SQLFederationProvider, SQLTableSource,
};
use datafusion_table_providers::mysql::conn::MySQLConnection;
use datafusion_table_providers::mysql::sql_table::MySQLTable;
use datafusion_table_providers::sql::arrow_sql_gen::mysql::rows_to_arrow;
use datafusion_table_providers::sql::db_connection_pool::mysqlpool::{
    Error as PoolError, MySQLConnectionPool,
};
use datafusion_table_providers::util::secrets::to_secret_map;
use futures::{StreamExt, TryStreamExt};
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Column, DriverError, Row};
use mysql_common::row::new_row;
use retl_engine::source::{ColumnInfo, Source, SourceError, SourceTestReport, TableInfo};

use super::config::{SslMode, ValidConfig};
use super::types::{self, MySqlType};
use crate::sources::some_names;

/// Connections kept by one source's pool (an extract uses one; catalog look-ups another).
const POOL_SIZE: usize = 4;
/// The databases of the server itself, never listed.
const SYSTEM_DATABASES: &str = "'information_schema', 'mysql', 'performance_schema', 'sys'";

/// A MySQL or MariaDB server.
#[derive(Debug)]
pub(crate) struct MySqlSource {
    config: ValidConfig,
    /// Created on first use (never by `build`), then shared by every registration.
    shared: tokio::sync::OnceCell<Arc<Shared>>,
}

// ---- errors ---------------------------------------------------------------------------------

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
fn account(user: &str) -> String {
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
                        "access denied for user '{}' on {address}: check the user and password (error 1045), and that the user may connect from this host ('{}'@'%' or a matching host)",
                        c.user, c.user
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
                    "access denied for user '{}' on {address}: check the user and password (error 1045)",
                    c.user
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
        mysql_async::Error::Io(mysql_async::IoError::Tls(e)) => SourceError::Unavailable {
            message: format!(
                "the TLS handshake with MySQL at {address} failed with sslmode {}: {e}; check the server's certificate (and sslrootcert), or choose another sslmode",
                c.sslmode.as_str()
            ),
        },
        other => classify_read(c, other),
    }
}

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

impl Shared {
    /// Runs one catalog query on a pooled connection.
    pub(crate) async fn query<P>(&self, sql: &str, params: P) -> Result<Vec<Row>, SourceError>
    where
        P: Into<mysql_async::Params> + Send,
    {
        let conn = self
            .pool
            .connect_direct()
            .await
            .map_err(|e| classify(&self.config, &e))?;
        let mut conn = conn.conn.lock().await;
        conn.exec(sql, params)
            .await
            .map_err(|e| classify(&self.config, &e))
    }
}

/// Column `i` of a catalog row as text.
fn text(row: &Row, i: usize) -> Option<String> {
    match row.get_opt::<Option<String>, usize>(i) {
        Some(Ok(value)) => value,
        _ => None,
    }
}

/// Column `i` of a catalog row as a number.
fn number(row: &Row, i: usize) -> Option<u64> {
    match row.get_opt::<Option<u64>, usize>(i) {
        Some(Ok(value)) => value,
        _ => None,
    }
}

/// Column `i` of a catalog row as a boolean (`0` / `1`).
fn flag(row: &Row, i: usize) -> bool {
    number(row, i).unwrap_or(0) != 0
}

// ---- reading rows ---------------------------------------------------------------------------

/// Rows per Arrow batch (as the table providers decode them).
const BATCH_ROWS: usize = 4_000;
/// Batches decoded ahead of the consumer: memory stays bounded by this many batches.
const BATCHES_AHEAD: usize = 2;

/// Which server speaks the MySQL protocol at the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// MariaDB (`VERSION()` says so): query timeout through `max_statement_time` (seconds).
    MariaDb,
    /// MySQL or a compatible server: query timeout through `max_execution_time` (ms).
    MySql,
}

/// The pool and server facts shared by every table of one source.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The source's configuration.
    pub(crate) config: ValidConfig,
    /// The table providers' pool (a handle on a `mysql_async` pool).
    pub(crate) pool: Arc<MySQLConnectionPool>,
    /// MariaDB or MySQL.
    pub(crate) flavor: Flavor,
    /// `VERSION()`.
    pub(crate) version: String,
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
fn is_connection_lost(error: &mysql_async::Error) -> bool {
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
fn classify_read(c: &ValidConfig, error: &mysql_async::Error) -> SourceError {
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

impl Shared {
    /// What each model query's session runs first: a read-only transaction mode and the
    /// query timeout. (A pooled connection is reset when it goes back to the pool, which
    /// clears both.)
    fn session_statements(&self) -> Vec<String> {
        let mut statements = vec!["SET SESSION TRANSACTION READ ONLY".to_string()];
        if let Some(timeout) = self.config.query_timeout {
            statements.push(match self.flavor {
                Flavor::MariaDb => format!(
                    "SET SESSION max_statement_time = {:.3}",
                    timeout.as_secs_f64()
                ),
                Flavor::MySql => {
                    format!("SET SESSION max_execution_time = {}", timeout.as_millis())
                }
            });
        }
        statements
    }

    /// A pooled connection prepared for a model query. A pooled connection the server closed
    /// meanwhile (restart, kill, `wait_timeout`) is replaced once.
    async fn model_connection(&self) -> Result<MySQLConnection, SourceError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = self
                .pool
                .connect_direct()
                .await
                .map_err(|e| classify(&self.config, &e))?;
            let setup = {
                let mut guard = conn.conn.lock().await;
                let mut result = Ok(());
                for statement in self.session_statements() {
                    if let Err(e) = guard.query_drop(statement).await {
                        result = Err(e);
                        break;
                    }
                }
                result
            };
            match setup {
                Ok(()) => return Ok(conn),
                Err(e) if attempt < 2 && is_connection_lost(&e) => {
                    tracing::debug!(error = %e, "pooled MySQL connection was closed; taking another");
                }
                Err(e) => return Err(classify(&self.config, &e)),
            }
        }
    }

    /// Runs `sql` and sends its rows to `tx` as Arrow batches of `schema`; stops early when
    /// the receiver is gone. Any failure, including one after some rows, is an error: a read
    /// never ends short without one.
    async fn read_rows(
        &self,
        sql: &str,
        schema: &SchemaRef,
        tx: &tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>,
    ) -> Result<(), SourceError> {
        let conn = self.model_connection().await?;
        let mut guard = conn.conn.lock().await;
        let mut result = guard
            .exec_iter(sql, ())
            .await
            .map_err(|e| classify_read(&self.config, &e))?;
        let Some(mut rows) = result
            .stream::<Row>()
            .await
            .map_err(|e| classify_read(&self.config, &e))?
        else {
            return Ok(());
        };
        let mut chunk = Vec::with_capacity(BATCH_ROWS);
        while let Some(row) = rows.next().await {
            chunk.push(row.map_err(|e| classify_read(&self.config, &e))?);
            if chunk.len() == BATCH_ROWS {
                let batch = to_batch(
                    std::mem::replace(&mut chunk, Vec::with_capacity(BATCH_ROWS)),
                    schema,
                )?;
                if tx.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !chunk.is_empty() {
            let batch = to_batch(chunk, schema)?;
            let _ = tx.send(Ok(batch)).await;
        }
        Ok(())
    }
}

/// The providers' decoder knows `MYSQL_TYPE_BLOB` (how table columns of every blob and text
/// size arrive) but not its sized variants, which the server uses for computed values
/// (`GROUP_CONCAT`, JSON and geometry functions, ...). The bytes are the same: such columns
/// are relabelled `MYSQL_TYPE_BLOB`, keeping their length, so they decode as text or binary.
fn normalize_blob_types(rows: Vec<Row>) -> Vec<Row> {
    let Some(first) = rows.first() else {
        return rows;
    };
    let sized = |c: &Column| {
        matches!(
            c.column_type(),
            ColumnType::MYSQL_TYPE_TINY_BLOB
                | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
                | ColumnType::MYSQL_TYPE_LONG_BLOB
        )
    };
    if !first.columns_ref().iter().any(sized) {
        return rows;
    }
    let columns: Arc<[Column]> = first
        .columns_ref()
        .iter()
        .map(|c| {
            if sized(c) {
                Column::new(ColumnType::MYSQL_TYPE_BLOB)
                    .with_name(c.name_ref())
                    .with_org_name(c.org_name_ref())
                    .with_flags(c.flags())
                    .with_column_length(c.column_length())
                    .with_character_set(c.character_set())
                    .with_decimals(c.decimals())
            } else {
                c.clone()
            }
        })
        .collect();
    rows.into_iter()
        .map(|row| new_row(row.unwrap(), Arc::clone(&columns)))
        .collect()
}

/// Decodes `rows` with the table providers' decoder and casts each column to `schema`'s type
/// (columns match by position: the server names computed columns its own way).
fn to_batch(rows: Vec<Row>, schema: &SchemaRef) -> Result<RecordBatch, SourceError> {
    let rows = normalize_blob_types(rows);
    let rows = rows.as_slice();
    let Some(first) = rows.first() else {
        return Ok(RecordBatch::new_empty(Arc::clone(schema)));
    };
    let columns = first.columns_ref();
    if columns.len() != schema.fields().len() {
        return Err(SourceError::Read {
            message: format!(
                "MySQL returned {} columns where the model has {}; this is a bug in retl",
                columns.len(),
                schema.fields().len()
            ),
        });
    }
    let decode_schema = Arc::new(Schema::new(
        columns
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| {
                Field::new(
                    column.name_str().to_string(),
                    field.data_type().clone(),
                    true,
                )
            })
            .collect::<Vec<_>>(),
    ));
    let decoded = rows_to_arrow(rows, &Some(decode_schema)).map_err(|e| SourceError::Read {
        message: format!(
            "a value could not be decoded: {e}; cast the column in the model SQL (for example CAST(col AS CHAR))"
        ),
    })?;
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let arrays = decoded
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| {
            if array.data_type() == field.data_type() {
                Ok(Arc::clone(array))
            } else {
                cast_with_options(array, field.data_type(), &options).map_err(|e| {
                    SourceError::Read {
                        message: format!(
                            "column '{}': MySQL's {} values cannot be read as {}: {e}; cast the column in the model SQL",
                            field.name(),
                            array.data_type(),
                            field.data_type()
                        ),
                    }
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(Arc::clone(schema), arrays, &options).map_err(|e| {
        SourceError::Read {
            message: format!("building a batch of the model's rows failed: {e}"),
        }
    })
}

/// Aborts the reading task when the stream that receives its batches is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the SQL of a federated plan (the whole model, unparsed to MySQL's dialect) on a
/// connection of its own, with the session set up by [`Shared::session_statements`]. The
/// table providers' own executor is kept for everything but running the query.
pub(crate) struct Executor {
    /// The providers' table: name, compute context (which tables federate together),
    /// dialect and AST rewrites.
    table: Arc<MySQLTable>,
    /// The pool and server facts.
    shared: Arc<Shared>,
}

impl Executor {
    /// An executor for the tables of `shared`'s server.
    pub(crate) fn new(table: Arc<MySQLTable>, shared: Arc<Shared>) -> Self {
        Executor { table, shared }
    }
}

#[async_trait]
impl SQLExecutor for Executor {
    fn name(&self) -> &str {
        SQLExecutor::name(self.table.as_ref())
    }

    fn compute_context(&self) -> Option<String> {
        SQLExecutor::compute_context(self.table.as_ref())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        SQLExecutor::dialect(self.table.as_ref())
    }

    fn ast_analyzer(&self) -> Option<AstAnalyzer> {
        SQLExecutor::ast_analyzer(self.table.as_ref())
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> Result<SendableRecordBatchStream, DataFusionError> {
        let shared = Arc::clone(&self.shared);
        let sql = query.to_string();
        let task_schema = Arc::clone(&schema);
        tracing::debug!(sql = %sql, "running the model in MySQL");
        let start = async move {
            let (tx, rx) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
            let task = tokio::spawn(async move {
                if let Err(error) = shared.read_rows(&sql, &task_schema, &tx).await {
                    let _ = tx.send(Err(external(error))).await;
                }
            });
            let batches =
                futures::stream::unfold((rx, AbortOnDrop(task)), |(mut rx, guard)| async move {
                    rx.recv().await.map(|item| (item, (rx, guard)))
                });
            Ok::<_, DataFusionError>(batches)
        };
        let stream = futures::stream::once(start).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    async fn table_names(&self) -> Result<Vec<String>, DataFusionError> {
        SQLExecutor::table_names(self.table.as_ref()).await
    }

    async fn get_table_schema(&self, table_name: &str) -> Result<SchemaRef, DataFusionError> {
        SQLExecutor::get_table_schema(self.table.as_ref(), table_name).await
    }
}

// ---- DataFusion registration ----------------------------------------------------------------

/// What the catalog shares with its schemas: the pool and the tables already resolved in
/// this session.
struct Resolver {
    shared: Arc<Shared>,
    tables: Mutex<HashMap<(String, String), Arc<dyn TableProvider>>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("address", &self.shared.config.address())
            .finish_non_exhaustive()
    }
}

/// The columns of one table the user can see, with whether each can be read.
const COLUMNS_SQL: &str = "
SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE,
       FIND_IN_SET('select', PRIVILEGES) > 0
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
ORDER BY ORDINAL_POSITION";

fn external(error: SourceError) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}

impl Resolver {
    fn cached(&self, schema: &str, table: &str) -> Option<Arc<dyn TableProvider>> {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables
            .get(&(schema.to_string(), table.to_string()))
            .map(Arc::clone)
    }

    fn names(&self, schema: &str) -> Vec<String> {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables
            .keys()
            .filter(|(s, _)| s == schema)
            .map(|(_, t)| t.clone())
            .collect()
    }

    fn denied(&self, schema: &str, table: &str) -> SourceError {
        let user = &self.shared.config.user;
        SourceError::PermissionDenied {
            message: format!(
                "user '{user}' may not read table {schema}.{table}; run GRANT SELECT ON {}.{} TO {}",
                quote_ident(schema),
                quote_ident(table),
                account(user)
            ),
        }
    }

    /// Tells a table that does not exist (`None`) from one the user may not see: MySQL hides
    /// both from `information_schema`, but a query answers 1146 for the first and 1142 for the
    /// second.
    async fn probe(&self, schema: &str, table: &str) -> Result<(), SourceError> {
        let sql = format!(
            "SELECT 1 FROM {}.{} LIMIT 0",
            quote_ident(schema),
            quote_ident(table)
        );
        let conn = self
            .shared
            .pool
            .connect_direct()
            .await
            .map_err(|e| classify(&self.shared.config, &e))?;
        let mut conn = conn.conn.lock().await;
        match conn.query_drop(sql).await {
            Ok(()) => Ok(()),
            Err(mysql_async::Error::Server(e)) if matches!(e.code, 1142 | 1143 | 1044) => {
                Err(self.denied(schema, table))
            }
            Err(mysql_async::Error::Server(e)) if matches!(e.code, 1146 | 1049) => Ok(()),
            Err(e) => Err(classify(&self.shared.config, &e)),
        }
    }

    /// Resolves `schema.table`: `None` when it does not exist (DataFusion then reports the
    /// unknown table), an error naming the grant when it cannot be read, or naming the column
    /// when one has a type retl cannot read.
    async fn resolve(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, SourceError> {
        if let Some(provider) = self.cached(schema, table) {
            return Ok(Some(provider));
        }
        let rows = self.shared.query(COLUMNS_SQL, (schema, table)).await?;
        if rows.is_empty() {
            self.probe(schema, table).await?;
            return Ok(None);
        }
        let mut fields = Vec::new();
        for row in &rows {
            if !flag(row, 5) {
                // A column-level grant that leaves this column out: it is not part of the table
                // as this user sees it.
                continue;
            }
            let name = text(row, 0).unwrap_or_default();
            let mysql_type = MySqlType {
                data_type: text(row, 1).unwrap_or_default(),
                column_type: text(row, 2).unwrap_or_default(),
                precision: number(row, 3),
                scale: number(row, 4),
            };
            let data_type = types::arrow_type(&mysql_type).map_err(|e| SourceError::Query {
                message: format!(
                    "table {schema}.{table} cannot be read: column '{name}' has type {}, which retl cannot read; {}",
                    e.mysql_type, e.hint
                ),
            })?;
            fields.push(Field::new(name, data_type, true));
        }
        if fields.is_empty() {
            return Err(self.denied(schema, table));
        }
        let schema_ref: SchemaRef = Arc::new(Schema::new(fields));
        let reference = TableReference::partial(schema, table);
        // The pool handle is cheap to clone (the connections are shared); giving it the schema
        // keeps the providers from parsing `SHOW COLUMNS` themselves.
        let pool = Arc::new(
            MySQLConnectionPool::clone(&self.shared.pool)
                .with_schema(reference.clone(), Arc::clone(&schema_ref)),
        );
        let base = MySQLTable::new(&pool, reference.clone())
            .await
            .map_err(|e| classify(&self.shared.config, &e))?;
        let base = Arc::new(base);
        let executor = Arc::new(Executor::new(Arc::clone(&base), Arc::clone(&self.shared)));
        let federated = SQLTableSource::new_with_schema(
            Arc::new(SQLFederationProvider::new(executor)),
            RemoteTableRef::from(reference),
            schema_ref,
        );
        let provider: Arc<dyn TableProvider> = Arc::new(
            FederatedTableProviderAdaptor::new_with_provider(Arc::new(federated), base),
        );
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables.insert(
            (schema.to_string(), table.to_string()),
            Arc::clone(&provider),
        );
        Ok(Some(provider))
    }
}

/// The server as a DataFusion catalog: every database name resolves to a [`MySqlSchema`];
/// tables are looked up when the SQL names them.
#[derive(Debug)]
struct MySqlCatalog {
    resolver: Arc<Resolver>,
}

impl CatalogProvider for MySqlCatalog {
    fn schema_names(&self) -> Vec<String> {
        vec![self.resolver.shared.config.database.clone()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        Some(Arc::new(MySqlSchema {
            name: name.to_string(),
            resolver: Arc::clone(&self.resolver),
        }))
    }
}

/// One MySQL database, resolving its tables lazily.
#[derive(Debug)]
struct MySqlSchema {
    name: String,
    resolver: Arc<Resolver>,
}

#[async_trait]
impl SchemaProvider for MySqlSchema {
    fn table_names(&self) -> Vec<String> {
        self.resolver.names(&self.name)
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        self.resolver
            .resolve(&self.name, name)
            .await
            .map_err(external)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.resolver.cached(&self.name, name).is_some()
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
fn grantee(current_user: &str) -> String {
    let (user, host) = current_user.rsplit_once('@').unwrap_or((current_user, "%"));
    format!("'{user}'@'{host}'")
}

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
        let resolver = Arc::new(Resolver {
            shared,
            tables: Mutex::new(HashMap::new()),
        });
        let state_ref = ctx.state_ref();
        let catalog_name = {
            let mut state = state_ref.write();
            let options = state.config_mut().options_mut();
            // Unqualified names resolve to the configured database, as MySQL's `USE`.
            options.catalog.default_schema = c.database.clone();
            options.catalog.default_catalog.clone()
        };
        ctx.register_catalog(catalog_name, Arc::new(MySqlCatalog { resolver }));
        Ok(())
    }

    /// The executor already raises [`SourceError`]s; this words a driver error that reaches
    /// the engine another way (the providers' own scan, used when a plan is not pushed down).
    fn classify_read_error(&self, error: &(dyn StdError + 'static)) -> Option<SourceError> {
        find_mysql_error(error).map(|e| classify_read(&self.config, e))
    }
}
