//! The `mailchimp` destination against `retl_testkit`'s Mailchimp emulator: `upsert_member`
//! (batch subscribe) is the upsert action; and syncs whose members and email-keyed archives
//! the emulator checks, and whose concurrency stays within Mailchimp's 10 connections.
//!
//! Mailchimp finds members by the MD5 hash of their email: the suite's delete checks, whose
//! records are keyed by an integer id, do not apply; `archives_follow_an_email_keyed_model`
//! covers archives with a model whose unique id is the email.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: a member's
//! key is the number in its email (`user<id>@example.com`, the `customers` fixture) and its
//! fields are its `email_address` (as `email`) and `merge_fields`, i.e. the payload the
//! engine batched.

use std::time::Duration;

use retl_proto::v1;
use retl_testkit::MailchimpEmulator;
use retl_tests::{Harness, column, counts, customers};
use serde_json::{Map, Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const KEY: &str = "c0ffee0011112222333344445555aaaa-us6";
const LIST: &str = "f00dcafe12";

/// A Mailchimp emulator of audience [`LIST`] accepting [`KEY`].
pub(crate) struct MailchimpSubject {
    emu: MailchimpEmulator,
}

impl MailchimpSubject {
    async fn start() -> Self {
        MailchimpSubject {
            emu: MailchimpEmulator::start(KEY, LIST).await.unwrap(),
        }
    }
}

/// The customer id in a fixture email, `user<id>@example.com`.
fn id_of(email: &str) -> i64 {
    email
        .to_lowercase()
        .trim_start_matches("user")
        .split('@')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a customers fixture email")
}

fn email_of(id: i64) -> String {
    format!("user{id}@example.com")
}

impl Subject for MailchimpSubject {
    fn destination_type(&self) -> &'static str {
        "mailchimp"
    }

    fn config(&self) -> Value {
        json!({"api_key": KEY, "list_id": LIST, "endpoint": self.emu.url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_member", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("archive_member", None)
    }

    fn deletes(&self) -> Capability<()> {
        Err(NotApplicable(
            "Mailchimp finds members to archive by the hash of their email, and the suite's records are keyed by an integer id; archives_follow_an_email_keyed_model covers archives",
        ))
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        match change {
            "added" => self
                .emu
                .upserted()
                .iter()
                .filter_map(|m| m["email_address"].as_str())
                .map(id_of)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"api_key": "00000000000000000000000000000000-us6", "list_id": LIST, "endpoint": self.emu.url()}),
            "API Key Invalid",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .map(|r| {
                let records = r.body["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let mut fields = Map::new();
                        fields.insert("email".into(), m["email_address"].clone());
                        for (k, v) in m["merge_fields"].as_object().into_iter().flatten() {
                            fields.insert(k.clone(), v.clone());
                        }
                        let key = id_of(m["email_address"].as_str().unwrap());
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

    fn throttle_next(&self, _seconds: u64) -> Capability<()> {
        // Mailchimp answers 429 without Retry-After; the client waits one second.
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

    fn forget(&self, _keys: &[i64]) -> Capability<()> {
        Err(NotApplicable("see deletes()"))
    }
}

conformance_suite!(MailchimpSubject::start().await);

/// Members: exactly what Mailchimp receives, with the configured status for new members.
#[tokio::test]
async fn syncs_send_exact_members() {
    let subject = MailchimpSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let mut config = subject.config();
    config["status_if_new"] = json!("pending");
    h.create_destination("mc", "mailchimp", config)
        .await
        .unwrap();
    let fields = vec![column("email", "email"), column("PLAN", "plan")];
    h.create_mapping_with("up", "m", "mc", "upsert_member", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let plan = |id: usize| ["free", "pro", "enterprise"][id % 3];
    let expected: Vec<Value> = (1..=2usize)
        .map(|id| {
            json!({"email_address": format!("user{id}@example.com"), "status_if_new": "pending",
                   "merge_fields": {"PLAN": plan(id)}})
        })
        .collect();
    assert_eq!(subject.emu.upserted(), expected);
    let request = &subject.emu.requests()[0];
    assert_eq!(request.path, format!("/3.0/lists/{LIST}"));
    assert_eq!(request.body["update_existing"], true);
    assert_eq!(
        subject.emu.member("user1@example.com").unwrap()["status"],
        "pending"
    );
}

/// With the default 8 requests in flight, slow answers never push the account past its 10
/// simultaneous connections (the emulator would answer 429).
#[tokio::test]
async fn concurrency_stays_within_ten_connections() {
    let subject = MailchimpSubject::start().await;
    subject.emu.delay(Duration::from_millis(150));
    let h = Harness::start().await;
    h.warehouse(&customers(40)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let mut config = subject.config();
    config["limits"] = json!({"batch_size": 1, "requests_per_second": 1000, "burst": 1000});
    h.create_destination("mc", "mailchimp", config)
        .await
        .unwrap();
    h.create_mapping_with(
        "up",
        "m",
        "mc",
        "upsert_member",
        vec![column("email", "email")],
        None,
    )
    .await
    .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let requests = subject.emu.requests();
    assert_eq!(requests.len(), 40, "no request was refused");
    assert!(requests.iter().all(|r| r.status == 200));
}

/// With a model keyed by email, deleted records are archived by subscriber hash; a member
/// already gone (404) is success.
#[tokio::test]
async fn archives_follow_an_email_keyed_model() {
    let subject = MailchimpSubject::start().await;
    let h = Harness::start().await;
    let rows = customers(8);
    h.warehouse(&rows).await;
    h.create_model("m", "wh", "SELECT email, plan FROM customers", "email")
        .await
        .unwrap();
    h.create_destination("mc", "mailchimp", subject.config())
        .await
        .unwrap();
    let fields = vec![column("email", "email"), column("PLAN", "plan")];
    h.create_mapping_with("up", "m", "mc", "upsert_member", fields, None)
        .await
        .unwrap();
    h.create_mapping("del", "m", "mc", "archive_member", &[], None)
        .await
        .unwrap();
    for mapping in ["up", "del"] {
        let run = h.sync(mapping).await;
        assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    }
    subject.emu.forget([email_of(1)]);
    retl_tests::write_parquet(&h.path("customers.parquet"), &rows[3..]);
    subject.emu.clear();
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let (_, _, deleted, delivered, failed) = counts(&run);
    assert_eq!((deleted, delivered, failed), (3, 3, 0), "{run:?}");
    let statuses: Vec<u16> = subject.emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses.len(), 3);
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        1,
        "{statuses:?}"
    );
    let mut archived = subject.emu.archived();
    archived.sort();
    assert_eq!(archived, [email_of(2), email_of(3)]);
    assert!(subject.emu.member(&email_of(4)).is_some());
}
