//! retl benchmarks. The criterion benches in `benches/` measure the change-detection hot paths
//! (key encoding, fingerprinting); the high-volume end-to-end suite is not written yet (see the
//! README's feature table).

#![deny(missing_docs)]

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};

/// `n` rows of an integer key column and two string columns, deterministic.
pub fn sample_columns(n: usize) -> (ArrayRef, Vec<ArrayRef>) {
    let keys: ArrayRef = Arc::new(Int64Array::from_iter_values(
        (0..n as i64).map(|i| i * 7 + 3),
    ));
    let emails: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..n).map(|i| format!("user{i}@example.com")),
    ));
    let plans: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..n).map(|i| ["free", "pro", "enterprise"][i % 3]),
    ));
    (keys, vec![emails, plans])
}
