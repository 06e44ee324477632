//! [`ExtractJob`]: one extraction of a model serving one or more runs — a triggered run alone,
//! or the runs of every mapping of that model the scheduler found due together (one
//! extraction per model per tick; each run still diffs against its own state).
//!
//! The job takes one of the source's extraction slots (so a source's limit counts
//! extractions, not runs), stages the rows once and writes one key index per run. It stops
//! only when every run it serves has stopped: cancelling one run of a group leaves the others
//! their extract.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::catalog::model::ModelDef;
use crate::catalog::source::ExtractionSettings;
use crate::error::{Error, StorageError};
use crate::source::Source;
use crate::sync::extract::{Extract, ExtractReport, Extraction, IndexTarget};
use crate::sync::run::SyncRun;

/// One extraction of a model.
pub struct ExtractJob {
    /// The model's source, built.
    pub source: Arc<dyn Source>,
    /// The model.
    pub model: ModelDef,
    /// How the engine extracts from that source.
    pub settings: ExtractionSettings,
    /// The source's extraction slots.
    pub slots: Arc<Semaphore>,
    /// Memory the query may use before it spills.
    pub memory_bytes: usize,
    /// Where spill files go.
    pub spill_dir: PathBuf,
    /// Where the extract is staged.
    pub staging_dir: PathBuf,
    /// Wait before the first retry of a lost connection.
    pub backoff: Duration,
}

/// A run the job serves.
pub struct JobMember {
    /// The run's mapping and where its key index goes.
    pub target: IndexTarget,
    /// The run's live record (the job updates its `extracted` count).
    pub record: watch::Sender<SyncRun>,
    /// Fires when the run stops.
    pub stopping: CancellationToken,
}

/// What a run gets from the job.
#[derive(Debug)]
pub struct Extracted {
    /// Its extract, or why there is none.
    pub extract: Result<Extract, Error>,
    /// Warnings of the extraction (attempts started again).
    pub warnings: Vec<String>,
}

/// A run's side of the job.
#[derive(Debug)]
pub struct ExtractTicket {
    /// Where the extract is staged.
    pub staging_dir: PathBuf,
    started: oneshot::Receiver<()>,
    extracted: oneshot::Receiver<Extracted>,
}

impl ExtractTicket {
    /// Waits until the job holds an extraction slot (or ended without one: its result says
    /// why).
    ///
    /// # Errors
    /// `Cancelled` when `stopping` fires first.
    pub async fn started(&mut self, stopping: &CancellationToken) -> Result<(), Error> {
        tokio::select! {
            _ = &mut self.started => Ok(()),
            _ = stopping.cancelled() => Err(Error::Cancelled {
                reason: "cancelled while queued for an extraction slot".to_string(),
            }),
        }
    }

    /// Waits for the run's extract.
    ///
    /// # Errors
    /// `Cancelled` when `stopping` fires first; `Internal` when the job ended without a word.
    pub async fn extracted(&mut self, stopping: &CancellationToken) -> Result<Extracted, Error> {
        tokio::select! {
            r = &mut self.extracted => r.map_err(|_| Error::internal("the extraction ended without a result")),
            _ = stopping.cancelled() => Err(Error::Cancelled {
                reason: "run stopped while extracting".to_string(),
            }),
        }
    }
}

/// The job's side of a member.
struct Seat {
    target: IndexTarget,
    record: watch::Sender<SyncRun>,
    started: oneshot::Sender<()>,
    extracted: oneshot::Sender<Extracted>,
}

impl ExtractJob {
    /// Starts the job in the background; returns one ticket per member, in order.
    pub fn spawn(self, members: Vec<JobMember>) -> Vec<ExtractTicket> {
        let mut seats = Vec::with_capacity(members.len());
        let mut tickets = Vec::with_capacity(members.len());
        let mut stoppings = Vec::with_capacity(members.len());
        for member in members {
            let (started_tx, started_rx) = oneshot::channel();
            let (extracted_tx, extracted_rx) = oneshot::channel();
            seats.push(Seat {
                target: member.target,
                record: member.record,
                started: started_tx,
                extracted: extracted_tx,
            });
            stoppings.push(member.stopping);
            tickets.push(ExtractTicket {
                staging_dir: self.staging_dir.clone(),
                started: started_rx,
                extracted: extracted_rx,
            });
        }
        let span = tracing::info_span!("extract", model_id = %self.model.id, runs = seats.len());
        tokio::spawn(tracing::Instrument::instrument(
            self.run(seats, stoppings),
            span,
        ));
        tickets
    }

    async fn run(self, seats: Vec<Seat>, stoppings: Vec<CancellationToken>) {
        // The job stops when every run it serves has stopped.
        let cancel = CancellationToken::new();
        let watcher = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                futures::future::join_all(stoppings.iter().map(CancellationToken::cancelled)).await;
                cancel.cancel();
            })
        };
        let permit = tokio::select! {
            permit = Arc::clone(&self.slots).acquire_owned() => permit.ok(),
            _ = cancel.cancelled() => None,
        };
        let (targets, outlets): (Vec<IndexTarget>, Vec<_>) = seats
            .into_iter()
            .map(|s| (s.target, (s.record, s.started, s.extracted)))
            .unzip();
        let mut report = ExtractReport::default();
        let mut extracted_txs = Vec::with_capacity(outlets.len());
        for (record, started, extracted) in outlets {
            report.records.push(record);
            if permit.is_some() {
                // A run that has stopped no longer listens.
                let _ = started.send(());
            }
            extracted_txs.push(extracted);
        }
        let result = match permit {
            None => Err(Error::Cancelled {
                reason: "cancelled while queued for an extraction slot".to_string(),
            }),
            Some(_) => match std::fs::create_dir_all(&self.spill_dir) {
                Err(e) => Err(Error::Storage(StorageError::io(&self.spill_dir)(e))),
                Ok(()) => {
                    let extraction = Extraction {
                        source: Arc::clone(&self.source),
                        model: &self.model,
                        targets: &targets,
                        memory_bytes: self.memory_bytes,
                        staging_dir: self.staging_dir.clone(),
                        spill_dir: &self.spill_dir,
                        connection_retries: self.settings.connection_retries,
                        backoff: self.backoff,
                        cancel: &cancel,
                    };
                    extraction.run(&mut report).await
                }
            },
        };
        // The warehouse is done with: the next queued extraction of this source may start.
        drop(permit);
        watcher.abort();
        let per_target: Vec<Result<Extract, Error>> = match result {
            Ok(per_target) => per_target,
            Err(error) if targets.len() == 1 => vec![Err(error)],
            Err(error) => {
                let error = Arc::new(error);
                targets
                    .iter()
                    .map(|_| Err(Error::Shared(Arc::clone(&error))))
                    .collect()
            }
        };
        for ((target, tx), extract) in targets.iter().zip(extracted_txs).zip(per_target) {
            let failed = extract.is_err();
            let sent = tx.send(Extracted {
                extract,
                warnings: report.warnings.clone(),
            });
            if failed || sent.is_err() {
                // Nobody reads this index (the run failed or stopped): remove it.
                let _ = std::fs::remove_file(&target.index_path);
            }
        }
    }
}
