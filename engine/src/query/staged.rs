//! The `staging` schema: one table per model with a complete staged extract (its newest), and
//! `<model>@<run id>` for each kept extract (quote it: `SELECT * FROM "orders@0193..."`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::SchemaProvider;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result as DfResult};

use crate::staging;

/// The `staging` schema over `<data-dir>/staging`.
#[derive(Debug)]
pub struct StagedSchema {
    /// Table name -> staged extract directory.
    tables: BTreeMap<String, PathBuf>,
}

impl StagedSchema {
    /// The complete extracts under `data_dir` now: `<model>` (newest) and `<model>@<run>`.
    pub fn scan(data_dir: &Path) -> StagedSchema {
        let mut tables = BTreeMap::new();
        let root = data_dir.join("staging");
        let Ok(models) = std::fs::read_dir(&root) else {
            return StagedSchema { tables };
        };
        for model in models.flatten() {
            let Ok(model_name) = model.file_name().into_string() else {
                continue;
            };
            let complete = staging::complete_runs(data_dir, &model_name);
            if let Some((_, newest)) = complete.last() {
                tables.insert(model_name.clone(), newest.clone());
            }
            for (run, dir) in complete {
                tables.insert(format!("{model_name}@{run}"), dir);
            }
        }
        StagedSchema { tables }
    }
}

#[async_trait]
impl SchemaProvider for StagedSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(dir) = self.tables.get(name) else {
            return Ok(None);
        };
        Ok(Some(parquet_table(&staging::staged_file(dir)).await?))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }
}

/// A table over one staged Parquet file.
async fn parquet_table(file: &Path) -> DfResult<Arc<dyn TableProvider>> {
    let url = ListingTableUrl::parse(file.display().to_string())?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    // The schema is in the file's footer; reading it needs a session only for its config.
    let state = datafusion::prelude::SessionContext::new().state();
    let schema = options.infer_schema(&state, &url).await.map_err(|e| {
        DataFusionError::Plan(format!(
            "the staged extract {} cannot be read (pruned or damaged?): {e}",
            file.display()
        ))
    })?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}
