//! `SyncManager::explain`: why one record of a mapping was or was not sent. The next run's
//! decision comes from the same preview as `retl.diff` and dry runs (so it cannot drift from
//! what a run does); the rest from the state, the failure list, the kept extracts and the run
//! history.

use std::path::Path;

use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{PreviewOptions, Resolved, SyncManager};
use crate::diff::key::{encode_key_into, encode_key_text, key_text};
use crate::error::{Error, StorageError};
use crate::source::SourceError;
use crate::staging;
use crate::state::{RunStamp, StateEntry};
use crate::sync::explain::{
    Explanation, FindKey, KeptExtract, KeyError, StateFacts, Verdict, verdict,
};
use crate::sync::preview::Outcome;

/// Runs of the mapping searched for per-record errors of the key.
const RECENT_RUNS: usize = 50;
/// Per-record errors kept in an explanation.
const ERRORS_KEPT: usize = 5;

fn kept(run_id: &str) -> KeptExtract {
    KeptExtract {
        run_id: run_id.to_string(),
        time: RunStamp::of(run_id).and_then(|s| s.time()),
    }
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::from(SourceError::Read {
        message: format!("reading the staged extract {}: {e}", path.display()),
    })
}

/// The rows of a staged extract whose unique id reads `key`, and the id column's type
/// (`None` when the extract has no such column).
async fn rows_with_key(
    dir: &Path,
    unique_id: &str,
    key: &str,
) -> Result<(u64, Option<DataType>), Error> {
    let path = staging::staged_file(dir);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| Error::Storage(StorageError::io(&path)(e)))?;
    let builder = ParquetRecordBatchStreamBuilder::new(file)
        .await
        .map_err(|e| read_error(&path, e))?;
    let Some((index, field)) = builder.schema().column_with_name(unique_id) else {
        return Ok((0, None));
    };
    let data_type = field.data_type().clone();
    let Some(target) = encode_key_text(key, &data_type) else {
        return Ok((0, Some(data_type)));
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let mut batches = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()
        .map_err(|e| read_error(&path, e))?;
    let (mut rows, mut encoded) = (0u64, Vec::new());
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|e| read_error(&path, e))?;
        let column = batch.column(0);
        for row in 0..batch.num_rows() {
            if encode_key_into(column.as_ref(), row, &mut encoded) && encoded == target {
                rows += 1;
            }
        }
    }
    Ok((rows, Some(data_type)))
}

fn selection_words(r: &Resolved) -> String {
    let s = r.mapping.selection;
    let kinds: Vec<&str> = [
        (s.added, "added"),
        (s.updated, "updated"),
        (s.deleted, "deleted"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if kinds.is_empty() {
        "nothing".to_string()
    } else {
        kinds.join(", ")
    }
}

impl SyncManager {
    /// Why record `key` (its unique id as text) of `mapping_id` was or was not sent, and what
    /// the next run does with it. Compares the model's latest staged extract (or a fresh one)
    /// with the state as the next run would; sends nothing and changes nothing.
    ///
    /// # Errors
    /// `NotFound` for an unknown mapping; `InvalidArgument` for an empty key;
    /// `FailedPrecondition` when there is no staged extract (and `fresh` is off); the
    /// source's error for a fresh extract; `Cancelled` when `cancel` fires.
    pub async fn explain(
        &self,
        mapping_id: &str,
        key: &str,
        fresh: bool,
        cancel: &CancellationToken,
    ) -> Result<Explanation, Error> {
        if key.is_empty() {
            return Err(Error::invalid(
                "key",
                "give the record's unique id as text, as retl.state and run errors show it",
            ));
        }
        let r = self.resolve(mapping_id)?;
        let mut sink = FindKey::new(key);
        let options = PreviewOptions {
            fresh,
            confirm_mass_delete: false,
        };
        let report = self
            .preview_resolved(&r, options, &mut sink, cancel)
            .await?;
        let dir = std::path::PathBuf::from(&report.staging_path);
        let extract_run = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let unique_id = r.model.unique_id.as_str();
        let (rows_in_extract, key_type) = rows_with_key(&dir, unique_id, key).await?;

        // When it left: the newest kept extract that has it, and the next one.
        let (mut last_seen_in, mut left_with) = (None, None);
        if rows_in_extract == 0 {
            let runs = staging::complete_runs(&self.data_dir, r.model.id.as_str());
            let mut newer: Option<&str> = None;
            for (run_id, run_dir) in runs.iter().rev() {
                if rows_with_key(run_dir, unique_id, key).await?.0 > 0 {
                    last_seen_in = Some(kept(run_id));
                    left_with = newer.map(kept);
                    break;
                }
                newer = Some(run_id);
            }
        }

        // The state and the failure list, by the key's encoding (the extract's id type, or
        // any type the text can be).
        let encodings: Vec<Vec<u8>> = match &key_type {
            Some(t) => encode_key_text(key, t).into_iter().collect(),
            None => [DataType::Int64, DataType::UInt64, DataType::Utf8]
                .iter()
                .filter_map(|t| encode_key_text(key, t))
                .collect(),
        };
        let mut state: Option<StateEntry> = None;
        for encoded in &encodings {
            state = self.state.entry(&r.mapping.id, encoded)?;
            if state.is_some() {
                break;
            }
        }
        let state = match state {
            None => None,
            Some(entry) => Some(StateFacts {
                fingerprint: entry.fingerprint,
                run_id: match entry.synced_by {
                    Some(by) => self.history.run_id_of(&r.mapping.id, by.run)?,
                    None => None,
                },
                synced_at: entry.synced_by.and_then(|by| by.run.time()),
                sent: entry.synced_by.map(|by| by.sent),
            }),
        };
        let mut failures = self.failures.load(&r.mapping.id)?;
        let failure = encodings.iter().find_map(|k| failures.remove(k));

        // What recent runs said about it.
        let mut errors = Vec::new();
        for run in self
            .history
            .list(Some(r.mapping.id.as_str()), None, RECENT_RUNS)?
        {
            for e in run.record_errors.iter().filter(|e| e.key == key) {
                if errors.len() < ERRORS_KEPT {
                    errors.push(KeyError {
                        run_id: run.id.to_string(),
                        stage: e.stage.clone(),
                        reason: e.reason.clone(),
                    });
                }
            }
        }

        let (next_change, outcome, extract_fingerprint) = match sink.found {
            Some((change, outcome, fp)) => (Some(change), Some(outcome), fp),
            None => (None, None, None),
        };
        let mut explanation = Explanation {
            mapping_id: r.mapping.id.clone(),
            key: key.to_string(),
            verdict: Verdict::NotFound,
            reason: String::new(),
            extract: kept(&extract_run),
            rows_in_extract,
            last_seen_in,
            left_with,
            extract_fingerprint: extract_fingerprint.or_else(|| {
                (rows_in_extract > 0)
                    .then(|| state.as_ref().map(|s| s.fingerprint))
                    .flatten()
            }),
            state,
            failure,
            next_change,
            next_outcome: outcome.as_ref().map(Outcome::as_str),
            payload: None,
            errors,
            blockers: r.disabled(),
            detail: None,
        };
        explanation.verdict = verdict(&explanation, outcome.as_ref(), sink.rejected.is_some());
        explanation.detail = match outcome {
            Some(Outcome::Unmappable(reason)) => Some(reason),
            Some(Outcome::Send(payload)) => {
                explanation.payload = Some(payload);
                None
            }
            _ => sink.rejected,
        };
        let policy = r.mapping.retry_policy;
        let retry = format!(
            "it is given up after failing in {} runs or {} hours after its first failure",
            policy.max_runs,
            policy.max_age.as_secs() / 3600
        );
        explanation.word(&selection_words(&r), &retry);
        // The key as the state shows it, when the text had another spelling.
        if let Some(encoded) = encodings.first() {
            explanation.key = key_text(encoded);
        }
        Ok(explanation)
    }
}
