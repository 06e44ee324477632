//! [`Preview`]: what the next run of a mapping would do with an extract — the diff, the record
//! selection, the mapping and the mass-delete stop, applied exactly as a run applies them —
//! reported record by record to a [`PreviewSink`], sending nothing and changing no state. The
//! dry run and the `retl.diff` table are built on it.

use std::collections::HashMap;
use std::path::Path;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::destination::spec::{ChangeKind, Payload};
use crate::diff::changed::ChangedRows;
use crate::diff::deletes::DeleteSpillWriter;
use crate::diff::guard::{self, DeleteDecision, MassDeletePolicy};
use crate::diff::key::decode_key;
use crate::diff::{DiffInput, DiffSink, Differ};
use crate::error::Error;
use crate::id::RunId;
use crate::mapping::select::Selector;
use crate::mapping::spec::MappingDef;
use crate::state::Fingerprint;
use crate::sync::extract::Extract;
use crate::sync::failures::{FailedRecord, is_given_up};
use crate::sync::marked::MarkedRecords;
use crate::sync::run::RunCounts;

/// Deletes reported between two flushes of the sink.
const FLUSH_EVERY: u64 = 8192;

/// What the next run would do with one changed record.
#[derive(Debug)]
pub enum Outcome {
    /// Send this payload.
    Send(Payload),
    /// Not sent: the mapping's record selection leaves this kind of change out (the state
    /// advances without a send).
    NotSelected,
    /// Not sent: the mapping's first run marks the records already there as synced.
    MarkedSynced,
    /// Not sent: an earlier run gave it up with these values (`retl sync failures`).
    GivenUp,
    /// Not sent: its values cannot be mapped (why); counted as failed.
    Unmappable(String),
    /// Not sent: a delete held back by the mass-delete safety stop.
    HeldBack,
}

impl Outcome {
    /// The snake_case name (`send`, `not_selected`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Send(_) => "send",
            Outcome::NotSelected => "not_selected",
            Outcome::MarkedSynced => "marked_synced",
            Outcome::GivenUp => "given_up",
            Outcome::Unmappable(_) => "unmappable",
            Outcome::HeldBack => "held_back",
        }
    }
}

/// Where a preview reports, record by record.
pub trait PreviewSink: Send {
    /// A changed record (`key` encoded), what the run would do with it and the fingerprint
    /// of its mapped values (`None` for a delete).
    ///
    /// # Errors
    /// The sink's own failure; it stops the preview.
    fn change(
        &mut self,
        key: &[u8],
        change: ChangeKind,
        outcome: Outcome,
        fingerprint: Option<Fingerprint>,
    ) -> Result<(), Error>;
    /// A row the run would reject before delivery (`key` as text, `reason` why).
    fn rejected(&mut self, key: String, reason: String);
    /// Called between batches of records: the place to hand over what was gathered (and to
    /// wait while the reader is behind).
    ///
    /// # Errors
    /// The reader is gone; the preview stops.
    fn flush(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// The totals of a preview, counted as a run counts them (nothing delivered).
#[derive(Debug, Clone, Default)]
pub struct PreviewSummary {
    /// The counts (`delivered` stays 0; unmappable records count as `failed`).
    pub counts: RunCounts,
    /// What the run would warn about (deletes held back).
    pub warnings: Vec<String>,
}

/// What a preview compares and how the run would decide.
pub struct Preview<'a> {
    /// The mapping.
    pub mapping: &'a MappingDef,
    /// The model's unique id column.
    pub unique_id: &'a str,
    /// The mapping's differ.
    pub differ: &'a dyn Differ,
    /// The mapping's failed records (to skip what was given up).
    pub known_failures: HashMap<Vec<u8>, FailedRecord>,
    /// Whether the run would be the mapping's first that marks existing records synced.
    pub first_run_marks_synced: bool,
    /// The mass-delete safety stop.
    pub mass_delete: MassDeletePolicy,
    /// Whether the deletes are confirmed past the stop.
    pub confirm_mass_delete: bool,
    /// Where the deleted keys are spilled meanwhile.
    pub spill_dir: &'a Path,
    /// Stops the preview.
    pub cancel: &'a CancellationToken,
}

/// The differ's sink during a preview: counts, marks and reports.
struct Collect<'s> {
    counts: RunCounts,
    selector: Selector,
    changed: ChangedRows,
    deletes: DeleteSpillWriter,
    sink: &'s mut dyn PreviewSink,
    cancel: &'s CancellationToken,
}

impl DiffSink for Collect<'_> {
    fn changed(
        &mut self,
        change: ChangeKind,
        key: &[u8],
        row: u64,
        fingerprint: Fingerprint,
    ) -> Result<(), Error> {
        match change {
            ChangeKind::Added => self.counts.added += 1,
            _ => self.counts.updated += 1,
        }
        if self.selector.sends(change) {
            self.counts.selected += 1;
            self.changed.mark(row, change);
            return Ok(());
        }
        self.counts.not_selected += 1;
        let outcome = if self.selector.marks_synced(change) {
            Outcome::MarkedSynced
        } else {
            Outcome::NotSelected
        };
        self.sink.change(key, change, outcome, Some(fingerprint))
    }

    fn deleted(&mut self, key: &[u8]) -> Result<(), Error> {
        self.counts.deleted += 1;
        self.deletes.push(key)
    }

    fn rejected(&mut self, key: String, reason: String) {
        self.counts.rejected += 1;
        self.sink.rejected(key, reason);
    }

    fn checkpoint(&mut self, unchanged: u64) -> Result<(), Error> {
        self.counts.unchanged = unchanged;
        check(self.cancel)
    }
}

fn check(cancel: &CancellationToken) -> Result<(), Error> {
    if cancel.is_cancelled() {
        return Err(Error::Cancelled {
            reason: "the preview was stopped".to_string(),
        });
    }
    Ok(())
}

impl Preview<'_> {
    /// Compares `extract` with the mapping's state and reports every change to `sink`.
    ///
    /// # Errors
    /// A state or staged-file read failure, a sink failure, or cancellation.
    pub async fn run(
        &self,
        extract: &Extract,
        sink: &mut dyn PreviewSink,
    ) -> Result<PreviewSummary, Error> {
        let deletes_path = self
            .spill_dir
            .join(format!("preview-{}.deletes", RunId::generate()));
        let result = self.run_with(extract, sink, &deletes_path).await;
        let _ = std::fs::remove_file(&deletes_path);
        result
    }

    async fn run_with(
        &self,
        extract: &Extract,
        sink: &mut dyn PreviewSink,
        deletes_path: &Path,
    ) -> Result<PreviewSummary, Error> {
        let mut collect = Collect {
            counts: RunCounts {
                extracted: extract.staged.rows,
                ..RunCounts::default()
            },
            selector: Selector::new(self.mapping.selection, self.first_run_marks_synced),
            changed: ChangedRows::new(extract.index.rows),
            deletes: DeleteSpillWriter::create(deletes_path)?,
            sink,
            cancel: self.cancel,
        };
        let input = DiffInput {
            mapping: &self.mapping.id,
            unique_id: self.unique_id,
            index: &extract.index,
        };
        let diffed = self.differ.diff(input, &mut collect).await?;
        let Collect {
            mut counts,
            changed,
            deletes,
            sink,
            ..
        } = collect;
        counts.unchanged = diffed.unchanged;
        sink.flush().await?;
        let deletes = deletes.finish()?;
        let mut summary = PreviewSummary::default();

        let mut records = MarkedRecords::open(extract, &changed, self.unique_id).await?;
        while let Some(batch) = records.next_batch().await {
            check(self.cancel)?;
            for record in batch? {
                let outcome = if is_given_up(
                    &self.known_failures,
                    &record.key,
                    Some(record.fingerprint.0),
                ) {
                    counts.given_up += 1;
                    Outcome::GivenUp
                } else {
                    match record.payload {
                        Ok(payload) => Outcome::Send(payload),
                        Err(reason) => {
                            counts.failed += 1;
                            Outcome::Unmappable(reason)
                        }
                    }
                };
                sink.change(
                    &record.key,
                    record.change,
                    outcome,
                    Some(record.fingerprint),
                )?;
            }
            sink.flush().await?;
        }

        let decision = guard::decide(
            &self.mass_delete,
            deletes.count,
            diffed.state_keys,
            self.confirm_mass_delete,
        );
        let held_back = match decision {
            DeleteDecision::HoldBack { warning } => {
                counts.deletes_held_back = deletes.count;
                summary.warnings.push(warning);
                true
            }
            _ => false,
        };
        let sends = self.mapping.selection.deleted;
        let mut reader = deletes.reader()?;
        let mut flushed = 0u64;
        while let Some(key) = reader.next_key()? {
            check(self.cancel)?;
            let outcome = if held_back {
                Outcome::HeldBack
            } else if !sends {
                counts.not_selected += 1;
                Outcome::NotSelected
            } else if is_given_up(&self.known_failures, &key, None) {
                counts.selected += 1;
                counts.given_up += 1;
                Outcome::GivenUp
            } else {
                counts.selected += 1;
                Outcome::Send(Payload::delete(decode_key(&key)))
            };
            sink.change(&key, ChangeKind::Deleted, outcome, None)?;
            flushed += 1;
            if flushed.is_multiple_of(FLUSH_EVERY) {
                sink.flush().await?;
            }
        }
        sink.flush().await?;
        summary.counts = counts;
        Ok(summary)
    }
}
