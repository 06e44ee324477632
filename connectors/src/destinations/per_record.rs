//! One request per record, for the actions of APIs that have no batch endpoint for them
//! (Iterable's user delete, Mailchimp's member archive, ActiveCampaign's contact sync, ...).
//!
//! The engine takes one token of the destination's rate limiter per batch; a batch of such an
//! action is sent as one request per record, **sequentially**, each request waiting for its
//! slot in the destination's [`Pacer`] (one request every `1 / requests_per_second`, shared by
//! every batch of the destination), so the API sees at most the documented rate. A batch longer
//! than what fits in half the request timeout at that rate is handed back to the engine as too
//! large, which halves it: the engine's timeout bounds the whole `send`.
//!
//! Outcomes ([`send_each`]): a record's request answered is that record's outcome; an error
//! that stops the run (refused credentials) is the error of the batch; a transient failure
//! (429, 5xx, timeout) of the first record is the error of the batch (a 429 pauses the
//! destination), of a later record leaves it and the rest to be retried; any other error
//! rejects that record only.

use std::future::Future;
use std::time::Duration;

use retl_engine::destination::{
    BatchOutcome, DeliveryLimits, DestinationError, Payload, RecordOutcome,
};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces a destination's per-record requests at its rate; one per destination client.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
    max_records: usize,
}

impl Pacer {
    /// A pacer at `limits.requests_per_second`, taking at most as many records per batch as
    /// fit in half of `limits.timeout_ms` at that rate (at least one).
    pub(crate) fn new(limits: &DeliveryLimits) -> Self {
        Pacer::at_rate(limits.requests_per_second, limits.timeout())
    }

    /// A pacer at `rate` requests per second (an endpoint's own documented rate), taking at
    /// most as many records per batch as fit in half of `timeout` at that rate.
    pub(crate) fn at_rate(rate: f64, timeout: Duration) -> Self {
        let rate = if rate.is_finite() {
            rate.max(0.001)
        } else {
            1.0
        };
        let interval = Duration::from_secs_f64(1.0 / rate);
        let fit = timeout.as_secs_f64() / 2.0 * rate;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let max_records = (fit.floor() as usize).max(1);
        Pacer {
            interval,
            next: Mutex::new(None),
            max_records,
        }
    }

    /// The most records one batch may hold.
    pub(crate) fn max_records(&self) -> usize {
        self.max_records
    }

    /// Waits for the next request slot.
    pub(crate) async fn wait(&self) {
        let mut next = self.next.lock().await;
        let now = Instant::now();
        let slot = next.map_or(now, |n| n.max(now));
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
        *next = Some(slot + self.interval);
    }
}

/// Sends every record of `batch` with `one` (one request each, paced), and collects their
/// outcomes (see the module docs).
///
/// # Errors
/// [`DestinationError::PayloadTooLarge`] when the batch is longer than the pacer allows; the
/// error of the first record when it is transient; an error that stops the run.
pub(crate) async fn send_each<'a, F, Fut>(
    pacer: &Pacer,
    batch: &'a [Payload],
    mut one: F,
) -> Result<BatchOutcome, DestinationError>
where
    F: FnMut(&'a Payload) -> Fut,
    Fut: Future<Output = Result<RecordOutcome, DestinationError>>,
{
    if batch.len() > pacer.max_records() {
        return Err(DestinationError::PayloadTooLarge {
            message: format!(
                "{} records need one request each; at most {} fit in one delivery at the destination's rate (lower limits.batch_size)",
                batch.len(),
                pacer.max_records()
            ),
        });
    }
    let mut records = Vec::with_capacity(batch.len());
    for payload in batch {
        pacer.wait().await;
        match one(payload).await {
            Ok(outcome) => records.push(outcome),
            Err(error) if error.stops_run() => return Err(error),
            Err(error @ DestinationError::Transient { .. }) if records.is_empty() => {
                return Err(error);
            }
            Err(DestinationError::Transient {
                message,
                retry_after,
                ..
            }) => {
                let retry = RecordOutcome::Retry {
                    reason: message,
                    after: retry_after,
                };
                records.resize(batch.len(), retry);
                break;
            }
            Err(other) => records.push(RecordOutcome::Rejected {
                reason: other.to_string(),
            }),
        }
    }
    Ok(BatchOutcome { records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(rate: f64, timeout_ms: u64) -> DeliveryLimits {
        DeliveryLimits {
            requests_per_second: rate,
            timeout_ms,
            ..DeliveryLimits::default()
        }
    }

    #[test]
    fn batches_fit_half_the_timeout() {
        assert_eq!(Pacer::new(&limits(5.0, 30_000)).max_records(), 75);
        assert_eq!(Pacer::new(&limits(0.5, 1_000)).max_records(), 1);
    }

    #[tokio::test]
    async fn outcomes_per_record_and_retry_after_a_transient_failure() {
        let pacer = Pacer::new(&limits(1000.0, 30_000));
        let batch: Vec<Payload> = (0..4).map(|k| Payload::delete(json!(k))).collect();
        let outcome = send_each(&pacer, &batch, |p| {
            let key = p.key.as_i64().unwrap_or_default();
            async move {
                match key {
                    1 => Err(DestinationError::Rejected {
                        message: "bad".into(),
                    }),
                    2 => Err(DestinationError::Transient {
                        message: "busy".into(),
                        retry_after: Some(Duration::from_secs(1)),
                        throttled: true,
                    }),
                    _ => Ok(RecordOutcome::Accepted),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(outcome.records.len(), 4);
        assert_eq!(outcome.records[0], RecordOutcome::Accepted);
        assert!(matches!(outcome.records[1], RecordOutcome::Rejected { .. }));
        assert!(matches!(
            outcome.records[3],
            RecordOutcome::Retry { after: Some(_), .. }
        ));
        let first_fails = send_each(&pacer, &batch[2..], |_| async {
            Err(DestinationError::Transient {
                message: "busy".into(),
                retry_after: None,
                throttled: true,
            })
        })
        .await;
        assert!(matches!(
            first_fails,
            Err(DestinationError::Transient { .. })
        ));
    }

    #[tokio::test]
    async fn requests_are_spaced_at_the_rate() {
        let pacer = Pacer::new(&limits(20.0, 30_000));
        let start = Instant::now();
        for _ in 0..3 {
            pacer.wait().await;
        }
        assert!(start.elapsed() >= Duration::from_millis(95));
    }
}
