//! Arrow values -> JSON values for payloads and previews.
//!
//! Decimals become JSON strings with their exact digits (no float rounding); dates and
//! timestamps become ISO 8601 / RFC 3339 strings; lists become arrays and structs objects.
//! Types without a natural JSON form (intervals, durations, binary) become their display text.

use datafusion::arrow::array::{Array, AsArray};
use std::sync::LazyLock;

use chrono::format::{Item, StrftimeItems};
use chrono::{TimeZone, Utc};
use datafusion::arrow::array::temporal_conversions::as_datetime;
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, DecimalType, Float16Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value;

fn float(v: f64) -> Value {
    // NaN and infinities have no JSON form.
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn display(array: &dyn Array, row: usize) -> Result<Value, ArrowError> {
    let options = FormatOptions::default().with_display_error(true);
    let formatter = ArrayFormatter::try_new(array, &options)?;
    Ok(Value::String(formatter.value(row).to_string()))
}

/// The JSON value of row `row` of `array`.
pub fn json_value(array: &dyn Array, row: usize) -> Result<Value, ArrowError> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).into(),
        DataType::Float16 => float(array.as_primitive::<Float16Type>().value(row).to_f64()),
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(row).into()),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_string()),
        DataType::Timestamp(unit, tz) => timestamp(array, row, *unit, tz.as_deref())?,
        DataType::Decimal128(precision, scale) => Value::String(Decimal128Type::format_decimal(
            array.as_primitive::<Decimal128Type>().value(row),
            *precision,
            *scale,
        )),
        DataType::List(_) => list(array.as_list::<i32>().value(row).as_ref())?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(row).as_ref())?,
        DataType::FixedSizeList(_, _) => list(array.as_fixed_size_list().value(row).as_ref())?,
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut obj = serde_json::Map::with_capacity(fields.len());
            for (i, field) in fields.iter().enumerate() {
                obj.insert(field.name().clone(), json_value(s.column(i).as_ref(), row)?);
            }
            Value::Object(obj)
        }
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            // The one key of this row (`normalized_keys` would convert every key of the array).
            let key = cast(&dict.keys().slice(row, 1), &DataType::UInt64)?;
            let key = key.as_primitive::<UInt64Type>().value(0);
            let key = usize::try_from(key)
                .map_err(|_| ArrowError::InvalidArgumentError("dictionary key".to_string()))?;
            json_value(dict.values().as_ref(), key)?
        }
        // Dates, times, decimals, intervals, durations, binary: their canonical text.
        _ => display(array, row)?,
    })
}

/// The format of a timestamp without a time zone (RFC 3339 without offset).
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";
/// The format of a timestamp with a time zone (RFC 3339).
const TIMESTAMP_TZ_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f%:z";
/// [`TIMESTAMP_FORMAT`], parsed once.
static TIMESTAMP_ITEMS: LazyLock<Vec<Item<'static>>> =
    LazyLock::new(|| StrftimeItems::new(TIMESTAMP_FORMAT).collect());
/// [`TIMESTAMP_TZ_FORMAT`], parsed once.
static TIMESTAMP_TZ_ITEMS: LazyLock<Vec<Item<'static>>> =
    LazyLock::new(|| StrftimeItems::new(TIMESTAMP_TZ_FORMAT).collect());

/// A timestamp as RFC 3339 text: the same text Arrow's display gives with the formats above
/// (the same conversion, time zone and chrono items), without building a formatter per value.
fn timestamp(
    array: &dyn Array,
    row: usize,
    unit: TimeUnit,
    tz: Option<&str>,
) -> Result<Value, ArrowError> {
    let naive = match unit {
        TimeUnit::Second => as_datetime::<TimestampSecondType>(
            array.as_primitive::<TimestampSecondType>().value(row),
        ),
        TimeUnit::Millisecond => as_datetime::<TimestampMillisecondType>(
            array.as_primitive::<TimestampMillisecondType>().value(row),
        ),
        TimeUnit::Microsecond => as_datetime::<TimestampMicrosecondType>(
            array.as_primitive::<TimestampMicrosecondType>().value(row),
        ),
        TimeUnit::Nanosecond => as_datetime::<TimestampNanosecondType>(
            array.as_primitive::<TimestampNanosecondType>().value(row),
        ),
    };
    let Some(naive) = naive else {
        // Out of chrono's range: Arrow's display says why.
        return display(array, row);
    };
    let text = match tz {
        Some(tz) => {
            let tz: Tz = tz.parse()?;
            Utc.from_utc_datetime(&naive)
                .with_timezone(&tz)
                .format_with_items(TIMESTAMP_TZ_ITEMS.iter())
                .to_string()
        }
        None => naive.format_with_items(TIMESTAMP_ITEMS.iter()).to_string(),
    };
    Ok(Value::String(text))
}

fn list(values: &dyn Array) -> Result<Value, ArrowError> {
    (0..values.len())
        .map(|i| json_value(values, i))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, ListArray,
        StringArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::Int32Type as I32;
    use serde_json::json;

    use super::*;

    #[test]
    fn scalars() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), None]));
        assert_eq!(json_value(a.as_ref(), 0).unwrap(), json!(5));
        assert_eq!(json_value(a.as_ref(), 1).unwrap(), Value::Null);
        let b: ArrayRef = Arc::new(BooleanArray::from(vec![true]));
        assert_eq!(json_value(b.as_ref(), 0).unwrap(), json!(true));
        let f: ArrayRef = Arc::new(Float64Array::from(vec![1.5, f64::NAN]));
        assert_eq!(json_value(f.as_ref(), 0).unwrap(), json!(1.5));
        assert_eq!(json_value(f.as_ref(), 1).unwrap(), Value::Null);
        let s: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        assert_eq!(json_value(s.as_ref(), 0).unwrap(), json!("x"));
    }

    #[test]
    fn dictionary_values_are_looked_up_per_row() {
        use datafusion::arrow::array::DictionaryArray;
        use datafusion::arrow::datatypes::Int8Type as K;
        let d: DictionaryArray<K> = vec![Some("gold"), None, Some("free"), Some("gold")]
            .into_iter()
            .collect();
        let d: ArrayRef = Arc::new(d);
        let values: Vec<Value> = (0..4).map(|r| json_value(d.as_ref(), r).unwrap()).collect();
        assert_eq!(
            values,
            vec![json!("gold"), Value::Null, json!("free"), json!("gold")]
        );
    }

    #[test]
    fn decimals_keep_their_digits() {
        let d: ArrayRef = Arc::new(
            Decimal128Array::from(vec![12345678901234567890123_i128])
                .with_precision_and_scale(38, 4)
                .unwrap(),
        );
        assert_eq!(
            json_value(d.as_ref(), 0).unwrap(),
            json!("1234567890123456789.0123")
        );
    }

    #[test]
    fn dates_timestamps_lists() {
        let d: ArrayRef = Arc::new(Date32Array::from(vec![19723]));
        assert_eq!(json_value(d.as_ref(), 0).unwrap(), json!("2024-01-01"));
        let t: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![1_704_067_200_000_000]).with_timezone("UTC"),
        );
        assert_eq!(
            json_value(t.as_ref(), 0).unwrap(),
            json!("2024-01-01T00:00:00+00:00")
        );
        let t: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_704_067_200_500_000]));
        assert_eq!(
            json_value(t.as_ref(), 0).unwrap(),
            json!("2024-01-01T00:00:00.500")
        );
        let l: ArrayRef = Arc::new(ListArray::from_iter_primitive::<I32, _, _>(vec![Some(
            vec![Some(1), None],
        )]));
        assert_eq!(json_value(l.as_ref(), 0).unwrap(), json!([1, null]));
    }

    /// What `json_value` gave for timestamps and decimals before its fast paths: Arrow's
    /// display with the RFC 3339 formats.
    fn via_arrow_display(array: &dyn Array, row: usize) -> Value {
        let options = FormatOptions::default()
            .with_display_error(true)
            .with_timestamp_format(Some(TIMESTAMP_FORMAT))
            .with_timestamp_tz_format(Some(TIMESTAMP_TZ_FORMAT));
        let formatter = ArrayFormatter::try_new(array, &options).unwrap();
        Value::String(formatter.value(row).to_string())
    }

    #[test]
    fn fast_paths_match_arrow_display() {
        use datafusion::arrow::array::{
            TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
        };
        let values = [
            0_i64,
            1,
            -1,
            999_999,
            1_577_836_800_123_456,
            -86_400_000_001,
            4_102_444_800_000_000,
        ];
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for tz in [None, Some("UTC"), Some("+02:00"), Some("America/New_York")] {
            let with = |a: ArrayRef| -> ArrayRef {
                match tz {
                    Some(tz) => datafusion::arrow::compute::cast(
                        &a,
                        &DataType::Timestamp(
                            match a.data_type() {
                                DataType::Timestamp(u, _) => *u,
                                _ => unreachable!(),
                            },
                            Some(tz.into()),
                        ),
                    )
                    .unwrap(),
                    None => a,
                }
            };
            arrays.push(with(Arc::new(TimestampSecondArray::from(values.to_vec()))));
            arrays.push(with(Arc::new(TimestampMillisecondArray::from(
                values.to_vec(),
            ))));
            arrays.push(with(Arc::new(TimestampMicrosecondArray::from(
                values.to_vec(),
            ))));
            arrays.push(with(Arc::new(TimestampNanosecondArray::from(
                values.to_vec(),
            ))));
        }
        for (precision, scale) in [(12, 2), (38, 0), (38, 10), (5, 5), (10, -2)] {
            arrays.push(Arc::new(
                Decimal128Array::from(vec![
                    0_i128,
                    1,
                    -1,
                    5,
                    -50,
                    12345,
                    -99999,
                    10_i128.pow(9) + 7,
                ])
                .with_precision_and_scale(precision, scale)
                .unwrap(),
            ));
        }
        for a in &arrays {
            for row in (0..a.len()).filter(|r| a.is_valid(*r)) {
                assert_eq!(
                    json_value(a.as_ref(), row).unwrap(),
                    via_arrow_display(a.as_ref(), row),
                    "{:?} row {row}",
                    a.data_type()
                );
            }
        }
    }
}
