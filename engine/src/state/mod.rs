//! Per-mapping sync state: `mapping / encoded key -> fingerprint (+ the run that wrote it)`.
//!
//! A value is the 16-byte big-endian fingerprint, then (since the explain feature) 6 bytes of
//! the writing run's stamp (the millisecond timestamp that starts its UUIDv7 id) and one byte
//! saying whether that run sent the record (1) or advanced the state without sending it (0:
//! not selected, or marked synced by a first run). Values of 16 bytes, written before, have no
//! run; both are read.
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

/// The first 48 bits of a run's UUIDv7 id: the millisecond it was created. Unique per mapping
/// (a mapping never has two runs at once), and 6 bytes a key instead of 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunStamp(pub [u8; 6]);

impl RunStamp {
    /// The stamp of a run id (`None` for an id that is not a UUIDv7, e.g. in tests).
    pub fn of(run_id: &str) -> Option<RunStamp> {
        let uuid = uuid::Uuid::parse_str(run_id).ok()?;
        let bytes = uuid.as_bytes();
        let mut stamp = [0u8; 6];
        stamp.copy_from_slice(&bytes[..6]);
        Some(RunStamp(stamp))
    }

    /// How the ids of runs with this stamp start (`0190f5c2-1a2b`).
    pub fn run_id_prefix(&self) -> String {
        let b = self.0;
        format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }

    /// When the run was created.
    pub fn time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let mut ms = [0u8; 8];
        ms[2..].copy_from_slice(&self.0);
        chrono::DateTime::from_timestamp_millis(i64::from_be_bytes(ms))
    }
}

/// Which run wrote a state entry, and whether it sent the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncedBy {
    /// The run.
    pub run: RunStamp,
    /// `true`: the destination acknowledged the record; `false`: the run advanced the state
    /// without sending it (not selected, or marked synced by the mapping's first run).
    pub sent: bool,
}

/// A state entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateEntry {
    /// The fingerprint of the mapped values.
    pub fingerprint: Fingerprint,
    /// The run that wrote it (`None` for entries written before runs were recorded).
    pub synced_by: Option<SyncedBy>,
}

/// Bytes of a state value with its run.
const ENTRY_LEN: usize = 16 + 6 + 1;

impl StateEntry {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(ENTRY_LEN);
        v.extend_from_slice(&self.fingerprint.0.to_be_bytes());
        if let Some(by) = self.synced_by {
            v.extend_from_slice(&by.run.0);
            v.push(u8::from(by.sent));
        }
        v
    }

    /// Reads stored bytes (16 without a run, 23 with one).
    ///
    /// # Errors
    /// `Corrupt` for any other length.
    pub fn decode(mapping: &MappingId, value: &[u8]) -> Result<StateEntry, StateError> {
        let corrupt = || StateError::Corrupt {
            mapping: mapping.to_string(),
            len: value.len(),
        };
        if value.len() != 16 && value.len() != ENTRY_LEN {
            return Err(corrupt());
        }
        let fingerprint = Fingerprint(u128::from_be_bytes(
            value[..16].try_into().map_err(|_| corrupt())?,
        ));
        let synced_by = if value.len() == ENTRY_LEN {
            Some(SyncedBy {
                run: RunStamp(value[16..22].try_into().map_err(|_| corrupt())?),
                sent: value[22] == 1,
            })
        } else {
            None
        };
        Ok(StateEntry {
            fingerprint,
            synced_by,
        })
    }
}

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
        "sync state of mapping '{mapping}' is corrupt: an entry has {len} bytes instead of 16 or 23; reset the mapping's state to resync"
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
        /// The run that writes it (`None`: not recorded).
        synced_by: Option<SyncedBy>,
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
    /// A page of `(encoded key, entry)` after `after`, as `scan_page` (with the writing run).
    fn scan_entries(
        &self,
        mapping: &MappingId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, StateEntry)>, StateError>;
    /// The entry stored for one key.
    fn entry(&self, mapping: &MappingId, key: &[u8]) -> Result<Option<StateEntry>, StateError>;
    /// Atomically records acknowledged writes.
    fn commit(&self, mapping: &MappingId, writes: &[StateWrite]) -> Result<(), StateError>;
    /// Makes every commit so far durable against a power loss (fsync).
    fn sync(&self) -> Result<(), StateError>;
    /// Forgets the mapping's state.
    fn reset(&self, mapping: &MappingId) -> Result<(), StateError>;
    /// Number of keys in the mapping's state (a full scan; for reports and tests).
    fn count(&self, mapping: &MappingId) -> Result<u64, StateError>;
}
