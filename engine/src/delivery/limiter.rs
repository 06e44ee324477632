//! [`DestinationLimiter`]: one token bucket per destination, shared by all its mappings, that a
//! 429 pauses for everyone (not just the request that got it).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::destination::spec::DeliveryLimits;

/// The rate limiter of one destination.
#[derive(Debug)]
pub struct DestinationLimiter {
    limiter: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
    limits: DeliveryLimits,
}

impl DestinationLimiter {
    /// A limiter enforcing `limits.requests_per_second` with `limits.burst`.
    pub fn new(limits: &DeliveryLimits) -> Self {
        let period = Duration::from_secs_f64(1.0 / limits.requests_per_second.max(1e-6));
        let burst = NonZeroU32::new(limits.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        DestinationLimiter {
            limiter: RateLimiter::direct(quota),
            paused_until: Mutex::new(None),
            limits: limits.clone(),
        }
    }

    /// The limits this limiter was built from (a changed destination gets a new limiter).
    pub fn limits(&self) -> &DeliveryLimits {
        &self.limits
    }

    /// Waits until a request may be sent: after any pause, then for a token.
    pub async fn acquire(&self) {
        loop {
            let until = self.paused_until.lock().map(|g| *g).unwrap_or(None);
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        self.limiter.until_ready().await;
    }

    /// Pauses every sender of this destination for `duration` (a 429 with `Retry-After`).
    pub fn pause_for(&self, duration: Duration) {
        let until = Instant::now() + duration;
        if let Ok(mut guard) = self.paused_until.lock()
            && guard.is_none_or(|t| t < until)
        {
            *guard = Some(until);
        }
    }
}

/// The limiters of all destinations, by destination id: every mapping of a destination shares
/// one, and a destination whose limits changed gets a new one.
#[derive(Debug, Default)]
pub struct Limiters {
    by_destination: Mutex<std::collections::HashMap<String, std::sync::Arc<DestinationLimiter>>>,
}

impl Limiters {
    /// The shared limiter of a destination with these limits.
    pub fn get(
        &self,
        destination_id: &str,
        limits: &DeliveryLimits,
    ) -> std::sync::Arc<DestinationLimiter> {
        let Ok(mut map) = self.by_destination.lock() else {
            // A poisoned registry still limits: this run gets a limiter of its own.
            return std::sync::Arc::new(DestinationLimiter::new(limits));
        };
        if let Some(l) = map.get(destination_id).filter(|l| l.limits() == limits) {
            return std::sync::Arc::clone(l);
        }
        let l = std::sync::Arc::new(DestinationLimiter::new(limits));
        map.insert(destination_id.to_string(), std::sync::Arc::clone(&l));
        l
    }

    /// Forgets a deleted destination's limiter.
    pub fn remove(&self, destination_id: &str) {
        if let Ok(mut map) = self.by_destination.lock() {
            map.remove(destination_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pause_delays_acquire() {
        let l = DestinationLimiter::new(&DeliveryLimits {
            requests_per_second: 1000.0,
            burst: 100,
            ..DeliveryLimits::default()
        });
        // Measured from before the pause starts: the pause counts from its own `now`, so a
        // start taken after it made the test fail on a loaded machine.
        let start = Instant::now();
        l.pause_for(Duration::from_millis(300));
        l.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(300));
    }
}
