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

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
///
/// RocksDB refuses every write after a write-ahead-log append failed (a full disk), and its C
/// API has no `Resume`: the store then reopens the database in place, once a probe write shows
/// the disk has room again, and writes the refused batch again (a refused batch was not
/// applied). Reads and writes in progress finish on the old handle first.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    /// The open database; `None` while it is being reopened or after a reopen failed.
    db: RwLock<Option<Arc<DB>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .finish()
    }
}

/// The open database, held for one operation.
pub(crate) struct DbRef(Arc<DB>);

impl DbRef {
    /// The database.
    pub(crate) fn db(&self) -> &DB {
        &self.0
    }

    /// A column family of the database.
    pub(crate) fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.0.cf_handle(name).ok_or_else(|| StorageError::Decode {
            what: "column family",
            message: format!("column family '{name}' is missing"),
        })
    }
}

/// Longest wait for the operations in progress on a database being reopened.
const REOPEN_WAIT: Duration = Duration::from_secs(10);

/// Bytes a probe writes to see whether the data directory's disk has room again.
const PROBE_BYTES: usize = 4 << 20;

/// RocksDB's answer to every write after its write-ahead log failed to append.
fn is_stopped_writer(error: &rocksdb::Error) -> bool {
    error.to_string().contains("Writer has previous error")
}

impl Store {
    /// Opens or creates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StorageError> {
        let db = Self::open_db(path)?;
        Ok(Store {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                db: RwLock::new(Some(Arc::new(db))),
            }),
        })
    }

    fn open_db(path: &Path) -> Result<DB, StorageError> {
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
        DB::open_cf_descriptors(&opts, path, cfs).map_err(StorageError::rocks("open"))
    }

    /// The open database for one operation (opened again when a reopen failed earlier).
    pub(crate) fn handle(&self) -> Result<DbRef, StorageError> {
        {
            let db = self.shared.db.read().unwrap_or_else(|e| e.into_inner());
            if let Some(db) = db.as_ref() {
                return Ok(DbRef(Arc::clone(db)));
            }
        }
        let mut slot = self.shared.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = slot.as_ref() {
            return Ok(DbRef(Arc::clone(db)));
        }
        let db = Arc::new(Self::open_db(&self.shared.path)?);
        *slot = Some(Arc::clone(&db));
        Ok(DbRef(db))
    }

    /// Reopens the database after RocksDB stopped accepting writes, when the disk has room
    /// again; returns whether it did.
    fn reopen_after_stopped_writer(&self) -> bool {
        if !self.disk_has_room() {
            return false;
        }
        let mut slot = self.shared.db.write().unwrap_or_else(|e| e.into_inner());
        let Some(old) = slot.take() else {
            return false;
        };
        // Operations in progress hold the old handle; the database closes when the last
        // one ends (its lock file must be free before it opens again).
        let deadline = Instant::now() + REOPEN_WAIT;
        while Arc::strong_count(&old) > 1 {
            if Instant::now() >= deadline {
                tracing::warn!("could not reopen the local store: operations still hold it");
                *slot = Some(old);
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(old);
        match Self::open_db(&self.shared.path) {
            Ok(db) => {
                tracing::info!(path = %self.shared.path.display(), "reopened the local store after a failed write");
                *slot = Some(Arc::new(db));
                true
            }
            Err(e) => {
                // The next operation tries again.
                tracing::warn!(error = %e, "could not reopen the local store");
                false
            }
        }
    }

    /// Whether a probe file of a few MB can be written and synced next to the database.
    fn disk_has_room(&self) -> bool {
        use std::io::Write;
        let probe = self.shared.path.join("space-probe.tmp");
        let written = std::fs::File::create(&probe).and_then(|mut f| {
            f.write_all(&vec![0_u8; PROBE_BYTES])?;
            f.sync_all()
        });
        let _ = std::fs::remove_file(&probe);
        written.is_ok()
    }

    /// Reads raw bytes.
    pub(crate) fn get_raw(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let db = self.handle()?;
        db.db()
            .get_cf(db.cf(cf)?, key)
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
        batch.put_cf(self.handle()?.cf(cf)?, key.as_bytes(), bytes);
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
        batch.put_cf(self.handle()?.cf(cf)?, key, bytes);
        Ok(())
    }

    /// Applies a write batch atomically (synced to disk).
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.write_with(batch, &opts)
    }

    /// Applies a write batch atomically, written to the write-ahead log but not synced: it
    /// survives a crash of the process at once, and a power loss after [`Store::sync_wal`].
    pub(crate) fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.write_with(batch, &rocksdb::WriteOptions::default())
    }

    /// Writes a batch; when RocksDB refuses it because an earlier write failed, reopens the
    /// database (once the disk has room) and writes it again.
    fn write_with(
        &self,
        batch: WriteBatch,
        opts: &rocksdb::WriteOptions,
    ) -> Result<(), StorageError> {
        let again = WriteBatch::from_data(batch.data());
        let result = self.handle()?.db().write_opt(batch, opts);
        match result {
            Err(e) if is_stopped_writer(&e) && self.reopen_after_stopped_writer() => self
                .handle()?
                .db()
                .write_opt(again, opts)
                .map_err(StorageError::rocks("write")),
            other => other.map_err(StorageError::rocks("write")),
        }
    }

    /// Syncs the write-ahead log to disk (fsync): every write so far survives a power loss.
    pub(crate) fn sync_wal(&self) -> Result<(), StorageError> {
        let result = self.handle()?.db().flush_wal(true);
        match result {
            Err(e) if is_stopped_writer(&e) && self.reopen_after_stopped_writer() => self
                .handle()?
                .db()
                .flush_wal(true)
                .map_err(StorageError::rocks("sync")),
            other => other.map_err(StorageError::rocks("sync")),
        }
    }

    /// Writes every column family's memtable to a table file (and so to disk).
    pub(crate) fn flush_memtables(&self) -> Result<(), StorageError> {
        let db = self.handle()?;
        for name in ALL_CFS {
            db.db()
                .flush_cf(db.cf(name)?)
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
        let db = self.handle()?;
        let iter = db.db().iterator_cf(
            db.cf(cf)?,
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
        let db = self.handle()?;
        for item in db.db().iterator_cf(db.cf(cf)?, mode) {
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
