//! `mysql`: records as rows of a table in a MySQL or MariaDB database, written in transactions
//! (`INSERT ... ON DUPLICATE KEY UPDATE`, `UPDATE`, `DELETE` by key), for operational
//! databases that back an application or a service. The counterpart of the `postgres`
//! destination: the actions, the table's description and the checks of a batch are shared
//! (`destinations/table.rs`); the connection is the `mysql` source's (pool, TLS modes,
//! connection errors).
//!
//! # Files
//! - `config.rs`: `MySqlDestinationConfig`, its catalog config fields, `validate()` (the
//!   connection checked by the `mysql` source's code).
//! - `actions.rs`: the action specs, the statements of each sync mode, the parameters a record
//!   is sent as, and the split of a batch under the packet and placeholder limits.
//! - `client.rs`: the writing session on the `mysql` source's pool, the table's description
//!   (`information_schema`) and creation, server errors → `DestinationError`s.
//! - `deliver.rs`: the `Action`: one transaction per batch, the per-record fallback.
//! - `tests.rs`: statement, split and config unit tests, and deliveries into a real MariaDB
//!   started by the testkit.
//!
//! The conformance suite runs it against a real MariaDB in `tests/it/destinations/mysql.rs`
//! (MySQL 8 speaks the same protocol and statements, but is not tested here).
//!
//! # Configuration
//! | key | required | secret | meaning |
//! |---|---|---|---|
//! | `host`, `port`, `database`, `user`, `password`, `sslmode`, `sslrootcert`, `connect_timeout_ms` | as the `mysql` source | `password` | the connection; `database` holds the table |
//! | `table` | yes | no | the table written |
//! | `key_column` | no | no | the column holding the record's key; default the table's one-column primary key; upserts need a unique index on it |
//! | `create_table` | no | no | create a missing table on the first delivery (default `false`) |
//! | `limits` | no | no | overrides of the delivery limits below (handled by the engine) |
//!
//! The user needs `SELECT, INSERT, UPDATE, DELETE` on the table (`CREATE` with
//! `create_table`): `GRANT SELECT, INSERT, UPDATE, DELETE ON app.accounts TO 'retl'@'%'`.
//! `TestDestination` reads the user's grants (global, database and table level, from
//! `information_schema`) and names the `GRANT` that is missing.
//!
//! # Session
//! Each batch's connection runs `SET SESSION time_zone = '+00:00'` (timestamps are sent in
//! UTC), adds `STRICT_ALL_TABLES` to `sql_mode` (a value its column cannot hold is an error,
//! never silently truncated or zeroed) and, on MariaDB, `max_statement_time` =
//! `limits.timeout_ms` (MySQL's `max_execution_time` applies to `SELECT` only).
//!
//! # Actions and fields
//! `upsert`: the record's key goes to the key column and each mapped field to the column of its
//! name (`retl destination fields` lists the table's columns with their types; a field naming
//! no column, the key column or a generated column stops the run with the fix). Values are sent
//! as prepared-statement parameters and converted by the server's assignment rules: numbers and
//! booleans as numbers, objects and arrays as JSON text, RFC 3339 times as
//! `YYYY-MM-DD hh:mm:ss.ffffff` in UTC for `datetime`/`timestamp` columns (their UTC date for
//! `date` columns), any value as JSON text for `json` columns, other text as it is. Sync modes:
//! - `upsert` (default): `INSERT ... ON DUPLICATE KEY UPDATE <mapped columns> = VALUES(...)`
//!   (<https://dev.mysql.com/doc/refman/8.4/en/insert-on-duplicate.html>,
//!   <https://mariadb.com/kb/en/insert-on-duplicate-key-update/>); columns that are not
//!   mapped keep their values (and get their defaults in new rows);
//! - `update`: the batch's keys are looked up (`SELECT ... FOR UPDATE`, locking the rows for
//!   the transaction), then `UPDATE ... JOIN` the batch; a record with no row is rejected
//!   (sent again next run);
//! - `create`: the same look-up, then `INSERT` of the records without a row; a record whose
//!   row exists is rejected.
//!
//! With `null_values: omit` a record writes only its non-null fields: the batch is grouped by
//! the columns each record writes, one statement per group, in the one transaction.
//!
//! `delete`: `DELETE ... WHERE key IN (...)`; a key no row has is already gone: success.
//!
//! `create_table: true` creates a missing table on the first delivery: the key column
//! (`key_column`, default `id`) as primary key typed from the key (`BIGINT` or
//! `VARCHAR(255)`), one column per mapped field typed from the batch's first non-null value
//! (`BOOLEAN`, `BIGINT`, `BIGINT UNSIGNED`, `DOUBLE`, `JSON` for objects and arrays,
//! `LONGTEXT` otherwise, timestamps included). Create the table yourself for exact types;
//! columns are never added later.
//!
//! # Transactions and errors
//! One transaction per batch. When a record's data breaks a statement (NULL in a NOT NULL
//! column 1048, another unique index's duplicate 1062, out of range or wrong type 1264, 1265,
//! 1292, 1366, 1367, 1690, no default 1364, too long 1406, foreign key 1451/1452, a trigger's
//! `SIGNAL` 1644, invalid JSON 3140/3156, a `CHECK` constraint 3819 (MySQL) / 4025 (MariaDB)),
//! the transaction is rolled back and the batch is written again record by record, each in a
//! savepoint: the offending records are rejected with the server's message, the others
//! committed. Lost connections, a server shutting down or read-only (`read_only`, 1290; a
//! replica after a failover), lock wait timeouts and deadlocks (1205, 1213), too many
//! connections (1040, 1203, 1226) and statement timeouts (1969, 3024) are transient: the batch
//! is retried with backoff. A refused login (1045) or a missing privilege (1142, 1044) stops
//! the run with the `GRANT` to run; a missing table (1146) stops it with the fix.
//!
//! # Limits
//! A database sets no request rate. What bounds a statement:
//! - `max_allowed_packet`: no packet (statement with its parameters) may be larger; default
//!   16 MiB on MariaDB (<https://mariadb.com/docs/server/ref/mdb/system-variables/max_allowed_packet>),
//!   64 MiB on MySQL 8 (<https://dev.mysql.com/doc/refman/8.4/en/server-system-variables.html#sysvar_max_allowed_packet>),
//!   1 GiB at most (<https://dev.mysql.com/doc/refman/8.4/en/packet-too-large.html>). retl
//!   reads the server's value and splits each batch's statements under it; a record that
//!   alone exceeds it is rejected with the fix (raise `max_allowed_packet`).
//! - 65,535 placeholders per prepared statement (error 1390, `ER_PS_MANY_PARAM`,
//!   <https://dev.mysql.com/doc/mysql-errors/8.4/en/server-error-reference.html>): statements
//!   are split under it too.
//!
//! Defaults: batches of 1,000 rows or 8 MiB of JSON, 4 transactions in flight (the pool holds
//! as many connections), 1,000 statements/s (retl's choice), 60 s per statement.
//!
//! # Test
//! `TestDestination` connects, describes the table (columns, key column and its unique index)
//! and checks the privileges; with `create_table` and no table, it checks the `CREATE`
//! privilege on the database.
//!
//! # Not covered
//! Composite keys (one key column only); adding columns to an existing table; `LOAD DATA` for
//! bulk loads; roles (`SET ROLE`) and column-level grants (not read by the privilege check,
//! which may then report a privilege as missing); MySQL 8's row alias syntax (`AS new`, which
//! MariaDB lacks; `VALUES()` is deprecated there but works); per-mapping tables (one
//! destination per table). A conflict on another unique index than the key column's updates
//! that other row (documented `ON DUPLICATE KEY UPDATE` behaviour): give the table no other
//! unique index, or use sync mode `create`/`update`. MariaDB's `JSON` is `LONGTEXT` with a
//! `JSON_VALID` check: there text is sent as it is (not JSON-encoded).

mod actions;
mod client;
mod config;
mod deliver;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use retl_engine::connector::DestinationType;
use retl_engine::destination::{
    Action, ActionSpec, DeliveryLimits, Destination, DestinationError, FieldInfo, undeclared_action,
};

use self::actions::ACTIONS;
use self::client::MySqlClient;
use self::config::{CONFIG_FIELDS, MySqlDestinationConfig};
use self::deliver::BoundAction;
use crate::destinations::invalid_config;
use crate::destinations::table::{TableAction, missing_table};
use crate::sources::mysql::errors::{account, quote_ident};
use crate::sources::mysql::shared::Flavor;

/// The catalog entry and factory of the `mysql` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "mysql",
        display_name: "MySQL or MariaDB table",
        description: "Inserts, updates and deletes rows of a MySQL or MariaDB table keyed by the record's key, in transactions; the table's columns are the fields.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// Batches well under the default packet limit; no rate limit of its own.
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 1000.0,
        burst: 100,
        batch_size: 1000,
        max_batch_bytes: 8 * 1024 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 200,
        max_backoff_ms: 10_000,
        timeout_ms: 60_000,
        daily_request_budget: None,
    }
}

fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(MySqlDestination::new(config, &limits)?))
}

/// A configured MySQL or MariaDB table.
#[derive(Debug)]
pub(crate) struct MySqlDestination {
    client: Arc<MySqlClient>,
}

impl MySqlDestination {
    /// Parses and validates the config; touches no network.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: MySqlDestinationConfig = crate::destinations::parse_config(config)?;
        let config = config.validate(limits.timeout())?;
        Ok(MySqlDestination {
            client: Arc::new(MySqlClient::new(config)),
        })
    }
}

#[async_trait]
impl Destination for MySqlDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        let c = self.client.config();
        let shared = self.client.shared().await?;
        let server = match shared.flavor {
            Flavor::MariaDb => "MariaDB",
            Flavor::MySql => "MySQL",
        };
        let address = c.connection.address();
        let connection = self.client.connection().await?;
        let mut conn = connection.conn.lock().await;
        let Some(described) = self.client.describe(&mut conn).await? else {
            if !c.create_table {
                return Err(invalid_config(
                    "table",
                    missing_table(&c.table_name(), &c.connection.database),
                ));
            }
            let (user, _) = self.client.session(&mut conn).await?;
            let privileges = self.client.privileges(&mut conn, &user).await?;
            if !privileges.iter().any(|p| p == "CREATE") {
                return Err(DestinationError::Authentication {
                    message: format!(
                        "user '{}' may not create tables in database '{}' (create_table is on and {} does not exist); run GRANT CREATE, SELECT, INSERT, UPDATE, DELETE ON {}.* TO {}, or create the table yourself",
                        c.connection.user,
                        c.connection.database,
                        c.table_name(),
                        quote_ident(&c.connection.database),
                        account(&c.connection.user)
                    ),
                });
            }
            return Ok(format!(
                "connected to {server} at {address} as '{}'; table {} does not exist yet and will be created on the first delivery",
                c.connection.user,
                c.table_name()
            ));
        };
        let table = &described.table;
        if !table.missing_privileges.is_empty() {
            return Err(DestinationError::Authentication {
                message: format!(
                    "user '{}' may not {} table {}; run GRANT SELECT, INSERT, UPDATE, DELETE ON {}.{} TO {}",
                    c.connection.user,
                    table.missing_privileges.join(", "),
                    table.display,
                    quote_ident(&c.connection.database),
                    quote_ident(&c.table),
                    account(&c.connection.user)
                ),
            });
        }
        if !table.key_unique {
            return Err(invalid_config(
                "key_column",
                format!(
                    "column '{}' of {} has no unique index, which upserts need; run CREATE UNIQUE INDEX {} ON {} ({})",
                    table.key,
                    table.display,
                    quote_ident(&format!("{}_key", table.key)),
                    table.qualified,
                    quote_ident(&table.key)
                ),
            ));
        }
        Ok(format!(
            "connected to {server} at {address} as '{}'; table {} has {} columns, keyed by '{}' (unique); statements are split under max_allowed_packet = {} bytes",
            c.connection.user,
            table.display,
            table.columns.len(),
            table.key,
            described.max_packet
        ))
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            TableAction::from_spec(spec).ok_or_else(|| undeclared_action("mysql", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
            table: tokio::sync::OnceCell::new(),
        }))
    }

    async fn fields(&self, spec: &'static ActionSpec) -> Result<Vec<FieldInfo>, DestinationError> {
        let action =
            TableAction::from_spec(spec).ok_or_else(|| undeclared_action("mysql", spec))?;
        if action == TableAction::Delete {
            return Ok(FieldInfo::from_specs(spec.fields));
        }
        let connection = self.client.connection().await?;
        let mut conn = connection.conn.lock().await;
        let Some(described) = self.client.describe(&mut conn).await? else {
            // A table to be created takes whatever fields are mapped.
            return Ok(FieldInfo::from_specs(spec.fields));
        };
        Ok(described.table.fields())
    }
}
