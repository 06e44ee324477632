//! `postgres`: records as rows of a table in a PostgreSQL database, written in transactions
//! (`INSERT ... ON CONFLICT DO UPDATE`, `UPDATE`, `DELETE` by key), for operational databases
//! that back an application or a service.
//!
//! # Files
//! - `config.rs`: `PostgresDestinationConfig`, its catalog config fields, `validate()` (the
//!   connection checked by the `postgres` source's code).
//! - `actions.rs`: the action specs, the statement of each sync mode and the batch document
//!   (the actions, the table's description and the checks of a batch are
//!   `destinations/table.rs`'s, shared with the `mysql` destination).
//! - `client.rs`: the connection pool (the `postgres` source's, with writing sessions), the
//!   table's description and creation, server errors → `DestinationError`s.
//! - `deliver.rs`: the `Action`: one transaction per batch, the per-record fallback.
//! - `tests.rs`: statement and config unit tests, and deliveries into a real PostgreSQL started
//!   by the testkit.
//!
//! The conformance suite runs it against a real PostgreSQL in `tests/it/destinations/postgres.rs`.
//!
//! # Configuration
//! | key | required | secret | meaning |
//! |---|---|---|---|
//! | `host`, `port`, `database`, `user`, `password`, `sslmode`, `sslrootcert`, `connect_timeout_ms` | as the `postgres` source | `password` | the connection |
//! | `schema` | no | no | schema of the table, default `public` |
//! | `table` | yes | no | the table written |
//! | `key_column` | no | no | the column holding the record's key; default the table's one-column primary key; upserts need a unique index on it |
//! | `create_table` | no | no | create a missing table on the first delivery (default `false`) |
//! | `limits` | no | no | overrides of the delivery limits below (handled by the engine) |
//!
//! The role needs `USAGE` on the schema and `SELECT, INSERT, UPDATE, DELETE` on the table
//! (`CREATE` on the schema with `create_table`); `TestDestination` checks each and names the
//! `GRANT` that is missing. Each statement runs under `statement_timeout` = `limits.timeout_ms`.
//!
//! # Actions and fields
//! `upsert`: the record's key goes to the key column and each mapped field to the column of its
//! name (`retl destination fields` lists the table's columns with their types; a field naming
//! no column, the key column or a generated column stops the run with the fix). Values are
//! converted by PostgreSQL's own input rules (`jsonb_populate_record`): numbers, booleans, text,
//! `timestamp[tz]`/`date` from RFC 3339 text, arrays from JSON arrays, `json`/`jsonb` as they
//! are. Sync modes:
//! - `upsert` (default): `INSERT ... ON CONFLICT (key) DO UPDATE SET <mapped columns>`;
//!   columns that are not mapped keep their values (and get their defaults in new rows);
//! - `update`: `UPDATE ... FROM` the batch; a record with no row is rejected (sent again next
//!   run);
//! - `create`: `INSERT ... ON CONFLICT DO NOTHING`; a record whose row exists is rejected.
//!
//! With `null_values: omit` a record writes only its non-null fields: the batch is grouped by
//! the columns each record writes, one statement per group, in the one transaction.
//!
//! `delete`: `DELETE ... USING` the batch's keys; a key no row has is already gone: success.
//!
//! `create_table: true` creates a missing table on the first delivery: the key column
//! (`key_column`, default `id`) as primary key typed from the key (`bigint` or `text`), one
//! column per mapped field typed from the batch's first non-null value (`boolean`, `bigint`,
//! `numeric`, `double precision`, `jsonb` for objects and arrays, `text` otherwise, timestamps
//! included). Create the table yourself for exact types; columns are never added later.
//!
//! # Transactions and errors
//! One transaction per batch; the statement sends the batch as one `jsonb` parameter. When a
//! record's data breaks the statement (SQLSTATE classes 21, 22, 23: a constraint, a value its
//! column cannot take, the same key twice; or a trigger's `RAISE`, P0001), the transaction is
//! rolled back and the batch is written again record by record, each in a savepoint: the
//! offending records are rejected with the server's message, the others committed. Lost
//! connections, a server shutting down or read-only (a standby after failover, 25006),
//! serialization failures and deadlocks (class 40), resources (53) and statement timeouts
//! (57014) are transient: the batch is retried with backoff. A refused login (class 28) or a
//! missing privilege (42501) stops the run with the `GRANT` to run; a missing table (42P01)
//! stops it with the fix.
//!
//! # Limits
//! A database sets no request rate. PostgreSQL's documented limits
//! (<https://www.postgresql.org/docs/current/limits.html>): a field value (the batch's `jsonb`
//! document) at most 1 GB, 65,535 parameters per statement (retl sends one). Defaults: batches
//! of 1,000 rows or 16 MiB of JSON, 4 transactions in flight (the pool holds as many
//! connections), 1,000 statements/s, 60 s per statement.
//!
//! # Test
//! `TestDestination` connects, describes the table (columns, key column and its unique index)
//! and checks the privileges; with `create_table` and no table, it checks the schema's `CREATE`
//! privilege.
//!
//! # Not covered
//! Composite keys (one key column only), adding columns to an existing table, `COPY` for bulk
//! loads, other databases of the PostgreSQL protocol (Redshift, CockroachDB: untested), and
//! per-mapping tables (one destination per table).

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
use self::client::PostgresClient;
use self::config::{CONFIG_FIELDS, PostgresDestinationConfig};
use self::deliver::BoundAction;
use crate::destinations::invalid_config;
use crate::destinations::table::TableAction;

/// The catalog entry and factory of the `postgres` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "postgres",
        display_name: "PostgreSQL table",
        description: "Inserts, updates and deletes rows of a PostgreSQL table keyed by the record's key, in transactions; the table's columns are the fields.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// Batches sized well under PostgreSQL's limits; no rate limit of its own.
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 1000.0,
        burst: 100,
        batch_size: 1000,
        max_batch_bytes: 16 * 1024 * 1024,
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
    Ok(Arc::new(PostgresDestination::new(config, &limits)?))
}

/// A configured PostgreSQL table.
#[derive(Debug)]
pub(crate) struct PostgresDestination {
    client: Arc<PostgresClient>,
}

impl PostgresDestination {
    /// Parses and validates the config; touches no network.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: PostgresDestinationConfig = crate::destinations::parse_config(config)?;
        let config = config.validate(limits.timeout())?;
        Ok(PostgresDestination {
            client: Arc::new(PostgresClient::new(config, limits.max_in_flight)),
        })
    }
}

#[async_trait]
impl Destination for PostgresDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        let c = self.client.config();
        let conn = self.client.connection().await?;
        let address = c.connection.address();
        let Some(table) = self.client.describe(&conn).await? else {
            if !c.create_table {
                return Err(invalid_config(
                    "table",
                    format!(
                        "table {} does not exist in database '{}'; create it with a unique key column, or set create_table: true",
                        c.table_name(),
                        c.connection.database
                    ),
                ));
            }
            self.client.check_schema(&conn).await?;
            return Ok(format!(
                "connected to PostgreSQL at {address} as '{}'; table {} does not exist yet and will be created on the first delivery",
                c.connection.user,
                c.table_name()
            ));
        };
        if !table.missing_privileges.is_empty() {
            let user = &c.connection.user;
            return Err(DestinationError::Authentication {
                message: format!(
                    "user '{user}' may not {} table {}; run GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO \"{user}\"",
                    table.missing_privileges.join(", "),
                    table.display,
                    table.display
                ),
            });
        }
        if !table.key_unique {
            return Err(invalid_config(
                "key_column",
                format!(
                    "column '{}' of {} has no unique index, which upserts need; run CREATE UNIQUE INDEX ON {} (\"{}\")",
                    table.key, table.display, table.display, table.key
                ),
            ));
        }
        Ok(format!(
            "connected to PostgreSQL at {address} as '{}'; table {} has {} columns, keyed by '{}' (unique)",
            c.connection.user,
            table.display,
            table.columns.len(),
            table.key
        ))
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            TableAction::from_spec(spec).ok_or_else(|| undeclared_action("postgres", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
            table: tokio::sync::OnceCell::new(),
        }))
    }

    async fn fields(&self, spec: &'static ActionSpec) -> Result<Vec<FieldInfo>, DestinationError> {
        let action =
            TableAction::from_spec(spec).ok_or_else(|| undeclared_action("postgres", spec))?;
        if action == TableAction::Delete {
            return Ok(FieldInfo::from_specs(spec.fields));
        }
        let conn = self.client.connection().await?;
        let Some(table) = self.client.describe(&conn).await? else {
            // A table to be created takes whatever fields are mapped.
            return Ok(FieldInfo::from_specs(spec.fields));
        };
        Ok(table.fields())
    }
}
