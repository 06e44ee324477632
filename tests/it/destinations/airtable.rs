//! The `airtable` destination against `retl_testkit`'s Airtable emulator: `upsert_records`
//! (PATCH with `performUpsert` on the merge field `id`) is the upsert action,
//! `delete_records` (lookup by `filterByFormula`, then DELETE by record id) the delete action;
//! and a sync whose rows the emulator holds field by field.
//!
//! Observed records are shown in the suite's shape: a PATCH record as `{"key": <id>,
//! "change": "added", "fields": <its fields without id>}` (the payload the engine batched,
//! `id` being unmapped); each key a delete's lookup formula names as a `deleted` record.

use retl_testkit::AirtableEmulator;
use retl_tests::{Harness, column, customers};
use serde_json::{Map, Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const TOKEN: &str = "patCONFORMANCE.0123456789";
const BASE: &str = "appCONFORMANCE001";
const TABLE: &str = "Customers";

/// An Airtable emulator of [`BASE`] with table [`TABLE`], accepting [`TOKEN`].
pub(crate) struct AirtableSubject {
    emu: AirtableEmulator,
}

impl AirtableSubject {
    async fn start() -> Self {
        AirtableSubject {
            emu: AirtableEmulator::start(TOKEN, BASE, &[TABLE])
                .await
                .unwrap(),
        }
    }

    fn config_with(&self, token: &str) -> Value {
        json!({"access_token": token, "base_id": BASE, "table": TABLE, "merge_field": "id", "api_url": self.emu.url()})
    }
}

fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .expect("integer id")
}

/// The keys of a lookup formula `OR({id}=1,{id}=2)`.
fn formula_keys(formula: &str) -> Vec<i64> {
    formula
        .trim_start_matches("OR(")
        .trim_end_matches(')')
        .split(',')
        .filter_map(|t| {
            t.split_once('=')
                .and_then(|(_, v)| v.trim_matches('"').parse().ok())
        })
        .collect()
}

impl Subject for AirtableSubject {
    fn destination_type(&self) -> &'static str {
        "airtable"
    }

    fn config(&self) -> Value {
        self.config_with(TOKEN)
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_records", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_records", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        match change {
            "added" => self
                .emu
                .written()
                .iter()
                .map(|r| int(&r.fields["id"]))
                .collect(),
            "deleted" => self
                .emu
                .deleted()
                .iter()
                .map(|r| int(&r.fields["id"]))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            self.config_with("patNOT.THE.TOKEN"),
            "Authentication required",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .map(|r| {
                let records = match r.method.as_str() {
                    "PATCH" => r.body["records"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|record| {
                            let mut fields: Map<String, Value> =
                                record["fields"].as_object().cloned().unwrap_or_default();
                            let id = fields.remove("id").unwrap_or(Value::Null);
                            json!({"key": id, "change": "added", "fields": fields})
                        })
                        .collect(),
                    "GET" => r
                        .param("filterByFormula")
                        .map(formula_keys)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|k| json!({"key": k, "change": "deleted"}))
                        .collect(),
                    _ => Vec::new(),
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
            "Airtable applies a request whole: one invalid record fails it with 422 and no per-record results, so the other records of its batch are rejected with it",
        ))
    }

    fn splits_by_bytes(&self) -> Capability<()> {
        Err(NotApplicable(
            "Airtable takes 10 records per request, so every batch of the suite's ~80-byte records closes at the count limit long before the 2,048-byte budget",
        ))
    }

    fn throttle_next(&self, seconds: u64) -> Capability<()> {
        // Airtable's own 429 carries no Retry-After (the client then waits the documented
        // 30 s, checked in the connector's tests); the suite's 1 s throttle sends one.
        self.emu.fail_next(1, 429, Some(seconds));
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
        let values: Vec<String> = keys.iter().map(i64::to_string).collect();
        self.emu.forget(TABLE, "id", &values);
        Ok(())
    }
}

conformance_suite!(AirtableSubject::start().await);

/// The rows Airtable holds after a sync: the mapped fields under their names and the unique
/// id in the merge field; a second run with a changed value updates the row in place.
#[tokio::test]
async fn a_sync_upserts_rows_by_the_merge_field() {
    let subject = AirtableSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("at", "airtable", subject.config())
        .await
        .unwrap();
    let fields = vec![column("Email", "email"), column("Plan", "plan")];
    h.create_mapping_with("rows", "m", "at", "upsert_records", fields, None)
        .await
        .unwrap();
    let run = h.sync("rows").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::Succeeded,
        "{run:?}"
    );
    let plan = |id: i64| ["free", "pro", "enterprise"][usize::try_from(id % 3).unwrap()];
    let rows: Vec<Value> = subject
        .emu
        .rows(TABLE)
        .into_iter()
        .map(|r| Value::Object(r.fields))
        .collect();
    let expected: Vec<Value> = (1..=3)
        .map(|id| json!({"Email": format!("user{id}@example.com"), "Plan": plan(id), "id": id}))
        .collect();
    assert_eq!(rows, expected);
    let patch = &subject.emu.requests()[0];
    assert_eq!(
        patch.body["performUpsert"],
        json!({"fieldsToMergeOn": ["id"]})
    );
}
