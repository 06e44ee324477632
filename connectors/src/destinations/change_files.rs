//! The file formats a batch of changes is written in, shared by the destinations that write
//! files of changes (today `s3`): JSON lines (`change_lines.rs`), CSV and Parquet. One encoder
//! per format, each turning one batch into the bytes of one file.
//!
//! # Columns (CSV and Parquet)
//! `op` (`upsert` or `delete`), `change` (`added`, `updated`, `deleted`), `key`, then the
//! mapped fields in the mapping's order (the order of the first record that has them). A
//! deleted record has no fields: its field columns are empty (CSV) or null (Parquet). A mapped
//! field named `op`, `change` or `key` would make two columns of one name, so such a batch is
//! refused (rename the field in the mapping, or write JSON lines).
//!
//! # Column types
//! Records arrive as JSON values (the engine converted the model's Arrow values: timestamps
//! and dates as RFC 3339 / ISO 8601 text, decimals as exact text, lists as arrays, structs as
//! objects), so a column's type is derived from its values in the batch:
//! - every value an integer in the signed 64-bit range -> `Int64`;
//! - every value a number, some not such an integer -> `Float64`;
//! - every value true or false -> `Boolean`;
//! - otherwise (strings, timestamps, objects, arrays, mixed kinds) -> `Utf8`, strings as
//!   they are and any other value as its JSON text (`{"city":"Paris"}`, `[1,2]`);
//! - a column null in every record of the batch -> `Utf8`, all null.
//!
//! Nulls stay null. Each object is typed on its own: a column that is null in every record of
//! one object and numeric in another is `Utf8` in the first (a reader merging a run's objects
//! must allow that).
//!
//! # CSV
//! RFC 4180 (<https://www.rfc-editor.org/rfc/rfc4180>) through Arrow's CSV writer: a header
//! row, `,` separated, CRLF line ends, a field quoted when it holds a comma, a quote or a line
//! break, quotes doubled. A null is an empty field (as is an empty string).
//!
//! # Parquet
//! Arrow's Parquet writer (`ArrowWriter`), zstd compression, the whole batch in one row group,
//! the mapping and run ids as the file's key-value metadata (`retl.mapping`, `retl.run`).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::csv::writer::Terminator;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;
use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{DeliveryContext, DestinationError, Payload};
use serde_json::Value;

use crate::destinations::change_lines::encode_lines;

/// The columns written before the mapped fields.
const LEADING_COLUMNS: [&str; 3] = ["op", "change", "key"];

/// The format of the files a destination writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ChangeFormat {
    /// One JSON object per line (`change_lines.rs`).
    #[default]
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// Apache Parquet, one row group.
    Parquet,
}

impl ChangeFormat {
    /// The format of a config value (`jsonl`, `csv`, `parquet`); `None` for another name.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "jsonl" => Some(ChangeFormat::Jsonl),
            "csv" => Some(ChangeFormat::Csv),
            "parquet" => Some(ChangeFormat::Parquet),
            _ => None,
        }
    }

    /// The file name extension, without the dot.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            ChangeFormat::Jsonl => "jsonl",
            ChangeFormat::Csv => "csv",
            ChangeFormat::Parquet => "parquet",
        }
    }

    /// The media type of a file: `application/x-ndjson`, `text/csv` (RFC 4180, with its
    /// `header=present` parameter) or `application/vnd.apache.parquet` (IANA).
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            ChangeFormat::Jsonl => "application/x-ndjson",
            ChangeFormat::Csv => "text/csv; charset=utf-8; header=present",
            ChangeFormat::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The bytes of one file holding `batch`.
    pub(crate) fn encode(
        self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<Vec<u8>, DestinationError> {
        match self {
            ChangeFormat::Jsonl => encode_lines(ctx, batch),
            ChangeFormat::Csv => encode_csv(batch),
            ChangeFormat::Parquet => encode_parquet(ctx, batch),
        }
    }
}

/// The Arrow type of a column, derived from its values (module docs, "Column types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Bool,
    Text,
}

impl Kind {
    /// The kind of one non-null value.
    fn of(value: &Value) -> Option<Kind> {
        match value {
            Value::Null => None,
            Value::Bool(_) => Some(Kind::Bool),
            Value::Number(n) if n.is_i64() => Some(Kind::Int),
            Value::Number(_) => Some(Kind::Float),
            Value::String(_) | Value::Array(_) | Value::Object(_) => Some(Kind::Text),
        }
    }

    /// The kind of a column holding values of kinds `self` and `other`.
    fn merge(self, other: Kind) -> Kind {
        match (self, other) {
            (a, b) if a == b => a,
            (Kind::Int | Kind::Float, Kind::Int | Kind::Float) => Kind::Float,
            _ => Kind::Text,
        }
    }

    /// The kind of a column of these values (`Text` when all are null).
    fn of_column<'a>(values: impl Iterator<Item = Option<&'a Value>>) -> Kind {
        values
            .flatten()
            .filter_map(Kind::of)
            .reduce(Kind::merge)
            .unwrap_or(Kind::Text)
    }

    fn data_type(self) -> DataType {
        match self {
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Bool => DataType::Boolean,
            Kind::Text => DataType::Utf8,
        }
    }

    /// An array of these values; every non-null value has a kind that merges into `self`.
    fn array<'a>(self, values: impl Iterator<Item = Option<&'a Value>>) -> ArrayRef {
        let values = values.map(|v| v.filter(|v| !v.is_null()));
        match self {
            Kind::Int => {
                let mut b = Int64Builder::new();
                values.for_each(|v| b.append_option(v.and_then(Value::as_i64)));
                Arc::new(b.finish())
            }
            Kind::Float => {
                let mut b = Float64Builder::new();
                values.for_each(|v| b.append_option(v.and_then(Value::as_f64)));
                Arc::new(b.finish())
            }
            Kind::Bool => {
                let mut b = BooleanBuilder::new();
                values.for_each(|v| b.append_option(v.and_then(Value::as_bool)));
                Arc::new(b.finish())
            }
            Kind::Text => {
                let mut b = StringBuilder::new();
                for value in values {
                    match value {
                        None => b.append_null(),
                        Some(Value::String(s)) => b.append_value(s),
                        Some(other) => b.append_value(other.to_string()),
                    }
                }
                Arc::new(b.finish())
            }
        }
    }
}

/// The mapped field names of a batch in the mapping's order: the first record's order, then
/// any name a later record adds.
fn field_names(batch: &[Payload]) -> Result<Vec<&str>, DestinationError> {
    let mut names: Vec<&str> = Vec::new();
    for payload in batch {
        for (name, _) in payload.fields.iter() {
            if !names.contains(&name) {
                if LEADING_COLUMNS.contains(&name) {
                    return Err(DestinationError::Rejected {
                        message: format!(
                            "the mapped field '{name}' has the name of a column retl writes first (op, change, key); rename the field in the mapping, or write JSON lines (format: jsonl)"
                        ),
                    });
                }
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// The batch as one Arrow record batch: `op`, `change`, `key`, then the mapped fields.
fn table(batch: &[Payload]) -> Result<RecordBatch, DestinationError> {
    let names = field_names(batch)?;
    let deleted = |p: &Payload| p.change == ChangeKind::Deleted;
    let mut fields = Vec::with_capacity(names.len() + 3);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(names.len() + 3);
    let op = batch
        .iter()
        .map(|p| Some(if deleted(p) { "delete" } else { "upsert" }));
    fields.push(Field::new("op", DataType::Utf8, false));
    columns.push(Arc::new(
        op.collect::<datafusion::arrow::array::StringArray>(),
    ));
    let change = batch.iter().map(|p| Some(p.change.as_str()));
    fields.push(Field::new("change", DataType::Utf8, false));
    columns.push(Arc::new(
        change.collect::<datafusion::arrow::array::StringArray>(),
    ));
    let key = Kind::of_column(batch.iter().map(|p| Some(&p.key)));
    fields.push(Field::new("key", key.data_type(), true));
    columns.push(key.array(batch.iter().map(|p| Some(&p.key))));
    for name in names {
        let values = || {
            batch
                .iter()
                .map(move |p| (!deleted(p)).then(|| p.fields.get(name)).flatten())
        };
        let kind = Kind::of_column(values());
        fields.push(Field::new(name, kind.data_type(), true));
        columns.push(kind.array(values()));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| {
        DestinationError::Internal {
            message: format!("the batch's columns do not form a table: {e}"),
        }
    })
}

/// A batch as RFC 4180 CSV with a header row (module docs, "CSV").
pub(crate) fn encode_csv(batch: &[Payload]) -> Result<Vec<u8>, DestinationError> {
    let table = table(batch)?;
    let mut writer = WriterBuilder::new()
        .with_header(true)
        .with_line_terminator(Terminator::CRLF)
        .build(Vec::with_capacity(batch.len() * 96));
    writer
        .write(&table)
        .map_err(|e| DestinationError::Internal {
            message: format!("the batch could not be written as CSV: {e}"),
        })?;
    Ok(writer.into_inner())
}

/// A batch as one Parquet file of one row group (module docs, "Parquet").
pub(crate) fn encode_parquet(
    ctx: &DeliveryContext,
    batch: &[Payload],
) -> Result<Vec<u8>, DestinationError> {
    let table = table(batch)?;
    let error = |e: datafusion::parquet::errors::ParquetError| DestinationError::Internal {
        message: format!("the batch could not be written as Parquet: {e}"),
    };
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        // One row group per object, whatever the batch size.
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        .set_key_value_metadata(Some(vec![
            KeyValue::new(
                "retl.mapping".to_string(),
                ctx.mapping_id.as_str().to_string(),
            ),
            KeyValue::new("retl.run".to_string(), ctx.run_id.as_str().to_string()),
        ]))
        .build();
    let mut writer = ArrowWriter::try_new(
        Vec::with_capacity(batch.len() * 64),
        table.schema(),
        Some(properties),
    )
    .map_err(error)?;
    writer.write(&table).map_err(error)?;
    writer.into_inner().map_err(error)
}
