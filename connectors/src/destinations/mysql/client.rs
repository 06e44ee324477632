//! The connection to MySQL or MariaDB (the `mysql` source's pool, with a writing session), the
//! table's description and creation, and server errors as `DestinationError`s.

use std::sync::Arc;

use datafusion_table_providers::mysql::conn::MySQLConnection;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use retl_engine::destination::{DestinationError, FieldType, Payload};

use super::config::ValidDestinationConfig;
use crate::destinations::invalid_config;
use crate::destinations::table::{
    Column, Dialect, FatalError, StatementError, Table, ValueKind, from_source_error,
    missing_table, planned_columns,
};
use crate::sources::mysql::errors::{account, classify, is_connection_lost, quote_ident};
use crate::sources::mysql::shared::{Flavor, Shared, flag, number, text};
use crate::sources::mysql::source::{MySqlSource, grantee};

/// MySQL's spelling in the shared table messages.
pub(super) static DIALECT: Dialect = Dialect {
    quote: quote_ident,
    upsert_clause: "ON DUPLICATE KEY UPDATE",
};

/// The columns of the table, with what an insert needs.
const COLUMNS_SQL: &str = "
SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE,
       IS_NULLABLE = 'NO' AND COLUMN_DEFAULT IS NULL AND EXTRA NOT LIKE '%auto_increment%'
         AND EXTRA NOT IN ('VIRTUAL GENERATED', 'STORED GENERATED', 'VIRTUAL', 'PERSISTENT'),
       EXTRA IN ('VIRTUAL GENERATED', 'STORED GENERATED', 'VIRTUAL', 'PERSISTENT')
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
ORDER BY ORDINAL_POSITION";

/// One-column unique indexes on whole columns (no prefix), and whether each is the primary key.
const UNIQUE_SQL: &str = "
SELECT MAX(COLUMN_NAME), INDEX_NAME = 'PRIMARY'
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0
GROUP BY INDEX_NAME
HAVING COUNT(*) = 1 AND MAX(SUB_PART) IS NULL";

/// The user's privileges on the table, granted globally, on its database (patterns included)
/// or on the table itself.
const PRIVILEGES_SQL: &str = "
SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?
UNION
SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES
WHERE GRANTEE = ? AND ? LIKE TABLE_SCHEMA
UNION
SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES
WHERE GRANTEE = ? AND TABLE_SCHEMA = ? AND TABLE_NAME = ?";

/// The account the server matched, and the largest packet it accepts.
const SESSION_SQL: &str = "SELECT CURRENT_USER(), @@max_allowed_packet";

/// The privileges a delivery needs.
const NEEDED: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];

/// The table written and the server's packet limit.
#[derive(Debug, Clone)]
pub(crate) struct Described {
    /// The table.
    pub(crate) table: Table,
    /// `@@max_allowed_packet`: no statement may be larger.
    pub(crate) max_packet: usize,
}

/// A configured MySQL database and table.
#[derive(Debug)]
pub(crate) struct MySqlClient {
    config: ValidDestinationConfig,
    /// The `mysql` source over the same connection: its pool (opened on first use, never by
    /// `build`), TLS modes, and connection errors.
    source: MySqlSource,
}

/// A failure to connect as this destination's error.
fn connect_error(config: &ValidDestinationConfig, error: &mysql_async::Error) -> DestinationError {
    from_source_error(classify(&config.connection, error))
}

impl MySqlClient {
    /// A client of this config.
    pub(crate) fn new(config: ValidDestinationConfig) -> Self {
        MySqlClient {
            source: MySqlSource::new(config.connection.clone()),
            config,
        }
    }

    /// The validated config.
    pub(crate) fn config(&self) -> &ValidDestinationConfig {
        &self.config
    }

    /// The pool and server facts.
    pub(crate) async fn shared(&self) -> Result<Arc<Shared>, DestinationError> {
        self.source.shared().await.map_err(from_source_error)
    }

    /// What every delivery session runs first: UTC for `timestamp` columns, strict mode (a
    /// value its column cannot hold is an error, never silently truncated) and, on MariaDB,
    /// the statement timeout. (A pooled connection is reset when it goes back to the pool.)
    fn session_sql(&self, flavor: Flavor) -> String {
        let mut sql = "SET SESSION time_zone = '+00:00', sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')".to_string();
        if let (Flavor::MariaDb, Some(timeout)) = (flavor, self.config.connection.query_timeout) {
            sql.push_str(&format!(
                ", max_statement_time = {:.3}",
                timeout.as_secs_f64()
            ));
        }
        sql
    }

    /// A pooled connection with the delivery session set up; a pooled connection the server
    /// closed meanwhile is replaced once.
    pub(crate) async fn connection(&self) -> Result<MySQLConnection, DestinationError> {
        let shared = self.shared().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = shared
                .pool
                .connect_direct()
                .await
                .map_err(|e| from_source_error(classify(&self.config.connection, &e)))?;
            let setup = {
                let mut guard = conn.conn.lock().await;
                guard.query_drop(self.session_sql(shared.flavor)).await
            };
            match setup {
                Ok(()) => return Ok(conn),
                Err(e) if attempt < 2 && is_connection_lost(&e) => {
                    tracing::debug!(error = %e, "pooled MySQL connection was closed; taking another");
                }
                Err(e) => return Err(connect_error(&self.config, &e)),
            }
        }
    }

    /// Runs a catalog query.
    async fn query<P>(
        &self,
        conn: &mut Conn,
        sql: &str,
        params: P,
    ) -> Result<Vec<Row>, DestinationError>
    where
        P: Into<mysql_async::Params> + Send,
    {
        conn.exec(sql, params).await.map_err(|e| self.error(&e))
    }

    /// The user's privileges on the table: granted globally, on its database or on the table
    /// (upper case: `SELECT`, `CREATE`, ...).
    pub(crate) async fn privileges(
        &self,
        conn: &mut Conn,
        current_user: &str,
    ) -> Result<Vec<String>, DestinationError> {
        let c = &self.config;
        let grantee = grantee(current_user);
        let rows = self
            .query(
                conn,
                PRIVILEGES_SQL,
                (
                    &grantee,
                    &grantee,
                    &c.connection.database,
                    &grantee,
                    &c.connection.database,
                    &c.table,
                ),
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| text(row, 0))
            .map(|p| p.to_ascii_uppercase())
            .collect())
    }

    /// The account the server matched (`user@host`) and `@@max_allowed_packet`.
    pub(crate) async fn session(
        &self,
        conn: &mut Conn,
    ) -> Result<(String, usize), DestinationError> {
        let rows = self.query(conn, SESSION_SQL, ()).await?;
        let row = rows.first();
        let user = row
            .and_then(|r| text(r, 0))
            .unwrap_or_else(|| self.config.connection.user.clone());
        let packet = row
            .and_then(|r| number(r, 1))
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(16 * 1024 * 1024);
        Ok((user, packet))
    }

    /// The table as the server describes it; `None` when it does not exist.
    pub(crate) async fn describe(
        &self,
        conn: &mut Conn,
    ) -> Result<Option<Described>, DestinationError> {
        let c = &self.config;
        let database = &c.connection.database;
        let args = (database, &c.table);
        let rows = self.query(conn, COLUMNS_SQL, args).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let columns: Vec<Column> = rows
            .iter()
            .map(|row| {
                let type_name = text(row, 1).unwrap_or_default();
                let data_type = text(row, 2).unwrap_or_default().to_ascii_lowercase();
                Column {
                    name: text(row, 0).unwrap_or_default(),
                    field_type: field_type(&data_type, &type_name),
                    type_name,
                    required: flag(row, 3),
                    generated: flag(row, 4),
                }
            })
            .collect();
        let unique: Vec<(String, bool)> = self
            .query(conn, UNIQUE_SQL, args)
            .await?
            .iter()
            .map(|row| (text(row, 0).unwrap_or_default(), flag(row, 1)))
            .collect();
        let display = c.table_name();
        let key = match &c.key_column {
            Some(key) => columns
                .iter()
                // Column names are case-insensitive in MySQL.
                .find(|col| col.name.eq_ignore_ascii_case(key))
                .map(|col| col.name.clone())
                .ok_or_else(|| {
                    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
                    invalid_config(
                        "key_column",
                        format!(
                            "table {display} has no column '{key}' (its columns: {}); name the column that holds the record's key",
                            crate::sources::some_names(&names)
                        ),
                    )
                })?,
            None => unique
                .iter()
                .find(|(_, primary)| *primary)
                .map(|(name, _)| name.clone())
                .ok_or_else(|| {
                    invalid_config(
                        "key_column",
                        format!(
                            "table {display} has no one-column primary key; set key_column to the column that holds the record's key (it needs a unique index: CREATE UNIQUE INDEX <name> ON {display} (<column>))"
                        ),
                    )
                })?,
        };
        let (user, max_packet) = self.session(conn).await?;
        let privileges = self.privileges(conn, &user).await?;
        let missing_privileges = NEEDED
            .into_iter()
            .filter(|p| !privileges.iter().any(|have| have == p))
            .collect();
        Ok(Some(Described {
            table: Table {
                qualified: format!("{}.{}", quote_ident(database), quote_ident(&c.table)),
                display,
                key_unique: unique.iter().any(|(name, _)| *name == key),
                key,
                columns,
                missing_privileges,
                dialect: &DIALECT,
            },
            max_packet,
        }))
    }

    /// Creates the table for `payloads`: the key column as primary key, and one column per
    /// field typed from the first value that is not null (text when every value is null).
    pub(crate) async fn create_table(
        &self,
        conn: &mut Conn,
        key_column: &str,
        payloads: &[Payload],
    ) -> Result<String, DestinationError> {
        let c = &self.config;
        let (key_kind, columns) = planned_columns(key_column, payloads);
        let key_type = match key_kind {
            ValueKind::Integer => "BIGINT",
            ValueKind::Unsigned => "BIGINT UNSIGNED",
            _ => "VARCHAR(255)",
        };
        let mut definitions = vec![format!(
            "{} {key_type} PRIMARY KEY",
            quote_ident(key_column)
        )];
        for (name, kind) in columns {
            definitions.push(format!("{} {}", quote_ident(name), column_type(kind)));
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {}.{} ({}) DEFAULT CHARSET = utf8mb4",
            quote_ident(&c.connection.database),
            quote_ident(&c.table),
            definitions.join(", ")
        );
        conn.query_drop(sql.as_str())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(sql)
    }

    /// A driver or server error of a statement as a `DestinationError`.
    pub(crate) fn error(&self, error: &mysql_async::Error) -> DestinationError {
        match statement_error(error) {
            StatementError::Data(message) => DestinationError::Rejected { message },
            StatementError::Fatal(error) => self.fatal(error),
        }
    }

    /// A fatal statement error with this destination's words.
    pub(crate) fn fatal(&self, error: FatalError) -> DestinationError {
        let c = &self.config;
        let user = &c.connection.user;
        let table = c.table_name();
        let address = c.connection.address();
        match error {
            FatalError::Authentication(detail) => DestinationError::Authentication {
                message: format!(
                    "MySQL at {address} refused user '{user}': {detail}; check the user and password"
                ),
            },
            FatalError::Privilege(detail) => DestinationError::Authentication {
                message: format!(
                    "user '{user}' may not write table {table}: {detail}; run GRANT SELECT, INSERT, UPDATE, DELETE ON {}.{} TO {}",
                    quote_ident(&c.connection.database),
                    quote_ident(&c.table),
                    account(user)
                ),
            },
            FatalError::MissingTable(detail) => invalid_config(
                "table",
                format!(
                    "{detail}: {}",
                    missing_table(&table, &c.connection.database)
                ),
            ),
            FatalError::Transient(detail) => DestinationError::Transient {
                message: format!("MySQL at {address} failed: {detail}"),
                retry_after: None,
                throttled: false,
            },
            FatalError::Rejected(detail) => DestinationError::Rejected {
                message: format!("MySQL refused the statement on {table}: {detail}"),
            },
        }
    }
}

/// The field type of a column of `DATA_TYPE` `data_type` (`COLUMN_TYPE` `column_type`).
pub(crate) fn field_type(data_type: &str, column_type: &str) -> FieldType {
    match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") => FieldType::Boolean,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
            FieldType::Integer
        }
        "decimal" | "numeric" | "float" | "double" | "real" => FieldType::Number,
        "date" | "datetime" | "timestamp" => FieldType::Datetime,
        "json" => FieldType::Object,
        _ => FieldType::String,
    }
}

/// The column type of a created table's column.
fn column_type(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Boolean => "BOOLEAN",
        ValueKind::Integer => "BIGINT",
        ValueKind::Unsigned => "BIGINT UNSIGNED",
        ValueKind::Float => "DOUBLE",
        ValueKind::Json => "JSON",
        ValueKind::Text => "LONGTEXT",
    }
}

/// Server errors a record's values cause: a NULL in a NOT NULL column (1048), another unique
/// index's duplicate (1062), a value out of range or not of the column's type (1264, 1265,
/// 1292, 1366, 1367, 1690), a missing value without default (1364), too long (1406), a bad
/// date or geometry (1411, 1416), a foreign key (1451, 1452), a trigger's SIGNAL (1644),
/// invalid JSON (3140, 3156), a CHECK constraint (MySQL 3819, MariaDB 4025).
const DATA_ERRORS: &[u16] = &[
    1048, 1062, 1264, 1265, 1292, 1364, 1366, 1367, 1406, 1411, 1416, 1451, 1452, 1644, 1690, 3140,
    3156, 3819, 4025,
];

/// Errors that pass: too many connections (1040, 1203, 1226), shutdown or killed (1053, 1077,
/// 1317, 1927, 2006, 2013), lock wait timeout and deadlock (1205, 1213), a read-only server
/// or transaction (1290, 1792, 1836), statement timeouts (1969, 3024).
const TRANSIENT_ERRORS: &[u16] = &[
    1040, 1053, 1077, 1203, 1205, 1213, 1226, 1290, 1317, 1792, 1836, 1927, 1969, 2006, 2013, 3024,
];

/// Sorts a driver error by the server's error code.
pub(crate) fn statement_error(error: &mysql_async::Error) -> StatementError {
    let mysql_async::Error::Server(server) = error else {
        return if is_connection_lost(error) {
            StatementError::Fatal(FatalError::Transient(error.to_string()))
        } else {
            StatementError::Fatal(FatalError::Rejected(error.to_string()))
        };
    };
    let message = format!("{} (error {})", server.message, server.code);
    match server.code {
        code if DATA_ERRORS.contains(&code) => StatementError::Data(message),
        code if TRANSIENT_ERRORS.contains(&code) => {
            StatementError::Fatal(FatalError::Transient(message))
        }
        1045 | 1129 | 1130 => StatementError::Fatal(FatalError::Authentication(message)),
        1044 | 1142 | 1143 | 1227 => StatementError::Fatal(FatalError::Privilege(message)),
        1146 => StatementError::Fatal(FatalError::MissingTable(message)),
        _ => StatementError::Fatal(FatalError::Rejected(message)),
    }
}
