//! How the server's tables are looked up for the shared
//! [`LazyCatalog`](crate::sources::catalog::LazyCatalog): every database is a schema whose
//! tables are found in `information_schema` the moment the SQL names them, each wrapped for
//! federation with the [`Executor`].

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion_federation::FederatedTableProviderAdaptor;
use datafusion_federation::sql::{RemoteTableRef, SQLFederationProvider, SQLTableSource};
use datafusion_table_providers::mysql::sql_table::MySQLTable;
use datafusion_table_providers::sql::db_connection_pool::mysqlpool::MySQLConnectionPool;
use mysql_async::prelude::Queryable;
use retl_engine::source::SourceError;

use crate::sources::catalog::TableLoader;

use super::errors::{account, classify, quote_ident};
use super::executor::Executor;
use super::shared::{Shared, flag, number, text};
use super::types::{self, MySqlType};

/// How the catalog looks a table up: the pool and server facts.
pub(super) struct Resolver {
    /// The pool and server facts.
    shared: Arc<Shared>,
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

impl Resolver {
    /// A resolver over `shared`'s server.
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Resolver { shared }
    }

    /// The user may not read `schema.table`: the error names the `GRANT` to run.
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
}

#[async_trait]
impl TableLoader for Resolver {
    fn schema_names(&self) -> Vec<String> {
        vec![self.shared.config.database.clone()]
    }

    /// Looks `schema.table` up: `None` when it does not exist (DataFusion then reports the
    /// unknown table), an error naming the grant when it cannot be read, or naming the column
    /// when one has a type retl cannot read.
    async fn load(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, SourceError> {
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
        Ok(Some(provider))
    }
}
