//! Fingerprints: a 128-bit hash of the columns a mapping uses, per row.
//!
//! Rows are first turned into Arrow's row format (`RowConverter`), a comparable byte encoding of
//! every supported type, then hashed with XXH3-128 seeded by the mapping's definition, so that a
//! changed field mapping changes every fingerprint (and the records are sent again).

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{RowConverter, SortField};
use xxhash_rust::xxh3::{xxh3_64, xxh3_128_with_seed};

pub use crate::state::Fingerprint;

/// Computes fingerprints for batches with a fixed set of columns.
#[derive(Debug)]
pub struct Fingerprinter {
    converter: Option<RowConverter>,
    seed: u64,
}

impl Fingerprinter {
    /// A fingerprinter for columns of these types; `definition` (e.g. the mapping's field
    /// mappings as JSON) seeds the hash.
    pub fn new(
        types: &[DataType],
        definition: &[u8],
    ) -> Result<Self, datafusion::arrow::error::ArrowError> {
        let converter = if types.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                types.iter().cloned().map(SortField::new).collect(),
            )?)
        };
        Ok(Fingerprinter {
            converter,
            seed: xxh3_64(definition),
        })
    }

    /// One fingerprint per row of `columns` (all of the same length, in constructor order).
    pub fn fingerprints(
        &self,
        columns: &[ArrayRef],
        num_rows: usize,
    ) -> Result<Vec<Fingerprint>, datafusion::arrow::error::ArrowError> {
        let Some(converter) = &self.converter else {
            return Ok(vec![
                Fingerprint(xxh3_128_with_seed(&[], self.seed));
                num_rows
            ]);
        };
        let rows = converter.convert_columns(columns)?;
        Ok(rows
            .iter()
            .map(|r| Fingerprint(xxh3_128_with_seed(r.as_ref(), self.seed)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn same_values_same_fingerprint_and_seed_matters() {
        let types = [DataType::Int64, DataType::Utf8];
        let f = Fingerprinter::new(&types, b"m1").unwrap();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 1, 2])),
            Arc::new(StringArray::from(vec![Some("a"), Some("a"), None])),
        ];
        let fps = f.fingerprints(&cols, 3).unwrap();
        assert_eq!(fps[0], fps[1]);
        assert_ne!(fps[0], fps[2]);
        let g = Fingerprinter::new(&types, b"m2").unwrap();
        assert_ne!(g.fingerprints(&cols, 3).unwrap()[0], fps[0]);
    }

    #[test]
    fn null_differs_from_empty_string() {
        let f = Fingerprinter::new(&[DataType::Utf8], b"").unwrap();
        let cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![Some(""), None]))];
        let fps = f.fingerprints(&cols, 2).unwrap();
        assert_ne!(fps[0], fps[1]);
    }
}
