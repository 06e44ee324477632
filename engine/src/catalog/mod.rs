//! The catalog: definitions of sources, models, destinations and mappings and their secrets,
//! persisted in the data directory's RocksDB ([`Catalog`]), and the services that create,
//! validate, update and delete them ([`service`]).
//!
//! Definitions and their secrets are written in one atomic batch; secrets live in their own
//! column family so that no code path that lists definitions can read them by accident.
//! [`secrets`] is the one place where secret config values are split from plain ones and
//! merged back for a connector.

pub mod destination;
pub mod model;
pub mod secrets;
pub mod service;
pub mod source;

use std::collections::BTreeMap;

use rocksdb::WriteBatch;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::catalog::destination::{DestinationDef, LIMITS_KEY};
use crate::catalog::model::ModelDef;
use crate::catalog::source::SourceDef;
use crate::error::{Error, StorageError};
use crate::mapping::spec::MappingDef;
use crate::secret::Secret;
use crate::store::{CF_CATALOG, CF_SECRETS, Store};

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
                batch.delete_cf(
                    self.store.handle()?.cf(CF_SECRETS)?,
                    kind.key(id).as_bytes(),
                );
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
        batch.delete_cf(
            self.store.handle()?.cf(CF_CATALOG)?,
            kind.key(id).as_bytes(),
        );
        batch.delete_cf(
            self.store.handle()?.cf(CF_SECRETS)?,
            kind.key(id).as_bytes(),
        );
        self.store.write(batch)
    }

    /// A definition by id, or `NotFound`.
    fn load<T: DeserializeOwned>(&self, kind: Kind, id: &str) -> Result<T, Error> {
        self.get(kind, id)?
            .ok_or_else(|| Error::not_found(kind.as_str(), id))
    }

    /// Whether a definition with this id exists.
    pub fn exists(&self, kind: Kind, id: &str) -> Result<bool, StorageError> {
        Ok(self.get::<serde_json::Value>(kind, id)?.is_some())
    }

    /// A source by id, with its secrets loaded (never send them outward).
    pub fn source(&self, id: &str) -> Result<SourceDef, Error> {
        let mut def: SourceDef = self.load(Kind::Source, id)?;
        def.secrets = self.secrets(Kind::Source, id)?;
        upgrade_source(&mut def)?;
        Ok(def)
    }

    /// All sources, by id, with their secrets.
    pub fn sources(&self) -> Result<Vec<SourceDef>, Error> {
        let mut defs: Vec<SourceDef> = self.list(Kind::Source)?;
        for def in &mut defs {
            def.secrets = self.secrets(Kind::Source, def.id.as_str())?;
            upgrade_source(def)?;
        }
        Ok(defs)
    }

    /// A model by id.
    pub fn model(&self, id: &str) -> Result<ModelDef, Error> {
        self.load(Kind::Model, id)
    }

    /// All models, by id.
    pub fn models(&self) -> Result<Vec<ModelDef>, Error> {
        Ok(self.list(Kind::Model)?)
    }

    /// A destination by id, with its secrets loaded (never send them outward).
    pub fn destination(&self, id: &str) -> Result<DestinationDef, Error> {
        let mut def: DestinationDef = self.load(Kind::Destination, id)?;
        def.secrets = self.secrets(Kind::Destination, id)?;
        upgrade_destination(&mut def);
        Ok(def)
    }

    /// All destinations, by id, with their secrets.
    pub fn destinations(&self) -> Result<Vec<DestinationDef>, Error> {
        let mut defs: Vec<DestinationDef> = self.list(Kind::Destination)?;
        for def in &mut defs {
            def.secrets = self.secrets(Kind::Destination, def.id.as_str())?;
            upgrade_destination(def);
        }
        Ok(defs)
    }

    /// A mapping by id.
    pub fn mapping(&self, id: &str) -> Result<MappingDef, Error> {
        self.load(Kind::Mapping, id)
    }

    /// All mappings, by id.
    pub fn mappings(&self) -> Result<Vec<MappingDef>, Error> {
        Ok(self.list(Kind::Mapping)?)
    }
}

/// Moves the engine's settings out of the connector config of a source stored by an older
/// version (which kept them there).
fn upgrade_source(def: &mut SourceDef) -> Result<(), Error> {
    def.extraction.take_from(&mut def.config)
}

/// Moves the limit overrides out of the connector config of a destination stored by an older
/// version (which kept them there).
fn upgrade_destination(def: &mut DestinationDef) {
    if let Some(serde_json::Value::Object(limits)) = def.config.remove(LIMITS_KEY) {
        def.limits = limits;
    }
}
