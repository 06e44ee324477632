//! Decoding the SQLite values of a result column into an Arrow array of the column's fixed
//! type ([`ColumnDecoder`]); a value that does not fit fails the read naming the column and
//! the row (see `types.rs` for what each type accepts).

use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanArray, Date32Array, Decimal128Array, Float64Array,
    Int64Array, NullArray, StringBuilder, make_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::arrow::error::ArrowError;
use rusqlite::types::ValueRef;

use super::values::{
    decimal_noise, describe, epoch_days, epoch_value, exact_float, fits_precision, integral,
    parse_datetime, parse_decimal_literal, parse_time, real_text, rescale_exact, rescale_rounded,
};

/// A value that does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    /// The result column.
    pub(crate) column: String,
    /// 1-based row of the result.
    pub(crate) row: u64,
    /// What was found and why it does not fit, with the fix.
    pub(crate) message: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "column '{}', row {} of the result: {}",
            self.column, self.row, self.message
        )
    }
}

/// Where the values of one column accumulate until a batch is cut.
#[derive(Debug)]
enum Values {
    /// `DataType::Null`: only the count.
    Null(usize),
    /// Booleans.
    Boolean(Vec<Option<bool>>),
    /// Any integer type, range-checked against `min..=max`, cast to the target at the end.
    Integer {
        /// The values.
        values: Vec<Option<i64>>,
        /// Smallest value the target holds.
        min: i128,
        /// Largest value the target holds.
        max: i128,
    },
    /// Floating point.
    Float(Vec<Option<f64>>),
    /// Text.
    Text(StringBuilder),
    /// Bytes.
    Binary(BinaryBuilder),
    /// Decimals, as unscaled integers.
    Decimal {
        /// The values.
        values: Vec<Option<i128>>,
        /// Precision.
        precision: u8,
        /// Scale.
        scale: i8,
    },
    /// Days since 1970-01-01.
    Date(Vec<Option<i32>>),
    /// Timestamps in the target's unit since 1970-01-01 00:00 UTC (a value without offset is
    /// taken as it is written; reinterpreted as the target type at the end).
    Timestamp {
        /// The values.
        values: Vec<Option<i64>>,
        /// The unit.
        unit: TimeUnit,
    },
    /// Nanoseconds since midnight.
    Time(Vec<Option<i64>>),
}

/// Decodes the SQLite values of one result column into an Arrow array of a fixed type.
#[derive(Debug)]
pub(crate) struct ColumnDecoder {
    /// The column name, for errors.
    name: String,
    /// The Arrow type produced.
    target: DataType,
    /// What has been read since the last batch.
    values: Values,
}

/// The error for a value of `column` that cannot be read as `target`.
fn mismatch(
    column: &str,
    target: &DataType,
    row: u64,
    value: ValueRef<'_>,
    why: &str,
) -> DecodeError {
    DecodeError {
        column: column.to_string(),
        row,
        message: format!(
            "found {}, which cannot be read as {target}{why}; SQLite does not enforce column types: correct the stored value, or read the column through a view that converts it (CAST({column} AS TEXT), date(...), ...)",
            describe(value),
        ),
    }
}

impl ColumnDecoder {
    /// A decoder producing `field`'s type, or why that type cannot be produced.
    pub(crate) fn new(field: &Field) -> Result<Self, String> {
        let target = field.data_type().clone();
        let integer = |min: i128, max: i128| Values::Integer {
            values: Vec::new(),
            min,
            max,
        };
        let values = match &target {
            DataType::Null => Values::Null(0),
            DataType::Boolean => Values::Boolean(Vec::new()),
            DataType::Int8 => integer(i8::MIN.into(), i8::MAX.into()),
            DataType::Int16 => integer(i16::MIN.into(), i16::MAX.into()),
            DataType::Int32 => integer(i32::MIN.into(), i32::MAX.into()),
            DataType::Int64 => integer(i64::MIN.into(), i64::MAX.into()),
            DataType::UInt8 => integer(0, u8::MAX.into()),
            DataType::UInt16 => integer(0, u16::MAX.into()),
            DataType::UInt32 => integer(0, u32::MAX.into()),
            DataType::UInt64 => integer(0, i64::MAX.into()),
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Values::Float(Vec::new()),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                Values::Text(StringBuilder::new())
            }
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                Values::Binary(BinaryBuilder::new())
            }
            DataType::Decimal128(precision, scale) if *scale >= 0 => Values::Decimal {
                values: Vec::new(),
                precision: *precision,
                scale: *scale,
            },
            DataType::Date32 | DataType::Date64 => Values::Date(Vec::new()),
            DataType::Timestamp(unit, _) => Values::Timestamp {
                values: Vec::new(),
                unit: *unit,
            },
            DataType::Time32(_) | DataType::Time64(_) => Values::Time(Vec::new()),
            other => {
                return Err(format!(
                    "column '{}' would have Arrow type {other}, which cannot be read from SQLite; cast it in the model SQL (for example CAST({} AS VARCHAR))",
                    field.name(),
                    field.name()
                ));
            }
        };
        Ok(ColumnDecoder {
            name: field.name().clone(),
            target,
            values,
        })
    }

    /// Appends one value of row `row` (1-based, for errors).
    pub(crate) fn push(&mut self, value: ValueRef<'_>, row: u64) -> Result<(), DecodeError> {
        let null = matches!(value, ValueRef::Null);
        let (name, target) = (&self.name, &self.target);
        let error = |why: &str| mismatch(name, target, row, value, why);
        match &mut self.values {
            Values::Null(count) => {
                if !null {
                    return Err(error(" (the planner typed this column as always NULL)"));
                }
                *count += 1;
            }
            Values::Boolean(values) => {
                let v = match value {
                    ValueRef::Null => None,
                    ValueRef::Integer(0) => Some(false),
                    ValueRef::Integer(1) => Some(true),
                    ValueRef::Real(0.0) => Some(false),
                    ValueRef::Real(1.0) => Some(true),
                    ValueRef::Text(t) => match t.to_ascii_lowercase().as_slice() {
                        b"true" | b"1" => Some(true),
                        b"false" | b"0" => Some(false),
                        _ => return Err(error(" (a boolean is 0, 1, 'true' or 'false')")),
                    },
                    _ => return Err(error(" (a boolean is 0, 1, 'true' or 'false')")),
                };
                values.push(v);
            }
            Values::Integer { values, min, max } => {
                let v = match value {
                    ValueRef::Null => None,
                    ValueRef::Integer(i) => Some(i),
                    ValueRef::Real(f) => match integral(f) {
                        Some(i) => Some(i),
                        None => return Err(error(" (it has a fractional part or is too large)")),
                    },
                    _ => return Err(error("")),
                };
                if let Some(i) = v
                    && !(*min..=*max).contains(&i128::from(i))
                {
                    return Err(error(" (out of range)"));
                }
                values.push(v);
            }
            Values::Float(values) => {
                let v = match value {
                    ValueRef::Null => None,
                    ValueRef::Real(f) => Some(f),
                    ValueRef::Integer(i) => match exact_float(i) {
                        Some(f) => Some(f),
                        None => {
                            return Err(error(
                                " (a float holds integers exactly only up to 2^53; declare the column INTEGER)",
                            ));
                        }
                    },
                    _ => return Err(error("")),
                };
                values.push(v);
            }
            Values::Text(builder) => match value {
                ValueRef::Null => builder.append_null(),
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(s) => builder.append_value(s),
                    Err(_) => return Err(error(" (the text is not valid UTF-8)")),
                },
                ValueRef::Integer(i) => builder.append_value(i.to_string()),
                ValueRef::Real(f) => builder.append_value(real_text(f)),
                ValueRef::Blob(_) => {
                    return Err(error(
                        " (read blobs through a view with hex(col), or declare the column BLOB)",
                    ));
                }
            },
            Values::Binary(builder) => match value {
                ValueRef::Null => builder.append_null(),
                ValueRef::Blob(b) | ValueRef::Text(b) => builder.append_value(b),
                _ => return Err(error("")),
            },
            Values::Decimal {
                values,
                precision,
                scale,
            } => {
                let (precision, scale) = (*precision, *scale);
                let v = match value {
                    ValueRef::Null => None,
                    ValueRef::Integer(i) => Some(
                        rescale_exact(i128::from(i), 0, scale)
                            .ok_or_else(|| error(" (too many digits)"))?,
                    ),
                    ValueRef::Text(t) => {
                        let text = std::str::from_utf8(t).unwrap_or_default();
                        let (unscaled, s) = parse_decimal_literal(text)
                            .ok_or_else(|| error(" (not a decimal number)"))?;
                        Some(rescale_exact(unscaled, s, scale).ok_or_else(|| {
                            error(&format!(" (more than {scale} decimal places)"))
                        })?)
                    }
                    ValueRef::Real(f) => {
                        if !f.is_finite() {
                            return Err(error(""));
                        }
                        let (unscaled, s) = parse_decimal_literal(&format!("{f}"))
                            .ok_or_else(|| error(" (too many digits)"))?;
                        let rounded = rescale_rounded(unscaled, s, scale)
                            .ok_or_else(|| error(" (too many digits)"))?;
                        let back = rounded as f64 / 10_f64.powi(i32::from(scale));
                        if (back - f).abs() > decimal_noise(f, scale) {
                            return Err(error(&format!(
                                " (it has more than {scale} decimal places; retl does not round decimals)"
                            )));
                        }
                        Some(rounded)
                    }
                    ValueRef::Blob(_) => return Err(error("")),
                };
                if let Some(unscaled) = v
                    && !fits_precision(unscaled, precision)
                {
                    return Err(error(&format!(" (more than {precision} digits)")));
                }
                values.push(v);
            }
            Values::Date(values) => {
                let v = match value {
                    ValueRef::Null => None,
                    ValueRef::Text(t) => {
                        let text = std::str::from_utf8(t).unwrap_or_default().trim();
                        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                            .ok()
                            .and_then(epoch_days)
                            .ok_or_else(|| error(" (a date is text 'YYYY-MM-DD')"))?;
                        Some(date)
                    }
                    _ => {
                        return Err(error(
                            " (a date is text 'YYYY-MM-DD'; for a number of seconds since 1970 use date(col, 'unixepoch') in a view)",
                        ));
                    }
                };
                values.push(v);
            }
            Values::Timestamp { values, unit } => {
                let v = match value {
                    ValueRef::Null => None,
                    ValueRef::Text(t) => {
                        let text = std::str::from_utf8(t).unwrap_or_default();
                        let datetime = parse_datetime(text).ok_or_else(|| {
                            error(" (a date-time is text 'YYYY-MM-DD HH:MM:SS[.fff]', optionally with 'Z' or an offset)")
                        })?;
                        Some(epoch_value(datetime, *unit).ok_or_else(|| error(" (out of range)"))?)
                    }
                    _ => {
                        return Err(error(
                            " (a date-time is text 'YYYY-MM-DD HH:MM:SS'; for a number of seconds since 1970 use datetime(col, 'unixepoch') in a view)",
                        ));
                    }
                };
                values.push(v);
            }
            Values::Time(values) => {
                let v = match value {
                    ValueRef::Null => None,
                    ValueRef::Text(t) => {
                        let text = std::str::from_utf8(t).unwrap_or_default();
                        let time = parse_time(text)
                            .ok_or_else(|| error(" (a time is text 'HH:MM:SS[.fff]')"))?;
                        let nanos = (time - NaiveTime::MIN).num_nanoseconds().unwrap_or(0);
                        Some(nanos)
                    }
                    _ => return Err(error(" (a time is text 'HH:MM:SS[.fff]')")),
                };
                values.push(v);
            }
        }
        Ok(())
    }

    /// The values read since the last call, as one array of the target type.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let target = self.target.clone();
        let array: ArrayRef = match &mut self.values {
            Values::Null(count) => Arc::new(NullArray::new(std::mem::take(count))),
            Values::Boolean(values) => Arc::new(BooleanArray::from(std::mem::take(values))),
            Values::Integer { values, .. } => {
                let array = Int64Array::from(std::mem::take(values));
                cast(&array, &target)?
            }
            Values::Float(values) => {
                let array = Float64Array::from(std::mem::take(values));
                cast(&array, &target)?
            }
            Values::Text(builder) => cast(&builder.finish(), &target)?,
            Values::Binary(builder) => cast(&builder.finish(), &target)?,
            Values::Decimal {
                values,
                precision,
                scale,
            } => Arc::new(
                Decimal128Array::from(std::mem::take(values))
                    .with_precision_and_scale(*precision, *scale)?,
            ),
            Values::Date(values) => cast(&Date32Array::from(std::mem::take(values)), &target)?,
            Values::Timestamp { values, .. } => {
                let data = Int64Array::from(std::mem::take(values))
                    .to_data()
                    .into_builder()
                    .data_type(target)
                    .build()?;
                make_array(data)
            }
            Values::Time(values) => {
                let data = Int64Array::from(std::mem::take(values))
                    .to_data()
                    .into_builder()
                    .data_type(DataType::Time64(TimeUnit::Nanosecond))
                    .build()?;
                cast(&make_array(data), &target)?
            }
        };
        Ok(array)
    }
}
