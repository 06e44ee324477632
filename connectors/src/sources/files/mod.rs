//! `files`: one table read from local Parquet, CSV or NDJSON files — a single file or a
//! directory of files of one format — registered as a DataFusion `ListingTable`, so projection,
//! filter and limit pushdown (and Parquet row-group pruning) apply to model SQL.
//!
//! # Files
//! - `config.rs`: `FilesConfig`, its catalog field specs, `validate()` (shape only).
//! - `source.rs`: resolving the path (format, files), `impl Source`.
//! - `types.rs`: which Arrow types come out per format, normalization, `check_supported`.
//! - `tests.rs`: real temporary files of every format.
//!
//! # Configuration
//! | key | required | meaning |
//! |---|---|---|
//! | `path` | yes | absolute path of a file, or of a directory whose files (not subdirectories) form the table; relative paths are rejected (the daemon's working directory is not the client's) |
//! | `format` | no | `parquet`, `csv` or `ndjson` (aliases `json`, `jsonl`); inferred from the extension(s); a directory holding several formats needs it |
//! | `table` | no | table name in model SQL; default: file stem / directory name as a lower-case identifier (`Users 2024.csv` → `users_2024`) |
//! | `has_header` | no | CSV: first line holds column names (default true) |
//! | `delimiter` | no | CSV: one character (default `,`, tab for `.tsv`; `tab` accepted) |
//!
//! Extensions: `.parquet`/`.pq`, `.csv`/`.tsv`, `.ndjson`/`.jsonl`/`.json` (one object per
//! line). The files of a directory must share one extension.
//!
//! Nothing is read when the source is built; the path is looked at by `test`, `list_tables`
//! and `register` (each run), so files added to a directory are picked up by the next run.
//!
//! # Errors
//! Missing path → `Unavailable`; no access → `PermissionDenied`; no files of the format, or
//! mixed formats without `format` → `Unavailable` / `InvalidConfig`; a file that does not parse
//! → `Read`; an unsupported column type → `UnsupportedType` naming the column.

mod config;
mod source;
#[cfg(test)]
mod tests;
mod types;

use std::sync::Arc;

use retl_engine::connector::SourceType;
use retl_engine::source::{Source, SourceError};

use self::config::{CONFIG_FIELDS, FilesConfig};
use self::source::FilesSource;

/// The catalog entry and factory of the `files` source type.
pub(crate) fn source_type() -> SourceType {
    SourceType {
        name: "files",
        display_name: "Local files (Parquet, CSV, NDJSON)",
        description: "One table read from a local Parquet, CSV or NDJSON file, or from a directory of such files.",
        config: CONFIG_FIELDS,
        build,
    }
}

/// Builds a files source from its config; touches no file.
fn build(config: &serde_json::Value) -> Result<Arc<dyn Source>, SourceError> {
    let config: FilesConfig = crate::sources::config::parse_config(config, CONFIG_FIELDS)?;
    Ok(Arc::new(FilesSource::new(config.validate()?)))
}
