//! The `mixpanel` destination against `retl_testkit`'s Mixpanel emulator: `track_event`
//! (`/import`, strict mode) is the upsert action, `delete_profile` (`/engage` `$delete`) the
//! delete action; and syncs whose events and profile updates the emulator checks field by
//! field.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: for an
//! event the key is its `distinct_id` (the record's unique id, `distinct_id` being unmapped)
//! and the fields are the mapped ones as received (`event`, `time`, and the `email` and
//! `plan` properties), i.e. the payload the engine batched; for a profile update the key is
//! its `$distinct_id` and the change `deleted` for a `$delete`.

use retl_testkit::{MixpanelEmulator, MixpanelProject};
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, Observed, Subject};

const TOKEN: &str = "conformancetoken42";
/// The event time every conformance event carries (2023-11-14T22:13:20Z, in ms).
const TIME: u64 = 1_700_000_000_000;
/// [`TIME`] as the mapping's payload carries it (a datetime field is RFC 3339 text in retl's
/// payloads; the connector sends epoch milliseconds).
const TIME_TEXT: &str = "2023-11-14T22:13:20Z";

fn project() -> MixpanelProject {
    MixpanelProject {
        token: TOKEN.into(),
        project_id: "77".into(),
        service_account: ("retl.sa".into(), "sa-secret".into()),
    }
}

/// A Mixpanel emulator for [`project`].
pub(crate) struct MixpanelSubject {
    emu: MixpanelEmulator,
}

impl MixpanelSubject {
    async fn start() -> Self {
        MixpanelSubject {
            emu: MixpanelEmulator::start(project()).await.unwrap(),
        }
    }
}

/// An event as the suite's record.
fn event_record(event: &Value) -> Value {
    let properties = event["properties"].as_object().cloned().unwrap_or_default();
    let key: i64 = properties["distinct_id"].as_str().unwrap().parse().unwrap();
    let mut fields = Map::new();
    fields.insert("event".into(), event["event"].clone());
    for (name, value) in properties {
        if name == "time" {
            // The suite compares sizes with retl's payloads, which carry the time as text.
            assert_eq!(value, json!(TIME), "the event's time");
            fields.insert(name, json!(TIME_TEXT));
        } else if name != "distinct_id" && name != "$insert_id" {
            fields.insert(name, value);
        }
    }
    json!({"key": key, "change": "added", "fields": fields})
}

/// A profile update as the suite's record.
fn update_record(update: &Value) -> Value {
    let key: i64 = update["$distinct_id"].as_str().unwrap().parse().unwrap();
    if update.get("$delete").is_some() {
        json!({"key": key, "change": "deleted"})
    } else {
        json!({"key": key, "change": "added", "fields": update["$set"]})
    }
}

impl Subject for MixpanelSubject {
    fn destination_type(&self) -> &'static str {
        "mixpanel"
    }

    fn config(&self) -> Value {
        json!({"project_token": TOKEN, "project_id": "77", "api_host": self.emu.url(),
               "service_account_username": "retl.sa", "service_account_secret": "sa-secret"})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("track_event", None)
    }

    fn upsert_fields(&self) -> Vec<retl_proto::v1::FieldMapping> {
        vec![
            literal("event", json!("Plan Synced")),
            literal("time", json!(TIME)),
            column("email", "email"),
            column("plan", "plan"),
        ]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_profile", None)
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
            "deleted" => self
                .emu
                .profile_updates()
                .iter()
                .filter(|u| u.operation == "$delete")
                .map(|u| parse(&u.distinct_id))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        let mut config = self.config();
        config["service_account_secret"] = json!("not-the-secret");
        Ok((config, "Invalid credentials"))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .map(|r| {
                let items = r.body.as_array().cloned().unwrap_or_default();
                let records = if r.path == "/import" {
                    items.iter().map(event_record).collect()
                } else {
                    items.iter().map(update_record).collect()
                };
                Observed {
                    status: r.status,
                    records,
                    at: r.received_at,
                }
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

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        // Mixpanel answers a $delete of a missing profile with status 1, like any other.
        self.emu.forget(keys.iter().map(i64::to_string));
        Ok(())
    }
}

conformance_suite!(MixpanelSubject::start().await);

/// Events with `$insert_id` stable across a re-send, then profile `$set` updates: the exact
/// JSON Mixpanel receives.
#[tokio::test]
async fn syncs_send_exact_events_and_profile_updates() {
    let subject = MixpanelSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let mut config = subject.config();
    config["limits"] = json!({"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50});
    h.create_destination("mp", "mixpanel", config)
        .await
        .unwrap();
    h.create_mapping_with(
        "ev",
        "m",
        "mp",
        "track_event",
        subject.upsert_fields(),
        None,
    )
    .await
    .unwrap();
    let profile_fields = vec![column("$email", "email"), column("plan", "plan")];
    h.create_mapping_with("prof", "m", "mp", "set_profile", profile_fields, None)
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
        assert_eq!(event.insert_id.len(), 32);
        assert_eq!(
            event.body,
            json!({"event": "Plan Synced", "properties": {
                "time": TIME, "distinct_id": id.to_string(), "$insert_id": event.insert_id,
                "email": format!("user{id}@example.com"),
                "plan": plan}})
        );
        assert_eq!(
            event.body,
            events[i + 2].body,
            "same $insert_id on the re-send"
        );
    }
    let import = &subject.emu.requests()[0];
    assert_eq!(import.path, "/import");
    assert_eq!(import.basic_user().as_deref(), Some("retl.sa"));

    subject.emu.clear();
    let run = h.sync("prof").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    let updates: Vec<Value> = subject
        .emu
        .profile_updates()
        .into_iter()
        .map(|u| u.body)
        .collect();
    assert_eq!(
        updates,
        vec![
            json!({"$token": TOKEN, "$distinct_id": "1",
                   "$set": {"$email": "user1@example.com", "plan": "pro"}}),
            json!({"$token": TOKEN, "$distinct_id": "2",
                   "$set": {"$email": "user2@example.com", "plan": "enterprise"}}),
        ]
    );
    assert_eq!(
        subject.emu.requests()[0]
            .query
            .get("verbose")
            .map(String::as_str),
        Some("1")
    );
}
