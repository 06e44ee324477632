//! The `retl` schema: system tables read at query time — runs, their per-record errors,
//! pending and given-up records, the sync state, and the catalog (without secrets).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::TimestampMicrosecondArray;
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::SchemaProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};

use crate::catalog::Catalog;
use crate::diff::key::key_text;
use crate::error::Error;
use crate::query::state_table::StatePartition;
use crate::schedule::text as schedule_text;
use crate::state::StateStore;
use crate::sync::SyncManager;
use crate::sync::active::ActiveRuns;
use crate::sync::failures::FailureLedger;
use crate::sync::history::RunHistory;
use crate::sync::run::SyncRun;

/// The system tables, in the order `SHOW TABLES` lists them.
pub const SYSTEM_TABLES: [&str; 8] = [
    "sync_runs",
    "run_errors",
    "pending",
    "state",
    "sources",
    "models",
    "destinations",
    "mappings",
];

/// What the system tables read.
#[derive(Clone)]
pub struct SystemSources {
    /// Definitions.
    pub catalog: Catalog,
    /// Run records.
    pub history: RunHistory,
    /// Runs in progress (their live counts).
    pub active: Arc<ActiveRuns>,
    /// Failed records across runs.
    pub failures: FailureLedger,
    /// The sync state.
    pub state: Arc<dyn StateStore>,
    /// Sync runs (previews for `retl.diff`).
    pub syncs: Arc<SyncManager>,
}

impl std::fmt::Debug for SystemSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemSources").finish_non_exhaustive()
    }
}

/// The `retl` schema.
#[derive(Debug)]
pub struct SystemSchema {
    sources: SystemSources,
}

impl SystemSchema {
    /// The schema over `sources`.
    pub fn new(sources: SystemSources) -> Self {
        SystemSchema { sources }
    }
}

fn df_error(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(format!("reading a system table: {e}").into())
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        SYSTEM_TABLES.iter().map(|t| (*t).to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let s = self.sources.clone();
        if name == "state" {
            let mappings = s
                .catalog
                .mappings()
                .map_err(df_error)?
                .into_iter()
                .map(|m| m.id)
                .collect();
            let partition = StatePartition::new(Arc::clone(&s.state), s.history.clone(), mappings);
            let schema = Arc::clone(partition.schema_ref());
            let table = StreamingTable::try_new(schema, vec![Arc::new(partition)])?;
            return Ok(Some(Arc::new(table)));
        }
        let name = name.to_string();
        let batch = tokio::task::spawn_blocking(move || build(&s, &name))
            .await
            .map_err(df_error)?
            .map_err(df_error)?;
        let Some(batch) = batch else {
            return Ok(None);
        };
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        SYSTEM_TABLES.contains(&name)
    }
}

/// Every run, newest first, with live counts for runs in progress.
fn runs(s: &SystemSources) -> Result<Vec<SyncRun>, Error> {
    let mut runs = s.history.list(None, None, usize::MAX)?;
    for run in &mut runs {
        if let Some(live) = s.active.snapshot(run.id.as_str())? {
            *run = live;
        }
    }
    Ok(runs)
}

/// Builds one system table (not `state`), or `None` for an unknown name.
fn build(s: &SystemSources, name: &str) -> Result<Option<RecordBatch>, Error> {
    let table = match name {
        "sync_runs" => sync_runs(&runs(s)?),
        "run_errors" => run_errors(&runs(s)?),
        "pending" => pending(s)?,
        "sources" => sources(s)?,
        "models" => models(s)?,
        "destinations" => destinations(s)?,
        "mappings" => mappings(s)?,
        _ => return Ok(None),
    };
    table
        .finish()
        .map(Some)
        .map_err(|e| Error::internal(format!("building system table {name}: {e}")))
}

/// Columns of a table being built.
#[derive(Default)]
struct Columns {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl Columns {
    fn text(mut self, name: &str, values: Vec<Option<String>>) -> Self {
        self.fields.push(Field::new(name, DataType::Utf8, true));
        self.arrays.push(Arc::new(StringArray::from(values)));
        self
    }

    fn key(mut self, name: &str, values: Vec<String>) -> Self {
        self.fields.push(Field::new(name, DataType::Utf8, false));
        self.arrays.push(Arc::new(StringArray::from(values)));
        self
    }

    /// `create_time` and `update_time` of catalog definitions.
    fn times(self, times: impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + Clone) -> Self {
        self.time("create_time", times.clone().map(|(c, _)| Some(c)).collect())
            .time("update_time", times.map(|(_, u)| Some(u)).collect())
    }

    fn count(mut self, name: &str, values: Vec<u64>) -> Self {
        self.fields.push(Field::new(name, DataType::UInt64, false));
        self.arrays.push(Arc::new(UInt64Array::from(values)));
        self
    }

    fn flag(mut self, name: &str, values: Vec<bool>) -> Self {
        self.fields.push(Field::new(name, DataType::Boolean, false));
        self.arrays.push(Arc::new(BooleanArray::from(values)));
        self
    }

    fn time(mut self, name: &str, values: Vec<Option<DateTime<Utc>>>) -> Self {
        let micros: Vec<Option<i64>> = values
            .into_iter()
            .map(|t| t.map(|t| t.timestamp_micros()))
            .collect();
        self.fields.push(Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ));
        self.arrays.push(Arc::new(
            TimestampMicrosecondArray::from(micros).with_timezone("UTC"),
        ));
        self
    }

    fn finish(self) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        RecordBatch::try_new(Arc::new(Schema::new(self.fields)), self.arrays)
    }
}

fn sync_runs(runs: &[SyncRun]) -> Columns {
    let text = |f: &dyn Fn(&SyncRun) -> Option<String>| runs.iter().map(f).collect::<Vec<_>>();
    let count = |f: &dyn Fn(&SyncRun) -> u64| runs.iter().map(f).collect::<Vec<_>>();
    Columns::default()
        .key("run_id", runs.iter().map(|r| r.id.to_string()).collect())
        .key(
            "mapping_id",
            runs.iter().map(|r| r.mapping_id.to_string()).collect(),
        )
        .text("status", text(&|r| Some(r.status.as_str().to_string())))
        .text("stage", text(&|r| Some(r.stage.as_str().to_string())))
        .text("trigger", text(&|r| Some(r.trigger.clone())))
        .time(
            "create_time",
            runs.iter().map(|r| Some(r.create_time)).collect(),
        )
        .time("start_time", runs.iter().map(|r| r.start_time).collect())
        .time("end_time", runs.iter().map(|r| r.end_time).collect())
        .count("extracted", count(&|r| r.counts.extracted))
        .count("added", count(&|r| r.counts.added))
        .count("updated", count(&|r| r.counts.updated))
        .count("unchanged", count(&|r| r.counts.unchanged))
        .count("rejected", count(&|r| r.counts.rejected))
        .count("deleted", count(&|r| r.counts.deleted))
        .count("deletes_held_back", count(&|r| r.counts.deletes_held_back))
        .count("selected", count(&|r| r.counts.selected))
        .count("not_selected", count(&|r| r.counts.not_selected))
        .count("delivered", count(&|r| r.counts.delivered))
        .count("failed", count(&|r| r.counts.failed))
        .count("given_up", count(&|r| r.counts.given_up))
        .count("newly_given_up", count(&|r| r.counts.newly_given_up))
        .count("requests", count(&|r| r.counts.requests))
        .count("request_errors", count(&|r| r.counts.request_errors))
        .count("throttled", count(&|r| r.counts.throttled))
        .count("retries", count(&|r| r.counts.retries))
        .count("queued_ms", count(&|r| r.timings.queued_ms))
        .count("extract_ms", count(&|r| r.timings.extract_ms))
        .count("diff_ms", count(&|r| r.timings.diff_ms))
        .count("deliver_ms", count(&|r| r.timings.deliver_ms))
        .count("commit_ms", count(&|r| r.timings.commit_ms))
        .count("total_ms", count(&|r| r.timings.total_ms))
        .count("request_ms", count(&|r| r.timings.request_ms))
        .count("record_errors_omitted", count(&|r| r.record_errors_omitted))
        .text("error", text(&|r| r.error.clone()))
        .text(
            "warnings",
            text(&|r| (!r.warnings.is_empty()).then(|| r.warnings.join("\n"))),
        )
        .text("staging_path", text(&|r| r.staging_path.clone()))
}

fn run_errors(runs: &[SyncRun]) -> Columns {
    let rows: Vec<_> = runs
        .iter()
        .flat_map(|r| r.record_errors.iter().map(move |e| (r, e)))
        .collect();
    Columns::default()
        .key(
            "run_id",
            rows.iter().map(|(r, _)| r.id.to_string()).collect(),
        )
        .key(
            "mapping_id",
            rows.iter().map(|(r, _)| r.mapping_id.to_string()).collect(),
        )
        .key("key", rows.iter().map(|(_, e)| e.key.clone()).collect())
        .text(
            "change",
            rows.iter()
                .map(|(_, e)| e.change.map(|c| c.as_str().to_string()))
                .collect(),
        )
        .text(
            "stage",
            rows.iter().map(|(_, e)| Some(e.stage.clone())).collect(),
        )
        .text(
            "reason",
            rows.iter().map(|(_, e)| Some(e.reason.clone())).collect(),
        )
}

fn pending(s: &SystemSources) -> Result<Columns, Error> {
    let mut rows = Vec::new();
    for mapping in s.catalog.mappings()? {
        for record in s.failures.list(&mapping.id, None, usize::MAX, false)? {
            rows.push((mapping.id.to_string(), record));
        }
    }
    Ok(Columns::default()
        .key("mapping_id", rows.iter().map(|(m, _)| m.clone()).collect())
        .key("key", rows.iter().map(|(_, r)| key_text(&r.key)).collect())
        .text(
            "change",
            rows.iter()
                .map(|(_, r)| Some(r.change.as_str().to_string()))
                .collect(),
        )
        .count(
            "attempts",
            rows.iter().map(|(_, r)| u64::from(r.attempts)).collect(),
        )
        .time(
            "first_failure",
            rows.iter().map(|(_, r)| Some(r.first_failure)).collect(),
        )
        .time(
            "last_failure",
            rows.iter().map(|(_, r)| Some(r.last_failure)).collect(),
        )
        .text(
            "last_run",
            rows.iter().map(|(_, r)| Some(r.last_run.clone())).collect(),
        )
        .text(
            "last_error",
            rows.iter()
                .map(|(_, r)| Some(r.last_error.clone()))
                .collect(),
        )
        .flag("given_up", rows.iter().map(|(_, r)| r.given_up).collect()))
}

fn json_text(value: &impl serde::Serialize) -> Option<String> {
    serde_json::to_string(value).ok()
}

fn sources(s: &SystemSources) -> Result<Columns, Error> {
    let defs = s.catalog.sources()?;
    Ok(Columns::default()
        .key("source_id", defs.iter().map(|d| d.id.to_string()).collect())
        .text(
            "display_name",
            defs.iter().map(|d| Some(d.display_name.clone())).collect(),
        )
        .text(
            "source_type",
            defs.iter().map(|d| Some(d.source_type.clone())).collect(),
        )
        // Secret fields live apart from the config; only their names are shown.
        .text(
            "config",
            defs.iter().map(|d| json_text(&d.config)).collect(),
        )
        .text(
            "secret_fields",
            defs.iter()
                .map(|d| Some(d.secrets.keys().cloned().collect::<Vec<_>>().join(",")))
                .collect(),
        )
        .count(
            "max_concurrent_extractions",
            defs.iter()
                .map(|d| d.extraction.max_concurrent_extractions as u64)
                .collect(),
        )
        .times(defs.iter().map(|d| (d.create_time, d.update_time))))
}

fn models(s: &SystemSources) -> Result<Columns, Error> {
    let defs = s.catalog.models()?;
    Ok(Columns::default()
        .key("model_id", defs.iter().map(|d| d.id.to_string()).collect())
        .text(
            "display_name",
            defs.iter().map(|d| Some(d.display_name.clone())).collect(),
        )
        .text(
            "source_id",
            defs.iter().map(|d| Some(d.source_id.to_string())).collect(),
        )
        .text("sql", defs.iter().map(|d| Some(d.sql.clone())).collect())
        .text(
            "unique_id",
            defs.iter().map(|d| Some(d.unique_id.clone())).collect(),
        )
        .times(defs.iter().map(|d| (d.create_time, d.update_time))))
}

fn destinations(s: &SystemSources) -> Result<Columns, Error> {
    let defs = s.catalog.destinations()?;
    Ok(Columns::default()
        .key(
            "destination_id",
            defs.iter().map(|d| d.id.to_string()).collect(),
        )
        .text(
            "display_name",
            defs.iter().map(|d| Some(d.display_name.clone())).collect(),
        )
        .text(
            "destination_type",
            defs.iter()
                .map(|d| Some(d.destination_type.clone()))
                .collect(),
        )
        .text(
            "config",
            defs.iter().map(|d| json_text(&d.config)).collect(),
        )
        .text(
            "secret_fields",
            defs.iter()
                .map(|d| Some(d.secrets.keys().cloned().collect::<Vec<_>>().join(",")))
                .collect(),
        )
        .text(
            "limits",
            defs.iter().map(|d| json_text(&d.limits)).collect(),
        )
        .flag("enabled", defs.iter().map(|d| d.enabled).collect())
        .times(defs.iter().map(|d| (d.create_time, d.update_time))))
}

fn mappings(s: &SystemSources) -> Result<Columns, Error> {
    let defs = s.catalog.mappings()?;
    Ok(Columns::default()
        .key(
            "mapping_id",
            defs.iter().map(|d| d.id.to_string()).collect(),
        )
        .text(
            "display_name",
            defs.iter().map(|d| Some(d.display_name.clone())).collect(),
        )
        .text(
            "model_id",
            defs.iter().map(|d| Some(d.model_id.to_string())).collect(),
        )
        .text(
            "destination_id",
            defs.iter()
                .map(|d| Some(d.destination_id.to_string()))
                .collect(),
        )
        .text(
            "action",
            defs.iter().map(|d| Some(d.action.clone())).collect(),
        )
        .flag("enabled", defs.iter().map(|d| d.enabled).collect())
        .text(
            "selection",
            defs.iter().map(|d| json_text(&d.selection)).collect(),
        )
        .text(
            "schedule",
            defs.iter()
                .map(|d| d.schedule.as_ref().map(schedule_text::format))
                .collect(),
        )
        .text(
            "fields",
            defs.iter().map(|d| json_text(&d.fields)).collect(),
        )
        .times(defs.iter().map(|d| (d.create_time, d.update_time))))
}
