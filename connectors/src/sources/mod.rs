//! Source connectors, one folder each (see the crate docs for the file contract).

pub(crate) mod federation;
pub(crate) mod files;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use retl_engine::source::SourceError;
use serde::de::DeserializeOwned;

/// Parses a source's JSON config into its typed form; unknown or mistyped fields are named.
pub(crate) fn parse_config<T: DeserializeOwned>(
    config: &serde_json::Value,
) -> Result<T, SourceError> {
    T::deserialize(config).map_err(|e| SourceError::InvalidConfig {
        field: "config".to_string(),
        message: e.to_string(),
    })
}
