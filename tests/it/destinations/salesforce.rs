//! The `salesforce` destination against `retl_testkit`'s Salesforce emulator: every check
//! applies, plus a sync whose requests the emulator checks field by field.
//!
//! Contacts are matched by the external id field `Retl_Id__c`, which holds the model's `id`
//! (the record's key, also what deletes look up). The records of [`Observed`] are the API's
//! records in the suite's shape: `key` is the external id value Salesforce received (as the
//! model's integer), `fields` the other fields it received; Salesforce does not tell added
//! from updated, so every write is `added`, and the lookups and deletes of a delete are
//! `deleted`. Token requests are not deliveries and are left out, except a refused one, which
//! is the run's refused request. Salesforce throttles with `403 REQUEST_LIMIT_EXCEEDED`
//! (not 429): [`Observed::status`] reports it as the suite's throttling status, 429.

use retl_proto::v1;
use retl_testkit::emulators::salesforce::{
    SalesforceEmulator, SalesforceOptions, TEST_PRIVATE_KEY_PEM,
};
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Value, json};

use super::{Capability, Observed, Subject};

const CLIENT_ID: &str = "3MVG9-conformance";
const SECRET: &str = "conformance-secret";
const USERNAME: &str = "sync@example.com";

async fn emulator() -> SalesforceEmulator {
    SalesforceEmulator::start(SalesforceOptions {
        client_id: CLIENT_ID.into(),
        client_secret: SECRET.into(),
        username: USERNAME.into(),
        jwt_key_pem: Some(TEST_PRIVATE_KEY_PEM.to_string()),
        object: "Contact".into(),
        fields: vec![
            ("Email".into(), "email".into()),
            ("LastName".into(), "string".into()),
            ("Plan__c".into(), "picklist".into()),
            ("Retl_Id__c".into(), "string".into()),
        ],
        external_id_field: "Retl_Id__c".into(),
    })
    .await
    .unwrap()
}

/// A Salesforce emulator with Contact fields `Email`, `LastName`, `Plan__c`, `Retl_Id__c`.
pub(crate) struct SalesforceSubject {
    org: SalesforceEmulator,
}

impl SalesforceSubject {
    async fn start() -> Self {
        SalesforceSubject {
            org: emulator().await,
        }
    }

    fn key(value: Option<&str>) -> Option<i64> {
        value.and_then(|s| s.parse().ok())
    }
}

impl Subject for SalesforceSubject {
    fn destination_type(&self) -> &'static str {
        "salesforce"
    }

    fn config(&self) -> Value {
        json!({"login_url": self.org.url(), "client_id": CLIENT_ID, "client_secret": SECRET,
               "object": "Contact", "external_id_field": "Retl_Id__c"})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_record", None)
    }

    fn upsert_fields(&self) -> Vec<v1::FieldMapping> {
        vec![column("Email", "email"), column("Plan__c", "plan")]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_record", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let deleting = change == "deleted";
        self.org
            .records()
            .into_iter()
            .filter(|r| (r.operation == "delete") == deleting)
            .filter_map(|r| Self::key(r.external_id.as_deref()))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"login_url": self.org.url(), "client_id": CLIENT_ID, "client_secret": "revoked",
                   "object": "Contact", "external_id_field": "Retl_Id__c"}),
            "invalid client credentials",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        let deleted: Vec<(String, Option<i64>)> = self
            .org
            .records()
            .into_iter()
            .filter(|r| r.operation == "delete")
            .map(|r| (r.id, Self::key(r.external_id.as_deref())))
            .collect();
        let answers = self.org.answers();
        Ok(self
            .org
            .requests()
            .into_iter()
            .zip(answers)
            .filter(|(r, _)| !(r.path.starts_with("/services/oauth2/token") && r.status == 200))
            .map(|(r, answer)| {
                let records: Vec<Value> = if r.method == "DELETE" {
                    let ids = r.path.split("ids=").nth(1).and_then(|s| s.split('&').next()).unwrap_or("");
                    ids.split(',')
                        .map(|id| {
                            let key = deleted.iter().find(|(d, _)| d == id).and_then(|(_, k)| *k);
                            json!({"key": key, "change": "deleted"})
                        })
                        .collect()
                } else if r.path.contains("/query?") {
                    let soql = percent_decode(r.path.split("q=").nth(1).unwrap_or(""));
                    let list = soql.split(" IN (").nth(1).unwrap_or("");
                    list.trim_end_matches(')')
                        .split(',')
                        .map(|v| json!({"key": Self::key(Some(v.trim_matches('\''))), "change": "deleted"}))
                        .collect()
                } else {
                    r.body["records"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|record| {
                            let mut fields = record.as_object().cloned().unwrap_or_default();
                            fields.remove("attributes");
                            let key = fields.remove("Retl_Id__c");
                            json!({"key": Self::key(key.as_ref().and_then(Value::as_str)), "change": "added", "fields": fields})
                        })
                        .collect()
                };
                let throttled = r.status == 403 && answer[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED";
                Observed {
                    status: if throttled { 429 } else { r.status },
                    records,
                    at: r.received_at,
                }
            })
            .collect())
    }

    fn reject_keys(&self, keys: &[i64]) -> Capability<()> {
        self.org.reject_keys(keys.iter().map(i64::to_string));
        Ok(())
    }

    fn throttle_next(&self, _seconds: u64) -> Capability<()> {
        // Salesforce sends no Retry-After; the connector waits its documented 2 s.
        self.org.throttle_next();
        Ok(())
    }

    fn fail_everything(&self) -> Capability<()> {
        self.org.fail_next(usize::MAX, 503);
        Ok(())
    }

    fn recover(&self) {
        self.org.clear();
    }

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        let values: Vec<String> = keys.iter().map(i64::to_string).collect();
        self.org.forget(&values);
        Ok(())
    }
}

conformance_suite!(SalesforceSubject::start().await);

/// `%XX` and `+` decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A sync through the daemon with the JWT bearer flow: Salesforce receives exactly the
/// documented collection, with the external id and the mapped fields.
#[tokio::test]
async fn a_sync_sends_salesforce_exactly_the_mapped_records() {
    let org = emulator().await;
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination(
        "sf",
        "salesforce",
        json!({"login_url": org.url(), "client_id": CLIENT_ID, "username": USERNAME,
               "private_key": TEST_PRIVATE_KEY_PEM, "api_version": "61.0",
               "object": "Contact", "external_id_field": "Retl_Id__c"}),
    )
    .await
    .unwrap();
    let fields = vec![
        column("Email", "email"),
        literal("LastName", json!("Customer")),
        column("Plan__c", "plan"),
    ];
    h.create_mapping_with("up", "m", "sf", "upsert_record", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");

    let requests = org.requests();
    assert_eq!(
        requests.len(),
        2,
        "a token, then one collection: {requests:?}"
    );
    let token = String::from_utf8_lossy(&requests[0].raw_body).into_owned();
    assert!(
        token.starts_with(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
        ),
        "{token}"
    );
    let upsert = &requests[1];
    assert_eq!(upsert.method, "PATCH");
    assert_eq!(
        upsert.path,
        "/services/data/v61.0/composite/sobjects/Contact/Retl_Id__c"
    );
    assert_eq!(
        upsert.header("authorization"),
        Some("Bearer 00D000000000001!token1")
    );
    let mut records = upsert.body["records"].as_array().cloned().unwrap();
    records.sort_by_key(|r| r["Retl_Id__c"].as_str().map(str::to_string));
    let expected: Vec<Value> = customers(3)
        .iter()
        .map(|c| {
            json!({"attributes": {"type": "Contact"}, "Email": c.email, "LastName": "Customer",
                   "Plan__c": c.plan, "Retl_Id__c": c.id.unwrap().to_string()})
        })
        .collect();
    assert_eq!(upsert.body["allOrNone"], json!(false));
    assert_eq!(records, expected);
    assert_eq!(org.objects().len(), 3);
}
