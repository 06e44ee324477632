//! Files source configuration.

use std::path::{Path, PathBuf};

use retl_engine::destination::{ConfigField, FieldType};
use retl_engine::source::SourceError;
use serde::Deserialize;

use crate::sources::config::invalid;

/// A file format the source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileFormat {
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
    /// Comma- (or otherwise) separated values (`.csv`, `.tsv`).
    Csv,
    /// Newline-delimited JSON, one object per line (`.ndjson`, `.jsonl`, `.json`).
    #[serde(alias = "jsonl", alias = "json")]
    Ndjson,
}

impl FileFormat {
    /// Every format, in the order they are reported.
    pub(crate) const ALL: [FileFormat; 3] =
        [FileFormat::Parquet, FileFormat::Csv, FileFormat::Ndjson];

    /// The config name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Csv => "csv",
            FileFormat::Ndjson => "ndjson",
        }
    }

    /// The file extensions (lower case, without the dot) of this format.
    pub(crate) fn extensions(self) -> &'static [&'static str] {
        match self {
            FileFormat::Parquet => &["parquet", "pq"],
            FileFormat::Csv => &["csv", "tsv"],
            FileFormat::Ndjson => &["ndjson", "jsonl", "json"],
        }
    }

    /// The format of a file with this extension (case-insensitive), if known.
    pub(crate) fn from_extension(extension: &str) -> Option<Self> {
        let extension = extension.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|f| f.extensions().contains(&extension.as_str()))
    }
}

/// The configuration of a files source: one table read from a file or a directory of files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilesConfig {
    /// A file, or a directory whose files (not subdirectories) form the table; absolute.
    pub(crate) path: String,
    /// `parquet`, `csv` or `ndjson`; inferred from the extension(s) when absent.
    #[serde(default)]
    pub(crate) format: Option<FileFormat>,
    /// The table name used in model SQL; default: the file stem or directory name, as a
    /// lower-case SQL identifier.
    #[serde(default)]
    pub(crate) table: Option<String>,
    /// CSV only: whether the first line holds column names (default true).
    #[serde(default)]
    pub(crate) has_header: Option<bool>,
    /// CSV only: the one-character column delimiter (default `,`, or a tab for `.tsv` files;
    /// `tab` is accepted for a tab).
    #[serde(default)]
    pub(crate) delimiter: Option<String>,
}

/// The config fields, as served by `ListSourceTypes`.
pub(crate) const CONFIG_FIELDS: &[ConfigField] = &[
    ConfigField {
        name: "path",
        field_type: FieldType::String,
        required: true,
        secret: false,
        description: "Absolute path of a Parquet, CSV or NDJSON file, or of a directory of such files (subdirectories are ignored), on the daemon's machine.",
    },
    ConfigField {
        name: "format",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "parquet, csv or ndjson; inferred from the file extensions when absent.",
    },
    ConfigField {
        name: "table",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "Table name used in model SQL; default: the file stem or directory name as a lower-case identifier.",
    },
    ConfigField {
        name: "has_header",
        field_type: FieldType::Boolean,
        required: false,
        secret: false,
        description: "CSV only: whether the first line holds the column names (default true).",
    },
    ConfigField {
        name: "delimiter",
        field_type: FieldType::String,
        required: false,
        secret: false,
        description: "CSV only: one-character column delimiter (default ',' or tab for .tsv files; 'tab' is accepted).",
    },
];

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct ValidConfig {
    /// The configured path, as given.
    pub(crate) path: PathBuf,
    /// The format, when configured.
    pub(crate) format: Option<FileFormat>,
    /// The table name.
    pub(crate) table: String,
    /// CSV header flag, when configured.
    pub(crate) has_header: Option<bool>,
    /// CSV delimiter, when configured.
    pub(crate) delimiter: Option<u8>,
}

/// Longest table name accepted.
const MAX_TABLE_NAME: usize = 63;

impl FilesConfig {
    /// Checks the shape of every field; touches no file.
    pub(crate) fn validate(&self) -> Result<ValidConfig, SourceError> {
        if self.path.trim().is_empty() {
            return Err(invalid(
                "path",
                "must not be empty; give a file or a directory, e.g. /data/users.parquet",
            ));
        }
        if self.path.contains('\0') {
            return Err(invalid("path", "must not contain NUL characters"));
        }
        if !Path::new(&self.path).is_absolute() {
            return Err(invalid(
                "path",
                format!(
                    "'{}' is relative; give an absolute path, e.g. /data/users.parquet (the daemon does not resolve paths against the directory the client runs in)",
                    self.path
                ),
            ));
        }
        let csv_only = self.has_header.is_some() || self.delimiter.is_some();
        if let Some(format) = self.format
            && format != FileFormat::Csv
            && csv_only
        {
            return Err(invalid(
                if self.has_header.is_some() {
                    "has_header"
                } else {
                    "delimiter"
                },
                format!("applies to csv files only, but format is {}", format.name()),
            ));
        }
        let delimiter = self.delimiter.as_deref().map(parse_delimiter).transpose()?;
        let table = match &self.table {
            Some(table) => {
                check_table_name(table)?;
                table.clone()
            }
            None => default_table_name(Path::new(&self.path)),
        };
        Ok(ValidConfig {
            path: PathBuf::from(&self.path),
            format: self.format,
            table,
            has_header: self.has_header,
            delimiter,
        })
    }
}

fn parse_delimiter(text: &str) -> Result<u8, SourceError> {
    if text.eq_ignore_ascii_case("tab") {
        return Ok(b'\t');
    }
    match text.as_bytes() {
        [b] if b.is_ascii() && !matches!(b, b'\n' | b'\r' | b'"') => Ok(*b),
        _ => Err(invalid(
            "delimiter",
            format!(
                "'{text}' is not a single ASCII character (other than a quote or a line break); e.g. ',', ';', '|' or 'tab'"
            ),
        )),
    }
}

fn check_table_name(name: &str) -> Result<(), SourceError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && name.len() <= MAX_TABLE_NAME {
        Ok(())
    } else {
        Err(invalid(
            "table",
            format!(
                "'{name}' is not a valid table name: use 1 to {MAX_TABLE_NAME} characters of a-z, 0-9 and '_', not starting with a digit"
            ),
        ))
    }
}

/// The default table name: the file stem (for a known data extension) or the last path
/// component, lower-cased, with every other character replaced by `_`, prefixed with `t_` when
/// it would start with a digit; `data` when nothing is left.
pub(crate) fn default_table_name(path: &Path) -> String {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return "data".to_string();
    };
    let stem = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && FileFormat::from_extension(ext).is_some() => stem,
        _ => name,
    };
    let mut table: String = stem
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    if table.chars().all(|c| c == '_') {
        return "data".to_string();
    }
    if table.starts_with(|c: char| c.is_ascii_digit()) {
        table.insert_str(0, "t_");
    }
    table.truncate(MAX_TABLE_NAME);
    table
}

#[cfg(test)]
mod drift {
    /// The catalog's config fields are exactly the typed config's fields.
    #[test]
    fn config_fields_match_the_typed_config() {
        retl_engine::config_fields::check_config_fields::<super::FilesConfig>(super::CONFIG_FIELDS)
            .unwrap();
    }
}
