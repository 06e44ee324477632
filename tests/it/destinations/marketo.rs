//! The `marketo` destination against `retl_testkit`'s Marketo emulator: `upsert_lead` is the
//! upsert action, `delete_lead` the delete action; plus a sync whose leads the emulator
//! checks field by field (the renewal of an expired token is covered by the connector's
//! round-trip test).
//!
//! The suite's model is keyed by `id`, so leads are matched by a custom dedupe field `retlId`
//! holding it (`lookup_field`). [`Observed`] shows each REST call in the suite's shape
//! `{"key", "change", "fields"}`: each lead of `POST /rest/v1/leads.json` is an `added`
//! record keyed by its `retlId`, its fields the lead without it; each filter value of the
//! look-up (`GET /rest/v1/leads.json`, which only deletes make) and each deleted lead is a
//! `deleted` record. The token request is shown only when it fails. Marketo answers its
//! throttle (error 606) with HTTP 200; such an answer is shown with status 429, what it
//! means.

use retl_proto::v1;
use retl_testkit::MarketoEmulator;
use retl_testkit::emulators::common::percent_decode;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, Observed, Subject};

const CLIENT_ID: &str = "0a1b2c3d-conformance";
const CLIENT_SECRET: &str = "conformanceClientSecret";

/// A Marketo emulator accepting [`CLIENT_ID`] and [`CLIENT_SECRET`].
pub(crate) struct MarketoSubject {
    emu: MarketoEmulator,
}

impl MarketoSubject {
    async fn start() -> Self {
        MarketoSubject {
            emu: MarketoEmulator::start(CLIENT_ID, CLIENT_SECRET)
                .await
                .unwrap(),
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

impl Subject for MarketoSubject {
    fn destination_type(&self) -> &'static str {
        "marketo"
    }

    fn config(&self) -> Value {
        json!({"base_url": self.emu.base_url(), "client_id": CLIENT_ID,
               "client_secret": CLIENT_SECRET, "lookup_field": "retlId"})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_lead", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_lead", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let delete = change == "deleted";
        self.emu
            .writes()
            .into_iter()
            .filter(|w| (w.status == "deleted") == delete)
            .filter_map(|w| key(w.lead.get("retlId")))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"base_url": self.emu.base_url(), "client_id": CLIENT_ID,
                   "client_secret": "revoked", "lookup_field": "retlId"}),
            "Bad client credentials",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        let deleted: Vec<(i64, Option<i64>)> = self
            .emu
            .writes()
            .into_iter()
            .filter(|w| w.status == "deleted")
            .map(|w| (w.id, key(w.lead.get("retlId"))))
            .collect();
        let codes = self.emu.codes();
        Ok(self
            .emu
            .requests()
            .into_iter()
            .zip(codes)
            .filter_map(|(r, code)| {
                let records: Vec<Value> = match (r.method.as_str(), r.path.as_str()) {
                    ("POST", "/identity/oauth/token") if r.status < 300 => return None,
                    ("POST", "/identity/oauth/token") => Vec::new(),
                    ("POST", "/rest/v1/leads.json") => r.body["input"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|lead| {
                            let mut fields: Map<String, Value> =
                                lead.as_object().cloned().unwrap_or_default();
                            let k = key(fields.remove("retlId").as_ref());
                            json!({"key": k, "change": "added", "fields": fields})
                        })
                        .collect(),
                    ("GET", "/rest/v1/leads.json") => r
                        .query
                        .get("filterValues")
                        .map(|v| percent_decode(v.as_str()))
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(|v| v.parse::<i64>().ok())
                        .map(|k| json!({"key": k, "change": "deleted"}))
                        .collect(),
                    ("POST", "/rest/v1/leads/delete.json") => r.body["input"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|item| {
                            let id = item["id"].as_i64();
                            let k = deleted
                                .iter()
                                .find(|(d, _)| Some(*d) == id)
                                .and_then(|(_, k)| *k);
                            json!({"key": k, "change": "deleted"})
                        })
                        .collect(),
                    _ => return None,
                };
                let status = match code.as_deref() {
                    Some("606" | "615") => 429,
                    _ => r.status,
                };
                Some(Observed {
                    status,
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

    fn throttle_next(&self, _seconds: u64) -> Capability<()> {
        // Marketo's 606 carries no wait; retl waits out the 20-second window, which is
        // longer than any wait the suite asks for.
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
        // The look-up finds nothing: the delete is accepted without a delete call.
        let values: Vec<String> = keys.iter().map(i64::to_string).collect();
        self.emu.forget("retlId", &values);
        Ok(())
    }
}

conformance_suite!(MarketoSubject::start().await);

/// Leads arrive as Marketo lead objects with the lookup field; tokens issued before the run
/// expired, the next run obtains a fresh one before its calls.
#[tokio::test]
async fn a_sync_upserts_leads_with_a_fresh_token() {
    let subject = MarketoSubject::start().await;
    let h = Harness::start().await;
    let rows = customers(2);
    h.warehouse(&rows).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("mk", "marketo", subject.config())
        .await
        .unwrap();
    let fields = vec![
        column("email", "email"),
        literal("company", json!("Acme")),
        column("plan", "plan"),
    ];
    h.create_mapping_with("up", "m", "mk", "upsert_lead", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let requests = subject.emu.requests();
    assert_eq!(requests[0].path, "/identity/oauth/token");
    assert!(!requests[0].query.contains_key("client_secret"));
    let plan = |id: usize| ["free", "pro", "enterprise"][id % 3];
    let input: Vec<Value> = (1..=2usize)
        .map(|id| {
            json!({"email": format!("user{id}@example.com"), "company": "Acme",
                   "plan": plan(id), "retlId": id.to_string()})
        })
        .collect();
    assert_eq!(
        requests[1].body,
        json!({"action": "createOrUpdate", "lookupField": "retlId", "input": input})
    );
    assert!(
        requests[1]
            .header("authorization")
            .unwrap()
            .starts_with("Bearer emu-token-")
    );

    subject.emu.expire_tokens();
    let mut changed = rows.clone();
    changed[0].plan = Some("team".to_string());
    retl_tests::write_parquet(&h.path("customers.parquet"), &changed);
    subject.emu.clear();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let calls: Vec<(String, Option<String>)> = subject
        .emu
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .zip(subject.emu.codes())
        .collect();
    assert_eq!(
        calls,
        [
            ("/identity/oauth/token".to_string(), None),
            ("/rest/v1/leads.json".to_string(), None),
        ]
    );
    assert_eq!(subject.emu.lead("retlId", "1").unwrap()["plan"], "team");
}
