//! What every source's `tests.rs` needs: building a source from JSON, merging configs, running
//! SQL the way a sync does, and reading rows as destinations see them.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use retl_engine::connector::SourceType;
use retl_engine::mapping::value::json_value;
use retl_engine::model::ModelSession;
use retl_engine::source::{Source, SourceError, TableInfo};
use serde_json::Value;

/// The query memory of a test session (the engine's default sort budget).
pub(crate) const MEMORY: usize = 256 * 1024 * 1024;

/// Builds a source of type `ty` from `config`, which must be valid.
pub(crate) fn build(ty: &SourceType, config: Value) -> Arc<dyn Source> {
    (ty.build)(&config).unwrap()
}

/// The `(field, message)` of the `InvalidConfig` error building `config` must give.
pub(crate) fn build_error(ty: &SourceType, config: Value) -> (String, String) {
    match (ty.build)(&config) {
        Err(SourceError::InvalidConfig { field, message }) => (field, message),
        Err(other) => panic!("expected InvalidConfig, got {other:?}"),
        Ok(source) => panic!("expected InvalidConfig, got {source:?}"),
    }
}

/// `base` with the keys of `extra` added (or replaced).
pub(crate) fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    base
}

/// Plans and runs `sql` the way a sync does.
pub(crate) async fn run(source: &Arc<dyn Source>, sql: &str) -> Vec<RecordBatch> {
    let session = ModelSession::new(source.as_ref(), MEMORY, None)
        .await
        .unwrap();
    let plan = session.plan(sql).await.unwrap();
    let df = session.context().execute_logical_plan(plan).await.unwrap();
    df.collect().await.unwrap()
}

/// The error of registering, planning or running `sql`, as text.
pub(crate) async fn run_error(source: &Arc<dyn Source>, sql: &str) -> String {
    let session = match ModelSession::new(source.as_ref(), MEMORY, None).await {
        Ok(session) => session,
        Err(e) => return e.to_string(),
    };
    let plan = match session.plan(sql).await {
        Ok(plan) => plan,
        Err(e) => return e.to_string(),
    };
    match session.context().execute_logical_plan(plan).await {
        Ok(df) => match df.collect().await {
            Ok(batches) => panic!("expected an error, got {batches:?}"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

/// DataFusion's `EXPLAIN` of `sql` (logical and physical plans) as a table.
pub(crate) async fn explain(source: &Arc<dyn Source>, sql: &str) -> String {
    let session = ModelSession::new(source.as_ref(), MEMORY, None)
        .await
        .unwrap();
    let batches = session
        .context()
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

/// Every row as a JSON object, as destinations see the values.
pub(crate) fn json_rows(batches: &[RecordBatch]) -> Vec<Value> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let mut object = serde_json::Map::new();
            for (i, field) in batch.schema().fields().iter().enumerate() {
                object.insert(
                    field.name().clone(),
                    json_value(batch.column(i).as_ref(), row).unwrap(),
                );
            }
            out.push(Value::Object(object));
        }
    }
    out
}

/// `schema.name kind` of each listed table, as `ListTables` answers.
pub(crate) fn table_labels(tables: &[TableInfo]) -> Vec<String> {
    tables
        .iter()
        .map(|t| format!("{}.{} {}", t.schema, t.name, t.kind))
        .collect()
}

/// `(name, type, nullable)` of each column of a listed table.
pub(crate) fn column_shapes(table: &TableInfo) -> Vec<(&str, &str, bool)> {
    table
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str(), c.nullable))
        .collect()
}
