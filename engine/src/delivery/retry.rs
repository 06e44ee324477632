//! Backoff with full jitter.

use std::time::Duration;

use rand::Rng;

use crate::destination::spec::DeliveryLimits;

/// The wait before attempt `attempt + 1` (attempt counts from 1): a uniformly random duration in
/// `[0, min(max_backoff, initial_backoff * 2^(attempt-1))]` ("full jitter").
pub fn backoff(limits: &DeliveryLimits, attempt: u32) -> Duration {
    let exp = limits
        .initial_backoff_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let cap = exp.min(limits.max_backoff_ms);
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped() {
        let limits = DeliveryLimits {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            ..DeliveryLimits::default()
        };
        for attempt in 1..40 {
            let d = backoff(&limits, attempt);
            assert!(d <= Duration::from_millis(1000));
            assert!(d <= Duration::from_millis(100 * (1u64 << (attempt - 1).min(30))));
        }
    }
}
