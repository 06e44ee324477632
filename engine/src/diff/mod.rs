//! Change detection: the [`Differ`] boundary, key encoding, fingerprints, key validation, the
//! key index, the mass-delete guard and the deleted-keys spill file.
//!
//! While the extract is staged, each row's encoded key and fingerprint go to a key index
//! ([`index`]). The local differ ([`local::LocalDiffer`]) merges the index, in key order, with
//! the mapping's state (RocksDB iterates in key order): a key only in the extract is *added*,
//! in both with another fingerprint *updated*, only in the state *deleted*. The caller marks the
//! rows that changed ([`changed`]) and reads them back from the staged extract to send them.
//! Memory holds one index batch, one state page and two bits per extracted row.
//!
//! # Layout
//! - [`key`], [`fingerprint`]: encodings the state is keyed and compared by.
//! - [`index`]: the key index written while staging; [`changed`]: the changed-row marks.
//! - [`validate`]: why null and duplicated keys are rejected; [`guard`]: the mass-delete stop;
//!   [`deletes`]: the deleted-keys spill file.
//! - [`local`]: the sort-merge differ over a [`crate::state::StateStore`].
//! - `conformance`: the suite every [`Differ`] passes (tests and the `test-util` feature).

pub mod changed;
#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
pub mod deletes;
pub mod fingerprint;
pub mod guard;
pub mod index;
pub mod key;
pub mod local;
pub mod validate;

use async_trait::async_trait;

use crate::destination::spec::ChangeKind;
use crate::error::Error;
use crate::id::MappingId;
use crate::state::Fingerprint;
pub use local::LocalDiffer;

/// Where a differ reports what it found, as it finds it.
pub trait DiffSink: Send {
    /// Row `row` of the extract is new (`Added`) or differs from the state (`Updated`).
    ///
    /// # Errors
    /// The sink's own failure; it stops the diff.
    fn changed(
        &mut self,
        change: ChangeKind,
        key: &[u8],
        row: u64,
        fingerprint: Fingerprint,
    ) -> Result<(), Error>;
    /// A state key is missing from the extract. The caller acts on it only once the extract is
    /// known complete.
    ///
    /// # Errors
    /// The sink's own failure; it stops the diff.
    fn deleted(&mut self, key: &[u8]) -> Result<(), Error>;
    /// A row will not be sent: `key` is its key's text, `reason` why.
    fn rejected(&mut self, key: String, reason: String);
    /// Called between batches with the number of unchanged rows so far; the place to publish
    /// progress and to stop (an error ends the diff, e.g. when the run was cancelled).
    ///
    /// # Errors
    /// The sink wants the diff to stop.
    fn checkpoint(&mut self, unchanged: u64) -> Result<(), Error>;
}

/// What a differ compares for one mapping.
#[derive(Debug, Clone, Copy)]
pub struct DiffInput<'a> {
    /// The mapping whose state the extract is compared with.
    pub mapping: &'a MappingId,
    /// The model's unique id column (named in rejection reasons).
    pub unique_id: &'a str,
    /// The extract's key index (keys, fingerprints, row numbers).
    pub index: &'a index::KeyIndex,
}

/// Totals of a finished diff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffSummary {
    /// Rows whose fingerprint matched the state.
    pub unchanged: u64,
    /// Keys the mapping's state held before the run (the mass-delete guard's base).
    pub state_keys: u64,
}

/// Turns an extract into changes for one mapping.
///
/// Duties (checked by `conformance`):
/// 1. Every row with a unique, non-null key is reported once: `changed(Added)` when the state
///    has no entry, `changed(Updated)` when the entry's fingerprint differs, nothing (counted as
///    unchanged) when it matches.
/// 2. Every state key absent from the extract is reported once through `deleted`.
/// 3. A row with a null key, and every row of a key that occurs more than once, is reported
///    through `rejected` with a reason; a duplicated key is neither updated nor deleted.
/// 4. The result does not depend on the order of the extract's rows.
/// 5. A differ never writes the state: only the sync's commit step does, after acknowledgement.
///
/// # Errors
/// A state read failure, a sink failure (which stops the diff), or a local I/O failure.
#[async_trait]
pub trait Differ: Send + Sync {
    /// Compares `input` with its mapping's state, reporting to `sink`.
    async fn diff(
        &self,
        input: DiffInput<'_>,
        sink: &mut dyn DiffSink,
    ) -> Result<DiffSummary, Error>;
}
