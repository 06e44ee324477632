//! The catalog: definitions of sources, models, destinations and mappings, their secrets, run
//! history and per-mapping markers, persisted in the data directory's RocksDB.
//!
//! Definitions and their secrets are written in one atomic batch; secrets live in their own
//! column family so that no code path that lists definitions can read them by accident.

pub mod destination;
pub mod mapping;
pub mod model;
pub mod source;

use std::collections::BTreeMap;

use rocksdb::WriteBatch;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StorageError;
use crate::id::MappingId;
use crate::secret::Secret;
use crate::store::{CF_CATALOG, CF_META, CF_RUNS, CF_SECRETS, Store};
use crate::sync::run::SyncRun;

/// The kinds of stored definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A source.
    Source,
    /// A model.
    Model,
    /// A destination.
    Destination,
    /// A mapping.
    Mapping,
}

impl Kind {
    /// The name used in keys and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Model => "model",
            Kind::Destination => "destination",
            Kind::Mapping => "mapping",
        }
    }

    fn key(self, id: &str) -> String {
        format!("{}/{id}", self.as_str())
    }

    fn prefix(self) -> String {
        format!("{}/", self.as_str())
    }
}

/// Typed access to stored definitions and runs.
#[derive(Debug, Clone)]
pub struct Catalog {
    store: Store,
}

impl Catalog {
    /// A catalog over an open store.
    pub fn new(store: Store) -> Self {
        Catalog { store }
    }

    /// A definition by id.
    pub fn get<T: DeserializeOwned>(
        &self,
        kind: Kind,
        id: &str,
    ) -> Result<Option<T>, StorageError> {
        self.store
            .get_json(CF_CATALOG, &kind.key(id), kind.as_str())
    }

    /// The secrets stored with a definition.
    pub fn secrets(&self, kind: Kind, id: &str) -> Result<BTreeMap<String, Secret>, StorageError> {
        Ok(self
            .store
            .get_json(CF_SECRETS, &kind.key(id), "secrets")?
            .unwrap_or_default())
    }

    /// All definitions of a kind, by id.
    pub fn list<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>, StorageError> {
        self.store
            .scan_json(CF_CATALOG, &kind.prefix(), kind.as_str())
    }

    /// Writes a definition (and its secrets, when given) atomically.
    pub fn put<T: Serialize>(
        &self,
        kind: Kind,
        id: &str,
        value: &T,
        secrets: Option<&BTreeMap<String, Secret>>,
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.store
            .put_json(&mut batch, CF_CATALOG, &kind.key(id), value)?;
        if let Some(secrets) = secrets {
            if secrets.is_empty() {
                batch.delete_cf(self.store.cf(CF_SECRETS)?, kind.key(id).as_bytes());
            } else {
                self.store
                    .put_json(&mut batch, CF_SECRETS, &kind.key(id), secrets)?;
            }
        }
        self.store.write(batch)
    }

    /// Removes a definition and its secrets.
    pub fn delete(&self, kind: Kind, id: &str) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.store.cf(CF_CATALOG)?, kind.key(id).as_bytes());
        batch.delete_cf(self.store.cf(CF_SECRETS)?, kind.key(id).as_bytes());
        self.store.write(batch)
    }

    /// Saves a run record.
    pub fn put_run(&self, run: &SyncRun) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.store
            .put_json(&mut batch, CF_RUNS, run.id.as_str(), run)?;
        self.store.write(batch)
    }

    /// A run by id.
    pub fn get_run(&self, id: &str) -> Result<Option<SyncRun>, StorageError> {
        self.store.get_json(CF_RUNS, id, "sync run")
    }

    /// Runs, newest first, older than run `before` when given, optionally of one mapping, at
    /// most `limit`.
    pub fn list_runs(
        &self,
        mapping: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StorageError> {
        self.store.scan_json_reverse(
            CF_RUNS,
            "sync run",
            before,
            |r: &SyncRun| mapping.is_none_or(|m| r.mapping_id.as_str() == m),
            limit,
        )
    }

    /// All runs that had not ended (used at startup to close runs a stopped daemon left open).
    pub fn unfinished_runs(&self) -> Result<Vec<SyncRun>, StorageError> {
        self.store.scan_json_reverse(
            CF_RUNS,
            "sync run",
            None,
            |r: &SyncRun| !r.status.is_terminal(),
            usize::MAX,
        )
    }

    fn initialized_key(mapping: &MappingId) -> String {
        format!("mapping/{mapping}/initialized")
    }

    /// Records that a mapping completed a run (its first-run behaviour no longer applies).
    pub fn mark_initialized(&self, mapping: &MappingId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.store
            .put_json(&mut batch, CF_META, &Self::initialized_key(mapping), &true)?;
        self.store.write(batch)
    }

    /// Whether a mapping completed a run.
    pub fn is_initialized(&self, mapping: &MappingId) -> Result<bool, StorageError> {
        Ok(self
            .store
            .get_json::<bool>(CF_META, &Self::initialized_key(mapping), "marker")?
            .unwrap_or(false))
    }

    /// Forgets that a mapping completed a run.
    pub fn clear_initialized(&self, mapping: &MappingId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(
            self.store.cf(CF_META)?,
            Self::initialized_key(mapping).as_bytes(),
        );
        self.store.write(batch)
    }
}
