//! [`LazyCatalog`]: a warehouse as a DataFusion catalog whose tables are looked up when model
//! SQL names them (one lookup per table and session), shared by the database connectors. Each
//! connector brings its [`TableLoader`]: how to find a table, check the grants and build its
//! federated provider.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use retl_engine::source::SourceError;

/// Looks up one table of a warehouse.
#[async_trait]
pub(crate) trait TableLoader: std::fmt::Debug + Send + Sync + 'static {
    /// The schema names the catalog lists.
    fn schema_names(&self) -> Vec<String>;

    /// Whether `name` is a schema of this warehouse (every name by default: the warehouse
    /// answers for schemas it lacks).
    fn has_schema(&self, _name: &str) -> bool {
        true
    }

    /// Looks `schema.table` up: `None` when it does not exist (DataFusion then reports the
    /// unknown table), an error naming the grant or the column when it cannot be read.
    async fn load(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, SourceError>;
}

/// A [`SourceError`] carried through DataFusion (the engine finds it again in the chain).
pub(crate) fn external(error: SourceError) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}

/// The loader and the tables it resolved in this session, shared by the catalog's schemas.
struct Tables<L> {
    loader: L,
    resolved: Mutex<HashMap<(String, String), Arc<dyn TableProvider>>>,
}

impl<L: std::fmt::Debug> std::fmt::Debug for Tables<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables")
            .field("loader", &self.loader)
            .finish_non_exhaustive()
    }
}

impl<L: TableLoader> Tables<L> {
    /// The provider of `schema.table` if this session resolved it already.
    fn cached(&self, schema: &str, table: &str) -> Option<Arc<dyn TableProvider>> {
        let resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        resolved
            .get(&(schema.to_string(), table.to_string()))
            .map(Arc::clone)
    }

    /// The tables of `schema` resolved so far in this session.
    fn names(&self, schema: &str) -> Vec<String> {
        let resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        resolved
            .keys()
            .filter(|(s, _)| s == schema)
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// The provider of `schema.table`, loaded once per session.
    async fn resolve(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, SourceError> {
        if let Some(provider) = self.cached(schema, table) {
            return Ok(Some(provider));
        }
        let Some(provider) = self.loader.load(schema, table).await? else {
            return Ok(None);
        };
        let mut resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        resolved.insert(
            (schema.to_string(), table.to_string()),
            Arc::clone(&provider),
        );
        Ok(Some(provider))
    }
}

/// A warehouse as a DataFusion catalog: each schema resolves its tables when the SQL names
/// them.
#[derive(Debug)]
pub(crate) struct LazyCatalog<L> {
    tables: Arc<Tables<L>>,
}

impl<L: TableLoader> LazyCatalog<L> {
    /// A catalog with no table resolved yet.
    pub(crate) fn new(loader: L) -> Self {
        LazyCatalog {
            tables: Arc::new(Tables {
                loader,
                resolved: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl<L: TableLoader> CatalogProvider for LazyCatalog<L> {
    fn schema_names(&self) -> Vec<String> {
        self.tables.loader.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.tables.loader.has_schema(name).then(|| {
            Arc::new(LazySchema {
                name: name.to_string(),
                tables: Arc::clone(&self.tables),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

/// One schema of a [`LazyCatalog`].
#[derive(Debug)]
struct LazySchema<L> {
    name: String,
    tables: Arc<Tables<L>>,
}

#[async_trait]
impl<L: TableLoader> SchemaProvider for LazySchema<L> {
    fn table_names(&self) -> Vec<String> {
        self.tables.names(&self.name)
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        self.tables
            .resolve(&self.name, name)
            .await
            .map_err(external)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.cached(&self.name, name).is_some()
    }
}
