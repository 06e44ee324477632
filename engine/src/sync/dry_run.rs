//! [`DryRun`]: what a run of a mapping would do — counts per operation, sample payloads, the
//! API requests it would make, how long delivery would take and whether it fits the
//! destination's daily request budget — from a [`Preview`](super::preview::Preview), sending
//! nothing and changing no state.

use std::time::Duration;

use crate::delivery::batcher::Batcher;
use crate::destination::spec::{ChangeKind, DeliveryLimits, Payload};
use crate::error::Error;
use crate::id::MappingId;
use crate::state::Fingerprint;
use crate::sync::preview::{Outcome, PreviewSink};
use crate::sync::run::RunCounts;

/// Sample payloads kept per kind of change.
pub const SAMPLES_PER_CHANGE: usize = 3;

/// The report of a dry run.
#[derive(Debug, Clone)]
pub struct DryRun {
    /// The mapping.
    pub mapping_id: MappingId,
    /// The extract compared (staged by the dry run unless it reused the latest one).
    pub staging_path: String,
    /// The counts a run would report (`delivered` 0; `selected` is what it would send or
    /// skip as given up).
    pub counts: RunCounts,
    /// A few payloads the run would send, per kind of change (added, updated, deleted).
    pub samples: Vec<Payload>,
    /// Requests the run would make (batched by the destination's limits), retries not
    /// counted.
    pub requests: u64,
    /// How long delivering would take.
    pub eta: Eta,
    /// The destination's daily request budget, when one is configured.
    pub budget: Option<Budget>,
    /// Requests retl's runs made to the destination in the last 24 hours.
    pub requests_last_24h: u64,
    /// What the run would warn about, and what would stop it.
    pub warnings: Vec<String>,
    /// Time the dry run spent extracting (0 when it reused the latest extract).
    pub extract_ms: u64,
    /// Time the dry run spent comparing and mapping.
    pub diff_ms: u64,
}

/// A delivery time estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Eta {
    /// The estimate: the larger of the two bounds below.
    pub seconds: f64,
    /// What the destination's rate limit alone allows (requests beyond the burst at
    /// `requests_per_second`).
    pub rate_limited_seconds: f64,
    /// What the measured latency allows with `max_in_flight` requests at once; `None` with
    /// no measurement yet.
    pub latency_bound_seconds: Option<f64>,
    /// The destination's mean request latency in its recent runs, when measured.
    pub mean_latency_ms: Option<f64>,
    /// How the estimate was made, in words.
    pub basis: String,
}

/// The destination's daily request budget against what it spent in the last 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests a day allowed.
    pub daily: u64,
    /// Requests retl's runs to the destination made in the last 24 hours.
    pub used_last_24h: u64,
}

impl Budget {
    /// Whether `requests` more would go past the budget.
    pub fn exceeded_by(&self, requests: u64) -> bool {
        self.used_last_24h.saturating_add(requests) > self.daily
    }
}

/// Estimates the delivery time of `requests` requests: the rate limit (after the burst) and,
/// when measured, the mean latency with `max_in_flight` requests at once, whichever is
/// slower.
pub fn estimate(requests: u64, limits: &DeliveryLimits, mean_latency: Option<Duration>) -> Eta {
    let beyond_burst = requests.saturating_sub(u64::from(limits.burst));
    let rate_limited_seconds = beyond_burst as f64 / limits.requests_per_second.max(1e-9);
    let latency_bound_seconds = mean_latency.map(|latency| {
        requests as f64 * latency.as_secs_f64() / limits.max_in_flight.max(1) as f64
    });
    let seconds = rate_limited_seconds.max(latency_bound_seconds.unwrap_or(0.0));
    let rate = format!(
        "{} requests at {} requests/s after a burst of {}",
        requests, limits.requests_per_second, limits.burst
    );
    let basis = match mean_latency {
        Some(latency) => format!(
            "{rate}, {} at once with a measured mean latency of {:.0} ms",
            limits.max_in_flight,
            latency.as_secs_f64() * 1000.0
        ),
        None => format!(
            "{rate}; no request latency measured yet (no run sent requests to this destination)"
        ),
    };
    Eta {
        seconds,
        rate_limited_seconds,
        latency_bound_seconds,
        mean_latency_ms: mean_latency.map(|l| l.as_secs_f64() * 1000.0),
        basis,
    }
}

/// The dry run's preview sink: batches what would be sent the way a run does (changed records,
/// then deletes) to count requests, and keeps a few samples.
#[derive(Debug)]
pub struct RequestCounter {
    batcher: Batcher<()>,
    in_deletes: bool,
    /// Requests counted so far.
    pub requests: u64,
    /// The samples kept.
    pub samples: Vec<Payload>,
    sampled: [usize; 3],
    /// Rejected rows (key text and reason), the first few.
    pub rejected: Vec<(String, String)>,
}

impl RequestCounter {
    /// A counter for a destination's limits.
    pub fn new(limits: &DeliveryLimits) -> Self {
        RequestCounter {
            batcher: Batcher::new(limits),
            in_deletes: false,
            requests: 0,
            samples: Vec::new(),
            sampled: [0; 3],
            rejected: Vec::new(),
        }
    }

    /// Counts the last partial batch; returns the requests.
    pub fn finish(&mut self) -> u64 {
        if self.batcher.take().is_some() {
            self.requests += 1;
        }
        self.requests
    }
}

impl PreviewSink for RequestCounter {
    fn change(
        &mut self,
        _key: &[u8],
        change: ChangeKind,
        outcome: Outcome,
        _fingerprint: Option<Fingerprint>,
    ) -> Result<(), Error> {
        let Outcome::Send(payload) = outcome else {
            return Ok(());
        };
        // A run sends the changed records, then (in batches of their own) the deletes.
        if change == ChangeKind::Deleted && !self.in_deletes {
            self.in_deletes = true;
            if self.batcher.take().is_some() {
                self.requests += 1;
            }
        }
        let slot = match change {
            ChangeKind::Added => 0,
            ChangeKind::Updated => 1,
            ChangeKind::Deleted => 2,
        };
        if self.sampled[slot] < SAMPLES_PER_CHANGE {
            self.sampled[slot] += 1;
            self.samples.push(payload.clone());
        }
        if self.batcher.push(payload, ()).is_some() {
            self.requests += 1;
        }
        Ok(())
    }

    fn rejected(&mut self, key: String, reason: String) {
        if self.rejected.len() < SAMPLES_PER_CHANGE {
            self.rejected.push((key, reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> DeliveryLimits {
        DeliveryLimits {
            requests_per_second: 10.0,
            burst: 10,
            batch_size: 100,
            max_in_flight: 4,
            ..DeliveryLimits::default()
        }
    }

    #[test]
    fn the_rate_limit_bounds_the_eta_until_latency_is_slower() {
        let eta = estimate(110, &limits(), None);
        assert!((eta.seconds - 10.0).abs() < 1e-9, "{eta:?}");
        assert!(eta.basis.contains("no request latency measured"));
        // 110 requests * 0.2 s / 4 at once = 5.5 s: the rate limit is still slower.
        let eta = estimate(110, &limits(), Some(Duration::from_millis(200)));
        assert!((eta.seconds - 10.0).abs() < 1e-9, "{eta:?}");
        // 110 * 1 s / 4 = 27.5 s: now latency bounds it.
        let eta = estimate(110, &limits(), Some(Duration::from_secs(1)));
        assert!((eta.seconds - 27.5).abs() < 1e-9, "{eta:?}");
        assert_eq!(estimate(0, &limits(), None).seconds, 0.0);
    }

    #[test]
    fn requests_follow_the_batch_size_and_deletes_start_a_batch() {
        let mut counter = RequestCounter::new(&limits());
        for i in 0..150 {
            let p = Payload::delete(serde_json::json!(i));
            let p = Payload {
                change: ChangeKind::Added,
                ..p
            };
            counter
                .change(b"k", ChangeKind::Added, Outcome::Send(p), None)
                .unwrap();
        }
        counter
            .change(b"k", ChangeKind::Updated, Outcome::NotSelected, None)
            .unwrap();
        for i in 0..5 {
            let p = Payload::delete(serde_json::json!(i));
            counter
                .change(b"k", ChangeKind::Deleted, Outcome::Send(p), None)
                .unwrap();
        }
        // 100 + 50 added, then 5 deletes on their own.
        assert_eq!(counter.finish(), 3);
        assert_eq!(counter.samples.len(), 2 * SAMPLES_PER_CHANGE);
        let budget = Budget {
            daily: 100,
            used_last_24h: 98,
        };
        assert!(budget.exceeded_by(3) && !budget.exceeded_by(2));
    }
}
