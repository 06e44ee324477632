//! The `braze` destination against `retl_testkit`'s Braze emulator: `update_user_profile`
//! (`/users/track` attributes) is the upsert action, `delete_user` (`/users/delete`) the delete
//! action; and a sync whose attributes and events the emulator checks field by field.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: for an
//! attributes object the key is its `external_id` (the record's unique id, `external_id`
//! being unmapped) and the fields are the attributes without `external_id` and
//! `_update_existing_only`, i.e. the payload the engine batched; each id of a delete request
//! is a `deleted` record.

use retl_testkit::BrazeEmulator;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, Observed, Subject};

const KEY: &str = "c0ffee00-1111-2222-3333-444455556666";

/// A Braze emulator accepting [`KEY`].
pub(crate) struct BrazeSubject {
    emu: BrazeEmulator,
}

impl BrazeSubject {
    async fn start() -> Self {
        BrazeSubject {
            emu: BrazeEmulator::start(KEY).await.unwrap(),
        }
    }
}

fn int(id: &str) -> i64 {
    id.parse().expect("integer external_id")
}

impl Subject for BrazeSubject {
    fn destination_type(&self) -> &'static str {
        "braze"
    }

    fn config(&self) -> Value {
        json!({"api_key": KEY, "rest_endpoint": self.emu.url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("update_user_profile", None)
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
                .filter(|o| o.array == "attributes")
                .map(|o| int(&o.external_id))
                .collect(),
            "deleted" => self.emu.deleted().iter().map(|id| int(id)).collect(),
            _ => Vec::new(),
        }
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"api_key": "00000000-dead-beef-0000-000000000000", "rest_endpoint": self.emu.url()}),
            "Unknown or missing REST API key",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .map(|r| {
                let records = if r.path == "/users/delete" {
                    r.body["external_ids"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|id| json!({"key": int(id.as_str().unwrap()), "change": "deleted"}))
                        .collect()
                } else {
                    r.body["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            let mut fields: Map<String, Value> =
                                a.as_object().cloned().unwrap_or_default();
                            let id = fields.remove("external_id").unwrap();
                            fields.remove("_update_existing_only");
                            json!({"key": int(id.as_str().unwrap()), "change": "added", "fields": fields})
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
        // /users/delete answers unknown ids with success (they are not counted as deleted).
        self.emu.forget(keys.iter().map(i64::to_string));
        Ok(())
    }
}

conformance_suite!(BrazeSubject::start().await);

/// Attributes (upsert) and events: the exact objects Braze receives.
#[tokio::test]
async fn syncs_send_exact_attributes_and_events() {
    let subject = BrazeSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("bz", "braze", subject.config())
        .await
        .unwrap();
    let profile = vec![column("email", "email"), column("plan", "plan")];
    h.create_mapping_with("prof", "m", "bz", "update_user_profile", profile, None)
        .await
        .unwrap();
    let event = vec![
        literal("name", json!("plan_synced")),
        literal("time", json!("2026-01-02T03:04:05Z")),
        column("plan", "plan"),
    ];
    h.create_mapping_with("ev", "m", "bz", "track_event", event, None)
        .await
        .unwrap();
    for mapping in ["prof", "ev"] {
        let run = h.sync(mapping).await;
        assert_eq!(
            run.status(),
            retl_proto::v1::RunStatus::Succeeded,
            "{run:?}"
        );
    }
    let bodies: Vec<(String, Value)> = subject
        .emu
        .objects()
        .into_iter()
        .map(|o| (o.array, o.body))
        .collect();
    let plan = |id: usize| ["free", "pro", "enterprise"][id % 3];
    let mut expected = Vec::new();
    for id in 1..=2usize {
        expected.push((
            "attributes".to_string(),
            json!({"external_id": id.to_string(), "email": format!("user{id}@example.com"),
                   "plan": plan(id), "_update_existing_only": false}),
        ));
    }
    for id in 1..=2usize {
        expected.push((
            "events".to_string(),
            json!({"external_id": id.to_string(), "name": "plan_synced",
                   "time": "2026-01-02T03:04:05.000Z", "properties": {"plan": plan(id)}}),
        ));
    }
    assert_eq!(bodies, expected);
    assert_eq!(subject.emu.user("2").unwrap()["plan"], "enterprise");
    let paths: Vec<String> = subject.emu.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/users/track", "/users/track"]);
}

/// 55 deletes in one batch of the default 75 are more than `/users/delete` takes (50): the
/// client hands the batch back as too large, the engine halves it, and every user is deleted.
#[tokio::test]
async fn a_delete_batch_over_fifty_ids_is_split() {
    let subject = BrazeSubject::start().await;
    let h = Harness::start().await;
    let rows = customers(60);
    h.warehouse(&rows).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("bz", "braze", subject.config())
        .await
        .unwrap();
    h.create_mapping_with(
        "up",
        "m",
        "bz",
        "update_user_profile",
        subject.upsert_fields(),
        None,
    )
    .await
    .unwrap();
    h.create_mapping("del", "m", "bz", "delete_user", &[], None)
        .await
        .unwrap();
    for mapping in ["up", "del"] {
        let run = h.sync(mapping).await;
        assert_eq!(
            run.status(),
            retl_proto::v1::RunStatus::Succeeded,
            "{run:?}"
        );
    }
    assert!(subject.emu.user("55").is_some());
    retl_tests::write_parquet(&h.path("customers.parquet"), &rows[55..]);
    subject.emu.clear();
    let run = h.sync_with("del", true).await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    let sizes: Vec<usize> = subject
        .emu
        .requests()
        .iter()
        .map(|r| r.body["external_ids"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, [27, 28], "one batch of 55, halved");
    assert_eq!(subject.emu.deleted().len(), 55);
    assert!((1..=55).all(|id| subject.emu.user(&id.to_string()).is_none()));
    assert!(subject.emu.user("56").is_some());
}
