//! The `iterable` destination against `retl_testkit`'s Iterable emulator: `upsert_user`
//! (`/api/users/bulkUpdate`) is the upsert action, `delete_user` (`DELETE
//! /api/users/byUserId/{userId}`, one request per record) the delete action; and a sync whose
//! users and events the emulator checks field by field.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: for a
//! `bulkUpdate` user the key is its `userId` (the record's unique id, `user_id` being
//! unmapped) and the fields are its `email` and `dataFields`, i.e. the payload the engine
//! batched; each delete request is a `deleted` record.

use retl_testkit::IterableEmulator;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, Observed, Subject};

const KEY: &str = "c0ffee0011112222333344445555aaaa";

/// An Iterable emulator accepting [`KEY`].
pub(crate) struct IterableSubject {
    emu: IterableEmulator,
}

impl IterableSubject {
    async fn start() -> Self {
        IterableSubject {
            emu: IterableEmulator::start(KEY).await.unwrap(),
        }
    }
}

fn int(id: &str) -> i64 {
    id.parse().expect("integer userId")
}

impl Subject for IterableSubject {
    fn destination_type(&self) -> &'static str {
        "iterable"
    }

    fn config(&self) -> Value {
        json!({"api_key": KEY, "endpoint": self.emu.url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_user", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_user", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        match change {
            "added" => self
                .emu
                .objects()
                .iter()
                .filter(|o| o.kind == "users")
                .map(|o| int(&o.user_id))
                .collect(),
            "deleted" => self.emu.deleted().iter().map(|id| int(id)).collect(),
            _ => Vec::new(),
        }
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"api_key": "00000000deadbeef0000000000000000", "endpoint": self.emu.url()}),
            "Invalid API key",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .map(|r| {
                let records = if let Some(id) = r.path.strip_prefix("/api/users/byUserId/") {
                    vec![json!({"key": int(id), "change": "deleted"})]
                } else {
                    r.body["users"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|u| {
                            let mut fields = Map::new();
                            if let Some(email) = u.get("email") {
                                fields.insert("email".into(), email.clone());
                            }
                            for (k, v) in u["dataFields"].as_object().into_iter().flatten() {
                                fields.insert(k.clone(), v.clone());
                            }
                            json!({"key": int(u["userId"].as_str().unwrap()), "change": "added", "fields": fields})
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

    fn reject_keys(&self, keys: &[i64]) -> Capability<()> {
        self.emu.reject_keys(keys.iter().map(i64::to_string));
        Ok(())
    }

    fn throttle_next(&self, _seconds: u64) -> Capability<()> {
        // Iterable answers 429 without Retry-After; the client waits one second.
        self.emu.throttle_next(1);
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
        // A delete of a user that is not there is answered 404, which the client counts as
        // deleted.
        self.emu.forget(keys.iter().map(i64::to_string));
        Ok(())
    }
}

conformance_suite!(IterableSubject::start().await);

/// Users (bulkUpdate) and events (trackBulk): the exact objects Iterable receives.
#[tokio::test]
async fn syncs_send_exact_users_and_events() {
    let subject = IterableSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("it", "iterable", subject.config())
        .await
        .unwrap();
    let users = vec![column("email", "email"), column("plan", "plan")];
    h.create_mapping_with("users", "m", "it", "upsert_user", users, None)
        .await
        .unwrap();
    let event = vec![
        literal("event_name", json!("plan_synced")),
        literal("created_at", json!("2026-01-02T03:04:05Z")),
        column("plan", "plan"),
    ];
    h.create_mapping_with("ev", "m", "it", "track_event", event, None)
        .await
        .unwrap();
    for mapping in ["users", "ev"] {
        let run = h.sync(mapping).await;
        assert_eq!(
            run.status(),
            retl_proto::v1::RunStatus::Succeeded,
            "{run:?}"
        );
    }
    let plan = |id: usize| ["free", "pro", "enterprise"][id % 3];
    let objects = subject.emu.objects();
    let users: Vec<Value> = objects
        .iter()
        .filter(|o| o.kind == "users")
        .map(|o| o.body.clone())
        .collect();
    let expected: Vec<Value> = (1..=2usize)
        .map(|id| {
            json!({"userId": id.to_string(), "email": format!("user{id}@example.com"),
                   "dataFields": {"plan": plan(id)}, "preferUserId": true})
        })
        .collect();
    assert_eq!(users, expected);
    let events: Vec<&Value> = objects
        .iter()
        .filter(|o| o.kind == "events")
        .map(|o| &o.body)
        .collect();
    assert_eq!(events.len(), 2);
    for (i, event) in events.iter().enumerate() {
        let id = i + 1;
        assert_eq!(event["userId"], json!(id.to_string()));
        assert_eq!(event["eventName"], "plan_synced");
        assert_eq!(event["createdAt"], 1_767_323_045);
        assert_eq!(event["dataFields"], json!({"plan": plan(id)}));
        assert_eq!(event["id"].as_str().map(str::len), Some(32), "{event}");
    }
    assert_eq!(subject.emu.user("2").unwrap()["plan"], "enterprise");
    let paths: Vec<String> = subject.emu.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/api/users/bulkUpdate", "/api/events/trackBulk"]);
}
