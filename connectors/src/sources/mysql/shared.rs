//! What every table of one MySQL source shares: the pool, the server's flavour and version
//! ([`Shared`]), and readers of catalog rows.

use std::sync::Arc;

use datafusion_table_providers::sql::db_connection_pool::mysqlpool::MySQLConnectionPool;
use mysql_async::Row;
use mysql_async::prelude::Queryable;
use retl_engine::source::SourceError;

use super::config::ValidConfig;
use super::errors::classify;

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
pub(crate) fn text(row: &Row, i: usize) -> Option<String> {
    match row.get_opt::<Option<String>, usize>(i) {
        Some(Ok(value)) => value,
        _ => None,
    }
}

/// Column `i` of a catalog row as a number.
pub(crate) fn number(row: &Row, i: usize) -> Option<u64> {
    match row.get_opt::<Option<u64>, usize>(i) {
        Some(Ok(value)) => value,
        _ => None,
    }
}

/// Column `i` of a catalog row as a boolean (`0` / `1`).
pub(crate) fn flag(row: &Row, i: usize) -> bool {
    number(row, i).unwrap_or(0) != 0
}

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
