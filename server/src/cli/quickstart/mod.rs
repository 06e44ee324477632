//! `retl quickstart`: a complete sync with no external service.
//!
//! 1. Writes a deterministic sample warehouse, `customers.parquet` (id, email, name, plan,
//!    country, ltv, signup_at, active).
//! 2. Starts a daemon in this process on `127.0.0.1:0` with a random token.
//! 3. Through the gRPC API (the CLI's client code) creates a `files` source, a model of the
//!    active customers, a `file` destination and a mapping that sends added, updated and deleted
//!    records, then runs and watches a first sync (a backfill).
//! 4. Rewrites the Parquet file with known changes (emails updated, rows inserted and deleted),
//!    runs a second sync and checks that it found exactly those changes; exits non-zero if not.

use std::path::{Path, PathBuf};

use clap::Args;
use rand::Rng;
use retl_proto::v1;

use crate::cli::output::{Output, duration_ms, out, outln, print_json};
use crate::cli::progress::{self, n};
use crate::cli::{CliError, Client};
use crate::daemon::{DaemonConfig, spawn_in_process};

mod sample;

use crate::grpc::convert::map_to_struct;
use crate::grpc::json;
use sample::{Changes, is_active, write_customers};

/// Options of `retl quickstart`.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Rows in the sample `customers` table (about 80% are active and in the model).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(100..=50_000_000))]
    pub rows: u64,
    /// Directory for the sample warehouse, the daemon's data and the output files.
    #[arg(long, default_value = "./quickstart-data")]
    pub dir: PathBuf,
}

const MARKER: &str = ".retl-quickstart";
const SOURCE_ID: &str = "warehouse";
const MODEL_ID: &str = "active_customers";
const DESTINATION_ID: &str = "local_files";
const MAPPING_ID: &str = "customers_to_files";
const MODEL_SQL: &str =
    "SELECT id, email, name, plan, country, ltv, signup_at FROM customers WHERE active";

/// The query the quickstart runs over the staged extract.
const COUNT_SQL: &str = "SELECT count(*) FROM active_customers";

/// Rows of the model's newest staged extract, counted with SQL through the API.
async fn staged_rows(client: &Client) -> Result<u64, CliError> {
    let ctx = crate::cli::Context {
        client: client.clone(),
        output: Output::Table,
    };
    let batches = crate::cli::sql::query_batches(&ctx, COUNT_SQL, 0).await?;
    let count = batches
        .first()
        .filter(|b| b.num_rows() == 1)
        .and_then(|b| {
            datafusion::arrow::compute::cast(
                b.column(0),
                &datafusion::arrow::datatypes::DataType::UInt64,
            )
            .ok()
        })
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                .map(|a| a.value(0))
        });
    count.ok_or_else(|| fail(format!("{COUNT_SQL} did not answer one count")))
}

fn fail(msg: impl Into<String>) -> CliError {
    CliError::Quickstart(msg.into())
}

/// Creates `dir`, or clears what an earlier quickstart left there. Refuses a non-empty
/// directory that was not made by the quickstart.
fn prepare_dir(dir: &Path) -> Result<PathBuf, CliError> {
    std::fs::create_dir_all(dir).map_err(CliError::io(dir))?;
    let dir = dir.canonicalize().map_err(CliError::io(dir))?;
    let marker = dir.join(MARKER);
    let non_empty = std::fs::read_dir(&dir)
        .map_err(CliError::io(&dir))?
        .next()
        .is_some();
    if non_empty && !marker.exists() {
        return Err(fail(format!(
            "{} is not empty and was not created by `retl quickstart`; pass --dir with a new or empty directory",
            dir.display()
        )));
    }
    for sub in ["warehouse", "retl-data", "output"] {
        let path = dir.join(sub);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(CliError::io(&path))?;
        }
    }
    std::fs::write(&marker, "created by `retl quickstart`; safe to delete\n")
        .map_err(CliError::io(&marker))?;
    Ok(dir)
}

// ---- the sample warehouse ----

fn random_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Picks the file destination's action that receives added, updated and deleted records.
fn pick_action(types: &[v1::DestinationType]) -> Result<v1::Action, CliError> {
    let file = types
        .iter()
        .find(|t| t.name == "file")
        .ok_or_else(|| fail("this retl build has no `file` destination type"))?;
    file.actions
        .iter()
        .find(|a| a.kind() == v1::ActionKind::Mirror)
        .or_else(|| file.actions.first())
        .cloned()
        .ok_or_else(|| fail("the `file` destination type offers no action"))
}

/// Field mappings: every model column to a field of the same name when the action accepts any
/// field, else the action's fields that match a column.
fn fields_for(action: &v1::Action, columns: &[v1::Column]) -> Vec<v1::FieldMapping> {
    columns
        .iter()
        .filter(|c| action.open_fields || action.fields.iter().any(|f| f.name == c.name))
        .map(|c| v1::FieldMapping {
            field: c.name.clone(),
            source: Some(v1::field_mapping::Source::Column(c.name.clone())),
        })
        .collect()
}

async fn sync_and_watch(client: &Client, out: Output) -> Result<v1::SyncRun, CliError> {
    let run = client
        .syncs()
        .trigger_sync(v1::TriggerSyncRequest {
            mapping_id: MAPPING_ID.to_string(),
            confirm_mass_delete: false,
            ..Default::default()
        })
        .await?
        .into_inner();
    let done = progress::watch(client, &run.id, out == Output::Table).await?;
    match out {
        Output::Json => print_json(&json::sync_run(&done)),
        Output::Table | Output::Csv => out!("{}", progress::summary(&done)),
    }
    if done.status() != v1::RunStatus::Succeeded {
        return Err(CliError::RunNotSucceeded {
            run_id: done.id.clone(),
            status: progress::status_name(done.status).to_string(),
        });
    }
    Ok(done)
}

/// Checks that a run found and delivered exactly the expected changes.
fn check_counts(
    label: &str,
    run: &v1::SyncRun,
    added: u64,
    updated: u64,
    deleted: u64,
) -> Result<(), CliError> {
    let c = run.counts.unwrap_or_default();
    let expected = added + updated + deleted;
    if c.added != added || c.updated != updated || c.deleted != deleted || c.delivered != expected {
        return Err(fail(format!(
            "{label}: expected added {added}, updated {updated}, deleted {deleted}, delivered {expected}; the run reported added {}, updated {}, deleted {}, delivered {}",
            c.added, c.updated, c.deleted, c.delivered
        )));
    }
    Ok(())
}

fn say(out: Output, text: &str) {
    if out == Output::Table {
        outln!("{text}");
    }
}

/// Runs the quickstart.
///
/// # Errors
/// Any failed step, and a second run whose counts differ from the known changes.
pub async fn run(args: QuickstartArgs, out: Output) -> Result<(), CliError> {
    let dir = prepare_dir(&args.dir)?;
    let warehouse = dir.join("warehouse");
    let output_dir = dir.join("output");
    std::fs::create_dir_all(&warehouse).map_err(CliError::io(&warehouse))?;
    let customers = warehouse.join("customers.parquet");

    let active = (1..=args.rows).filter(|id| is_active(*id)).count() as u64;
    say(
        out,
        &format!(
            "1/6 writing the sample warehouse: {} customers ({} active) -> {}",
            n(args.rows),
            n(active),
            customers.display()
        ),
    );
    write_customers(&customers, args.rows, None)?;

    let token = random_token();
    let daemon = spawn_in_process(DaemonConfig::new(
        dir.join("retl-data"),
        Some(token.clone()),
    ))
    .await?;
    say(
        out,
        &format!(
            "2/6 started a retl daemon at {} (data dir {})",
            daemon.url(),
            dir.join("retl-data").display()
        ),
    );
    let result = drive(
        &daemon.url(),
        &token,
        &args,
        &dir,
        &customers,
        &output_dir,
        active,
        out,
    )
    .await;
    let stopped = daemon.stop().await;
    result?;
    stopped?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    url: &str,
    token: &str,
    args: &QuickstartArgs,
    dir: &Path,
    customers: &Path,
    output_dir: &Path,
    active: u64,
    out: Output,
) -> Result<(), CliError> {
    let client = Client::connect(url, Some(token)).await?;

    client
        .sources()
        .create_source(v1::CreateSourceRequest {
            source_id: SOURCE_ID.into(),
            source: Some(v1::Source {
                display_name: "Sample warehouse (Parquet)".into(),
                r#type: "files".into(),
                config: Some(map_to_struct(
                    [
                        ("path".to_string(), customers.display().to_string().into()),
                        ("table".to_string(), "customers".into()),
                    ]
                    .into_iter()
                    .collect(),
                )),
                ..Default::default()
            }),
        })
        .await?;
    let model = client
        .models()
        .create_model(v1::CreateModelRequest {
            model_id: MODEL_ID.into(),
            model: Some(v1::Model {
                display_name: "Active customers".into(),
                source_id: SOURCE_ID.into(),
                sql: MODEL_SQL.into(),
                unique_id: "id".into(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    let types = client
        .destinations()
        .list_destination_types(v1::ListDestinationTypesRequest {})
        .await?
        .into_inner()
        .destination_types;
    let action = pick_action(&types)?;
    client
        .destinations()
        .create_destination(v1::CreateDestinationRequest {
            destination_id: DESTINATION_ID.into(),
            destination: Some(v1::Destination {
                display_name: "Local JSON-lines files".into(),
                r#type: "file".into(),
                config: Some(map_to_struct(
                    [(
                        "directory".to_string(),
                        output_dir.display().to_string().into(),
                    )]
                    .into_iter()
                    .collect(),
                )),
                enabled: Some(true),
                ..Default::default()
            }),
        })
        .await?;
    let mapping = client
        .mappings()
        .create_mapping(v1::CreateMappingRequest {
            mapping_id: MAPPING_ID.into(),
            mapping: Some(v1::Mapping {
                display_name: "Active customers to local files".into(),
                model_id: MODEL_ID.into(),
                destination_id: DESTINATION_ID.into(),
                action: action.name.clone(),
                fields: fields_for(&action, &model.columns),
                selection: (action.kind() == v1::ActionKind::Mirror).then_some(
                    v1::RecordSelection {
                        added: true,
                        updated: true,
                        deleted: true,
                    },
                ),
                initial_sync: v1::InitialSync::Backfill as i32,
                enabled: Some(true),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    say(
        out,
        &format!(
            "3/6 created source `{SOURCE_ID}` (files), model `{MODEL_ID}` ({MODEL_SQL}; unique id `id`),\n    destination `{DESTINATION_ID}` (file -> {}), mapping `{MAPPING_ID}` (action `{}`, {} fields)",
            output_dir.display(),
            mapping.action,
            mapping.fields.len()
        ),
    );

    say(
        out,
        "4/6 first sync (backfill: every active customer is added)",
    );
    let first = sync_and_watch(&client, out).await?;
    check_counts("first sync", &first, active, 0, 0)?;

    let changes = Changes::plan(args.rows);
    let (ins, upd, del) = (
        changes.inserted,
        changes.updated.len() as u64,
        changes.deleted.len() as u64,
    );
    say(
        out,
        &format!(
            "5/6 changing the warehouse: {} emails updated, {} customers inserted, {} deleted",
            n(upd),
            n(ins),
            n(del)
        ),
    );
    write_customers(customers, args.rows, Some(&changes))?;

    say(out, "6/6 second sync (only the changes are sent)");
    let second = sync_and_watch(&client, out).await?;
    check_counts("second sync", &second, ins, upd, del)?;
    let staged = staged_rows(&client).await?;
    let extracted = second.counts.unwrap_or_default().extracted;
    if staged != extracted {
        return Err(fail(format!(
            "SQL over the staged extract counted {staged} rows; the run extracted {extracted}"
        )));
    }

    if out == Output::Table {
        let mapping_dir = output_dir.join(MAPPING_ID);
        outln!();
        outln!("all checks passed: the second sync found exactly the changes made.");
        outln!(
            "first sync : {} added, {} delivered in {}",
            n(first.counts.unwrap_or_default().added),
            n(first.counts.unwrap_or_default().delivered),
            duration_ms(first.timings.unwrap_or_default().total_ms)
        );
        outln!(
            "second sync: {} added, {} updated, {} deleted, {} delivered in {}",
            n(ins),
            n(upd),
            n(del),
            n(second.counts.unwrap_or_default().delivered),
            duration_ms(second.timings.unwrap_or_default().total_ms)
        );
        outln!("\noutput files (one JSON line per change):");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&mapping_dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        for f in &files {
            let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            outln!("  {}  ({} bytes)", f.display(), n(size));
        }
        if let Some(last) = files.last() {
            outln!(
                "\nlook at the changes of the second sync:\n  head -n 3 {}",
                last.display()
            );
        }
        outln!(
            "\nSQL over the staged extract: {COUNT_SQL} -> {}",
            n(staged)
        );
        outln!(
            "query it yourself (the model is a table, so are runs, errors, pending records and state):\n  retl serve --data-dir {} &\n  retl sql \"{COUNT_SQL}\"\n  retl sql \"SELECT run_id, status, added, updated, deleted, delivered FROM retl.sync_runs\"",
            dir.join("retl-data").display()
        );
        outln!(
            "\neverything lives in {}; run `retl quickstart --dir {}` again to start over.",
            dir.display(),
            args.dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_deterministic_and_disjoint() {
        let a = Changes::plan(10_000);
        let b = Changes::plan(10_000);
        assert_eq!(a.updated, b.updated);
        let active = (1..=10_000u64).filter(|id| is_active(*id)).count();
        assert!((7_500..8_500).contains(&active), "{active}");
        assert_eq!(a.updated.len(), active / 10);
        assert_eq!(a.deleted.len(), (active / 20).min(300));
        assert!(a.updated.is_disjoint(&a.deleted));
        assert!(a.updated.iter().chain(&a.deleted).all(|id| is_active(*id)));
        assert_eq!(a.inserted, 500);
        let full = Changes::plan(100_000);
        assert_eq!(full.updated.len(), 1000);
        assert_eq!(full.deleted.len(), 300);
    }

    #[test]
    fn writes_parquet() {
        let dir = tempfile_dir();
        let path = dir.join("customers.parquet");
        write_customers(&path, 1000, None).unwrap();
        let changes = Changes::plan(1000);
        write_customers(&path, 1000, Some(&changes)).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(
            rows as u64,
            1000 + changes.inserted - changes.deleted.len() as u64
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quickstart_runs_end_to_end() {
        let dir = tempfile_dir();
        let args = QuickstartArgs {
            rows: 2_000,
            dir: dir.join("qs"),
        };
        run(args, Output::Json).await.unwrap();
        let out = dir.join("qs/output").join(MAPPING_ID);
        let files = std::fs::read_dir(&out).unwrap().count();
        assert_eq!(files, 2, "one output file per run");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("retl-qs-test-{}", random_token()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
