//! The `google-analytics-4` destination against `retl_testkit`'s Measurement Protocol
//! emulator: `send_event` is the upsert action; the type has no delete; and a sync whose
//! events the emulator checks field by field.
//!
//! A Measurement Protocol request carries one client's events, so the suite's mapping sends
//! every record as the same client (`client_id` = a literal) and the engine's batches fit a
//! request. Observed records are shown in the suite's shape, `{"key", "change", "fields"}`:
//! the key is read back from the `email` parameter (`user<key>@example.com`, as
//! `retl_tests::customers` builds it) and the fields are `client_id`, `name` and the
//! parameters, i.e. the payload the engine batched.

use retl_testkit::GoogleAnalyticsEmulator;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const MEASUREMENT_ID: &str = "G-CONFORM42";
const SECRET: &str = "conformance-secret";
const CLIENT: &str = "555.1700000000";

/// A Measurement Protocol emulator of [`MEASUREMENT_ID`].
pub(crate) struct GoogleAnalyticsSubject {
    emu: GoogleAnalyticsEmulator,
}

impl GoogleAnalyticsSubject {
    async fn start() -> Self {
        GoogleAnalyticsSubject {
            emu: GoogleAnalyticsEmulator::start(MEASUREMENT_ID, SECRET)
                .await
                .unwrap(),
        }
    }
}

/// The record key behind an `email` parameter.
fn key_of(params: &Value) -> i64 {
    params["email"]
        .as_str()
        .and_then(|e| e.strip_prefix("user"))
        .and_then(|e| e.strip_suffix("@example.com"))
        .and_then(|k| k.parse().ok())
        .expect("an email of retl_tests::customers")
}

impl Subject for GoogleAnalyticsSubject {
    fn destination_type(&self) -> &'static str {
        "google-analytics-4"
    }

    fn config(&self) -> Value {
        json!({"measurement_id": MEASUREMENT_ID, "api_secret": SECRET, "endpoint": self.emu.url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("send_event", None)
    }

    fn upsert_fields(&self) -> Vec<retl_proto::v1::FieldMapping> {
        vec![
            literal("client_id", json!(CLIENT)),
            literal("name", json!("plan_synced")),
            column("email", "email"),
            column("plan", "plan"),
        ]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        unreachable!("google-analytics-4 declares no delete action (see deletes())")
    }

    fn deletes(&self) -> Capability<()> {
        Err(NotApplicable(
            "the Measurement Protocol only collects events (user deletion is the separate User Deletion API), so the type declares no delete action",
        ))
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        if change != "added" {
            return Vec::new();
        }
        self.emu
            .events()
            .iter()
            .map(|e| key_of(&e.params))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Err(NotApplicable(
            "the Measurement Protocol answers 2xx to a wrong api_secret or measurement_id and drops the events: no answer refuses credentials",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter(|r| r.path == "/mp/collect")
            .map(|r| Observed {
                status: r.status,
                records: r.body["events"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|event| {
                        let mut fields = Map::new();
                        fields.insert("client_id".into(), r.body["client_id"].clone());
                        fields.insert("name".into(), event["name"].clone());
                        for (k, v) in event["params"].as_object().cloned().unwrap_or_default() {
                            fields.insert(k, v);
                        }
                        json!({"key": key_of(&event["params"]), "change": "added", "fields": fields})
                    })
                    .collect(),
                at: r.received_at,
            })
            .collect())
    }

    fn reject_keys(&self, _keys: &[i64]) -> Capability<()> {
        Err(NotApplicable(
            "the production endpoint answers 2xx for every request and reports no invalid event; retl rejects what breaks a documented limit before sending",
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
        Err(NotApplicable("the Measurement Protocol has no delete"))
    }
}

conformance_suite!(GoogleAnalyticsSubject::start().await);

/// Records of different clients: one request each, with the exact body Google Analytics
/// receives; nothing dropped.
#[tokio::test]
async fn a_sync_sends_each_clients_event_with_the_documented_body() {
    let subject = GoogleAnalyticsSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let mut config = subject.config();
    config["limits"] = json!({"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50});
    h.create_destination("ga", "google-analytics-4", config)
        .await
        .unwrap();
    let fields = vec![
        literal("name", json!("generate_lead")),
        column("plan", "plan"),
        column("user_id", "email"),
    ];
    h.create_mapping_with("ev", "m", "ga", "send_event", fields, None)
        .await
        .unwrap();
    let run = h.sync("ev").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    assert!(
        subject.emu.dropped().is_empty(),
        "{:?}",
        subject.emu.dropped()
    );
    let mut bodies: Vec<Value> = subject
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.path == "/mp/collect")
        .map(|r| {
            assert_eq!(r.query.get("api_secret").map(String::as_str), Some(SECRET));
            r.body
        })
        .collect();
    bodies.sort_by_key(|b| b["client_id"].as_str().unwrap_or_default().to_string());
    let expected: Vec<Value> = (1..=3)
        .map(|id| {
            let plan = ["free", "pro", "enterprise"][id % 3];
            json!({"client_id": id.to_string(), "user_id": format!("user{id}@example.com"),
                   "events": [{"name": "generate_lead", "params": {"plan": plan}}]})
        })
        .collect();
    assert_eq!(bodies, expected, "one request per client");
    assert_eq!(subject.emu.events().len(), 3);
}
