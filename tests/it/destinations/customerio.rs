//! The `customerio` destination against `retl_testkit`'s Customer.io emulator: `identify` is
//! the upsert action, `delete_person` the delete action (both Track API v2 batch entries);
//! and a sync whose entries the emulator checks field by field.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: the key is
//! the entry's `identifiers.id` (the record's unique id, `id` being unmapped), the fields its
//! `attributes` (where the mapped `email` and `plan` land), i.e. the payload the engine
//! batched; a `delete` entry is a `deleted` record.

use retl_testkit::CustomerioEmulator;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Value, json};

use super::{Capability, Observed, Subject};

const SITE: &str = "conformancesite";
const KEY: &str = "conformancekey42";

/// A Customer.io emulator of [`SITE`].
pub(crate) struct CustomerioSubject {
    emu: CustomerioEmulator,
}

impl CustomerioSubject {
    async fn start() -> Self {
        CustomerioSubject {
            emu: CustomerioEmulator::start(SITE, KEY).await.unwrap(),
        }
    }
}

fn entry_record(entry: &Value) -> Value {
    let key: i64 = entry["identifiers"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    if entry["action"] == "delete" {
        json!({"key": key, "change": "deleted"})
    } else {
        json!({"key": key, "change": "added", "fields": entry["attributes"]})
    }
}

impl Subject for CustomerioSubject {
    fn destination_type(&self) -> &'static str {
        "customerio"
    }

    fn config(&self) -> Value {
        json!({"site_id": SITE, "api_key": KEY, "track_host": self.emu.url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("identify", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_person", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let action = match change {
            "added" => "identify",
            "deleted" => "delete",
            _ => return Vec::new(),
        };
        self.emu
            .applied()
            .iter()
            .filter(|e| e.action == action)
            .map(|e| e.id.parse().expect("integer id"))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        let mut config = self.config();
        config["api_key"] = json!("notthekey");
        Ok((config, "Unauthorized request"))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter(|r| r.path == "/api/v2/batch")
            .map(|r| Observed {
                status: r.status,
                records: r.body["batch"]
                    .as_array()
                    .map(|entries| entries.iter().map(entry_record).collect())
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

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        // Customer.io applies a delete of a person it does not have.
        self.emu.forget(keys.iter().map(i64::to_string));
        Ok(())
    }
}

conformance_suite!(CustomerioSubject::start().await);

/// Identify and event entries: the exact JSON Customer.io receives, with Basic auth.
#[tokio::test]
async fn syncs_send_exact_identify_and_event_entries() {
    let subject = CustomerioSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let mut config = subject.config();
    config["limits"] = json!({"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50});
    h.create_destination("cio", "customerio", config)
        .await
        .unwrap();
    h.create_mapping_with(
        "people",
        "m",
        "cio",
        "identify",
        vec![column("email", "email"), column("plan", "plan")],
        None,
    )
    .await
    .unwrap();
    h.create_mapping_with(
        "events",
        "m",
        "cio",
        "track_event",
        vec![
            literal("name", json!("plan_synced")),
            literal("timestamp", json!("2023-11-14T22:13:20Z")),
            column("plan", "plan"),
        ],
        None,
    )
    .await
    .unwrap();
    for mapping in ["people", "events"] {
        let run = h.sync(mapping).await;
        assert_eq!(
            run.status(),
            retl_proto::v1::RunStatus::Succeeded,
            "{run:?}"
        );
    }
    let bodies: Vec<Value> = subject.emu.applied().into_iter().map(|e| e.body).collect();
    let plans = ["pro", "enterprise"];
    let mut expected: Vec<Value> = (1..=2)
        .map(|id| {
            json!({"type": "person", "identifiers": {"id": id.to_string()}, "action": "identify",
                   "attributes": {"email": format!("user{id}@example.com"), "plan": plans[id - 1]}})
        })
        .collect();
    expected.extend((1..=2).map(|id| {
        json!({"type": "person", "identifiers": {"id": id.to_string()}, "action": "event",
               "name": "plan_synced", "timestamp": 1_700_000_000, "attributes": {"plan": plans[id - 1]}})
    }));
    assert_eq!(bodies, expected);
    assert!(
        subject
            .emu
            .requests()
            .iter()
            .all(|r| r.basic_user().as_deref() == Some(SITE))
    );
    assert_eq!(
        Value::Object(subject.emu.person("2").unwrap()),
        json!({"email": "user2@example.com", "plan": "enterprise"})
    );
}
