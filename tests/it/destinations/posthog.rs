//! The `posthog` destination against `retl_testkit`'s PostHog emulator: `capture_event`
//! (`/batch/`) is the upsert action, `delete_person` (persons `bulk_delete`) the delete
//! action; and syncs whose events and person updates the emulator checks field by field.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: for an
//! event the key is its `distinct_id` (the record's unique id, `distinct_id` being unmapped)
//! and the fields are the mapped ones as received (`event`, `timestamp`, and the `email` and
//! `plan` properties), i.e. the payload the engine batched; a `bulk_delete` shows one
//! `deleted` record per distinct id.

use retl_testkit::{PosthogEmulator, PosthogProject};
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const KEY: &str = "phc_conformance42";
const PERSONAL: &str = "phx_conformance42";
/// The event time every conformance event carries, as PostHog receives it.
const TIME_SENT: &str = "2023-11-14T22:13:20.000Z";
/// The time as the mapping's payload carries it (a datetime field is RFC 3339 text).
const TIME_TEXT: &str = "2023-11-14T22:13:20Z";

fn project() -> PosthogProject {
    PosthogProject {
        project_api_key: KEY.into(),
        project_id: "77".into(),
        personal_api_key: PERSONAL.into(),
    }
}

/// A PostHog emulator for [`project`].
pub(crate) struct PosthogSubject {
    emu: PosthogEmulator,
}

impl PosthogSubject {
    async fn start() -> Self {
        PosthogSubject {
            emu: PosthogEmulator::start(project()).await.unwrap(),
        }
    }
}

/// An event as the suite's record.
fn event_record(event: &Value) -> Value {
    let key: i64 = event["distinct_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(event["timestamp"], TIME_SENT, "the event's timestamp");
    let mut fields = Map::new();
    fields.insert("event".into(), event["event"].clone());
    fields.insert("timestamp".into(), json!(TIME_TEXT));
    for (name, value) in event["properties"].as_object().cloned().unwrap_or_default() {
        fields.insert(name, value);
    }
    json!({"key": key, "change": "added", "fields": fields})
}

impl Subject for PosthogSubject {
    fn destination_type(&self) -> &'static str {
        "posthog"
    }

    fn config(&self) -> Value {
        json!({"project_api_key": KEY, "host": self.emu.url(),
               "personal_api_key": PERSONAL, "project_id": "77"})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("capture_event", None)
    }

    fn upsert_fields(&self) -> Vec<retl_proto::v1::FieldMapping> {
        vec![
            literal("event", json!("plan synced")),
            literal("timestamp", json!(TIME_TEXT)),
            column("email", "email"),
            column("plan", "plan"),
        ]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_person", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let parse = |id: &str| id.parse::<i64>().expect("integer distinct_id");
        match change {
            "added" => self
                .emu
                .events()
                .iter()
                .map(|e| parse(&e.distinct_id))
                .collect(),
            "deleted" => self.emu.deleted().iter().map(|id| parse(id)).collect(),
            _ => Vec::new(),
        }
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        let mut config = self.config();
        config["project_api_key"] = json!("phc_not_the_key");
        Ok((config, "Project API key invalid"))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .map(|r| {
                let records = if r.path.starts_with("/batch") {
                    r.body["batch"]
                        .as_array()
                        .map(|events| events.iter().map(event_record).collect())
                        .unwrap_or_default()
                } else {
                    r.body["distinct_ids"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|id| {
                            let key: i64 = id.as_str().unwrap().parse().unwrap();
                            json!({"key": key, "change": "deleted"})
                        })
                        .collect()
                };
                Observed {
                    status: r.status,
                    records,
                    at: r.received_at,
                }
            })
            .collect())
    }

    fn reject_keys(&self, _keys: &[i64]) -> Capability<()> {
        Err(NotApplicable(
            "PostHog's capture API answers for the whole request (200 {\"status\": 1} or a 400 for the batch); it has no per-event results to reject with",
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

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        // bulk_delete of distinct ids without a person is not an error.
        self.emu.forget(keys.iter().map(i64::to_string));
        Ok(())
    }
}

conformance_suite!(PosthogSubject::start().await);

/// Events with a `uuid` stable across a re-send, then `$identify` person properties: the
/// exact JSON PostHog receives.
#[tokio::test]
async fn syncs_send_exact_events_and_person_properties() {
    let subject = PosthogSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let mut config = subject.config();
    config["limits"] = json!({"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50});
    h.create_destination("ph", "posthog", config).await.unwrap();
    h.create_mapping_with(
        "ev",
        "m",
        "ph",
        "capture_event",
        subject.upsert_fields(),
        None,
    )
    .await
    .unwrap();
    let person_fields = vec![column("email", "email"), column("plan", "plan")];
    h.create_mapping_with("person", "m", "ph", "identify", person_fields, None)
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
    for (i, event) in events[..2].iter().enumerate() {
        let id = i + 1;
        let plan = ["free", "pro", "enterprise"][id % 3];
        let uuid = event.uuid.clone().unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(
            event.body,
            json!({"event": "plan synced", "distinct_id": id.to_string(), "uuid": uuid,
                   "timestamp": TIME_SENT,
                   "properties": {"email": format!("user{id}@example.com"), "plan": plan}})
        );
        assert_eq!(event.body, events[i + 2].body, "same uuid on the re-send");
    }
    let request = &subject.emu.requests()[0];
    assert_eq!(request.path, "/batch/");
    assert_eq!(request.body["api_key"], KEY);

    subject.emu.clear();
    let run = h.sync("person").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    let bodies: Vec<Value> = subject
        .emu
        .events()
        .into_iter()
        .map(|e| {
            let mut body = e.body;
            body.as_object_mut().unwrap().remove("uuid");
            body
        })
        .collect();
    assert_eq!(
        bodies,
        vec![
            json!({"event": "$identify", "distinct_id": "1",
                   "properties": {"$set": {"email": "user1@example.com", "plan": "pro"}}}),
            json!({"event": "$identify", "distinct_id": "2",
                   "properties": {"$set": {"email": "user2@example.com", "plan": "enterprise"}}}),
        ]
    );
    assert_eq!(
        Value::Object(subject.emu.person("2").unwrap()),
        json!({"email": "user2@example.com", "plan": "enterprise"})
    );
}
