//! [`FailureLedger`]: the records of a mapping that failed, across runs, in the `failures`
//! column family (`<mapping id> 0x00 <encoded key>` → JSON [`FailedRecord`]).
//!
//! A failed record's state does not advance, so every later run finds it changed and sends it
//! again with its current values. The ledger counts those runs: once a record has failed in
//! [`RetryPolicy::max_runs`] runs, or for longer than [`RetryPolicy::max_age`], it is **given up**:
//! later runs skip it (counted in `given_up`) until it changes again (a new fingerprint is tried
//! afresh) or a user retries it (`RetryFailedRecords`). A record that is delivered leaves the
//! ledger. Nothing is dropped silently: every given-up record is listed with its last error.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rocksdb::{IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::destination::spec::ChangeKind;
use crate::error::StorageError;
use crate::id::MappingId;
use crate::store::{CF_FAILURES, Store};

/// When failing records are given up (Segment's default: after 5 syncs or 14 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Runs in which a record may fail before it is given up (at least 1).
    pub max_runs: u32,
    /// How long after its first failure a record is given up.
    #[serde(with = "duration_secs")]
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_runs: 5,
            max_age: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// A record that failed in at least one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRecord {
    /// The encoded key.
    #[serde(skip)]
    pub key: Vec<u8>,
    /// The change that failed.
    pub change: ChangeKind,
    /// The fingerprint of the values that failed (`None` for a delete).
    #[serde(default)]
    pub fingerprint: Option<u128>,
    /// Runs in which it failed with these values.
    pub attempts: u32,
    /// When it first failed with these values.
    #[serde(with = "crate::timestamp")]
    pub first_failure: DateTime<Utc>,
    /// When it last failed.
    #[serde(with = "crate::timestamp")]
    pub last_failure: DateTime<Utc>,
    /// The run it last failed in.
    pub last_run: String,
    /// Why it last failed.
    pub last_error: String,
    /// Whether later runs skip it.
    pub given_up: bool,
}

/// One failure to record.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Encoded key.
    pub key: Vec<u8>,
    /// The change.
    pub change: ChangeKind,
    /// The fingerprint of the values sent (`None` for a delete).
    pub fingerprint: Option<u128>,
    /// Why it failed.
    pub reason: String,
}

/// Whether `known` (a mapping's ledger) gave `key` up with these values (`fingerprint`;
/// `None` = a delete): runs skip such a record until its values change or it is retried.
pub fn is_given_up(
    known: &HashMap<Vec<u8>, FailedRecord>,
    key: &[u8],
    fingerprint: Option<u128>,
) -> bool {
    known
        .get(key)
        .is_some_and(|r| r.given_up && r.fingerprint == fingerprint)
}

/// The failures of every mapping.
#[derive(Debug, Clone)]
pub struct FailureLedger {
    store: Store,
}

fn prefix(mapping: &MappingId) -> Vec<u8> {
    let mut p = mapping.as_str().as_bytes().to_vec();
    p.push(0);
    p
}

fn full_key(mapping: &MappingId, key: &[u8]) -> Vec<u8> {
    let mut k = prefix(mapping);
    k.extend_from_slice(key);
    k
}

impl FailureLedger {
    /// The ledger in `store`.
    pub fn new(store: Store) -> Self {
        FailureLedger { store }
    }

    /// Every failed record of a mapping whose key sorts after `after`, at most `limit`,
    /// optionally only the given-up ones.
    ///
    /// # Errors
    /// The store cannot be read or holds a record it cannot decode.
    pub fn list(
        &self,
        mapping: &MappingId,
        after: Option<&[u8]>,
        limit: usize,
        given_up_only: bool,
    ) -> Result<Vec<FailedRecord>, StorageError> {
        let prefix = prefix(mapping);
        let start = after.map_or_else(|| prefix.clone(), |k| full_key(mapping, k));
        let db = self.store.handle()?;
        let iter = db.db().iterator_cf(
            db.cf(CF_FAILURES)?,
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(StorageError::rocks("scan failures"))?;
            if !key.starts_with(&prefix) {
                break;
            }
            let record_key = &key[prefix.len()..];
            if after.is_some_and(|a| record_key <= a) {
                continue;
            }
            let mut record: FailedRecord =
                serde_json::from_slice(&value).map_err(|e| StorageError::Decode {
                    what: "failed record",
                    message: e.to_string(),
                })?;
            if given_up_only && !record.given_up {
                continue;
            }
            record.key = record_key.to_vec();
            out.push(record);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// A mapping's whole ledger, by encoded key (loaded at the start of a run: records that
    /// leave it when delivered, and given-up records to skip).
    ///
    /// # Errors
    /// As for [`FailureLedger::list`].
    pub fn load(
        &self,
        mapping: &MappingId,
    ) -> Result<HashMap<Vec<u8>, FailedRecord>, StorageError> {
        Ok(self
            .list(mapping, None, usize::MAX, false)?
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect())
    }

    /// Records failures of a run, counting attempts per record and giving up by `policy`;
    /// `known` is the ledger as loaded at the start of the run (updated here). Returns how many
    /// records were given up now.
    ///
    /// # Errors
    /// The store cannot be written.
    pub fn record(
        &self,
        mapping: &MappingId,
        run_id: &str,
        failures: Vec<Failure>,
        known: &mut HashMap<Vec<u8>, FailedRecord>,
        policy: RetryPolicy,
        now: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let mut batch = WriteBatch::default();
        let mut given_up = 0;
        for failure in failures {
            let record = match known.get(&failure.key) {
                Some(previous)
                    if previous.fingerprint == failure.fingerprint
                        && previous.change == failure.change =>
                {
                    FailedRecord {
                        attempts: previous.attempts.saturating_add(1),
                        last_failure: now,
                        last_run: run_id.to_string(),
                        last_error: failure.reason,
                        ..previous.clone()
                    }
                }
                _ => FailedRecord {
                    key: failure.key.clone(),
                    change: failure.change,
                    fingerprint: failure.fingerprint,
                    attempts: 1,
                    first_failure: now,
                    last_failure: now,
                    last_run: run_id.to_string(),
                    last_error: failure.reason,
                    given_up: false,
                },
            };
            let age = (now - record.first_failure).to_std().unwrap_or_default();
            let give_up = record.attempts >= policy.max_runs.max(1) || age >= policy.max_age;
            let record = FailedRecord {
                given_up: record.given_up || give_up,
                ..record
            };
            if record.given_up && !known.get(&failure.key).is_some_and(|r| r.given_up) {
                given_up += 1;
            }
            self.store.put_json_bytes(
                &mut batch,
                CF_FAILURES,
                &full_key(mapping, &failure.key),
                &record,
            )?;
            known.insert(failure.key, record);
        }
        self.store.write_unsynced(batch)?;
        Ok(given_up)
    }

    /// Removes delivered records from the ledger (those of `keys` it holds).
    ///
    /// # Errors
    /// The store cannot be written.
    pub fn delivered<'a>(
        &self,
        mapping: &MappingId,
        keys: impl IntoIterator<Item = &'a [u8]>,
        known: &mut HashMap<Vec<u8>, FailedRecord>,
    ) -> Result<(), StorageError> {
        if known.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        let db = self.store.handle()?;
        let cf = db.cf(CF_FAILURES)?;
        for key in keys {
            if known.remove(key).is_some() {
                batch.delete_cf(cf, full_key(mapping, key));
            }
        }
        // A write may reopen the database: no handle is held across it.
        drop(db);
        if !batch.is_empty() {
            self.store.write_unsynced(batch)?;
        }
        Ok(())
    }

    /// Makes given-up records of a mapping pending again (all of them, or those whose key text
    /// is in `keys`), with their attempts reset; returns how many.
    ///
    /// # Errors
    /// The store cannot be read or written.
    pub fn retry(&self, mapping: &MappingId, keys: &[String]) -> Result<u64, StorageError> {
        let mut batch = WriteBatch::default();
        let mut count = 0;
        for record in self.list(mapping, None, usize::MAX, true)? {
            if !keys.is_empty() && !keys.contains(&crate::diff::key::key_text(&record.key)) {
                continue;
            }
            let key = full_key(mapping, &record.key);
            // Counted afresh: runs and age from now.
            let record = FailedRecord {
                given_up: false,
                attempts: 0,
                first_failure: Utc::now(),
                ..record
            };
            self.store
                .put_json_bytes(&mut batch, CF_FAILURES, &key, &record)?;
            count += 1;
        }
        self.store.write(batch)?;
        Ok(count)
    }

    /// How many records of a mapping are pending (failed, sent again by later runs) and how
    /// many were given up, in one scan that decodes only the `given_up` flag.
    ///
    /// # Errors
    /// The store cannot be read or holds a record it cannot decode.
    pub fn counts(&self, mapping: &MappingId) -> Result<(u64, u64), StorageError> {
        #[derive(Deserialize)]
        struct Flag {
            #[serde(default)]
            given_up: bool,
        }
        let prefix = prefix(mapping);
        let db = self.store.handle()?;
        let iter = db.db().iterator_cf(
            db.cf(CF_FAILURES)?,
            IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        );
        let (mut pending, mut given_up) = (0, 0);
        for item in iter {
            let (key, value) = item.map_err(StorageError::rocks("scan failures"))?;
            if !key.starts_with(&prefix) {
                break;
            }
            let flag: Flag = serde_json::from_slice(&value).map_err(|e| StorageError::Decode {
                what: "failed record",
                message: e.to_string(),
            })?;
            if flag.given_up {
                given_up += 1;
            } else {
                pending += 1;
            }
        }
        Ok((pending, given_up))
    }

    /// Forgets a mapping's ledger (the mapping was created anew or deleted).
    ///
    /// # Errors
    /// The store cannot be written.
    pub fn reset(&self, mapping: &MappingId) -> Result<(), StorageError> {
        let start = prefix(mapping);
        let mut end = start.clone();
        if let Some(last) = end.last_mut() {
            *last = 1;
        }
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.store.handle()?.cf(CF_FAILURES)?, start, end);
        self.store.write(batch)
    }
}
