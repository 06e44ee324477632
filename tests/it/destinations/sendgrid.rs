//! The `sendgrid` destination against `retl_testkit`'s SendGrid emulator: `upsert_contact`
//! (`PUT /v3/marketing/contacts`) is the upsert action; and syncs whose contacts and
//! email-keyed deletes the emulator checks field by field.
//!
//! SendGrid finds contacts to delete by email: the suite's delete checks, whose records are
//! keyed by an integer id, do not apply; `deletes_follow_an_email_keyed_model` covers deletes
//! (lookup by email, then delete by id) with a model whose unique id is the email.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: a contact's
//! key is the number in its email (`user<id>@example.com`, the `customers` fixture) and its
//! fields are its `email` and `custom_fields`, i.e. the payload the engine batched.

use retl_proto::v1;
use retl_testkit::SendgridEmulator;
use retl_tests::{Harness, column, counts, customers};
use serde_json::{Map, Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const KEY: &str = "SG.conformance0123456789.abcdefghijklmnopqrstuvwxyz_-0123";

/// A SendGrid emulator accepting [`KEY`].
pub(crate) struct SendgridSubject {
    emu: SendgridEmulator,
}

impl SendgridSubject {
    async fn start() -> Self {
        SendgridSubject {
            emu: SendgridEmulator::start(KEY).await.unwrap(),
        }
    }
}

/// The customer id in a fixture email, `user<id>@example.com`.
fn id_of(email: &str) -> i64 {
    email
        .trim_start_matches("user")
        .split('@')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a customers fixture email")
}

fn email_of(id: i64) -> String {
    format!("user{id}@example.com")
}

impl Subject for SendgridSubject {
    fn destination_type(&self) -> &'static str {
        "sendgrid"
    }

    fn config(&self) -> Value {
        json!({"api_key": KEY, "endpoint": self.emu.url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_contact", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_contact", None)
    }

    fn deletes(&self) -> Capability<()> {
        Err(NotApplicable(
            "SendGrid finds contacts to delete by email, and the suite's records are keyed by an integer id; deletes_follow_an_email_keyed_model covers deletes",
        ))
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        match change {
            "added" => self
                .emu
                .upserted()
                .iter()
                .filter_map(|c| c["email"].as_str())
                .map(id_of)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"api_key": "SG.revoked.key", "endpoint": self.emu.url()}),
            "authorization grant is invalid",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .map(|r| {
                let records = r.body["contacts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let mut fields = Map::new();
                        fields.insert("email".into(), c["email"].clone());
                        for (k, v) in c["custom_fields"].as_object().into_iter().flatten() {
                            fields.insert(k.clone(), v.clone());
                        }
                        let key = id_of(c["email"].as_str().unwrap());
                        json!({"key": key, "change": "added", "fields": fields})
                    })
                    .collect();
                Observed {
                    status: r.status,
                    records,
                    at: r.received_at,
                }
            })
            .collect())
    }

    fn reject_keys(&self, keys: &[i64]) -> Capability<()> {
        self.emu.reject_emails(keys.iter().map(|k| email_of(*k)));
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

    fn forget(&self, _keys: &[i64]) -> Capability<()> {
        Err(NotApplicable("see deletes()"))
    }
}

conformance_suite!(SendgridSubject::start().await);

/// Contacts: exactly what SendGrid receives.
#[tokio::test]
async fn syncs_send_exact_contacts() {
    let subject = SendgridSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("sg", "sendgrid", subject.config())
        .await
        .unwrap();
    let fields = vec![column("email", "email"), column("e1_T", "plan")];
    h.create_mapping_with("up", "m", "sg", "upsert_contact", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let plan = |id: usize| ["free", "pro", "enterprise"][id % 3];
    let expected: Vec<Value> = (1..=2usize)
        .map(|id| json!({"email": format!("user{id}@example.com"), "custom_fields": {"e1_T": plan(id)}}))
        .collect();
    assert_eq!(subject.emu.upserted(), expected);
    let requests = subject.emu.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("PUT", "/v3/marketing/contacts")
    );
}

/// With a model keyed by email, deleted records are looked up by email and deleted by id; a
/// contact already gone is success.
#[tokio::test]
async fn deletes_follow_an_email_keyed_model() {
    let subject = SendgridSubject::start().await;
    let h = Harness::start().await;
    let rows = customers(8);
    h.warehouse(&rows).await;
    h.create_model("m", "wh", "SELECT email, plan FROM customers", "email")
        .await
        .unwrap();
    h.create_destination("sg", "sendgrid", subject.config())
        .await
        .unwrap();
    let fields = vec![column("email", "email"), column("plan", "plan")];
    h.create_mapping_with("up", "m", "sg", "upsert_contact", fields, None)
        .await
        .unwrap();
    h.create_mapping("del", "m", "sg", "delete_contact", &[], None)
        .await
        .unwrap();
    for mapping in ["up", "del"] {
        let run = h.sync(mapping).await;
        assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    }
    // user1 is already gone on SendGrid's side.
    subject.emu.forget([email_of(1)]);
    retl_tests::write_parquet(&h.path("customers.parquet"), &rows[3..]);
    subject.emu.clear();
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let (_, _, deleted, delivered, failed) = counts(&run);
    assert_eq!((deleted, delivered, failed), (3, 3, 0), "{run:?}");
    let mut gone = subject.emu.deleted();
    gone.sort();
    assert_eq!(gone, [email_of(2), email_of(3)]);
    assert!(subject.emu.contact(&email_of(4)).is_some());
    let methods: Vec<String> = subject
        .emu
        .requests()
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["POST", "DELETE"], "one lookup, one delete");
    let run = h.sync("del").await;
    assert_eq!(counts(&run).2, 0, "{run:?}");
}
