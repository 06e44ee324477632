//! The catalog: definitions of sources, models, destinations and mappings, and run history,
//! persisted in RocksDB.

pub mod destination;
pub mod mapping;
pub mod model;
pub mod source;
