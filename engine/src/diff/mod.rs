//! Change detection: key encoding, fingerprints, the key index and the sort-merge differ.
//!
//! While the extract is staged, each row's encoded key and fingerprint go to a key index
//! ([`index`]). The index, in key order, is merged with the mapping's state (RocksDB iterates in
//! key order): a key only in the extract is *added*, in both with another fingerprint
//! *updated*, only in the state *deleted*. The rows that changed are marked ([`changed`]) and
//! read back from the staged extract to be sent. Memory holds one index batch, one state page
//! and two bits per extracted row.

pub mod changed;
pub mod fingerprint;
pub mod index;
pub mod key;
pub mod local;

pub use local::{DiffSink, SortMergeDiffer};
