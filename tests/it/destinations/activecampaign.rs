//! The `activecampaign` destination against `retl_testkit`'s ActiveCampaign emulator:
//! `sync_contact` (`POST /api/3/contact/sync`, one contact per request) is the upsert action;
//! and syncs whose contacts, refused key, throttling and email-keyed deletes the emulator
//! checks.
//!
//! ActiveCampaign takes one contact per request, so the suite's checks of how batches are cut
//! (by count, by bytes), which read the API's requests as batches, do not apply: the suite
//! gets no request log ([`Subject::requests`] is not applicable), and this file checks the
//! refused key and the throttling itself. Contacts are found by email for deletes: the
//! suite's delete checks, keyed by an integer id, do not apply either;
//! `deletes_follow_an_email_keyed_model` covers them.

use std::time::Duration;

use retl_proto::v1;
use retl_testkit::ActiveCampaignEmulator;
use retl_tests::{Harness, column, counts, customers};
use serde_json::{Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const KEY: &str = "c0ffee0011112222333344445555aaaac0ffee0011112222333344445555aaaa0123abcd";

/// An ActiveCampaign emulator accepting [`KEY`].
pub(crate) struct ActiveCampaignSubject {
    emu: ActiveCampaignEmulator,
}

impl ActiveCampaignSubject {
    async fn start() -> Self {
        ActiveCampaignSubject {
            emu: ActiveCampaignEmulator::start(KEY).await.unwrap(),
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

impl Subject for ActiveCampaignSubject {
    fn destination_type(&self) -> &'static str {
        "activecampaign"
    }

    fn config(&self) -> Value {
        json!({"api_key": KEY, "api_url": self.emu.url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("sync_contact", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_contact", None)
    }

    fn deletes(&self) -> Capability<()> {
        Err(NotApplicable(
            "ActiveCampaign finds contacts to delete by email, and the suite's records are keyed by an integer id; deletes_follow_an_email_keyed_model covers deletes",
        ))
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        match change {
            "added" => self
                .emu
                .synced()
                .iter()
                .filter_map(|c| c["email"].as_str())
                .map(id_of)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"api_key": "revoked0000", "api_url": self.emu.url()}),
            "Forbidden",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Err(NotApplicable(
            "ActiveCampaign takes one contact per request, so the checks of how batches are cut do not apply; refused_key_stops_the_run and throttling_waits_for_retry_after cover the rest",
        ))
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

conformance_suite!(ActiveCampaignSubject::start().await);

async fn contacts_mapping(h: &Harness, subject: &ActiveCampaignSubject, rows: i64, limits: Value) {
    h.warehouse(&customers(rows)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let mut config = subject.config();
    config["limits"] = limits;
    h.create_destination("ac", "activecampaign", config)
        .await
        .unwrap();
    let fields = vec![column("email", "email"), column("12", "plan")];
    h.create_mapping_with("up", "m", "ac", "sync_contact", fields, None)
        .await
        .unwrap();
}

/// Contacts: exactly what ActiveCampaign receives, one request each.
#[tokio::test]
async fn syncs_send_exact_contacts() {
    let subject = ActiveCampaignSubject::start().await;
    let h = Harness::start().await;
    contacts_mapping(&h, &subject, 3, json!({})).await;
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let plan = |id: usize| ["free", "pro", "enterprise"][id % 3];
    let mut synced = subject.emu.synced();
    synced.sort_by_key(|c| id_of(c["email"].as_str().unwrap()));
    let expected: Vec<Value> = (1..=3usize)
        .map(|id| {
            json!({"email": format!("user{id}@example.com"),
                   "fieldValues": [{"field": "12", "value": plan(id)}]})
        })
        .collect();
    assert_eq!(synced, expected);
    assert_eq!(subject.emu.requests().len(), 3, "one request per contact");
}

/// A refused key stops the run at its first request, with ActiveCampaign's reason.
#[tokio::test]
async fn refused_key_stops_the_run() {
    let subject = ActiveCampaignSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(10)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let mut config = json!({"api_key": "revoked0000", "api_url": subject.emu.url()});
    config["limits"] = json!({"max_in_flight": 1, "max_attempts": 2, "initial_backoff_ms": 10});
    h.create_destination("ac", "activecampaign", config)
        .await
        .unwrap();
    h.create_mapping_with(
        "up",
        "m",
        "ac",
        "sync_contact",
        vec![column("email", "email")],
        None,
    )
    .await
    .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    assert!(run.error.contains("Forbidden"), "{}", run.error);
    assert_eq!(
        subject.emu.requests().len(),
        1,
        "the run stopped at the refusal"
    );
    assert!(subject.emu.synced().is_empty());
}

/// After a 429 with `Retry-After: 1`, no request comes before the second is over.
#[tokio::test]
async fn throttling_waits_for_retry_after() {
    let subject = ActiveCampaignSubject::start().await;
    subject.emu.throttle_next(1, 1);
    let h = Harness::start().await;
    contacts_mapping(
        &h,
        &subject,
        4,
        json!({"max_in_flight": 1, "initial_backoff_ms": 10, "max_backoff_ms": 50}),
    )
    .await;
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let requests = subject.emu.requests();
    assert_eq!(requests[0].status, 429);
    assert_eq!(requests.len(), 5, "one throttled request and four accepted");
    let gap = requests[1]
        .received_at
        .duration_since(requests[0].received_at)
        .unwrap_or_default();
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
    // The documented 5 requests/s: four requests after the pause take at least 0.6 s.
    let rest = requests[4]
        .received_at
        .duration_since(requests[1].received_at)
        .unwrap_or_default();
    assert!(rest >= Duration::from_millis(550), "{rest:?}");
}

/// With a model keyed by email, deleted records are looked up by email and deleted by id; a
/// contact already gone is success.
#[tokio::test]
async fn deletes_follow_an_email_keyed_model() {
    let subject = ActiveCampaignSubject::start().await;
    let h = Harness::start().await;
    let rows = customers(8);
    h.warehouse(&rows).await;
    h.create_model("m", "wh", "SELECT email, plan FROM customers", "email")
        .await
        .unwrap();
    h.create_destination("ac", "activecampaign", subject.config())
        .await
        .unwrap();
    h.create_mapping_with(
        "up",
        "m",
        "ac",
        "sync_contact",
        vec![column("email", "email")],
        None,
    )
    .await
    .unwrap();
    h.create_mapping("del", "m", "ac", "delete_contact", &[], None)
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
    let mut gone = subject.emu.deleted();
    gone.sort();
    assert_eq!(gone, [email_of(2), email_of(3)]);
    assert!(subject.emu.contact(&email_of(4)).is_some());
}
