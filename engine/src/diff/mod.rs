//! Change detection: key encoding, fingerprints, and the sort-merge differ.
//!
//! The extract, sorted by encoded key, is merged with the mapping's state (RocksDB iterates in
//! key order): a key only in the extract is *added*, in both with another fingerprint *updated*,
//! only in the state *deleted*. Memory holds one batch, one key group and one state page.

pub mod fingerprint;
pub mod key;
pub mod local;

pub use local::{DiffEvent, RowRef, SortMergeDiffer};
