//! SQLite declared type → Arrow type, and the decoding of SQLite values into Arrow arrays.
//!
//! SQLite is dynamically typed: a column's *declared* type only gives it an affinity, and any
//! row may hold an INTEGER, REAL, TEXT, BLOB or NULL. retl fixes each column's Arrow type from
//! its declared type ([`arrow_type`]) and then checks every value against it
//! ([`ColumnDecoder`]): a value that does not fit (text in an INTEGER column, a fraction in a
//! DECIMAL(10,2) column beyond float noise, a malformed date) fails the read with an error
//! naming the column and the row — never a crash, never a silently changed value.
//!
//! | declared type | Arrow | values accepted |
//! |---|---|---|
//! | anything containing `INT` (`INTEGER`, `INT`, `BIGINT`, `SMALLINT`, `TINYINT`, `INT8`, `UNSIGNED BIG INT`, ...) | `Int64` | INTEGER; a REAL with no fractional part |
//! | anything containing `REAL`, `FLOA` or `DOUB` (`REAL`, `FLOAT`, `DOUBLE`, `DOUBLE PRECISION`) | `Float64` | REAL; INTEGER (exact up to 2^53) |
//! | anything containing `CHAR`, `CLOB` or `TEXT` (`TEXT`, `VARCHAR(n)`, `CHAR(n)`, `NVARCHAR`, `CLOB`) | `Utf8` | TEXT (valid UTF-8); INTEGER and REAL as their text |
//! | anything containing `BLOB` | `Binary` | BLOB; TEXT as its UTF-8 bytes |
//! | `NUMERIC(p,s)`, `DECIMAL(p,s)` (p ≤ 38) | `Decimal128(p,s)` | INTEGER and TEXT exactly; REAL within float noise of a value with scale `s` (see below) |
//! | `NUMERIC(p)`, `DECIMAL(p)` | `Decimal128(p,0)` | as above |
//! | `NUMERIC`, `DECIMAL`, `NUM` (no precision) | `Float64` | REAL; INTEGER (exact up to 2^53) |
//! | `BOOLEAN`, `BOOL` | `Boolean` | INTEGER 0/1; TEXT `true`/`false`/`0`/`1` (any case) |
//! | `DATE` | `Date32` | TEXT `YYYY-MM-DD` |
//! | `DATETIME`, `TIMESTAMP` | `Timestamp(µs)` | TEXT `YYYY-MM-DD HH:MM[:SS[.fff]]` (or with `T`); a trailing `Z` or `±HH:MM` offset is converted to UTC |
//! | `TIMESTAMPTZ`, `TIMESTAMP WITH TIME ZONE` | `Timestamp(µs, "UTC")` | as `DATETIME`; a value without offset is taken as UTC |
//! | `TIME` | `Time64(µs)` | TEXT `HH:MM[:SS[.fff]]` |
//! | `JSON`, `UUID` | `Utf8` | TEXT, as stored (a BLOB, e.g. SQLite's binary JSONB, is an error: read `json(col)` in a view) |
//! | no declared type (`CREATE TABLE t (x)`, and expression columns of views other than a `CAST`) | `Utf8` | TEXT; INTEGER and REAL as their text; a BLOB is an error |
//!
//! A view's column that is a plain column reference keeps that column's declared type; a
//! `CAST(x AS INTEGER)` / `REAL` / `TEXT` column gets the type SQLite derives from the cast
//! (SQLite 3.50, bundled: `INT`, `REAL`, `TEXT`), so a view with a `CAST` is the way to give a
//! column a type.
//! | any other name (`STRING`, `MONEY`, `GEOMETRY`, ...) | unsupported | SQLite gives such names NUMERIC affinity, so their values may be numbers or text: the model-validation error names the table, the column and the type, and the fix (a view with `CAST`) |
//!
//! Dates and times are stored as text in SQLite; a date kept as a number (unix time, Julian
//! day) in a `DATE`/`DATETIME` column is a read error whose fix is a view with
//! `date(col, 'unixepoch')` / `datetime(col, 'unixepoch')`.
//!
//! # Decimals
//! SQLite has no decimal storage: a `DECIMAL(p,s)` column has NUMERIC affinity, so SQLite
//! itself stores `19.99` as the 64-bit float nearest to it, and keeps only about 15
//! significant digits of longer numbers — that loss happens in SQLite, when the row is
//! written. retl never rounds through a float on its side: INTEGER and TEXT values are
//! converted exactly, and a REAL is accepted only when it is within floating-point noise
//! (relative 1e-13, or 1e-9 of one unit of the last decimal place) of a value with the
//! column's scale, as `19.99` and sums of such values computed by SQLite are. A REAL further
//! away (`19.999` in a `DECIMAL(10,2)` column), or a value with more digits than the
//! precision, fails the read naming the column. Decimals that need more than 15 significant
//! digits must be stored in a TEXT column (retl reads them digit for digit as text).
//!
//! Expression columns of a model pushed down to SQLite are typed by DataFusion's planner
//! (e.g. `sum(amount)` of a `DECIMAL(12,2)` is `Decimal128(22,2)`, `count(*)` is `Int64`)
//! and the values SQLite computes are checked against those types the same way.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanArray, Date32Array, Decimal128Array, Float64Array,
    Int64Array, NullArray, StringBuilder, make_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::arrow::error::ArrowError;
use rusqlite::types::ValueRef;

/// Why a declared type cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsupported {
    /// The declared type, as written in the schema.
    pub(crate) declared: String,
    /// What is wrong with it.
    pub(crate) reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unsupported SQLite type {} ({})",
            self.declared, self.reason
        )
    }
}

/// Largest precision a `Decimal128` holds.
const MAX_DECIMAL128_PRECISION: u8 = 38;

/// The Arrow type retl reads a column of this declared type as.
pub(crate) fn arrow_type(declared: &str) -> Result<DataType, Unsupported> {
    let upper = declared
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    if upper.is_empty() {
        return Ok(DataType::Utf8);
    }
    let (base, args) = match upper.split_once('(') {
        Some((base, rest)) => (base.trim(), Some(rest.trim_end_matches(')').trim())),
        None => (upper.as_str(), None),
    };
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
    match base {
        "BOOLEAN" | "BOOL" => return Ok(DataType::Boolean),
        "DATE" => return Ok(DataType::Date32),
        "DATETIME" | "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => return Ok(timestamp),
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => {
            return Ok(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into()),
            ));
        }
        "TIME" | "TIME WITHOUT TIME ZONE" => return Ok(DataType::Time64(TimeUnit::Microsecond)),
        "JSON" | "UUID" => return Ok(DataType::Utf8),
        "NUMERIC" | "DECIMAL" | "NUM" => return decimal(declared, args),
        _ => {}
    }
    // SQLite's own affinity rules (https://www.sqlite.org/datatype3.html#determination_of_column_affinity).
    if upper.contains("INT") {
        Ok(DataType::Int64)
    } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
        Ok(DataType::Utf8)
    } else if upper.contains("BLOB") {
        Ok(DataType::Binary)
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        Ok(DataType::Float64)
    } else {
        Err(Unsupported {
            declared: declared.to_string(),
            reason: "SQLite gives this name NUMERIC affinity, so its values may be numbers or text"
                .to_string(),
        })
    }
}

/// `NUMERIC`/`DECIMAL` with optional `(p)` / `(p,s)` arguments.
fn decimal(declared: &str, args: Option<&str>) -> Result<DataType, Unsupported> {
    let Some(args) = args else {
        return Ok(DataType::Float64);
    };
    let mut parts = args.split(',').map(str::trim);
    let precision = parts.next().and_then(|p| p.parse::<u8>().ok());
    let scale = match parts.next() {
        Some(s) => s.parse::<i8>().ok(),
        None => Some(0),
    };
    match (precision, scale, parts.next()) {
        (Some(p), Some(s), None)
            if (1..=MAX_DECIMAL128_PRECISION).contains(&p) && s >= 0 && (s as u8) <= p =>
        {
            Ok(DataType::Decimal128(p, s))
        }
        _ => Err(Unsupported {
            declared: declared.to_string(),
            reason: format!(
                "precision must be 1 to {MAX_DECIMAL128_PRECISION} and scale 0 to the precision"
            ),
        }),
    }
}

// ---- decoding -------------------------------------------------------------------------------

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

/// Shortens a stored value for an error message.
fn shown(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() > MAX {
        format!("'{}…'", text.chars().take(MAX).collect::<String>())
    } else {
        format!("'{text}'")
    }
}

/// A stored value as the error message shows it.
fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(i) => format!("the integer {i}"),
        ValueRef::Real(f) => format!("the real {f}"),
        ValueRef::Text(t) => format!("the text {}", shown(&String::from_utf8_lossy(t))),
        ValueRef::Blob(b) => format!("a {}-byte blob", b.len()),
    }
}

/// SQLite-like text of a REAL.
fn real_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else if f != 0.0 && (f.abs() >= 1e16 || f.abs() < 1e-4) {
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

/// An INTEGER as a float, if exact.
fn exact_float(i: i64) -> Option<f64> {
    const LIMIT: u64 = 1 << 53;
    (i.unsigned_abs() <= LIMIT).then_some(i as f64)
}

/// A REAL as an integer, if it has no fractional part and fits an i64.
fn integral(f: f64) -> Option<i64> {
    const LOWER: f64 = -9_223_372_036_854_775_808.0;
    const UPPER: f64 = 9_223_372_036_854_775_808.0;
    (f.fract() == 0.0 && (LOWER..UPPER).contains(&f)).then_some(f as i64)
}

/// `10^exp`, if it fits an i128.
fn pow10(exp: u32) -> Option<i128> {
    10_i128.checked_pow(exp)
}

/// Parses a decimal literal (`-12.50`, `1e3`, `+.5`) exactly as (unscaled digits, scale).
pub(super) fn parse_decimal_literal(text: &str) -> Option<(i128, i64)> {
    let text = text.trim();
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (negative, mantissa) = match mantissa.as_bytes().first() {
        Some(b'-') => (true, &mantissa[1..]),
        Some(b'+') => (false, &mantissa[1..]),
        _ => (false, mantissa),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    // More than 38 significant digits cannot be a Decimal128 anyway.
    let trimmed = digits.trim_end_matches('0');
    let trailing_zeros = (digits.len() - trimmed.len()) as i64;
    if trimmed.len() > 38 {
        return None;
    }
    let unscaled: i128 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().ok()?
    };
    let scale = frac_part.len() as i64 - exponent - trailing_zeros;
    Some((if negative { -unscaled } else { unscaled }, scale))
}

/// `unscaled × 10^-scale` rescaled to `target` decimal places, if that loses no digit.
pub(super) fn rescale_exact(unscaled: i128, scale: i64, target: i8) -> Option<i128> {
    let shift = i64::from(target) - scale;
    if shift >= 0 {
        unscaled.checked_mul(pow10(u32::try_from(shift).ok()?)?)
    } else {
        let divisor = pow10(u32::try_from(-shift).ok()?)?;
        (unscaled % divisor == 0).then_some(unscaled / divisor)
    }
}

/// `unscaled × 10^-scale` rounded (half away from zero) to `target` decimal places.
fn rescale_rounded(unscaled: i128, scale: i64, target: i8) -> Option<i128> {
    let shift = i64::from(target) - scale;
    if shift >= 0 {
        return unscaled.checked_mul(pow10(u32::try_from(shift).ok()?)?);
    }
    let Some(divisor) = u32::try_from(-shift).ok().and_then(pow10) else {
        return Some(0);
    };
    let quotient = unscaled / divisor;
    let remainder = unscaled % divisor;
    Some(if remainder.abs() * 2 >= divisor {
        quotient + unscaled.signum()
    } else {
        quotient
    })
}

/// Whether an unscaled decimal has at most `precision` digits.
fn fits_precision(unscaled: i128, precision: u8) -> bool {
    pow10(u32::from(precision)).is_some_and(|limit| unscaled.abs() < limit)
}

/// Splits a trailing `Z` / `±HH:MM` / `±HHMM` offset off a timestamp text; the offset in
/// seconds east of UTC.
fn split_offset(text: &str) -> Option<(&str, Option<i64>)> {
    if let Some(rest) = text.strip_suffix(['Z', 'z']) {
        return Some((rest, Some(0)));
    }
    // Only look after the date (`YYYY-MM-DD`), where `-` is no longer a date separator.
    if text.len() > 10 {
        let tail_start = text.len().saturating_sub(6);
        for start in [tail_start, text.len().saturating_sub(5)] {
            if start <= 10 || !text.is_char_boundary(start) {
                continue;
            }
            let tail = &text[start..];
            let sign = match tail.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => continue,
            };
            let digits: String = tail[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let hours: i64 = digits[..2].parse().ok()?;
            let minutes: i64 = digits[2..].parse().ok()?;
            return Some((&text[..start], Some(sign * (hours * 3600 + minutes * 60))));
        }
    }
    Some((text, None))
}

/// Parses SQLite's date-time text forms; a value with an offset is converted to UTC.
pub(super) fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    let (local, offset) = split_offset(text)?;
    let local = local.trim_end();
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    let naive = FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(local, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(local, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    match offset {
        Some(seconds) => naive.checked_sub_signed(chrono::TimeDelta::seconds(seconds)),
        None => Some(naive),
    }
}

/// Parses `HH:MM:SS[.fff]` or `HH:MM`.
fn parse_time(text: &str) -> Option<NaiveTime> {
    let text = text.trim();
    NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()
}

/// Days since 1970-01-01.
fn epoch_days(date: NaiveDate) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

/// A timestamp in `unit` since 1970-01-01 00:00 (UTC when zoned).
fn epoch_value(datetime: NaiveDateTime, unit: TimeUnit) -> Option<i64> {
    let utc = datetime.and_utc();
    match unit {
        TimeUnit::Second => Some(utc.timestamp()),
        TimeUnit::Millisecond => Some(utc.timestamp_millis()),
        TimeUnit::Microsecond => Some(utc.timestamp_micros()),
        TimeUnit::Nanosecond => utc.timestamp_nanos_opt(),
    }
}

/// Noise allowed when a REAL is read into a decimal of scale `scale`.
fn decimal_noise(value: f64, scale: i8) -> f64 {
    (value.abs() * 1e-13).max(10_f64.powi(-i32::from(scale)) * 1e-9)
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
