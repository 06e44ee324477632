//! The `pipedrive` destination against `retl_testkit`'s Pipedrive emulator: `upsert_person`
//! is the upsert action, `delete_person` the delete action; plus a sync whose persons the
//! emulator checks field by field.
//!
//! The suite's model is keyed by `id`, so persons are matched by a custom field holding it
//! ([`RETL_ID`], `person_match_field`), and the mapped `plan` goes to a custom field
//! ([`PLAN`]); Pipedrive needs a `name` to add a person, so the upsert mapping also maps
//! `name` (from the email column).
//!
//! [`Observed`] shows each write in the suite's shape `{"key", "change", "fields"}`: an add
//! (`POST /v1/persons`) or update (`PUT /v1/persons/{id}`) is an `added` record keyed by
//! the [`RETL_ID`] value it carries, its fields the body without it (with `plan` under its
//! name); a delete (`DELETE /v1/persons/{id}`) is a `deleted` record. A search precedes every
//! write; it carries no record and is shown only when it fails (then it is where the
//! record's delivery stopped), so a delete of a person who is not there, which ends at its
//! search, is not observed: [`Subject::observes_unchanged`] does not apply.

use retl_proto::v1;
use retl_testkit::PipedriveEmulator;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const TOKEN: &str = "c0ffee0123456789c0ffee0123456789c0ffee01";
/// The custom field holding the model's id.
const RETL_ID: &str = "8f1e2d3c4b5a69788f1e2d3c4b5a69788f1e2d3c";
/// The custom field receiving `plan`.
const PLAN: &str = "a0b1c2d3e4f5a6b7c8d9a0b1c2d3e4f5a6b7c8d9";

/// A Pipedrive emulator accepting [`TOKEN`].
pub(crate) struct PipedriveSubject {
    emu: PipedriveEmulator,
}

impl PipedriveSubject {
    async fn start() -> Self {
        PipedriveSubject {
            emu: PipedriveEmulator::start(TOKEN).await.unwrap(),
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

impl Subject for PipedriveSubject {
    fn destination_type(&self) -> &'static str {
        "pipedrive"
    }

    fn config(&self) -> Value {
        json!({"api_token": TOKEN, "base_url": self.emu.base_url(), "person_match_field": RETL_ID})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_person", None)
    }

    fn upsert_fields(&self) -> Vec<v1::FieldMapping> {
        vec![
            column("name", "email"),
            column("email", "email"),
            column(PLAN, "plan"),
        ]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_person", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let delete = change == "deleted";
        self.emu
            .writes()
            .into_iter()
            .filter(|w| (w.operation == "delete") == delete)
            .filter_map(|w| key(w.body.get(RETL_ID)))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"api_token": "revoked0000", "base_url": self.emu.base_url(), "person_match_field": RETL_ID}),
            "unauthorized access",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        let deleted: Vec<(u64, Option<i64>)> = self
            .emu
            .writes()
            .into_iter()
            .filter(|w| w.operation == "delete")
            .map(|w| (w.id, key(w.body.get(RETL_ID))))
            .collect();
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter_map(|r| {
                let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
                let records = match (r.method.as_str(), segments.as_slice()) {
                    ("POST", ["v1", "persons"]) | ("PUT", ["v1", "persons", _]) => {
                        let mut fields: Map<String, Value> =
                            r.body.as_object().cloned().unwrap_or_default();
                        let k = key(fields.remove(RETL_ID).as_ref());
                        if let Some(plan) = fields.remove(PLAN) {
                            fields.insert("plan".into(), plan);
                        }
                        vec![json!({"key": k, "change": "added", "fields": fields})]
                    }
                    ("DELETE", ["v1", "persons", id]) => {
                        let k = id.parse::<u64>().ok().and_then(|id| {
                            deleted.iter().find(|(d, _)| *d == id).and_then(|(_, k)| *k)
                        });
                        vec![json!({"key": k, "change": "deleted"})]
                    }
                    ("GET", ["v1", "persons", "search"]) if r.status >= 300 => Vec::new(),
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

    fn observes_unchanged(&self) -> Capability<()> {
        Err(NotApplicable(
            "a record's search is shown only when it fails: a delete of a person who is not there ends at its search and is not observed",
        ))
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
        // The search finds nothing: the delete is accepted without a DELETE.
        let values: Vec<String> = keys.iter().map(i64::to_string).collect();
        self.emu.forget("persons", RETL_ID, &values);
        Ok(())
    }
}

conformance_suite!(PipedriveSubject::start().await);

/// Persons arrive with the mapped fields and the match value in its custom field; a second
/// sync of a changed record updates the person found by the search.
#[tokio::test]
async fn a_sync_adds_then_updates_persons_by_their_custom_id() {
    let subject = PipedriveSubject::start().await;
    let h = Harness::start().await;
    let rows = customers(2);
    h.warehouse(&rows).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("pd", "pipedrive", subject.config())
        .await
        .unwrap();
    let fields = vec![
        literal("name", json!("Customer")),
        column("email", "email"),
        literal("visible_to", json!("3")),
        column(PLAN, "plan"),
    ];
    h.create_mapping_with("up", "m", "pd", "upsert_person", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let plan = |id: usize| ["free", "pro", "enterprise"][id % 3];
    let bodies: Vec<Value> = subject.emu.writes().into_iter().map(|w| w.body).collect();
    let expected: Vec<Value> = (1..=2usize)
        .map(|id| {
            json!({"name": "Customer", "email": format!("user{id}@example.com"),
                   "visible_to": "3", PLAN: plan(id), RETL_ID: id.to_string()})
        })
        .collect();
    assert_eq!(bodies, expected);
    let requests = subject.emu.requests();
    assert_eq!(requests[0].path, "/v1/persons/search");
    assert_eq!(requests[0].query["fields"], "custom_fields");
    assert_eq!(requests[0].header("x-api-token"), Some(TOKEN));

    subject.emu.clear();
    let mut changed = rows.clone();
    changed[0].plan = Some("team".to_string());
    retl_tests::write_parquet(&h.path("customers.parquet"), &changed);
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let writes = subject.emu.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].operation, "update");
    assert_eq!(subject.emu.records("persons").len(), 2);
    assert_eq!(
        subject.emu.find("persons", RETL_ID, "1").unwrap()[PLAN],
        "team"
    );
}
