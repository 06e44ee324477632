//! [`Clock`]: what the scheduler reads the time from and waits on. The daemon uses
//! [`SystemClock`]; tests drive a [`ManualClock`] instead of sleeping.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

/// The scheduler's source of time.
#[async_trait]
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Returns at `deadline` (at once when it has passed).
    async fn sleep_until(&self, deadline: DateTime<Utc>);
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let wait = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`], [`ManualClock::set`]).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    moved: Notify,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(start),
            moved: Notify::new(),
        }
    }

    /// Moves the clock to `time` (never backwards).
    pub fn set(&self, time: DateTime<Utc>) {
        {
            let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
            if time > *now {
                *now = time;
            }
        }
        self.moved.notify_waiters();
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
        self.set(self.now() + by);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        loop {
            let moved = self.moved.notified();
            if self.now() >= deadline {
                return;
            }
            moved.await;
        }
    }
}
