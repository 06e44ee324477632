//! The Arrow types a files source produces, and the ones retl cannot carry.
//!
//! - **Parquet**: the file's own Arrow schema (stored in the file, or derived from the Parquet
//!   logical types): integers, floats, decimals, strings (`Utf8`/`Utf8View`), booleans,
//!   dates, timestamps (with the file's unit and time zone), binary, lists and structs.
//! - **CSV**: inferred by DataFusion from the first 1,000 rows: `Int64`, `Float64`, `Boolean`,
//!   `Date32`, `Timestamp(ns)` or `Utf8`; a column that is empty in every sampled row is
//!   inferred as `Null` and is [normalized](normalize) to nullable `Utf8`, so values after the
//!   sample still load. Cast in the model SQL when inference guessed wrong
//!   (`CAST(zip AS VARCHAR)`).
//! - **NDJSON**: inferred from the first 1,000 lines: `Int64`, `Float64`, `Boolean`, `Utf8`,
//!   lists and structs for nested values; all-null fields become `Utf8` as for CSV.
//!
//! Every type except those rejected by [`check_supported`] reaches destinations as JSON
//! (numbers, strings, booleans, arrays, objects; dates, decimals and binary as their canonical
//! text).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use retl_engine::source::SourceError;

use super::config::FileFormat;

/// Replaces the `Null` type inferred for all-empty CSV/NDJSON columns with nullable `Utf8`;
/// Parquet schemas are returned unchanged.
pub(crate) fn normalize(format: FileFormat, schema: SchemaRef) -> SchemaRef {
    if format == FileFormat::Parquet
        || !schema
            .fields()
            .iter()
            .any(|f| f.data_type() == &DataType::Null)
    {
        return schema;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.data_type() == &DataType::Null {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Checks that retl can carry every column; the error names the first column that it cannot.
///
/// Rejected: union, run-end-encoded and list-view types anywhere, and binary values nested in
/// lists, structs or maps (their JSON form would be indistinguishable from text inside a
/// document). Top-level binary columns are delivered as hex text.
pub(crate) fn check_supported(schema: &Schema) -> Result<(), SourceError> {
    for field in schema.fields() {
        if !supported(field.data_type(), false) {
            return Err(SourceError::UnsupportedType {
                column: field.name().clone(),
                data_type: field.data_type().to_string(),
            });
        }
    }
    Ok(())
}

fn supported(data_type: &DataType, nested: bool) -> bool {
    match data_type {
        DataType::Union(_, _)
        | DataType::RunEndEncoded(_, _)
        | DataType::ListView(_)
        | DataType::LargeListView(_) => false,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => !nested,
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            supported(item.data_type(), true)
        }
        DataType::Struct(fields) => fields.iter().all(|f| supported(f.data_type(), true)),
        DataType::Map(entries, _) => supported(entries.data_type(), true),
        DataType::Dictionary(_, values) => supported(values, nested),
        _ => true,
    }
}
