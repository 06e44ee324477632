//! The `intercom` destination against `retl_testkit`'s Intercom emulator: `upsert_contact` is
//! the upsert action, `archive_contact` the delete action; plus a sync whose contacts the
//! emulator checks field by field, and one that updates and archives existing contacts.
//!
//! Intercom takes one contact per request and a record may cost several calls, so
//! [`Observed`] shows each call in the suite's shape `{"key", "change", "fields"}`: a create
//! (`POST /contacts`) or update (`PUT /contacts/{id}`) is an `added` record keyed by its
//! `external_id` (the record's unique id: the mapping leaves `external_id` unmapped), its
//! fields the body without `role` and `external_id` and with the custom attributes (where the
//! mapped `plan` lands) flattened; a look-up by external id and an archive are `deleted`
//! records (in the suite's runs only deletes look contacts up: every upserted record there
//! is new, so it is one create). `GET /me` carries no record.

use retl_proto::v1;
use retl_testkit::IntercomEmulator;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, Observed, Subject};

/// The access token the emulator accepts.
const TOKEN: &str = "dG9rOmNvbmZvcm1hbmNlLXRva2Vu";

/// An Intercom emulator accepting [`TOKEN`].
pub(crate) struct IntercomSubject {
    emu: IntercomEmulator,
}

impl IntercomSubject {
    async fn start() -> Self {
        IntercomSubject {
            emu: IntercomEmulator::start(TOKEN).await.unwrap(),
        }
    }
}

fn int(id: &str) -> Option<i64> {
    id.parse().ok()
}

/// A write body as the suite's record: key from `external_id`, fields flattened.
fn written(body: &Value) -> Value {
    let mut fields: Map<String, Value> = body.as_object().cloned().unwrap_or_default();
    let key = fields
        .remove("external_id")
        .and_then(|v| v.as_str().and_then(int));
    fields.remove("role");
    if let Some(Value::Object(custom)) = fields.remove("custom_attributes") {
        fields.extend(custom);
    }
    json!({"key": key, "change": "added", "fields": fields})
}

impl Subject for IntercomSubject {
    fn destination_type(&self) -> &'static str {
        "intercom"
    }

    fn config(&self) -> Value {
        json!({"access_token": TOKEN, "base_url": self.emu.base_url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_contact", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("archive_contact", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let archive = change == "deleted";
        self.emu
            .writes()
            .into_iter()
            .filter(|w| (w.operation == "archive") == archive)
            .filter_map(|w| w.external_id.as_deref().and_then(int))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"access_token": "revoked-token", "base_url": self.emu.base_url()}),
            "Access Token Invalid",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .map(|r| {
                let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
                let records = match (r.method.as_str(), segments.as_slice()) {
                    ("POST", ["contacts"]) | ("PUT", ["contacts", _]) => vec![written(&r.body)],
                    ("GET", ["contacts", "find_by_external_id", id]) => {
                        vec![json!({"key": int(id), "change": "deleted"})]
                    }
                    ("POST", ["contacts", id, "archive"]) => {
                        let key = self.emu.external_id_of(id).as_deref().and_then(int);
                        vec![json!({"key": key, "change": "deleted"})]
                    }
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
        // The look-up by external id answers 404 for them: the archive is accepted.
        self.emu.forget(keys.iter().map(i64::to_string));
        Ok(())
    }
}

conformance_suite!(IntercomSubject::start().await);

/// Contacts arrive with Intercom's attribute names and types: `role: user`, the unique id as
/// `external_id`, `signed_up_at` in UNIX seconds, undeclared fields as custom attributes.
#[tokio::test]
async fn a_sync_creates_contacts_with_intercom_attributes() {
    let subject = IntercomSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("ic", "intercom", subject.config())
        .await
        .unwrap();
    let fields = vec![
        column("email", "email"),
        literal("signed_up_at", json!("2026-01-02T03:04:05Z")),
        literal("unsubscribed_from_emails", json!(false)),
        column("plan", "plan"),
    ];
    h.create_mapping_with("up", "m", "ic", "upsert_contact", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let plan = |id: usize| ["free", "pro", "enterprise"][id % 3];
    let bodies: Vec<Value> = subject.emu.writes().into_iter().map(|w| w.body).collect();
    let expected: Vec<Value> = (1..=2usize)
        .map(|id| {
            json!({"role": "user", "external_id": id.to_string(),
                   "email": format!("user{id}@example.com"), "signed_up_at": 1_767_323_045,
                   "unsubscribed_from_emails": false, "custom_attributes": {"plan": plan(id)}})
        })
        .collect();
    assert_eq!(bodies, expected);
    for request in subject.emu.requests() {
        assert_eq!(request.header("intercom-version"), Some("2.13"));
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/contacts")
        );
    }
    let contact = subject.emu.contact("2").unwrap();
    assert_eq!(contact.custom_attributes["plan"], "enterprise");
}

/// Contacts that exist already (made by another tool) are looked up and updated, not
/// duplicated; a record leaving the model archives its contact.
#[tokio::test]
async fn existing_contacts_are_updated_and_archived() {
    let subject = IntercomSubject::start().await;
    let existing = subject
        .emu
        .insert("user", Some("1"), json!({"email": "old@example.com"}));
    let h = Harness::start().await;
    let rows = customers(3);
    h.warehouse(&rows).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("ic", "intercom", subject.config())
        .await
        .unwrap();
    h.create_mapping_with(
        "up",
        "m",
        "ic",
        "upsert_contact",
        subject.upsert_fields(),
        None,
    )
    .await
    .unwrap();
    h.create_mapping("del", "m", "ic", "archive_contact", &[], None)
        .await
        .unwrap();
    for mapping in ["up", "del"] {
        let run = h.sync(mapping).await;
        assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    }
    assert_eq!(subject.emu.contacts().len(), 3, "no duplicate of contact 1");
    let one = subject.emu.contact("1").unwrap();
    assert_eq!(one.id, existing);
    assert_eq!(one.attributes["email"], "user1@example.com");
    let operations: Vec<(&str, Option<String>)> = subject
        .emu
        .writes()
        .iter()
        .map(|w| (w.operation, w.external_id.clone()))
        .collect();
    assert!(
        operations.contains(&("update", Some("1".to_string()))),
        "{operations:?}"
    );

    retl_tests::write_parquet(&h.path("customers.parquet"), &rows[1..]);
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert!(subject.emu.contact("1").unwrap().archived);
    assert!(!subject.emu.contact("2").unwrap().archived);
}
