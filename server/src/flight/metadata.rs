//! The catalog listings of Flight SQL: catalogs, schemas, tables (with their Arrow schemas when
//! asked) and table types, filtered as the spec says (exact catalog; `%`/`_` patterns on schema
//! and table names; a list of table types) by arrow-flight's builders.
//!
//! One catalog, `retl`, with the schemas of [`retl_engine::query`]: `staging` and `retl`
//! (tables, type `TABLE`) and `information_schema` (views, type `VIEW`).

use std::sync::Arc;

use arrow_flight::sql::metadata::GetTablesBuilder;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables,
};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::information_schema::{INFORMATION_SCHEMA, InformationSchemaProvider};
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::prelude::SessionContext;
use retl_engine::query::CATALOG;
use tonic::Status;

use crate::grpc::status::status;

/// The type of the staged extracts and the system tables.
pub const TABLE: &str = "TABLE";
/// The type of the `information_schema` tables.
pub const VIEW: &str = "VIEW";
/// Every table type, in the order `GetTableTypes` lists them.
pub const TABLE_TYPES: [&str; 2] = [TABLE, VIEW];

/// A listing that could not be built (a bug, not the client's mistake).
fn failed(what: &str, e: impl std::fmt::Display) -> Status {
    status(retl_engine::Error::internal(format!(
        "building the Flight SQL {what} listing: {e}"
    )))
}

fn catalog(ctx: &SessionContext) -> Result<Arc<dyn CatalogProvider>, Status> {
    ctx.catalog(CATALOG)
        .ok_or_else(|| failed("catalog", "the query catalog is missing"))
}

/// The schema names of the catalog, `information_schema` included (DataFusion resolves it
/// apart from the catalog's own schemas), sorted.
fn schema_names(ctx: &SessionContext) -> Result<Vec<String>, Status> {
    let mut names = catalog(ctx)?.schema_names();
    if ctx.copied_config().information_schema() && !names.iter().any(|n| n == INFORMATION_SCHEMA) {
        names.push(INFORMATION_SCHEMA.to_string());
    }
    names.sort();
    Ok(names)
}

/// The provider of schema `name`, `information_schema` included.
fn schema_provider(ctx: &SessionContext, name: &str) -> Option<Arc<dyn SchemaProvider>> {
    if name == INFORMATION_SCHEMA {
        return Some(Arc::new(InformationSchemaProvider::new(Arc::clone(
            ctx.state().catalog_list(),
        ))));
    }
    ctx.catalog(CATALOG)?.schema(name)
}

/// The type of the tables of schema `schema`.
fn table_type(schema: &str) -> &'static str {
    if schema == INFORMATION_SCHEMA {
        VIEW
    } else {
        TABLE
    }
}

/// `GetCatalogs`: the one catalog.
///
/// # Errors
/// `INTERNAL` if the answer cannot be built.
pub fn catalogs(query: CommandGetCatalogs) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    builder.append(CATALOG);
    builder.build().map_err(|e| failed("catalog", e))
}

/// `GetDbSchemas`: the schemas that pass the request's catalog and schema pattern.
///
/// # Errors
/// `INTERNAL` if the answer cannot be built.
pub fn schemas(ctx: &SessionContext, query: CommandGetDbSchemas) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    for name in schema_names(ctx)? {
        builder.append(CATALOG, name);
    }
    builder.build().map_err(|e| failed("schema", e))
}

/// `GetTables`: the tables that pass the request's filters, with their IPC-encoded Arrow
/// schemas when `include_schema` is set (read only for the tables that passed).
///
/// A table whose schema cannot be read (a damaged staged extract) is listed with an empty
/// schema, so that a client's table tree still opens; querying it names the problem.
///
/// # Errors
/// `INTERNAL` if the answer cannot be built.
pub async fn tables(ctx: &SessionContext, query: CommandGetTables) -> Result<RecordBatch, Status> {
    let include_schema = query.include_schema;
    // First the names, filtered by the builder without schemas; then the schemas of those left.
    let mut names = GetTablesBuilder::new(
        query.catalog.clone(),
        query.db_schema_filter_pattern.clone(),
        query.table_name_filter_pattern.clone(),
        query.table_types.clone(),
        false,
    );
    let empty = Schema::empty();
    for schema in schema_names(ctx)? {
        let Some(provider) = schema_provider(ctx, &schema) else {
            continue;
        };
        for table in provider.table_names() {
            names
                .append(CATALOG, &schema, &table, table_type(&schema), &empty)
                .map_err(|e| failed("table", e))?;
        }
    }
    let listed = names.build().map_err(|e| failed("table", e))?;
    if !include_schema {
        return Ok(listed);
    }
    let mut builder = query.into_builder();
    let column = |i: usize| listed.column(i).as_string::<i32>();
    let (schemas, tables, types) = (column(1), column(2), column(3));
    for row in 0..listed.num_rows() {
        let (schema, table) = (schemas.value(row), tables.value(row));
        let Some(provider) = schema_provider(ctx, schema) else {
            continue;
        };
        let arrow_schema = match provider.table(table).await {
            Ok(Some(t)) => t.schema(),
            // Gone since it was listed (an extract pruned meanwhile).
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(schema, table, error = %e, "Flight SQL GetTables: the table's schema cannot be read");
                Arc::new(Schema::empty())
            }
        };
        builder
            .append(CATALOG, schema, table, types.value(row), &arrow_schema)
            .map_err(|e| failed("table", e))?;
    }
    builder.build().map_err(|e| failed("table", e))
}

/// `GetTableTypes`: [`TABLE_TYPES`].
///
/// # Errors
/// `INTERNAL` if the answer cannot be built.
pub fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    for t in TABLE_TYPES {
        builder.append(t);
    }
    builder.build().map_err(|e| failed("table type", e))
}
