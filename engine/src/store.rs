//! The data directory's RocksDB database: one DB, one column family per concern.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `catalog` | `<kind>/<id>` | JSON definition (no secrets) |
//! | `secrets` | `<kind>/<id>` | JSON object of secret config fields |
//! | `runs` | run id (UUIDv7, time ordered) | JSON `SyncRun` |
//! | `state` | `<mapping id> 0x00 <encoded key>` | 16-byte fingerprint |
//! | `meta` | `mapping/<id>/initialized`, `schedule/<id>` | marker, scheduler state |
//! | `failures` | `<mapping id> 0x00 <encoded key>` | JSON failed record (attempts, last error) |

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StorageError;

/// Column family names.
pub(crate) const CF_CATALOG: &str = "catalog";
pub(crate) const CF_SECRETS: &str = "secrets";
pub(crate) const CF_RUNS: &str = "runs";
pub(crate) const CF_STATE: &str = "state";
pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_FAILURES: &str = "failures";
const ALL_CFS: [&str; 6] = [
    CF_CATALOG,
    CF_SECRETS,
    CF_RUNS,
    CF_STATE,
    CF_META,
    CF_FAILURES,
];

/// The shared RocksDB handle.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .finish()
    }
}

impl Store {
    /// Opens or creates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StorageError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_max_background_jobs(2);
        let cfs = ALL_CFS.map(|name| {
            let mut cf_opts = Options::default();
            cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
            if name == CF_STATE {
                // The state is read by full scans (one per run): bigger blocks mean fewer block
                // reads per key. It stays LZ4-compressed: without compression, scenario 2 at
                // 100M rows took 82.7 s and 663 MB against 77 s and 381-423 MB with it.
                let mut table = rocksdb::BlockBasedOptions::default();
                table.set_block_size(32 * 1024);
                cf_opts.set_block_based_table_factory(&table);
            }
            ColumnFamilyDescriptor::new(name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(StorageError::rocks("open"))?;
        Ok(Store { db: Arc::new(db) })
    }

    pub(crate) fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.db.cf_handle(name).ok_or_else(|| StorageError::Decode {
            what: "column family",
            message: format!("column family '{name}' is missing"),
        })
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    /// Reads raw bytes.
    pub(crate) fn get_raw(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.db
            .get_cf(self.cf(cf)?, key)
            .map_err(StorageError::rocks("read"))
    }

    /// Reads and decodes a JSON value.
    pub(crate) fn get_json<T: DeserializeOwned>(
        &self,
        cf: &'static str,
        key: &str,
        what: &'static str,
    ) -> Result<Option<T>, StorageError> {
        match self.get_raw(cf, key.as_bytes())? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StorageError::Decode {
                        what,
                        message: e.to_string(),
                    })
            }
        }
    }

    /// Encodes a JSON value into a write batch.
    pub(crate) fn put_json<T: Serialize>(
        &self,
        batch: &mut WriteBatch,
        cf: &'static str,
        key: &str,
        value: &T,
    ) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StorageError::Decode {
            what: "record to write",
            message: e.to_string(),
        })?;
        batch.put_cf(self.cf(cf)?, key.as_bytes(), bytes);
        Ok(())
    }

    /// Encodes a JSON value under a binary key into a write batch.
    pub(crate) fn put_json_bytes<T: Serialize>(
        &self,
        batch: &mut WriteBatch,
        cf: &'static str,
        key: &[u8],
        value: &T,
    ) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StorageError::Decode {
            what: "record to write",
            message: e.to_string(),
        })?;
        batch.put_cf(self.cf(cf)?, key, bytes);
        Ok(())
    }

    /// Applies a write batch atomically (synced to disk).
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db
            .write_opt(batch, &opts)
            .map_err(StorageError::rocks("write"))
    }

    /// Applies a write batch atomically, written to the write-ahead log but not synced: it
    /// survives a crash of the process at once, and a power loss after [`Store::sync_wal`].
    pub(crate) fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.db
            .write_opt(batch, &rocksdb::WriteOptions::default())
            .map_err(StorageError::rocks("write"))
    }

    /// Syncs the write-ahead log to disk (fsync): every write so far survives a power loss.
    pub(crate) fn sync_wal(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true).map_err(StorageError::rocks("sync"))
    }

    /// Writes every column family's memtable to a table file (and so to disk).
    pub(crate) fn flush_memtables(&self) -> Result<(), StorageError> {
        for name in ALL_CFS {
            self.db
                .flush_cf(self.cf(name)?)
                .map_err(StorageError::rocks("flush"))?;
        }
        Ok(())
    }

    /// Decodes every JSON value whose key starts with `prefix`, in key order.
    pub(crate) fn scan_json<T: DeserializeOwned>(
        &self,
        cf: &'static str,
        prefix: &str,
        what: &'static str,
    ) -> Result<Vec<T>, StorageError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(cf)?,
            IteratorMode::From(prefix.as_bytes(), rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(StorageError::rocks("scan"))?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push(
                serde_json::from_slice(&value).map_err(|e| StorageError::Decode {
                    what,
                    message: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    /// Decodes JSON values in a column family in descending key order, starting strictly
    /// before `before` (or at the end), keeping at most `limit` values that pass `keep`.
    pub(crate) fn scan_json_reverse<T: DeserializeOwned>(
        &self,
        cf: &'static str,
        what: &'static str,
        before: Option<&str>,
        mut keep: impl FnMut(&T) -> bool,
        limit: usize,
    ) -> Result<Vec<T>, StorageError> {
        let mut out = Vec::new();
        let mode = match before {
            Some(key) => IteratorMode::From(key.as_bytes(), rocksdb::Direction::Reverse),
            None => IteratorMode::End,
        };
        for item in self.db.iterator_cf(self.cf(cf)?, mode) {
            let (key, value) = item.map_err(StorageError::rocks("scan"))?;
            if before.is_some_and(|b| key.as_ref() >= b.as_bytes()) {
                continue;
            }
            let value: T = serde_json::from_slice(&value).map_err(|e| StorageError::Decode {
                what,
                message: e.to_string(),
            })?;
            if keep(&value) {
                out.push(value);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}
