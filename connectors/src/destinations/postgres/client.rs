//! The connection to PostgreSQL (the `postgres` source's pool, with writing sessions), the
//! table's description and creation, and server errors as `DestinationError`s.

use std::sync::Arc;

use datafusion_table_providers::sql::db_connection_pool::dbconnection::postgresconn::PostgresConnection;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use retl_engine::destination::{DestinationError, FieldType, Payload};

use super::config::ValidDestinationConfig;
use crate::destinations::invalid_config;
use crate::destinations::table::{
    Column, Dialect, FatalError, StatementError, Table, ValueKind, from_source_error,
    missing_table, planned_columns,
};
use crate::sources::postgres::errors::{classify, pg_message};
use crate::sources::postgres::pool::{self, Session};

/// `"name"`, quotes doubled: an identifier as PostgreSQL reads it.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// PostgreSQL's spelling in the shared table messages.
pub(super) static DIALECT: Dialect = Dialect {
    quote: quote_ident,
    upsert_clause: "ON CONFLICT",
};

/// The field type of a column of `pg_type.typcategory` `category` (`N` numeric, `B` boolean,
/// `D` date/time, `A` array, `U` user: json, jsonb; `S` string, ...).
fn field_type(category: &str, type_name: &str) -> FieldType {
    match category {
        "N" if matches!(type_name, "smallint" | "integer" | "bigint") => FieldType::Integer,
        "N" => FieldType::Number,
        "B" => FieldType::Boolean,
        "D" if !type_name.starts_with("time ") && type_name != "time" => FieldType::Datetime,
        "A" => FieldType::Array,
        "U" if matches!(type_name, "json" | "jsonb") => FieldType::Object,
        _ => FieldType::String,
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
            .map(|row| {
                let type_name: String = row.try_get(1).unwrap_or_default();
                let category: String = row.try_get(2).unwrap_or_default();
                Column {
                    name: row.try_get(0).unwrap_or_default(),
                    field_type: field_type(&category, &type_name),
                    type_name,
                    required: row.try_get(3).unwrap_or(false),
                    generated: row.try_get(4).unwrap_or(false),
                }
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
            dialect: &DIALECT,
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
        let (key_kind, columns) = planned_columns(key_column, payloads);
        let mut definitions = vec![format!(
            "{} {} PRIMARY KEY",
            quote_ident(key_column),
            column_type(key_kind)
        )];
        for (name, kind) in columns {
            definitions.push(format!("{} {}", quote_ident(name), column_type(kind)));
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
                    "{detail}: {}",
                    missing_table(&table, &c.connection.database)
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

/// The column type of a created table's column.
fn column_type(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Boolean => "boolean",
        ValueKind::Integer => "bigint",
        ValueKind::Unsigned => "numeric",
        ValueKind::Float => "double precision",
        ValueKind::Json => "jsonb",
        ValueKind::Text => "text",
    }
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
