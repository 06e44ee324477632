//! The `elasticsearch` destination against `retl_testkit`'s Elasticsearch emulator (no
//! Elasticsearch server runs here): `upsert_document` (`_bulk` `update` with `doc_as_upsert`)
//! is the upsert action, `delete_document` (`_bulk` `delete`) the delete action; and a sync
//! whose documents the emulator checks field by field.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: each `update`
//! operation of a bulk request is an `added` record (its `doc` the fields), each `delete` a
//! `deleted` one.

use retl_testkit::{ElasticsearchEmulator, ElasticsearchOptions};
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const KEY: &str = "cmV0bC1jb25mb3JtYW5jZTpzM2NyM3Q=";
const INDEX: &str = "customers";

/// An Elasticsearch emulator accepting [`KEY`].
pub(crate) struct ElasticsearchSubject {
    emu: ElasticsearchEmulator,
}

impl ElasticsearchSubject {
    async fn start() -> Self {
        ElasticsearchSubject {
            emu: ElasticsearchEmulator::start(ElasticsearchOptions::api_key(KEY))
                .await
                .unwrap(),
        }
    }
}

fn int(id: &str) -> i64 {
    id.parse().expect("integer _id")
}

impl Subject for ElasticsearchSubject {
    fn destination_type(&self) -> &'static str {
        "elasticsearch"
    }

    fn config(&self) -> Value {
        json!({"url": self.emu.url(), "index": INDEX, "api_key": KEY})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_document", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_document", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let op = match change {
            "added" => "update",
            "deleted" => "delete",
            _ => return Vec::new(),
        };
        self.emu
            .operations()
            .iter()
            .filter(|o| o.op == op)
            .map(|o| int(&o.id))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"url": self.emu.url(), "index": INDEX, "api_key": "bm90OnRoZS1rZXk="}),
            "unable to authenticate with provided credentials",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/_bulk"))
            .map(|r| {
                let lines = r.body.as_array().cloned().unwrap_or_default();
                let mut records = Vec::new();
                let mut lines = lines.into_iter();
                while let Some(action) = lines.next() {
                    if let Some(meta) = action.get("delete") {
                        let id = meta["_id"].as_str().unwrap_or_default();
                        records.push(json!({"key": int(id), "change": "deleted"}));
                    } else if let Some(meta) = action.get("update") {
                        let id = meta["_id"].as_str().unwrap_or_default();
                        let source = lines.next().unwrap_or(Value::Null);
                        records.push(
                            json!({"key": int(id), "change": "added", "fields": source["doc"]}),
                        );
                    }
                }
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
        Err(NotApplicable(
            "Elasticsearch's 429 (es_rejected_execution_exception) carries no Retry-After to obey: the wait is the engine's backoff; the connector's tests check that a 429 is classified as throttled",
        ))
    }

    fn fail_everything(&self) -> Capability<()> {
        self.emu.fail_everything();
        Ok(())
    }

    fn recover(&self) {
        self.emu.clear();
    }

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        // A bulk delete of a missing document answers its item 404 "not_found".
        self.emu.forget(INDEX, keys.iter().map(i64::to_string));
        Ok(())
    }
}

conformance_suite!(ElasticsearchSubject::start().await);

/// A sync through the daemon: each record is a document whose `_id` is the unique id and
/// whose fields are the mapped values; a re-sync merges into the document.
#[tokio::test]
async fn a_sync_writes_documents_by_id_and_merges_updates() {
    let emu = ElasticsearchEmulator::start(ElasticsearchOptions::api_key(KEY))
        .await
        .unwrap();
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination(
        "search",
        "elasticsearch",
        json!({"url": emu.url(), "index": INDEX, "api_key": KEY}),
    )
    .await
    .unwrap();
    let fields = vec![
        column("email", "email"),
        column("plan", "plan"),
        literal("source", json!("retl")),
    ];
    h.create_mapping_with("up", "m", "search", "upsert_document", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    for c in customers(3) {
        let id = c.id.unwrap().to_string();
        let doc = emu.document(INDEX, &id).expect("the document exists");
        assert_eq!(
            Value::Object(doc),
            json!({"email": c.email, "plan": c.plan, "source": "retl"})
        );
    }
    let bulk = emu
        .requests()
        .into_iter()
        .find(|r| r.path == "/customers/_bulk")
        .unwrap();
    assert_eq!(bulk.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(bulk.body[0], json!({"update": {"_id": "1"}}));
    assert_eq!(bulk.body[1]["doc_as_upsert"], json!(true));

    // A changed plan is merged into its document.
    let mut changed = customers(3);
    changed[1].plan = Some("team".to_string());
    retl_tests::write_parquet(&h.path("customers.parquet"), &changed);
    let run = h.sync("up").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    assert_eq!(emu.document(INDEX, "2").unwrap()["plan"], json!("team"));
    assert_eq!(emu.count(INDEX), 3);
}
