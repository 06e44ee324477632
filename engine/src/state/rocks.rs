//! [`RocksStateStore`]: the state in the `state` column family of the data directory's RocksDB.

use rocksdb::WriteBatch;

use crate::error::StorageError;
use crate::id::MappingId;
use crate::state::{Fingerprint, StateEntry, StateError, StateStore, StateWrite};
use crate::store::{CF_STATE, Store};

/// Boxes a store error as the state's backend error.
fn backend(operation: &'static str) -> impl FnOnce(StorageError) -> StateError {
    StateError::backend(operation)
}

/// State kept in RocksDB under `<mapping id> 0x00 <encoded key>`.
#[derive(Debug, Clone)]
pub struct RocksStateStore {
    store: Store,
}

impl RocksStateStore {
    /// State over an open store.
    pub fn new(store: Store) -> Self {
        RocksStateStore { store }
    }

    fn prefix(mapping: &MappingId) -> Vec<u8> {
        let mut p = mapping.as_str().as_bytes().to_vec();
        p.push(0);
        p
    }

    fn full_key(prefix: &[u8], key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(prefix.len() + key.len());
        k.extend_from_slice(prefix);
        k.extend_from_slice(key);
        k
    }

    fn decode_fp(mapping: &MappingId, value: &[u8]) -> Result<Fingerprint, StateError> {
        // The fingerprint leads; the run that wrote it follows (see the module docs).
        match value.get(..16).map(<[u8; 16]>::try_from) {
            Some(Ok(bytes)) if value.len() == 16 || value.len() == 23 => {
                Ok(Fingerprint(u128::from_be_bytes(bytes)))
            }
            _ => Err(StateError::Corrupt {
                mapping: mapping.to_string(),
                len: value.len(),
            }),
        }
    }

    /// A page of the mapping's entries after `after`, each value decoded by `decode`.
    fn scan_with<T>(
        &self,
        mapping: &MappingId,
        after: Option<&[u8]>,
        limit: usize,
        decode: impl Fn(&MappingId, &[u8]) -> Result<T, StateError>,
    ) -> Result<Vec<(Vec<u8>, T)>, StateError> {
        let prefix = Self::prefix(mapping);
        let start = match after {
            Some(a) => Self::full_key(&prefix, a),
            None => prefix.clone(),
        };
        let db = self.store.handle().map_err(backend("state scan"))?;
        let cf = db.cf(CF_STATE).map_err(backend("state scan"))?;
        // A raw iterator lends each entry's bytes: one allocation per key (the page's copy)
        // instead of three (the boxed key and value of the iterator, then the copy). The state
        // scan is most of an incremental run's merge.
        let mut iter = db.db().raw_iterator_cf(cf);
        iter.seek(&start);
        let mut out = Vec::with_capacity(limit.min(4096));
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            let Some(key) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            if after.is_none_or(|a| key > a) {
                out.push((key.to_vec(), decode(mapping, v)?));
                if out.len() >= limit {
                    break;
                }
            }
            iter.next();
        }
        iter.status()
            .map_err(StorageError::rocks("state scan"))
            .map_err(backend("state scan"))?;
        Ok(out)
    }
}

impl StateStore for RocksStateStore {
    fn scan_page(
        &self,
        mapping: &MappingId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Fingerprint)>, StateError> {
        self.scan_with(mapping, after, limit, Self::decode_fp)
    }

    fn scan_entries(
        &self,
        mapping: &MappingId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, StateEntry)>, StateError> {
        self.scan_with(mapping, after, limit, StateEntry::decode)
    }

    fn entry(&self, mapping: &MappingId, key: &[u8]) -> Result<Option<StateEntry>, StateError> {
        let full = Self::full_key(&Self::prefix(mapping), key);
        match self
            .store
            .get_raw(CF_STATE, &full)
            .map_err(backend("state read"))?
        {
            None => Ok(None),
            Some(v) => Ok(Some(StateEntry::decode(mapping, &v)?)),
        }
    }

    fn fingerprint(
        &self,
        mapping: &MappingId,
        key: &[u8],
    ) -> Result<Option<Fingerprint>, StateError> {
        Ok(self.entry(mapping, key)?.map(|e| e.fingerprint))
    }

    fn commit(&self, mapping: &MappingId, writes: &[StateWrite]) -> Result<(), StateError> {
        if writes.is_empty() {
            return Ok(());
        }
        let prefix = Self::prefix(mapping);
        let db = self.store.handle().map_err(backend("commit"))?;
        let cf = db.cf(CF_STATE).map_err(backend("commit"))?;
        let mut batch = WriteBatch::default();
        for w in writes {
            match w {
                StateWrite::Put {
                    key,
                    fingerprint,
                    synced_by,
                } => {
                    let entry = StateEntry {
                        fingerprint: *fingerprint,
                        synced_by: *synced_by,
                    };
                    batch.put_cf(cf, Self::full_key(&prefix, key), entry.encode());
                }
                StateWrite::Delete { key } => batch.delete_cf(cf, Self::full_key(&prefix, key)),
            }
        }
        // A write may reopen the database: no handle is held across it.
        drop(db);
        // Not synced one by one: a run commits after every acknowledged batch and syncs once
        // at its end (`sync`), which is what an fsync per batch cost (0.6 s per 1M rows).
        self.store.write_unsynced(batch).map_err(backend("commit"))
    }

    fn sync(&self) -> Result<(), StateError> {
        self.store.sync_wal().map_err(backend("sync"))
    }

    fn reset(&self, mapping: &MappingId) -> Result<(), StateError> {
        let prefix = Self::prefix(mapping);
        let mut end = prefix.clone();
        // The prefix ends in 0x00; the same id followed by 0x01 bounds the range.
        if let Some(last) = end.last_mut() {
            *last = 1;
        }
        let db = self.store.handle().map_err(backend("reset"))?;
        let cf = db.cf(CF_STATE).map_err(backend("reset"))?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, prefix, end);
        drop(db);
        self.store.write(batch).map_err(backend("reset"))
    }

    fn count(&self, mapping: &MappingId) -> Result<u64, StateError> {
        let mut n = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.scan_page(mapping, after.as_deref(), 4096)?;
            let Some((last, _)) = page.last() else {
                return Ok(n);
            };
            n += page.len() as u64;
            after = Some(last.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocks_state_store_passes_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        crate::state::conformance::run_all(&RocksStateStore::new(store)).unwrap();
    }

    #[test]
    fn unsynced_and_synced_commits_are_there_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let m = MappingId::new("m");
        let put = |key: &[u8], fp| StateWrite::Put {
            key: key.to_vec(),
            fingerprint: Fingerprint(fp),
            synced_by: None,
        };
        {
            let state = RocksStateStore::new(Store::open(dir.path()).unwrap());
            state.commit(&m, &[put(b"a", 1)]).unwrap();
            state.sync().unwrap();
            state.commit(&m, &[put(b"b", 2)]).unwrap();
        }
        let state = RocksStateStore::new(Store::open(dir.path()).unwrap());
        assert_eq!(state.fingerprint(&m, b"a").unwrap(), Some(Fingerprint(1)));
        assert_eq!(state.fingerprint(&m, b"b").unwrap(), Some(Fingerprint(2)));
    }
}
