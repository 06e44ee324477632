//! The database as a DataFusion catalog: tables are looked up in `pg_catalog` the moment the
//! SQL names them, and read access is checked with the grant to run named in the error.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion_table_providers::postgres::PostgresTableFactory;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::Error as DbError;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use retl_engine::source::SourceError;

use super::config::ValidConfig;
use super::errors::{classify, find_db_error, find_pg_error};
use crate::sources::catalog::TableLoader;

/// How the catalog looks a table up: the pool and the provider factory.
pub(super) struct Resolver {
    /// The source's configuration (schema, user, address for messages).
    pub(super) source_config: ValidConfig,
    /// The source's pool.
    pub(super) pool: Arc<PostgresConnectionPool>,
    /// Builds a provider for a table of the pool's database.
    pub(super) factory: PostgresTableFactory,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("address", &self.source_config.address())
            .finish_non_exhaustive()
    }
}

/// Existence, kind and read access of one relation.
const LOOKUP_SQL: &str = "
SELECT has_schema_privilege(n.oid, 'USAGE') AS schema_usage,
       has_table_privilege(c.oid, 'SELECT') AS can_select
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'v', 'm', 'f', 'p')";

#[async_trait]
impl TableLoader for Resolver {
    fn schema_names(&self) -> Vec<String> {
        vec![self.source_config.schema.clone()]
    }

    /// Looks `schema.table` up: `None` when it does not exist (DataFusion then reports the
    /// unknown table), an error naming the grant when it cannot be read.
    async fn load(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, SourceError> {
        let c = &self.source_config;
        let conn = self
            .pool
            .connect_direct()
            .await
            .map_err(|e| classify(c, &e))?;
        let row = conn
            .conn
            .query_opt(LOOKUP_SQL, &[&schema, &table])
            .await
            .map_err(|e| classify(c, &e))?;
        drop(conn);
        let Some(row) = row else {
            return Ok(None);
        };
        let schema_usage: bool = row.try_get(0).unwrap_or(false);
        let can_select: bool = row.try_get(1).unwrap_or(false);
        if !schema_usage {
            return Err(SourceError::PermissionDenied {
                message: format!(
                    "user '{}' has no USAGE privilege on schema '{schema}'; run GRANT USAGE ON SCHEMA \"{schema}\" TO \"{}\"",
                    c.user, c.user
                ),
            });
        }
        if !can_select {
            return Err(SourceError::PermissionDenied {
                message: format!(
                    "user '{}' may not read table {schema}.{table}; run GRANT SELECT ON \"{schema}\".\"{table}\" TO \"{}\"",
                    c.user, c.user
                ),
            });
        }
        let reference = TableReference::partial(schema, table);
        let provider = self
            .factory
            .table_provider(reference)
            .await
            .map_err(|e| match find_db_error(e.as_ref()) {
                Some(DbError::UnsupportedDataType {
                    data_type,
                    field_name,
                }) => SourceError::Query {
                    message: format!(
                        "table {schema}.{table} cannot be read: column '{field_name}' has PostgreSQL type {data_type}, which retl cannot read; create a view that casts it (for example {field_name}::text) and use the view"
                    ),
                },
                _ => match find_pg_error(e.as_ref()) {
                    Some(pg) => classify(c, pg),
                    None => SourceError::Read {
                        message: format!("reading the columns of {schema}.{table} failed: {e}"),
                    },
                },
            })?;
        Ok(Some(provider))
    }
}
