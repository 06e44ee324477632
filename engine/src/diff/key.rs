//! Unique id -> order-preserving bytes, and back.
//!
//! | Arrow type | encoding |
//! |---|---|
//! | signed integers | `0x01` + 8 bytes big-endian of the `i64` with the sign bit flipped |
//! | unsigned integers | `0x02` + 8 bytes big-endian `u64` |
//! | UTF-8 strings | `0x03` + the UTF-8 bytes |
//!
//! Within one type, byte order equals value order (numeric for integers, byte-wise for strings,
//! which is how Arrow and DataFusion sort strings). That is what lets the differ merge a sorted
//! extract with RocksDB's sorted state.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};

const TAG_INT: u8 = 0x01;
const TAG_UINT: u8 = 0x02;
const TAG_STR: u8 = 0x03;

/// Whether a column of this type can serve as a unique identifier.
pub fn is_keyable(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    )
}

fn encode_i64(v: i64, out: &mut Vec<u8>) {
    out.push(TAG_INT);
    out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

fn encode_u64(v: u64, out: &mut Vec<u8>) {
    out.push(TAG_UINT);
    out.extend_from_slice(&v.to_be_bytes());
}

fn encode_str(v: &str, out: &mut Vec<u8>) {
    out.push(TAG_STR);
    out.extend_from_slice(v.as_bytes());
}

/// Encodes row `row` of a key column; `None` for a null. The caller checked `is_keyable`.
pub fn encode_key(array: &dyn Array, row: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(16);
    encode_key_into(array, row, &mut out).then_some(out)
}

/// Encodes row `row` of a key column into `out` (cleared first), reusing its allocation;
/// `false` for a null or a type that cannot be a key (see [`is_keyable`]).
pub fn encode_key_into(array: &dyn Array, row: usize, out: &mut Vec<u8>) -> bool {
    out.clear();
    if array.is_null(row) {
        return false;
    }
    match array.data_type() {
        DataType::Int8 => encode_i64(array.as_primitive::<Int8Type>().value(row).into(), out),
        DataType::Int16 => encode_i64(array.as_primitive::<Int16Type>().value(row).into(), out),
        DataType::Int32 => encode_i64(array.as_primitive::<Int32Type>().value(row).into(), out),
        DataType::Int64 => encode_i64(array.as_primitive::<Int64Type>().value(row), out),
        DataType::UInt8 => encode_u64(array.as_primitive::<UInt8Type>().value(row).into(), out),
        DataType::UInt16 => encode_u64(array.as_primitive::<UInt16Type>().value(row).into(), out),
        DataType::UInt32 => encode_u64(array.as_primitive::<UInt32Type>().value(row).into(), out),
        DataType::UInt64 => encode_u64(array.as_primitive::<UInt64Type>().value(row), out),
        DataType::Utf8 => encode_str(array.as_string::<i32>().value(row), out),
        DataType::LargeUtf8 => encode_str(array.as_string::<i64>().value(row), out),
        DataType::Utf8View => encode_str(array.as_string_view().value(row), out),
        _ => return false,
    }
    true
}

/// Encodes a unique id given as text (as [`key_text`] shows it) for a key column of
/// `data_type`; `None` when the text is not a value of that type (or the type cannot be a
/// key).
pub fn encode_key_text(text: &str, data_type: &DataType) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(16);
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            encode_i64(text.parse().ok()?, &mut out);
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            encode_u64(text.parse().ok()?, &mut out);
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => encode_str(text, &mut out),
        _ => return None,
    }
    Some(out)
}

/// Decodes an encoded key back to its JSON value (for delete payloads and reports).
pub fn decode_key(bytes: &[u8]) -> serde_json::Value {
    match bytes.split_first() {
        Some((&TAG_INT, rest)) if rest.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(rest);
            serde_json::Value::from((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
        }
        Some((&TAG_UINT, rest)) if rest.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(rest);
            serde_json::Value::from(u64::from_be_bytes(b))
        }
        Some((&TAG_STR, rest)) => {
            serde_json::Value::from(String::from_utf8_lossy(rest).into_owned())
        }
        _ => serde_json::Value::from(format!("0x{}", hex_string(bytes))),
    }
}

/// The key as display text.
pub fn key_text(bytes: &[u8]) -> String {
    match decode_key(bytes) {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, UInt64Array};

    use super::*;

    fn encode_all(a: &ArrayRef) -> Vec<Option<Vec<u8>>> {
        (0..a.len()).map(|i| encode_key(a.as_ref(), i)).collect()
    }

    #[test]
    fn signed_integers_sort_numerically() {
        let values = [i64::MIN, -1000, -1, 0, 1, 7, 1000, i64::MAX];
        let a: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
        let enc: Vec<Vec<u8>> = encode_all(&a).into_iter().map(Option::unwrap).collect();
        let mut sorted = enc.clone();
        sorted.sort();
        assert_eq!(enc, sorted);
        for (e, v) in enc.iter().zip(values) {
            assert_eq!(decode_key(e), serde_json::json!(v));
        }
    }

    #[test]
    fn int32_and_int64_encode_alike() {
        let a: ArrayRef = Arc::new(Int32Array::from(vec![-5, 42]));
        let b: ArrayRef = Arc::new(Int64Array::from(vec![-5, 42]));
        assert_eq!(encode_all(&a), encode_all(&b));
    }

    #[test]
    fn unsigned_and_strings_round_trip_and_sort() {
        let u: ArrayRef = Arc::new(UInt64Array::from(vec![0, 9, u64::MAX]));
        let enc: Vec<Vec<u8>> = encode_all(&u).into_iter().map(Option::unwrap).collect();
        assert!(enc.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(decode_key(&enc[2]), serde_json::json!(u64::MAX));
        let s: ArrayRef = Arc::new(StringArray::from(vec![
            Some(""),
            Some("a"),
            Some("ab"),
            Some("b"),
            None,
        ]));
        let enc = encode_all(&s);
        assert_eq!(enc[4], None);
        let enc: Vec<Vec<u8>> = enc.into_iter().flatten().collect();
        assert!(enc.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(decode_key(&enc[2]), serde_json::json!("ab"));
        assert_eq!(key_text(&enc[2]), "ab");
    }

    #[test]
    fn keyable_types() {
        assert!(is_keyable(&DataType::Utf8View));
        assert!(!is_keyable(&DataType::Float64));
        assert!(!is_keyable(&DataType::Boolean));
    }
}
