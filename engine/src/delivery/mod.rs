//! Delivery: batch ([`batcher`]) -> bounded requests in flight ([`pipeline`]) -> rate limit
//! (shared per destination, [`limiter`]) -> retry (backoff with full jitter, honouring
//! `Retry-After`, [`retry`]) -> timeout -> the action's call ([`deliver_batch`]).
//!
//! Only records that were not answered are retried: a record the destination accepted or
//! rejected permanently is settled; a record it asked to retry, or every record of a request
//! that failed transiently, is sent again, up to `max_attempts` requests.

pub mod batcher;
pub mod limiter;
pub mod pipeline;
pub mod retry;

use std::collections::VecDeque;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::destination::spec::{DeliveryLimits, Payload};
use crate::destination::{Action, DeliveryContext, DestinationError, RecordOutcome};
use crate::metrics::RequestMetrics;
pub use limiter::{DestinationLimiter, Limiters};

/// The settled outcome of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Accepted: the state may advance.
    Accepted,
    /// Rejected permanently by the destination.
    Rejected(String),
    /// Not delivered: retries exhausted or cancelled.
    Failed(String),
}

/// The requests one batch took (a batch is one request unless retried or split).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// Requests sent.
    pub sent: u64,
    /// Requests that failed as a whole (error answer, timeout, no connection).
    pub errors: u64,
    /// Requests the destination answered with a throttle (HTTP 429 or its equivalent).
    pub throttled: u64,
    /// Requests that were re-sends of records not yet settled.
    pub retries: u64,
    /// The requests' time, summed (milliseconds).
    pub elapsed_ms: u64,
}

/// The result of delivering one batch.
#[derive(Debug)]
pub struct BatchDelivery {
    /// One outcome per input payload, in order.
    pub outcomes: Vec<Delivered>,
    /// A failure that must stop the run (bad credentials): every later batch would fail too.
    pub fatal: Option<DestinationError>,
    /// The requests it took.
    pub requests: RequestStats,
}

/// How delivering one chunk of a batch ended.
enum ChunkEnd {
    /// Every record of the chunk is settled.
    Done,
    /// The destination said the request was too large: send these two halves instead.
    Split(Vec<usize>, Vec<usize>),
    /// The run must stop (credentials refused, broken configuration).
    Fatal(DestinationError),
}

/// What [`deliver_batch`] sends through: the action, paced by the destination's limiter, counted
/// in the run's request metrics.
#[derive(Clone)]
pub struct Sender {
    /// The destination action.
    pub action: Arc<dyn Action>,
    /// The run's delivery context.
    pub ctx: DeliveryContext,
    /// The destination's shared rate limiter.
    pub limiter: Arc<DestinationLimiter>,
    /// The destination's limits.
    pub limits: DeliveryLimits,
    /// Where requests, throttled answers, retries and latency are counted.
    pub metrics: RequestMetrics,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("ctx", &self.ctx)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Delivers one batch with rate limiting, retries and a per-request timeout. A batch the
/// destination refuses as too large (HTTP 413) is split in halves until it fits.
pub async fn deliver_batch(
    sender: Sender,
    payloads: Vec<Payload>,
    cancel: CancellationToken,
) -> BatchDelivery {
    let Sender {
        action,
        ctx,
        limiter,
        limits,
        metrics,
    } = sender;
    let n = payloads.len();
    let mut outcomes: Vec<Option<Delivered>> = vec![None; n];
    let mut chunks: VecDeque<Vec<usize>> = VecDeque::from([(0..n).collect::<Vec<_>>()]);
    let mut fatal = None;
    let mut stats = RequestStats::default();
    while let Some(chunk) = chunks.pop_front() {
        if let Some(err) = &fatal {
            let msg = format!("not sent: {err}");
            for i in chunk {
                outcomes[i] = Some(Delivered::Failed(msg.clone()));
            }
            continue;
        }
        let sender = ChunkSender {
            action: action.as_ref(),
            ctx: &ctx,
            limiter: &limiter,
            limits: &limits,
            payloads: &payloads,
            cancel: &cancel,
            metrics: &metrics,
        };
        match sender.send(chunk, &mut outcomes, &mut stats).await {
            ChunkEnd::Done => {}
            ChunkEnd::Split(first, second) => {
                chunks.push_front(second);
                chunks.push_front(first);
            }
            ChunkEnd::Fatal(err) => fatal = Some(err),
        }
    }
    BatchDelivery {
        outcomes: outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Delivered::Failed("not attempted".to_string())))
            .collect(),
        fatal,
        requests: stats,
    }
}

/// What sending one chunk needs.
struct ChunkSender<'a> {
    action: &'a dyn Action,
    ctx: &'a DeliveryContext,
    limiter: &'a DestinationLimiter,
    limits: &'a DeliveryLimits,
    payloads: &'a [Payload],
    cancel: &'a CancellationToken,
    metrics: &'a RequestMetrics,
}

impl ChunkSender<'_> {
    /// Sends the records `chunk` (indexes into the batch), retrying what was not answered.
    async fn send(
        &self,
        chunk: Vec<usize>,
        outcomes: &mut [Option<Delivered>],
        stats: &mut RequestStats,
    ) -> ChunkEnd {
        let limits = self.limits;
        let cancel = self.cancel;
        let mut pending = chunk;
        let mut last_error = String::from("not attempted");
        for attempt in 1..=limits.max_attempts {
            if cancel.is_cancelled() {
                last_error = "run cancelled".to_string();
                break;
            }
            tokio::select! {
                _ = self.limiter.acquire() => {}
                _ = cancel.cancelled() => { last_error = "run cancelled".to_string(); break; }
            }
            // A whole batch or a split half is a contiguous range: send it without copying.
            // Only a retry of scattered records builds a new batch.
            let scattered: Vec<Payload>;
            let batch: &[Payload] = match contiguous(&pending) {
                Some(range) => &self.payloads[range],
                None => {
                    scattered = pending.iter().map(|&i| self.payloads[i].clone()).collect();
                    &scattered
                }
            };
            let sent_at = std::time::Instant::now();
            let result = tokio::select! {
                r = tokio::time::timeout(limits.timeout(), self.action.send(self.ctx, batch)) => r,
                _ = cancel.cancelled() => { last_error = "run cancelled".to_string(); break; }
            };
            // Counted once settled (a request abandoned by a cancel is not).
            stats.sent += 1;
            stats.elapsed_ms += sent_at.elapsed().as_millis() as u64;
            if attempt > 1 {
                stats.retries += 1;
                self.metrics.retried();
            }
            match &result {
                Ok(Ok(_)) => self.metrics.answered(sent_at.elapsed()),
                Ok(Err(e)) => {
                    let throttled = matches!(
                        e,
                        DestinationError::Transient {
                            throttled: true,
                            ..
                        }
                    );
                    stats.errors += 1;
                    stats.throttled += u64::from(throttled);
                    self.metrics.failed(sent_at.elapsed(), throttled);
                }
                Err(_) => {
                    stats.errors += 1;
                    self.metrics.failed(sent_at.elapsed(), false);
                }
            }
            let mut wait = retry::backoff(limits, attempt);
            let mut still_pending = Vec::new();
            match result {
                Err(_) => {
                    last_error = format!("request timed out after {} ms", limits.timeout_ms);
                    still_pending = pending.clone();
                }
                Ok(Ok(answer)) if answer.records.len() != pending.len() => {
                    let msg = format!(
                        "destination answered about {} records for a batch of {}; treating the batch as not delivered",
                        answer.records.len(),
                        pending.len()
                    );
                    settle(outcomes, &pending, Delivered::Failed(msg));
                    return ChunkEnd::Done;
                }
                Ok(Ok(answer)) => {
                    for (&i, outcome) in pending.iter().zip(answer.records) {
                        match outcome {
                            RecordOutcome::Accepted => outcomes[i] = Some(Delivered::Accepted),
                            RecordOutcome::Rejected { reason } => {
                                outcomes[i] = Some(Delivered::Rejected(reason))
                            }
                            RecordOutcome::Retry { reason, after } => {
                                last_error = reason;
                                if let Some(after) = after {
                                    wait = wait.max(after);
                                }
                                still_pending.push(i);
                            }
                        }
                    }
                }
                Ok(Err(err)) => match err {
                    DestinationError::Transient {
                        retry_after,
                        throttled,
                        ..
                    } => {
                        last_error = err.to_string();
                        if let Some(after) = retry_after {
                            wait = after;
                        }
                        if throttled {
                            // A 429 pauses the whole destination, not just this request.
                            self.limiter.pause_for(retry_after.unwrap_or(wait));
                        }
                        still_pending = pending.clone();
                    }
                    DestinationError::PayloadTooLarge { .. } if pending.len() > 1 => {
                        let second = pending.split_off(pending.len() / 2);
                        tracing::debug!(
                            records = pending.len() + second.len(),
                            "request too large for the destination; splitting the batch"
                        );
                        return ChunkEnd::Split(pending, second);
                    }
                    err if err.stops_run() => {
                        settle(outcomes, &pending, Delivered::Failed(err.to_string()));
                        return ChunkEnd::Fatal(err);
                    }
                    other => {
                        settle(outcomes, &pending, Delivered::Rejected(other.to_string()));
                        return ChunkEnd::Done;
                    }
                },
            }
            pending = still_pending;
            if pending.is_empty() {
                return ChunkEnd::Done;
            }
            if attempt < limits.max_attempts {
                tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %last_error, "retrying batch");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.cancelled() => { last_error = "run cancelled".to_string(); break; }
                }
            } else {
                last_error = format!(
                    "{last_error} (gave up after {} attempts)",
                    limits.max_attempts
                );
            }
        }
        settle(outcomes, &pending, Delivered::Failed(last_error));
        ChunkEnd::Done
    }
}

/// The range `records` covers when its (ascending) indexes have no gap.
fn contiguous(records: &[usize]) -> Option<std::ops::Range<usize>> {
    let (&first, &last) = (records.first()?, records.last()?);
    (last - first + 1 == records.len()).then_some(first..last + 1)
}

fn settle(outcomes: &mut [Option<Delivered>], records: &[usize], outcome: Delivered) {
    for &i in records {
        outcomes[i] = Some(outcome.clone());
    }
}
