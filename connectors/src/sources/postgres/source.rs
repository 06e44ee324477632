//! `impl Source` for PostgreSQL: the connection pool, registering the lazily resolving
//! catalog (`catalog.rs`) in DataFusion, `test` and `list_tables`; errors are worded in
//! `errors.rs`.

use std::error::Error as StdError;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion_table_providers::postgres::PostgresTableFactory;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use retl_engine::source::{ColumnInfo, Source, SourceError, SourceTestReport, TableInfo};

use super::catalog::Resolver;
use super::config::ValidConfig;
use super::errors;
use super::pool::{self, Session};
use super::types::{self, PgType};
use crate::sources::catalog::LazyCatalog;
use crate::sources::some_names;

/// Connections kept by one source's pool (an extract uses one; catalog look-ups another).
const POOL_SIZE: usize = 4;

/// A PostgreSQL (or Redshift) database.
#[derive(Debug)]
pub(crate) struct PostgresSource {
    config: ValidConfig,
    /// Created on first use (never by `build`), then shared by every registration.
    pool: tokio::sync::OnceCell<Arc<PostgresConnectionPool>>,
}

impl PostgresSource {
    /// A source over this (validated) config; touches no network.
    pub(crate) fn new(config: ValidConfig) -> Self {
        PostgresSource {
            config,
            pool: tokio::sync::OnceCell::new(),
        }
    }

    /// Words a failure to connect (or a failed statement) for the user.
    fn classify(&self, error: &(dyn StdError + 'static)) -> SourceError {
        errors::classify(&self.config, error)
    }

    /// The connection pool, connecting on first use.
    pub(crate) async fn pool(&self) -> Result<Arc<PostgresConnectionPool>, SourceError> {
        self.pool
            .get_or_try_init(|| pool::open(&self.config, Session::ReadOnly, POOL_SIZE))
            .await
            .map(Arc::clone)
    }

    /// Runs one catalog query on a pooled connection.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, SourceError> {
        let pool = self.pool().await?;
        let conn = pool.connect_direct().await.map_err(|e| self.classify(&e))?;
        conn.conn
            .query(sql, params)
            .await
            .map_err(|e| self.classify(&e))
    }
}

// ---- Source -------------------------------------------------------------------------------

/// Every readable column of every readable table, view, materialized view, foreign and
/// partitioned table outside the system schemas (partitions are listed through their parent).
const LIST_SQL: &str = "
SELECT n.nspname, c.relname, c.relkind::text,
       a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), t.typtype::text,
       pg_catalog.format_type(et.oid, a.atttypmod), et.typtype::text,
       NOT a.attnotnull
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p')
  AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND has_schema_privilege(n.oid, 'USAGE')
  AND has_table_privilege(c.oid, 'SELECT')
ORDER BY n.nspname, c.relname, a.attnum";

/// Who we are, and what we may do with the configured schema.
const WHOAMI_SQL: &str = "
SELECT current_user::text, version(),
       COALESCE((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false),
       (SELECT has_schema_privilege(n.oid, 'USAGE') FROM pg_catalog.pg_namespace n WHERE n.nspname = $1)";

/// Tables of the configured schema, and whether each can be read.
const SCHEMA_TABLES_SQL: &str = "
SELECT c.relname, has_table_privilege(c.oid, 'SELECT')
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'f', 'p') AND NOT c.relispartition
ORDER BY c.relname";

/// Tables outside the system schemas the user could change.
const WRITABLE_SQL: &str = "
SELECT n.nspname || '.' || c.relname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND has_schema_privilege(n.oid, 'USAGE')
  AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
ORDER BY 1";

fn kind_name(relkind: &str) -> &'static str {
    match relkind {
        "v" => "view",
        "m" => "materialized_view",
        "f" => "foreign_table",
        _ => "table",
    }
}

#[async_trait]
impl Source for PostgresSource {
    async fn test(&self) -> Result<SourceTestReport, SourceError> {
        let c = &self.config;
        let rows = self.query(WHOAMI_SQL, &[&c.schema]).await?;
        let Some(row) = rows.first() else {
            return Err(SourceError::Read {
                message: "the server answered the privilege check with no row".to_string(),
            });
        };
        let user: String = row.try_get(0).unwrap_or_else(|_| c.user.clone());
        let version: String = row.try_get(1).unwrap_or_default();
        let superuser: bool = row.try_get(2).unwrap_or(false);
        let schema_usage: Option<bool> = row.try_get(3).unwrap_or(None);
        match schema_usage {
            None => {
                return Err(SourceError::InvalidConfig {
                    field: "schema".to_string(),
                    message: format!(
                        "schema '{}' does not exist in database '{}' (or is invisible to user '{user}'); check the name, it is case-sensitive",
                        c.schema, c.database
                    ),
                });
            }
            Some(false) => {
                return Err(SourceError::PermissionDenied {
                    message: format!(
                        "user '{user}' has no USAGE privilege on schema '{}'; run GRANT USAGE ON SCHEMA \"{}\" TO \"{user}\" and GRANT SELECT ON ALL TABLES IN SCHEMA \"{}\" TO \"{user}\"",
                        c.schema, c.schema, c.schema
                    ),
                });
            }
            Some(true) => {}
        }

        let mut warnings = Vec::new();
        let tables = self.query(SCHEMA_TABLES_SQL, &[&c.schema]).await?;
        let mut readable = 0_usize;
        let mut unreadable = Vec::new();
        for row in &tables {
            let name: String = row.try_get(0).unwrap_or_default();
            if row.try_get::<_, bool>(1).unwrap_or(false) {
                readable += 1;
            } else {
                unreadable.push(name);
            }
        }
        if tables.is_empty() {
            warnings.push(format!(
                "schema '{}' holds no tables or views yet; models can name tables of other schemas as schema.table",
                c.schema
            ));
        } else if readable == 0 {
            return Err(SourceError::PermissionDenied {
                message: format!(
                    "user '{user}' may read none of the {} tables of schema '{}' (permission denied on {}); run GRANT SELECT ON ALL TABLES IN SCHEMA \"{}\" TO \"{user}\"",
                    tables.len(),
                    c.schema,
                    some_names(&unreadable),
                    c.schema
                ),
            });
        } else if !unreadable.is_empty() {
            warnings.push(format!(
                "user '{user}' may not read {} of the tables of schema '{}' ({}); models that use them will fail: GRANT SELECT ON them TO \"{user}\"",
                unreadable.len(),
                c.schema,
                some_names(&unreadable)
            ));
        }

        if superuser {
            warnings.push(format!(
                "user '{user}' is a superuser; retl only reads, so a role with SELECT grants only is safer"
            ));
        } else {
            let writable: Vec<String> = self
                .query(WRITABLE_SQL, &[])
                .await?
                .iter()
                .filter_map(|row| row.try_get::<_, String>(0).ok())
                .collect();
            if !writable.is_empty() {
                warnings.push(format!(
                    "user '{user}' may also INSERT, UPDATE, DELETE or TRUNCATE {} tables ({}); retl only reads, so a role without write privileges is safer (REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ... FROM \"{user}\")",
                    writable.len(),
                    some_names(&writable)
                ));
            }
        }

        let server = version.split(" on ").next().unwrap_or(&version).to_string();
        Ok(SourceTestReport {
            message: format!(
                "connected to {server} at {} as '{user}', database '{}'; {readable} readable tables and views in schema '{}'",
                c.address(),
                c.database,
                c.schema
            ),
            warnings,
        })
    }

    async fn list_tables(&self) -> Result<Vec<TableInfo>, SourceError> {
        let rows = self.query(LIST_SQL, &[]).await?;
        let c = &self.config;
        let mut tables: Vec<TableInfo> = Vec::new();
        for row in &rows {
            let get = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
            let schema = get(0).unwrap_or_default();
            let name = get(1).unwrap_or_default();
            let pg = PgType {
                formatted: get(4).unwrap_or_default(),
                typtype: get(5).unwrap_or_default(),
                element: get(6).map(|e| (e, get(7).unwrap_or_default())),
            };
            let column = ColumnInfo {
                name: get(3).unwrap_or_default(),
                data_type: match types::arrow_type(&pg) {
                    Ok(data_type) => data_type.to_string(),
                    Err(unsupported) => unsupported.to_string(),
                },
                nullable: row.try_get::<_, bool>(8).unwrap_or(true),
            };
            match tables.last_mut() {
                Some(last) if last.schema == schema && last.name == name => {
                    last.columns.push(column);
                }
                _ => tables.push(TableInfo {
                    location: format!("{}/{}/{schema}.{name}", c.address(), c.database),
                    kind: kind_name(&get(2).unwrap_or_default()).to_string(),
                    schema,
                    name,
                    columns: vec![column],
                }),
            }
        }
        Ok(tables)
    }

    async fn register(&self, ctx: &SessionContext) -> Result<(), SourceError> {
        // A pool that exists already would wait out its own timeout (30 s) retrying a server
        // that went away; one TCP connect tells at once.
        if self.pool.initialized() {
            pool::check_reachable(&self.config).await?;
        }
        let pool = self.pool().await?;
        crate::sources::federation::install(ctx);
        let catalog = LazyCatalog::new(Resolver {
            source_config: self.config.clone(),
            factory: PostgresTableFactory::new(Arc::clone(&pool)),
            pool,
        });
        let state_ref = ctx.state_ref();
        let catalog_name = {
            let mut state = state_ref.write();
            let options = state.config_mut().options_mut();
            // Unqualified names resolve to the configured schema, as PostgreSQL's search_path.
            options.catalog.default_schema = self.config.schema.clone();
            options.catalog.default_catalog.clone()
        };
        ctx.register_catalog(catalog_name, Arc::new(catalog));
        Ok(())
    }

    fn classify_read_error(&self, error: &(dyn StdError + 'static)) -> Option<SourceError> {
        errors::classify_read(&self.config, error)
    }
}
