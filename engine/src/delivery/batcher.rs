//! [`Batcher`]: groups payloads into batches by the action's limits — at most `batch_size`
//! records and about `max_batch_bytes` of JSON per request — keeping with each payload the
//! caller's item (what to commit once it is acknowledged).

use std::io::Write;

use crate::destination::spec::{DeliveryLimits, Payload};

/// A batch ready to send: payloads and their items, in the same order.
#[derive(Debug)]
pub struct Batch<T> {
    /// The payloads, one request's worth.
    pub payloads: Vec<Payload>,
    /// The caller's item for each payload.
    pub items: Vec<T>,
}

/// Accumulates payloads into batches.
#[derive(Debug)]
pub struct Batcher<T> {
    payloads: Vec<Payload>,
    items: Vec<T>,
    bytes: usize,
    batch_size: usize,
    max_bytes: usize,
}

/// Bytes of a payload's JSON, counted without building the text.
pub fn json_size(payload: &Payload) -> usize {
    struct Counter(usize);
    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Serializing a Payload to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, payload);
    counter.0
}

impl<T> Batcher<T> {
    /// A batcher for a destination's limits.
    pub fn new(limits: &DeliveryLimits) -> Self {
        Batcher {
            payloads: Vec::new(),
            items: Vec::new(),
            bytes: 0,
            batch_size: limits.batch_size.max(1),
            max_bytes: limits.max_batch_bytes,
        }
    }

    /// Adds a payload; returns a full batch when one is ready. A payload that would take the
    /// batch past the byte limit closes the batch before it (a single payload larger than the
    /// limit still goes, alone: the destination decides).
    pub fn push(&mut self, payload: Payload, item: T) -> Option<Batch<T>> {
        let size = json_size(&payload);
        let full = if !self.payloads.is_empty() && self.bytes + size > self.max_bytes {
            self.take()
        } else {
            None
        };
        self.payloads.push(payload);
        self.items.push(item);
        self.bytes += size;
        if self.payloads.len() >= self.batch_size {
            // Only one of the two can fill per push: after a byte flush one payload is pending,
            // and a batch size of one never leaves a payload pending.
            return full.or_else(|| self.take());
        }
        full
    }

    /// The batch gathered so far, if any (at the end of the input).
    pub fn take(&mut self) -> Option<Batch<T>> {
        if self.payloads.is_empty() {
            return None;
        }
        self.bytes = 0;
        Some(Batch {
            payloads: std::mem::take(&mut self.payloads),
            items: std::mem::take(&mut self.items),
        })
    }

    /// Drops what was gathered (the run is stopping).
    pub fn clear(&mut self) {
        self.payloads.clear();
        self.items.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::spec::ChangeKind;

    fn payload(text: &str) -> Payload {
        Payload {
            key: serde_json::Value::from(text),
            change: ChangeKind::Added,
            fields: crate::destination::spec::Fields::default(),
            fingerprint: None,
        }
    }

    fn limits(batch_size: usize, max_batch_bytes: usize) -> DeliveryLimits {
        DeliveryLimits {
            batch_size,
            max_batch_bytes,
            ..DeliveryLimits::default()
        }
    }

    #[test]
    fn batches_close_at_the_record_count() {
        let mut b = Batcher::new(&limits(2, usize::MAX));
        assert!(b.push(payload("a"), 1).is_none());
        let batch = b.push(payload("b"), 2).unwrap();
        assert_eq!(batch.items, vec![1, 2]);
        assert!(b.push(payload("c"), 3).is_none());
        assert_eq!(b.take().unwrap().items, vec![3]);
        assert!(b.take().is_none());
    }

    #[test]
    fn batches_close_before_the_byte_limit() {
        let size = json_size(&payload("aaaa"));
        let mut b = Batcher::new(&limits(100, size * 2 + 1));
        assert!(b.push(payload("aaaa"), 1).is_none());
        assert!(b.push(payload("aaaa"), 2).is_none());
        let batch = b.push(payload("aaaa"), 3).unwrap();
        assert_eq!(batch.items, vec![1, 2]);
        assert_eq!(b.take().unwrap().items, vec![3]);
    }

    #[test]
    fn an_oversized_payload_goes_alone() {
        let mut b = Batcher::new(&limits(100, 1));
        assert!(b.push(payload("big"), 1).is_none());
        assert_eq!(b.push(payload("big"), 2).unwrap().items, vec![1]);
        assert_eq!(b.take().unwrap().items, vec![2]);
    }
}
