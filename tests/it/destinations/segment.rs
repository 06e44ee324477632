//! The `segment` destination against `retl_testkit`'s Segment emulator, and a sync whose
//! messages the emulator checks field by field.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: the key is
//! the message's `userId` (the conformance mapping leaves `user_id` unmapped, so it is the
//! record's unique id) and the fields are its `traits` (where the mapped `email` and `plan`
//! land), i.e. exactly the payload the engine batched.

use retl_testkit::SegmentEmulator;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

/// The write key the emulator knows.
const KEY: &str = "conformanceWriteKey0123";

/// A Segment emulator knowing [`KEY`].
pub(crate) struct SegmentSubject {
    emu: SegmentEmulator,
}

impl SegmentSubject {
    async fn start() -> Self {
        SegmentSubject {
            emu: SegmentEmulator::start(KEY).await.unwrap(),
        }
    }
}

impl Subject for SegmentSubject {
    fn destination_type(&self) -> &'static str {
        "segment"
    }

    fn config(&self) -> Value {
        json!({"write_key": KEY, "endpoint": self.emu.url(), "settings_endpoint": self.emu.url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("identify", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        unreachable!("segment declares no delete action (see deletes())")
    }

    fn deletes(&self) -> Capability<()> {
        Err(NotApplicable(
            "Segment's HTTP Tracking API has no record delete (user deletion is a workspace regulation of the Public API), so the type declares no delete action",
        ))
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        if change != "added" {
            return Vec::new();
        }
        self.emu
            .messages()
            .iter()
            .map(|m| m.key.parse().expect("integer userId"))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Err(NotApplicable(
            "Segment's Tracking API answers 200 to an unknown write key and drops its events (the edge does not check keys), so a wrong key cannot fail a run; TestDestination checks the key",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter(|r| r.path == "/v1/batch")
            .map(|r| Observed {
                status: r.status,
                records: r.body["batch"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|m| {
                        let key: i64 = m["userId"].as_str().and_then(|k| k.parse().ok()).unwrap();
                        json!({"key": key, "change": "added", "fields": m["traits"]})
                    })
                    .collect(),
                at: r.received_at,
            })
            .collect())
    }

    fn reject_keys(&self, _keys: &[i64]) -> Capability<()> {
        Err(NotApplicable(
            "the Tracking API answers for a whole batch (200 {\"success\": true}); it has no per-record results to reject with",
        ))
    }

    fn throttle_next(&self, seconds: u64) -> Capability<()> {
        self.emu.throttle_next(1, seconds);
        Ok(())
    }

    fn fail_everything(&self) -> Capability<()> {
        self.emu.fail_everything();
        Ok(())
    }

    fn recover(&self) {
        self.emu.clear();
    }

    fn forget(&self, _keys: &[i64]) -> Capability<()> {
        Err(NotApplicable("Segment has no record delete"))
    }
}

conformance_suite!(SegmentSubject::start().await);

/// A `track` sync: the exact messages Segment receives, the same `messageId` when a batch
/// whose answer was lost is sent again, and a new one when the record changes.
#[tokio::test]
async fn a_track_sync_sends_exact_messages_with_stable_message_ids() {
    let subject = SegmentSubject::start().await;
    let h = Harness::start().await;
    let mut rows = customers(3);
    h.warehouse(&rows).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let mut config = subject.config();
    config["limits"] = json!({"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50});
    h.create_destination("seg", "segment", config)
        .await
        .unwrap();
    let fields = vec![
        literal("event", json!("Plan Synced")),
        column("plan", "plan"),
        column("email", "email"),
    ];
    h.create_mapping_with("ev", "m", "seg", "track", fields, None)
        .await
        .unwrap();

    // Segment processes the first batch but the answer is lost: the retry re-sends it.
    subject.emu.lose_answers(1);
    let run = h.sync("ev").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    let messages = subject.emu.messages();
    assert_eq!(messages.len(), 6, "3 records, sent twice: {messages:?}");
    assert!(
        subject.emu.dropped().is_empty(),
        "{:?}",
        subject.emu.dropped()
    );
    let (first, resent) = messages.split_at(3);
    for (i, (a, b)) in first.iter().zip(resent).enumerate() {
        let id = i + 1;
        let plan = ["free", "pro", "enterprise"][id % 3];
        let message_id = a.message_id.clone();
        assert_eq!(message_id.len(), 32);
        assert_eq!(
            a.body,
            json!({"type": "track", "messageId": message_id, "userId": id.to_string(),
                   "event": "Plan Synced",
                   "properties": {"plan": plan, "email": format!("user{id}@example.com")}})
        );
        assert_eq!(
            a.body, b.body,
            "the re-sent message is identical, messageId included"
        );
    }
    let requests = subject.emu.requests();
    assert_eq!(requests[0].status, 503);
    assert!(
        requests
            .iter()
            .all(|r| r.basic_user().as_deref() == Some(KEY))
    );

    // A changed record is a new event with a new messageId.
    rows[1].plan = Some("vip".to_string());
    retl_tests::write_parquet(&h.path("customers.parquet"), &rows);
    subject.emu.clear();
    let run = h.sync("ev").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    let messages = subject.emu.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].key, "2");
    assert_eq!(messages[0].body["properties"]["plan"], "vip");
    assert!(!first.iter().any(|m| m.message_id == messages[0].message_id));
}
