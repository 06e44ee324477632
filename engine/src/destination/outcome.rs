//! What a destination said about each record of a batch.

use std::time::Duration;

/// The destination's answer about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The destination accepted the record: the state may advance.
    Accepted,
    /// The destination rejected the record permanently (validation); not retried in this run,
    /// re-sent by the next run because the state does not advance.
    Rejected {
        /// The destination's reason.
        reason: String,
    },
    /// The destination asked to send this record again (e.g. a per-record throttle).
    Retry {
        /// The destination's reason.
        reason: String,
        /// How long to wait, when the destination said.
        after: Option<Duration>,
    },
}

/// One outcome per record of a batch, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Outcomes in the order of the batch's payloads.
    pub records: Vec<RecordOutcome>,
}

impl BatchOutcome {
    /// Every record accepted.
    pub fn all_accepted(n: usize) -> Self {
        BatchOutcome {
            records: vec![RecordOutcome::Accepted; n],
        }
    }
}
