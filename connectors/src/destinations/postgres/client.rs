//! The connection to PostgreSQL (the `postgres` source's pool, with writing sessions), the
//! table's description and creation, and server errors as `DestinationError`s.

use std::sync::Arc;

use datafusion_table_providers::sql::db_connection_pool::dbconnection::postgresconn::PostgresConnection;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use retl_engine::destination::{DestinationError, Payload};
use serde_json::Value;

use super::config::{ValidDestinationConfig, from_source_error};
use crate::destinations::invalid_config;
use crate::sources::postgres::errors::{classify, pg_message};
use crate::sources::postgres::pool::{self, Session};

/// `"name"`, quotes doubled: an identifier as PostgreSQL reads it.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One column of the table.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    /// Its name.
    pub(crate) name: String,
    /// Its type as PostgreSQL prints it (`text`, `timestamp with time zone`, `integer[]`).
    pub(crate) type_name: String,
    /// `pg_type.typcategory`: `N` numeric, `B` boolean, `D` date/time, `A` array, `U` user
    /// (json, jsonb), `S` string, ...
    pub(crate) category: String,
    /// `NOT NULL` without a default (nor identity, nor generated): a new row needs a value.
    pub(crate) required: bool,
    /// A generated column, which cannot be written.
    pub(crate) generated: bool,
}

/// The table written, as the server describes it.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// `"schema"."table"`, quoted.
    pub(crate) qualified: String,
    /// `schema.table`, for messages.
    pub(crate) display: String,
    /// The key column.
    pub(crate) key: String,
    /// Whether a one-column unique index (not partial, not deferrable) covers the key column,
    /// as `ON CONFLICT` needs.
    pub(crate) key_unique: bool,
    /// Every column, in table order.
    pub(crate) columns: Vec<Column>,
    /// The privileges the user lacks among SELECT, INSERT, UPDATE, DELETE.
    pub(crate) missing_privileges: Vec<&'static str>,
}

impl Table {
    /// The column named `name`.
    pub(crate) fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Some column names, for messages.
    pub(crate) fn column_names(&self) -> String {
        let names: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        crate::sources::some_names(&names)
    }
}

/// The columns of a table, with what an insert needs.
const COLUMNS_SQL: &str = "
SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), t.typcategory::text,
       a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '',
       a.attgenerated <> ''
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

/// One-column unique indexes usable as an `ON CONFLICT` arbiter, and whether each is the
/// primary key.
const UNIQUE_SQL: &str = "
SELECT a.attname::text, i.indisprimary
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indnkeyatts = 1
  AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indimmediate";

/// The user's privileges on the table.
const PRIVILEGES_SQL: &str = "
SELECT has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'INSERT'),
       has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE')
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2";

/// The user's privileges on the schema (`None` when it does not exist).
const SCHEMA_SQL: &str = "
SELECT has_schema_privilege(n.oid, 'USAGE'), has_schema_privilege(n.oid, 'CREATE')
FROM pg_catalog.pg_namespace n WHERE n.nspname = $1";

/// A configured PostgreSQL database and table.
#[derive(Debug)]
pub(crate) struct PostgresClient {
    config: ValidDestinationConfig,
    pool_size: usize,
    /// Opened on first use, never by `build`.
    pool: tokio::sync::OnceCell<Arc<PostgresConnectionPool>>,
}

impl PostgresClient {
    /// A client of this config whose pool holds at most `pool_size` connections.
    pub(crate) fn new(config: ValidDestinationConfig, pool_size: usize) -> Self {
        PostgresClient {
            config,
            pool_size,
            pool: tokio::sync::OnceCell::new(),
        }
    }

    /// The validated config.
    pub(crate) fn config(&self) -> &ValidDestinationConfig {
        &self.config
    }

    /// A pooled connection (opening the pool on first use).
    pub(crate) async fn connection(&self) -> Result<PostgresConnection, DestinationError> {
        let pool = self
            .pool
            .get_or_try_init(|| async {
                pool::open(&self.config.connection, Session::ReadWrite, self.pool_size)
                    .await
                    .map_err(from_source_error)
            })
            .await?;
        pool.connect_direct()
            .await
            .map_err(|e| from_source_error(classify(&self.config.connection, &e)))
    }

    /// The table as the server describes it; `None` when it does not exist.
    pub(crate) async fn describe(
        &self,
        conn: &PostgresConnection,
    ) -> Result<Option<Table>, DestinationError> {
        let c = &self.config;
        let schema = &c.connection.schema;
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [schema, &c.table];
        let rows = conn
            .conn
            .query(COLUMNS_SQL, &args)
            .await
            .map_err(|e| self.error(&e))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let columns: Vec<Column> = rows
            .iter()
            .map(|row| Column {
                name: row.try_get(0).unwrap_or_default(),
                type_name: row.try_get(1).unwrap_or_default(),
                category: row.try_get(2).unwrap_or_default(),
                required: row.try_get(3).unwrap_or(false),
                generated: row.try_get(4).unwrap_or(false),
            })
            .collect();
        let unique: Vec<(String, bool)> = conn
            .conn
            .query(UNIQUE_SQL, &args)
            .await
            .map_err(|e| self.error(&e))?
            .iter()
            .map(|row| {
                (
                    row.try_get(0).unwrap_or_default(),
                    row.try_get(1).unwrap_or(false),
                )
            })
            .collect();
        let display = c.table_name();
        let key = match &c.key_column {
            Some(key) => {
                if !columns.iter().any(|col| &col.name == key) {
                    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
                    return Err(invalid_config(
                        "key_column",
                        format!(
                            "table {display} has no column '{key}' (its columns: {}); name the column that holds the record's key (names are case-sensitive)",
                            crate::sources::some_names(&names)
                        ),
                    ));
                }
                key.clone()
            }
            None => unique
                .iter()
                .find(|(_, primary)| *primary)
                .map(|(name, _)| name.clone())
                .ok_or_else(|| {
                    invalid_config(
                        "key_column",
                        format!(
                            "table {display} has no one-column primary key; set key_column to the column that holds the record's key (it needs a unique index: CREATE UNIQUE INDEX ON {display} (<column>))"
                        ),
                    )
                })?,
        };
        let privileges = conn
            .conn
            .query_one(PRIVILEGES_SQL, &args)
            .await
            .map_err(|e| self.error(&e))?;
        let missing_privileges = ["SELECT", "INSERT", "UPDATE", "DELETE"]
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !privileges.try_get::<_, bool>(*i).unwrap_or(false))
            .map(|(_, name)| name)
            .collect();
        Ok(Some(Table {
            qualified: format!("{}.{}", quote_ident(schema), quote_ident(&c.table)),
            display,
            key_unique: unique.iter().any(|(name, _)| *name == key),
            key,
            columns,
            missing_privileges,
        }))
    }

    /// What is wrong with the schema for creating the table, if anything.
    pub(crate) async fn check_schema(
        &self,
        conn: &PostgresConnection,
    ) -> Result<(), DestinationError> {
        let c = &self.config;
        let schema = &c.connection.schema;
        let row = conn
            .conn
            .query_opt(SCHEMA_SQL, &[schema])
            .await
            .map_err(|e| self.error(&e))?;
        let user = &c.connection.user;
        match row.map(|r| {
            (
                r.try_get::<_, bool>(0).unwrap_or(false),
                r.try_get::<_, bool>(1).unwrap_or(false),
            )
        }) {
            None => Err(invalid_config(
                "schema",
                format!(
                    "schema '{schema}' does not exist in database '{}'; create it (CREATE SCHEMA \"{schema}\") or name another",
                    c.connection.database
                ),
            )),
            Some((true, true)) => Ok(()),
            Some(_) => Err(DestinationError::Authentication {
                message: format!(
                    "user '{user}' may not create tables in schema '{schema}' (create_table is on and {} does not exist); run GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO \"{user}\", or create the table yourself",
                    c.table_name()
                ),
            }),
        }
    }

    /// Creates the table for `payloads`: the key column as primary key, and one column per
    /// field typed from the first value that is not null (text when every value is null).
    pub(crate) async fn create_table(
        &self,
        conn: &PostgresConnection,
        key_column: &str,
        payloads: &[Payload],
    ) -> Result<String, DestinationError> {
        self.check_schema(conn).await?;
        let c = &self.config;
        let table = format!(
            "{}.{}",
            quote_ident(&c.connection.schema),
            quote_ident(&c.table)
        );
        let key_type = payloads
            .first()
            .map_or("text", |p| column_type(std::iter::once(&p.key)));
        let mut definitions = vec![format!(
            "{} {key_type} PRIMARY KEY",
            quote_ident(key_column)
        )];
        let mut names: Vec<&str> = Vec::new();
        for payload in payloads {
            for (name, _) in payload.fields.iter() {
                if name != key_column && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        for name in names {
            let values = payloads.iter().filter_map(|p| p.fields.get(name));
            definitions.push(format!("{} {}", quote_ident(name), column_type(values)));
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {table} ({})",
            definitions.join(", ")
        );
        conn.conn
            .batch_execute(&sql)
            .await
            .map_err(|e| self.error(&e))?;
        Ok(sql)
    }

    /// A driver or server error of a statement as a `DestinationError`.
    pub(crate) fn error(&self, error: &tokio_postgres::Error) -> DestinationError {
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
        match error {
            FatalError::Authentication(detail) => DestinationError::Authentication {
                message: format!(
                    "PostgreSQL at {} refused user '{user}': {detail}; check the user and password",
                    c.connection.address()
                ),
            },
            FatalError::Privilege(detail) => DestinationError::Authentication {
                message: format!(
                    "user '{user}' may not write table {table}: {detail}; run GRANT USAGE ON SCHEMA \"{}\" TO \"{user}\" and GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO \"{user}\"",
                    c.connection.schema
                ),
            },
            FatalError::MissingTable(detail) => invalid_config(
                "table",
                format!(
                    "{detail}: table {table} does not exist in database '{}'; create it with a unique key column, or set create_table: true",
                    c.connection.database
                ),
            ),
            FatalError::Transient(detail) => DestinationError::Transient {
                message: format!("PostgreSQL at {} failed: {detail}", c.connection.address()),
                retry_after: None,
                throttled: false,
            },
            FatalError::Rejected(detail) => DestinationError::Rejected {
                message: format!("PostgreSQL refused the statement on {table}: {detail}"),
            },
        }
    }
}

/// The column type for values (the first non-null decides).
fn column_type<'a>(values: impl Iterator<Item = &'a Value>) -> &'static str {
    let first = values.into_iter().find(|v| !v.is_null());
    match first {
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(n)) if n.is_i64() => "bigint",
        Some(Value::Number(n)) if n.is_u64() => "numeric",
        Some(Value::Number(_)) => "double precision",
        Some(Value::Array(_) | Value::Object(_)) => "jsonb",
        _ => "text",
    }
}

/// A failed statement: the data of some record (retried record by record), or something every
/// statement would hit.
#[derive(Debug)]
pub(crate) enum StatementError {
    /// A record's values broke a constraint or a type's rules (SQLSTATE classes 21, 22, 23, and
    /// a trigger's `RAISE`, P0001): the server's message.
    Data(String),
    /// Everything else.
    Fatal(FatalError),
}

/// A statement error that is not about one record's data.
#[derive(Debug)]
pub(crate) enum FatalError {
    /// The server refused the login (SQLSTATE class 28).
    Authentication(String),
    /// A privilege is missing (42501).
    Privilege(String),
    /// The table does not exist (42P01).
    MissingTable(String),
    /// The server cannot serve now: lost connection, shutdown, serialization failure or
    /// deadlock, resources, a read-only server (a standby after a failover), a statement
    /// timeout. Retried.
    Transient(String),
    /// Anything else (a column that does not exist, a type that cannot be cast): the batch
    /// is rejected.
    Rejected(String),
}

/// Sorts a driver error by its SQLSTATE.
pub(crate) fn statement_error(error: &tokio_postgres::Error) -> StatementError {
    let Some(db) = error.as_db_error() else {
        // No server error: the connection failed or was lost.
        return StatementError::Fatal(FatalError::Transient(pg_message(error)));
    };
    let code = db.code().code();
    let message = pg_message(error);
    let class = &code[..2.min(code.len())];
    match (class, code) {
        ("21" | "22" | "23", _) | (_, "P0001") => StatementError::Data(message),
        (_, "42501") => StatementError::Fatal(FatalError::Privilege(message)),
        (_, "42P01") => StatementError::Fatal(FatalError::MissingTable(message)),
        ("28", _) => StatementError::Fatal(FatalError::Authentication(message)),
        ("08" | "40" | "53" | "57" | "58", _) | (_, "25006") => {
            StatementError::Fatal(FatalError::Transient(message))
        }
        _ => StatementError::Fatal(FatalError::Rejected(message)),
    }
}
