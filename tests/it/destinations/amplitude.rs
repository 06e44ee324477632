//! The `amplitude` destination against `retl_testkit`'s Amplitude emulator: `track_event`
//! (HTTP V2 `/2/httpapi`) is the upsert action; the type has no delete; and syncs whose
//! events and identifications the emulator checks field by field.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: the key is
//! the event's `user_id` (the record's unique id, `user_id` being unmapped) and the fields are
//! its `event_type` and `event_properties` (where the mapped `email` and `plan` land), i.e.
//! the payload the engine batched.

use retl_testkit::AmplitudeEmulator;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const KEY: &str = "c0ffee0123456789c0ffee0123456789";

/// An Amplitude emulator knowing [`KEY`].
pub(crate) struct AmplitudeSubject {
    emu: AmplitudeEmulator,
}

impl AmplitudeSubject {
    async fn start() -> Self {
        AmplitudeSubject {
            emu: AmplitudeEmulator::start(KEY).await.unwrap(),
        }
    }
}

/// An event as the suite's record.
fn event_record(event: &Value) -> Value {
    let key: i64 = event["user_id"].as_str().unwrap().parse().unwrap();
    let mut fields = Map::new();
    fields.insert("event_type".into(), event["event_type"].clone());
    for (name, value) in event["event_properties"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        fields.insert(name, value);
    }
    json!({"key": key, "change": "added", "fields": fields})
}

impl Subject for AmplitudeSubject {
    fn destination_type(&self) -> &'static str {
        "amplitude"
    }

    fn config(&self) -> Value {
        // The suite's ids are 1, 2, ...: shorter than Amplitude's default 5 characters.
        json!({"api_key": KEY, "api_host": self.emu.url(), "min_id_length": 1})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("track_event", None)
    }

    fn upsert_fields(&self) -> Vec<retl_proto::v1::FieldMapping> {
        vec![
            literal("event_type", json!("Plan Synced")),
            column("email", "email"),
            column("plan", "plan"),
        ]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        unreachable!("amplitude declares no delete action (see deletes())")
    }

    fn deletes(&self) -> Capability<()> {
        Err(NotApplicable(
            "Amplitude's HTTP V2 and Identify APIs have no delete (user deletion is the separate, asynchronous User Privacy API), so the type declares no delete action",
        ))
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        if change != "added" {
            return Vec::new();
        }
        self.emu
            .events()
            .iter()
            .map(|e| e.id.parse().expect("integer user_id"))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        let mut config = self.config();
        config["api_key"] = json!("deadbeefdeadbeefdeadbeefdeadbeef");
        Ok((config, "Invalid API key"))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter(|r| r.path == "/2/httpapi")
            .map(|r| Observed {
                status: r.status,
                records: r.body["events"]
                    .as_array()
                    .map(|events| events.iter().map(event_record).collect())
                    .unwrap_or_default(),
                at: r.received_at,
            })
            .collect())
    }

    fn reject_keys(&self, keys: &[i64]) -> Capability<()> {
        self.emu.reject_keys(keys.iter().map(i64::to_string));
        Ok(())
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
        Err(NotApplicable("Amplitude has no record delete"))
    }
}

conformance_suite!(AmplitudeSubject::start().await);

/// Events whose `insert_id` is stable across a re-send (Amplitude keeps one), then
/// identifications: the exact JSON and form Amplitude receives.
#[tokio::test]
async fn syncs_send_exact_events_and_identifications() {
    let subject = AmplitudeSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let mut config = subject.config();
    config["limits"] = json!({"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50});
    h.create_destination("amp", "amplitude", config)
        .await
        .unwrap();
    let event_fields = vec![
        literal("event_type", json!("Plan Synced")),
        literal("time", json!("2023-11-14T22:13:20Z")),
        column("email", "email"),
        column("plan", "plan"),
    ];
    h.create_mapping_with("ev", "m", "amp", "track_event", event_fields, None)
        .await
        .unwrap();
    let user_fields = vec![column("email", "email"), column("plan", "plan")];
    h.create_mapping_with("users", "m", "amp", "identify_user", user_fields, None)
        .await
        .unwrap();

    subject.emu.lose_answers(1);
    let run = h.sync("ev").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    let events = subject.emu.events();
    assert_eq!(
        events.len(),
        4,
        "2 events, the batch sent twice: {events:?}"
    );
    assert_eq!(
        subject.emu.unique_events(),
        2,
        "Amplitude keeps one per insert_id"
    );
    for (i, event) in events[..2].iter().enumerate() {
        let id = i + 1;
        let plan = ["free", "pro", "enterprise"][id % 3];
        let insert_id = event.insert_id.clone().unwrap();
        assert_eq!(insert_id.len(), 32);
        assert_eq!(
            event.body,
            json!({"user_id": id.to_string(), "event_type": "Plan Synced",
                   "time": 1_700_000_000_000u64, "insert_id": insert_id,
                   "event_properties": {"email": format!("user{id}@example.com"), "plan": plan}})
        );
        assert_eq!(
            event.body,
            events[i + 2].body,
            "same insert_id on the re-send"
        );
    }
    let request = &subject.emu.requests()[0];
    assert_eq!(request.body["api_key"], KEY);
    assert_eq!(request.body["options"], json!({"min_id_length": 1}));

    subject.emu.clear();
    let run = h.sync("users").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    assert_eq!(
        subject.emu.identifications(),
        vec![
            json!({"user_id": "1",
                   "user_properties": {"$set": {"email": "user1@example.com", "plan": "pro"}}}),
            json!({"user_id": "2",
                   "user_properties": {"$set": {"email": "user2@example.com", "plan": "enterprise"}}}),
        ]
    );
    let request = &subject.emu.requests()[0];
    assert_eq!(request.path, "/identify");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(request.body["api_key"], KEY);
}
