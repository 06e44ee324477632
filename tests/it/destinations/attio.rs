//! The `attio` destination against `retl_testkit`'s Attio emulator: `assert_record` is the
//! upsert action, `delete_record` the delete action; plus a sync whose asserts the emulator
//! checks field by field.
//!
//! The suite's model is keyed by `id`, so records of `people` are matched by a unique
//! attribute `retl_id` holding it (`matching_attribute`); `email` is mapped to Attio's
//! `email_addresses`. [`Observed`] shows each call in the suite's shape `{"key", "change",
//! "fields"}`: an assert is an `added` record keyed by its `retl_id`, its fields the other
//! values; a query (only deletes query) and a delete are `deleted` records.

use retl_proto::v1;
use retl_testkit::{AttioEmulator, AttioObject};
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, Observed, Subject};

const TOKEN: &str = "attio-conformance-token";

async fn emulator() -> AttioEmulator {
    let people = AttioObject {
        slug: "people".into(),
        attributes: vec![
            ("retl_id".into(), true),
            ("email_addresses".into(), true),
            ("plan".into(), false),
            ("job_title".into(), false),
        ],
    };
    AttioEmulator::start(TOKEN, vec![people]).await.unwrap()
}

/// An Attio emulator with `people` (`retl_id` unique).
pub(crate) struct AttioSubject {
    emu: AttioEmulator,
}

impl AttioSubject {
    async fn start() -> Self {
        AttioSubject {
            emu: emulator().await,
        }
    }
}

fn key(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

impl Subject for AttioSubject {
    fn destination_type(&self) -> &'static str {
        "attio"
    }

    fn config(&self) -> Value {
        json!({"access_token": TOKEN, "object": "people", "matching_attribute": "retl_id",
               "base_url": self.emu.base_url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("assert_record", None)
    }

    fn upsert_fields(&self) -> Vec<v1::FieldMapping> {
        vec![column("email_addresses", "email"), column("plan", "plan")]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_record", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let delete = change == "deleted";
        self.emu
            .writes()
            .into_iter()
            .filter(|w| (w.operation == "delete") == delete)
            .filter_map(|w| key(w.values.get("retl_id")))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"access_token": "revoked", "object": "people", "matching_attribute": "retl_id",
                   "base_url": self.emu.base_url()}),
            "Invalid access token",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        let deleted: Vec<(String, Option<i64>)> = self
            .emu
            .writes()
            .into_iter()
            .filter(|w| w.operation == "delete")
            .map(|w| (w.record_id, key(w.values.get("retl_id"))))
            .collect();
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter_map(|r| {
                let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
                let records = match (r.method.as_str(), segments.as_slice()) {
                    ("PUT", ["v2", "objects", _, "records"]) => {
                        let mut fields: Map<String, Value> = r.body["data"]["values"]
                            .as_object()
                            .cloned()
                            .unwrap_or_default();
                        let k = key(fields.remove("retl_id").as_ref());
                        vec![json!({"key": k, "change": "added", "fields": fields})]
                    }
                    ("POST", ["v2", "objects", _, "records", "query"]) => {
                        vec![json!({"key": key(r.body["filter"].get("retl_id")), "change": "deleted"})]
                    }
                    ("DELETE", ["v2", "objects", _, "records", id]) => {
                        let k = deleted
                            .iter()
                            .find(|(d, _)| d == id)
                            .and_then(|(_, k)| *k);
                        vec![json!({"key": k, "change": "deleted"})]
                    }
                    _ => return None,
                };
                Some(Observed {
                    status: r.status,
                    records,
                    at: r.received_at,
                })
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
        // The query finds nothing: the delete is accepted without a DELETE.
        let values: Vec<String> = keys.iter().map(i64::to_string).collect();
        self.emu.forget("people", "retl_id", &values);
        Ok(())
    }
}

conformance_suite!(AttioSubject::start().await);

/// Asserts carry the matching attribute and the mapped attributes as Attio values; a
/// changed record updates the same record.
#[tokio::test]
async fn a_sync_asserts_records_by_the_matching_attribute() {
    let subject = AttioSubject::start().await;
    let h = Harness::start().await;
    let rows = customers(2);
    h.warehouse(&rows).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("at", "attio", subject.config())
        .await
        .unwrap();
    let fields = vec![
        column("email_addresses", "email"),
        literal("job_title", json!("Customer")),
        column("plan", "plan"),
    ];
    h.create_mapping_with("up", "m", "at", "assert_record", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let requests = subject.emu.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(requests[0].path, "/v2/objects/people/records");
    assert_eq!(requests[0].query["matching_attribute"], "retl_id");
    let plan = |id: usize| ["free", "pro", "enterprise"][id % 3];
    let bodies: Vec<Value> = requests.iter().map(|r| r.body.clone()).collect();
    let expected: Vec<Value> = (1..=2usize)
        .map(|id| {
            json!({"data": {"values": {"email_addresses": format!("user{id}@example.com"),
                                       "job_title": "Customer", "plan": plan(id),
                                       "retl_id": id.to_string()}}})
        })
        .collect();
    assert_eq!(bodies, expected);

    let mut changed = rows.clone();
    changed[1].plan = Some("team".to_string());
    retl_tests::write_parquet(&h.path("customers.parquet"), &changed);
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(subject.emu.records("people").len(), 2);
    assert_eq!(
        subject.emu.find("people", "retl_id", "2").unwrap()["plan"],
        "team"
    );
    let operations: Vec<&str> = subject.emu.writes().iter().map(|w| w.operation).collect();
    assert_eq!(operations, ["create", "create", "update"]);
}
