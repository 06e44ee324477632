//! What the destination holds, replayed from the emulator's ledger of accepted records, and
//! the checks of the crash test against the warehouse.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use retl_testkit::emulators::webhook::ReceivedRecord;
use serde_json::Value;

use crate::warehouse::Rows;

/// The destination's view: upserted keys with their last fields, deleted keys, and how many
/// accepted records repeated one accepted before (a re-send).
#[derive(Default)]
pub(crate) struct Replay {
    /// `id -> (email, plan)` as last upserted.
    pub(crate) view: BTreeMap<i64, (String, String)>,
    /// Keys a delete was accepted for.
    pub(crate) deleted: BTreeSet<i64>,
    /// Records accepted more than once (same key and same content).
    pub(crate) duplicates: usize,
    seen: HashSet<(i64, String)>,
    consumed: usize,
}

fn key(record: &ReceivedRecord) -> i64 {
    match &record.key {
        Value::Number(n) => n.as_i64().expect("integer key"),
        Value::String(s) => s.parse().expect("integer key"),
        other => panic!("unexpected key {other}"),
    }
}

fn text(fields: &serde_json::Map<String, Value>, name: &str) -> String {
    match fields.get(name) {
        Some(Value::String(s)) => s.clone(),
        other => panic!("field {name} is {other:?}"),
    }
}

impl Replay {
    /// Applies the records accepted since the last call, in acceptance order.
    pub(crate) fn apply(&mut self, ledger: &[ReceivedRecord]) {
        for record in &ledger[self.consumed..] {
            let id = key(record);
            let content = match record.action.as_str() {
                "delete" => {
                    self.view.remove(&id);
                    self.deleted.insert(id);
                    "delete".to_string()
                }
                "upsert" => {
                    let fields = record.fields.as_ref().expect("upsert without fields");
                    let row = (text(fields, "email"), text(fields, "plan"));
                    let content = format!("{row:?}");
                    self.view.insert(id, row);
                    content
                }
                other => panic!("unexpected action {other}"),
            };
            if !self.seen.insert((id, content)) {
                self.duplicates += 1;
            }
        }
        self.consumed = ledger.len();
    }

    /// Asserts that the destination holds exactly the warehouse's rows: no change lost, no
    /// deleted row left behind, no delete of a key that still exists.
    pub(crate) fn assert_matches(&self, rows: &Rows, when: &str) {
        let false_deletes: Vec<_> = self
            .deleted
            .iter()
            .filter(|id| rows.contains_key(id))
            .take(10)
            .collect();
        assert!(
            false_deletes.is_empty(),
            "{when}: deletes were sent for keys that still exist: {false_deletes:?}"
        );
        let lost: Vec<_> = rows
            .iter()
            .filter(|(id, row)| self.view.get(id) != Some(row))
            .map(|(id, row)| (id, row, self.view.get(id)))
            .take(10)
            .collect();
        assert!(
            lost.is_empty(),
            "{when}: changes that never reached the destination (id, warehouse, destination): {lost:?}"
        );
        let stale: Vec<_> = self
            .view
            .keys()
            .filter(|id| !rows.contains_key(id))
            .take(10)
            .collect();
        assert!(
            stale.is_empty(),
            "{when}: rows deleted in the warehouse are still at the destination: {stale:?}"
        );
    }
}
