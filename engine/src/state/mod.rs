//! Per-mapping sync state: `mapping / encoded key -> fingerprint`.
//!
//! [`StateStore`] speaks in domain verbs; [`rocks::RocksStateStore`] implements it on the data
//! directory's RocksDB, and [`conformance`] is the suite every implementation must pass.

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
pub mod rocks;

use serde::{Deserialize, Serialize};

use crate::id::MappingId;

/// A 128-bit fingerprint of a row's mapped values: what the state keeps per key
/// (computed by `diff::fingerprint::Fingerprinter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub u128);

/// The error of a state store's backend, boxed so that this trait does not name it.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A state failure.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The backend (e.g. RocksDB) failed.
    #[error("sync state store failed during {operation}: {source}")]
    Backend {
        /// What the store was doing (`scan`, `commit`, `sync`, ...).
        operation: &'static str,
        /// The backend's error.
        source: BackendError,
    },
    /// A stored fingerprint has the wrong size (corruption).
    #[error(
        "sync state of mapping '{mapping}' is corrupt: a fingerprint has {len} bytes instead of 16; reset the mapping's state to resync"
    )]
    Corrupt {
        /// The mapping.
        mapping: String,
        /// The length found.
        len: usize,
    },
}

impl StateError {
    /// Wraps a backend error with the operation that failed.
    pub fn backend<E: std::error::Error + Send + Sync + 'static>(
        operation: &'static str,
    ) -> impl FnOnce(E) -> StateError {
        move |e| StateError::Backend {
            operation,
            source: Box::new(e),
        }
    }
}

/// One acknowledged change to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateWrite {
    /// The destination holds this key with these mapped values now.
    Put {
        /// Encoded key.
        key: Vec<u8>,
        /// Fingerprint of the mapped values sent.
        fingerprint: Fingerprint,
    },
    /// The destination no longer holds this key.
    Delete {
        /// Encoded key.
        key: Vec<u8>,
    },
}

/// Per-mapping sync state.
///
/// Duties:
/// 1. `scan_page` returns the mapping's entries in ascending key byte order, strictly after
///    `after`, at most `limit` of them; pages chain into a full ordered scan.
/// 2. `commit` applies its writes atomically: all or none. Nothing else changes the state.
/// 3. `reset` forgets a mapping's state entirely; other mappings are untouched.
/// 4. Mappings are independent: no verb on one mapping reads or changes another's entries.
/// 5. A commit survives a crash of the process as soon as it returns; `sync` makes every
///    commit so far survive a power loss too. A commit lost to a power loss before `sync`
///    only means its records are sent again (at least once, never lost).
pub trait StateStore: Send + Sync {
    /// A page of `(encoded key, fingerprint)` entries after `after`.
    fn scan_page(
        &self,
        mapping: &MappingId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Fingerprint)>, StateError>;
    /// The fingerprint stored for one key.
    fn fingerprint(
        &self,
        mapping: &MappingId,
        key: &[u8],
    ) -> Result<Option<Fingerprint>, StateError>;
    /// Atomically records acknowledged writes.
    fn commit(&self, mapping: &MappingId, writes: &[StateWrite]) -> Result<(), StateError>;
    /// Makes every commit so far durable against a power loss (fsync).
    fn sync(&self) -> Result<(), StateError>;
    /// Forgets the mapping's state.
    fn reset(&self, mapping: &MappingId) -> Result<(), StateError>;
    /// Number of keys in the mapping's state (a full scan; for reports and tests).
    fn count(&self, mapping: &MappingId) -> Result<u64, StateError>;
}
