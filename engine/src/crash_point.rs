//! Crash points: places where a test of crash safety can make the process die as a crash would
//! (`abort`: no destructors run, nothing is flushed), to prove that what the engine promises
//! survives a crash at exactly that place.
//!
//! Armed only by the environment variable `RETL_TEST_CRASH_AT=<point>[:<n>]` (the `n`-th time
//! the process reaches `<point>`, default the first), read once. Unset, as in production, a
//! point costs one atomic load. The points:
//! - `after_ack_before_commit`: a destination acknowledged a request and the run has not yet
//!   committed the state of its records (they must be sent again, once, by the next run).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms a crash point.
pub const ENV: &str = "RETL_TEST_CRASH_AT";

/// A destination acknowledged a request; its records' state is not committed yet.
pub const AFTER_ACK_BEFORE_COMMIT: &str = "after_ack_before_commit";

struct Armed {
    point: String,
    nth: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let text = std::env::var(ENV).ok()?;
            let (point, nth) = match text.split_once(':') {
                Some((point, n)) => (point, n.trim().parse().ok()?),
                None => (text.as_str(), 1),
            };
            Some(Armed {
                point: point.trim().to_string(),
                nth,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process when `point` is the armed one and this is its `n`-th hit.
pub fn reached(point: &str) {
    let Some(armed) = armed() else { return };
    if armed.point == point && armed.hits.fetch_add(1, Ordering::SeqCst) + 1 == armed.nth {
        eprintln!("{ENV}: crashing at {point} (hit {})", armed.nth);
        std::process::abort();
    }
}
