//! Files source tests, on real temporary files.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryArray, Int64Array, ListArray, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, UnionFields};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use retl_engine::error::ErrorCategory;
use retl_engine::source::{Source, SourceError};
use serde_json::{Value, json};

use super::config::{FileFormat, FilesConfig, default_table_name};
use super::source_type;
use super::types::{check_supported, normalize};
use crate::sources::test_support::{self};

mod config;
mod conformance;
mod errors;
mod formats;

fn build(config: Value) -> Arc<dyn Source> {
    test_support::build(&source_type(), config)
}

fn build_error(config: Value) -> (String, String) {
    test_support::build_error(&source_type(), config)
}

fn users_batch(ids: &[i64]) -> RecordBatch {
    let emails: Vec<String> = ids.iter().map(|i| format!("u{i}@example.com")).collect();
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        ("email", Arc::new(StringArray::from(emails)) as ArrayRef),
    ])
    .unwrap()
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

fn write_csv(path: &Path, ids: &[i64], delimiter: char) {
    let mut text = format!("id{delimiter}email\n");
    for id in ids {
        text.push_str(&format!("{id}{delimiter}u{id}@example.com\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn write_ndjson(path: &Path, ids: &[i64]) {
    let text: String = ids
        .iter()
        .map(|id| {
            format!(
                "{}\n",
                json!({"id": id, "email": format!("u{id}@example.com")})
            )
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

async fn query(source: &Arc<dyn Source>, sql: &str) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    source.register(&ctx).await.unwrap();
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}
