//! `impl Source` for local files: resolving the path, registering a DataFusion `ListingTable`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::{Constraints, Statistics, TableReference};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::options::{
    CsvReadOptions, JsonReadOptions, ParquetReadOptions, ReadOptions,
};
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::TableProviderFilterPushDown;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::Expr;
use datafusion::prelude::SessionContext;
use retl_engine::source::{ColumnInfo, Source, SourceError, SourceTestReport, TableInfo};

use super::config::{FileFormat, ValidConfig};
use super::types;

/// How many files `test()` opens to check they are readable.
const MAX_FILES_CHECKED: usize = 1_000;

/// One table read from a file or a directory of files.
#[derive(Debug)]
pub(crate) struct FilesSource {
    config: ValidConfig,
}

/// What the configured path holds, found on disk.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The format read.
    pub(crate) format: FileFormat,
    /// The absolute path.
    pub(crate) path: PathBuf,
    /// Whether the path is a directory.
    pub(crate) is_dir: bool,
    /// The extension DataFusion filters listed files by (`.csv`, or empty for a single file
    /// without one).
    pub(crate) extension: String,
    /// The data files, in name order.
    pub(crate) files: Vec<PathBuf>,
    /// Files of the directory that are not of `format` and are ignored.
    pub(crate) ignored: usize,
}

impl Layout {
    /// The path as DataFusion's listing URL expects it (a directory ends with `/`).
    fn url(&self) -> Result<ListingTableUrl, SourceError> {
        let text = self
            .path
            .to_str()
            .ok_or_else(|| SourceError::InvalidConfig {
                field: "path".to_string(),
                message: format!("{} is not valid UTF-8", self.path.display()),
            })?;
        let text = if self.is_dir && !text.ends_with('/') {
            format!("{text}/")
        } else {
            text.to_string()
        };
        ListingTableUrl::parse(&text).map_err(|e| SourceError::InvalidConfig {
            field: "path".to_string(),
            message: format!("{text} cannot be read as a table location: {e}"),
        })
    }
}

/// An I/O error on `path`, worded for the user.
fn access_error(path: &Path, error: &std::io::Error) -> SourceError {
    match error.kind() {
        std::io::ErrorKind::NotFound => SourceError::Unavailable {
            message: format!(
                "path {} does not exist; check the source's path (it is read on the daemon's machine)",
                path.display()
            ),
        },
        std::io::ErrorKind::PermissionDenied => SourceError::PermissionDenied {
            message: format!(
                "cannot read {}: permission denied; grant the daemon's user read access",
                path.display()
            ),
        },
        _ => SourceError::Unavailable {
            message: format!("cannot access {}: {error}", path.display()),
        },
    }
}

fn extension_of(path: &Path) -> Option<&str> {
    path.extension().and_then(|e| e.to_str())
}

/// What to do about a file that does not parse.
fn fix_hint(layout: &Layout) -> String {
    let what = if layout.is_dir {
        format!("every {} file in the directory", layout.format.name())
    } else {
        "the file".to_string()
    };
    format!(
        "check that {what} is a complete, valid {} file (replace or remove a broken one), or set the source's format if the files hold another format",
        layout.format.name()
    )
}

/// The first I/O error in an error's source chain.
fn find_io_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        current = e.source();
    }
    None
}

/// Looks at the configured path and decides the format, extension and files (blocking I/O).
pub(crate) fn resolve(config: &ValidConfig) -> Result<Layout, SourceError> {
    let path = std::path::absolute(&config.path).map_err(|e| access_error(&config.path, &e))?;
    let metadata = std::fs::metadata(&path).map_err(|e| access_error(&path, &e))?;
    if metadata.is_file() {
        let extension = extension_of(&path);
        let format = match (
            config.format,
            extension.and_then(FileFormat::from_extension),
        ) {
            (Some(format), _) | (None, Some(format)) => format,
            (None, None) => {
                return Err(SourceError::InvalidConfig {
                    field: "format".to_string(),
                    message: format!(
                        "cannot tell the format of {} from its extension; set format to parquet, csv or ndjson",
                        path.display()
                    ),
                });
            }
        };
        return Ok(Layout {
            format,
            extension: extension.map(|e| format!(".{e}")).unwrap_or_default(),
            files: vec![path.clone()],
            path,
            is_dir: false,
            ignored: 0,
        });
    }
    if !metadata.is_dir() {
        return Err(SourceError::Unavailable {
            message: format!("{} is neither a file nor a directory", path.display()),
        });
    }

    // A directory: the files DataFusion's listing reads, i.e. those directly inside it
    // (subdirectories are ignored by default) with the format's extension, hidden ones included.
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&path).map_err(|e| access_error(&path, &e))? {
        let entry = entry.map_err(|e| access_error(&path, &e))?;
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            files.push(entry.path());
        }
    }
    files.sort();
    let format_of = |file: &PathBuf| extension_of(file).and_then(FileFormat::from_extension);
    let format = match config.format {
        Some(format) => format,
        None => {
            let present: BTreeSet<&'static str> = files
                .iter()
                .filter_map(format_of)
                .map(FileFormat::name)
                .collect();
            let mut formats = FileFormat::ALL
                .into_iter()
                .filter(|f| present.contains(f.name()));
            match (formats.next(), formats.next()) {
                (Some(format), None) => format,
                (None, _) => {
                    return Err(SourceError::Unavailable {
                        message: format!(
                            "directory {} contains no Parquet, CSV or NDJSON files (.parquet, .pq, .csv, .tsv, .ndjson, .jsonl, .json)",
                            path.display()
                        ),
                    });
                }
                (Some(_), Some(_)) => {
                    return Err(SourceError::InvalidConfig {
                        field: "format".to_string(),
                        message: format!(
                            "directory {} holds files of several formats ({}); set format to choose one",
                            path.display(),
                            present.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
            }
        }
    };
    let total = files.len();
    files.retain(|f| format_of(f) == Some(format));
    if files.is_empty() {
        return Err(SourceError::Unavailable {
            message: format!(
                "directory {} contains no {} files (.{})",
                path.display(),
                format.name(),
                format.extensions().join(", .")
            ),
        });
    }
    let extensions: BTreeSet<&str> = files.iter().filter_map(|f| extension_of(f)).collect();
    if extensions.len() > 1 {
        return Err(SourceError::InvalidConfig {
            field: "path".to_string(),
            message: format!(
                "directory {} mixes {} files; give them one extension",
                path.display(),
                extensions
                    .iter()
                    .map(|e| format!(".{e}"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        });
    }
    let extension = extensions
        .first()
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    Ok(Layout {
        format,
        path,
        is_dir: true,
        extension,
        ignored: total - files.len(),
        files,
    })
}

impl FilesSource {
    /// A source over this (validated) config; touches no file.
    pub(crate) fn new(config: ValidConfig) -> Self {
        FilesSource { config }
    }

    /// Resolves the layout off the async runtime's worker threads.
    async fn layout(&self) -> Result<Layout, SourceError> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || resolve(&config))
            .await
            .map_err(|e| SourceError::Read {
                message: format!("inspecting the path failed: {e}"),
            })?
    }

    fn listing_options(&self, layout: &Layout, ctx: &SessionContext) -> ListingOptions {
        let session_config = ctx.copied_config();
        let table_options = ctx.copied_table_options();
        match layout.format {
            FileFormat::Parquet => {
                let options = ParquetReadOptions {
                    file_extension: &layout.extension,
                    ..ParquetReadOptions::default()
                };
                options.to_listing_options(&session_config, table_options)
            }
            FileFormat::Csv => {
                let tsv = layout.extension.eq_ignore_ascii_case(".tsv");
                let mut options = CsvReadOptions::new();
                options.has_header = self.config.has_header.unwrap_or(true);
                options.delimiter = self
                    .config
                    .delimiter
                    .unwrap_or(if tsv { b'\t' } else { b',' });
                options.file_extension = &layout.extension;
                options.to_listing_options(&session_config, table_options)
            }
            FileFormat::Ndjson => {
                let options = JsonReadOptions {
                    file_extension: &layout.extension,
                    ..JsonReadOptions::default()
                };
                options.to_listing_options(&session_config, table_options)
            }
        }
    }

    /// Resolves the files and infers the table's schema; the provider is ready to register.
    async fn provider(
        &self,
        ctx: &SessionContext,
    ) -> Result<(Layout, ListingTable, SchemaRef), SourceError> {
        let layout = self.layout().await?;
        if layout.format != FileFormat::Csv
            && (self.config.has_header.is_some() || self.config.delimiter.is_some())
        {
            return Err(SourceError::InvalidConfig {
                field: "has_header".to_string(),
                message: format!(
                    "has_header and delimiter apply to csv files only, but {} holds {} files",
                    layout.path.display(),
                    layout.format.name()
                ),
            });
        }
        let options = self.listing_options(&layout, ctx);
        let url = layout.url()?;
        let schema = options
            .infer_schema(&ctx.state(), &url)
            .await
            .map_err(|e| SourceError::Read {
                message: format!(
                    "could not read {} as {}: {e}; {}",
                    layout.path.display(),
                    layout.format.name(),
                    fix_hint(&layout)
                ),
            })?;
        if schema.fields().is_empty() {
            return Err(SourceError::Read {
                message: format!(
                    "{} has no columns (empty {} file?)",
                    layout.path.display(),
                    layout.format.name()
                ),
            });
        }
        let schema = types::normalize(layout.format, schema);
        types::check_supported(&schema)?;
        let table_config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(Arc::clone(&schema));
        let table = ListingTable::try_new(table_config).map_err(|e| SourceError::Read {
            message: format!("could not open {}: {e}", layout.path.display()),
        })?;
        Ok((layout, table, schema))
    }
}

#[async_trait]
impl Source for FilesSource {
    async fn test(&self) -> Result<SourceTestReport, SourceError> {
        let layout = self.layout().await?;
        let files = layout.files.clone();
        tokio::task::spawn_blocking(move || {
            for file in files.iter().take(MAX_FILES_CHECKED) {
                std::fs::File::open(file).map_err(|e| match e.kind() {
                    std::io::ErrorKind::PermissionDenied => access_error(file, &e),
                    _ => SourceError::Read {
                        message: format!("cannot open {}: {e}", file.display()),
                    },
                })?;
            }
            Ok::<(), SourceError>(())
        })
        .await
        .map_err(|e| SourceError::Read {
            message: format!("checking the files failed: {e}"),
        })??;
        // Reading the schema parses headers/footers only and catches unreadable files.
        let (layout, _, schema) = self.provider(&SessionContext::new()).await?;
        let mut warnings = Vec::new();
        if layout.ignored > 0 {
            warnings.push(format!(
                "{} file(s) in {} are not {} files and are ignored",
                layout.ignored,
                layout.path.display(),
                layout.format.name()
            ));
        }
        Ok(SourceTestReport {
            message: format!(
                "read {} {} file(s) at {}: table '{}' has {} column(s)",
                layout.files.len(),
                layout.format.name(),
                layout.path.display(),
                self.config.table,
                schema.fields().len()
            ),
            warnings,
        })
    }

    async fn list_tables(&self) -> Result<Vec<TableInfo>, SourceError> {
        let (layout, _, schema) = self.provider(&SessionContext::new()).await?;
        Ok(vec![TableInfo {
            schema: String::new(),
            name: self.config.table.clone(),
            kind: "file".to_string(),
            location: layout.path.display().to_string(),
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnInfo::from_field(f))
                .collect(),
        }])
    }

    async fn register(&self, ctx: &SessionContext) -> Result<(), SourceError> {
        let (layout, table, _) = self.provider(ctx).await?;
        ctx.register_table(
            TableReference::bare(self.config.table.clone()),
            Arc::new(ReadOnly(table)),
        )
        .map_err(|e| SourceError::Query {
            message: format!(
                "could not register {} as table '{}': {e}",
                layout.path.display(),
                self.config.table
            ),
        })?;
        Ok(())
    }

    /// A file that disappeared or changed mid-read is `Unavailable` (it may be being
    /// rewritten; the engine tries the extract again); a row or a page
    /// that does not parse — is a `Read` error naming the path and the fix, which a retry
    /// would not cure; other errors are left to the engine.
    fn classify_read_error(
        &self,
        error: &(dyn std::error::Error + 'static),
    ) -> Option<SourceError> {
        let path = self.config.path.display();
        let format = self.config.format.map_or("its format", FileFormat::name);
        let root = error
            .downcast_ref::<DataFusionError>()
            .map(DataFusionError::find_root);
        let io = find_io_error(error).is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound);
        if io || matches!(root, Some(DataFusionError::ObjectStore(..))) {
            return Some(SourceError::Unavailable {
                message: format!(
                    "a file of {path} changed or went away while it was being read ({}); the extract is incomplete: run again once the files are in place",
                    root.map_or_else(|| error.to_string(), ToString::to_string)
                ),
            });
        }
        matches!(
            root,
            Some(DataFusionError::ArrowError(..) | DataFusionError::ParquetError(..))
        )
        .then(|| SourceError::Read {
            message: format!(
                "{path} could not be read as {format}: {}; fix or remove the broken row or file, then run again",
                root.map_or_else(|| error.to_string(), ToString::to_string)
            ),
        })
    }
}

/// A `ListingTable` that only reads: DataFusion's own would write a new file into a directory
/// table on `INSERT INTO`. Model SQL is refused DML before it reaches a table, but a table of
/// a source must not be writable whoever plans over it.
#[derive(Debug)]
struct ReadOnly(ListingTable);

#[async_trait]
impl TableProvider for ReadOnly {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.0.constraints()
    }

    fn table_type(&self) -> TableType {
        self.0.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> datafusion::error::Result<ScanResult> {
        self.0.scan_with_args(state, args).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.0.statistics()
    }
}
