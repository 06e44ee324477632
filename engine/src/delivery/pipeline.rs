//! [`Pipeline`]: the requests of one run in flight — at most `max_in_flight` at once — each
//! delivered by [`deliver_batch`] (rate limit, retries, timeout), settling in whatever order the
//! destination answers. Draining waits for every request still in flight.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::delivery::batcher::Batch;
use crate::delivery::{BatchDelivery, Sender, deliver_batch};

/// A settled request: the caller's items and each record's outcome, in the same order.
pub type Settled<T> = (Vec<T>, BatchDelivery);

/// Requests in flight to one destination action.
pub struct Pipeline<T> {
    sender: Sender,
    cancel: CancellationToken,
    in_flight: FuturesUnordered<BoxFuture<'static, Settled<T>>>,
    /// Time spent waiting for answers (the run's delivery time).
    pub waited: Duration,
}

impl<T> std::fmt::Debug for Pipeline<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Pipeline<T> {
    /// A pipeline sending through `sender` (the action, paced by the destination's shared
    /// limiter).
    pub fn new(sender: Sender, cancel: CancellationToken) -> Self {
        Pipeline {
            sender,
            cancel,
            in_flight: FuturesUnordered::new(),
            waited: Duration::ZERO,
        }
    }

    /// Whether no request is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Whether another request may start now.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.sender.limits.max_in_flight.max(1)
    }

    /// Starts sending a batch. Call only when [`Pipeline::has_room`]; otherwise settle first.
    pub fn start(&mut self, batch: Batch<T>) {
        let delivery = deliver_batch(self.sender.clone(), batch.payloads, self.cancel.clone());
        let items = batch.items;
        self.in_flight
            .push(Box::pin(async move { (items, delivery.await) }));
    }

    /// Waits for the next request to settle; `None` when none is in flight.
    pub async fn next_settled(&mut self) -> Option<Settled<T>> {
        let t = Instant::now();
        let settled = self.in_flight.next().await;
        self.waited += t.elapsed();
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{Delivered, DestinationLimiter};
    use crate::destination::spec::{ActionSpec, ChangeKind, DeliveryLimits, Payload};
    use crate::destination::{
        Action, BatchOutcome, DeliveryContext, DestinationError, RecordOutcome,
    };
    use crate::id::{DestinationId, MappingId, RunId};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers every record as accepted after a short pause, counting requests in flight.
    struct Slow {
        now: AtomicUsize,
        peak: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Action for Slow {
        fn spec(&self) -> &'static ActionSpec {
            unreachable!("not used by the pipeline")
        }
        async fn send(
            &self,
            _ctx: &DeliveryContext,
            batch: &[Payload],
        ) -> Result<BatchOutcome, DestinationError> {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(BatchOutcome {
                records: vec![RecordOutcome::Accepted; batch.len()],
            })
        }
    }

    #[tokio::test]
    async fn keeps_at_most_max_in_flight_and_settles_every_batch() {
        let action = Arc::new(Slow {
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        let limits = DeliveryLimits {
            requests_per_second: 10_000.0,
            burst: 100,
            max_in_flight: 2,
            ..DeliveryLimits::default()
        };
        let ctx = DeliveryContext {
            destination_id: DestinationId::new("d"),
            mapping_id: MappingId::new("m"),
            run_id: RunId::generate(),
            sync_mode: None,
            trace: None,
        };
        let sender = Sender {
            action: Arc::clone(&action) as Arc<dyn Action>,
            ctx,
            limiter: Arc::new(DestinationLimiter::new(&limits)),
            limits,
            metrics: Default::default(),
        };
        let mut pipeline = Pipeline::new(sender, CancellationToken::new());
        let mut settled = Vec::new();
        for i in 0..6u32 {
            while !pipeline.has_room() {
                settled.extend(pipeline.next_settled().await);
            }
            let payload = Payload {
                key: serde_json::Value::from(i),
                change: ChangeKind::Added,
                fields: Default::default(),
                fingerprint: None,
            };
            pipeline.start(Batch {
                payloads: vec![payload],
                items: vec![i],
            });
        }
        while let Some(s) = pipeline.next_settled().await {
            settled.push(s);
        }
        assert_eq!(settled.len(), 6);
        let mut items: Vec<u32> = settled.iter().flat_map(|(i, _)| i.clone()).collect();
        items.sort();
        assert_eq!(items, (0..6).collect::<Vec<_>>());
        assert!(
            settled
                .iter()
                .all(|(_, d)| d.outcomes == vec![Delivered::Accepted])
        );
        assert_eq!(action.peak.load(Ordering::SeqCst), 2);
    }
}
