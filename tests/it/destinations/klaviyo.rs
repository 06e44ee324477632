//! The `klaviyo` destination against `retl_testkit`'s Klaviyo emulator: `upsert_profile` (a
//! bulk import job per batch) is the upsert action; and syncs whose profiles, events and
//! email-keyed deletions the emulator checks field by field.
//!
//! Klaviyo deletes profiles through its data privacy API by email (or phone number, or its
//! own profile id), never by an external id: the suite's delete checks, whose records are
//! keyed by an integer id, do not apply; `deletes_follow_an_email_keyed_model` covers deletes
//! with a model whose unique id is the email.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: for an
//! imported profile the key is its `external_id` (the record's unique id, `external_id` being
//! unmapped) and the fields are its `email` and `properties`, i.e. the payload the engine
//! batched.

use retl_proto::v1;
use retl_testkit::KlaviyoEmulator;
use retl_tests::{Harness, column, counts, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const KEY: &str = "pk_c0ffee0011112222333344445555aaaa66";

/// A Klaviyo emulator accepting [`KEY`].
pub(crate) struct KlaviyoSubject {
    emu: KlaviyoEmulator,
}

impl KlaviyoSubject {
    async fn start() -> Self {
        KlaviyoSubject {
            emu: KlaviyoEmulator::start(KEY).await.unwrap(),
        }
    }
}

fn int(id: &str) -> i64 {
    id.parse().expect("integer external_id")
}

impl Subject for KlaviyoSubject {
    fn destination_type(&self) -> &'static str {
        "klaviyo"
    }

    fn config(&self) -> Value {
        json!({"api_key": KEY, "endpoint": self.emu.url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_profile", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_profile", None)
    }

    fn deletes(&self) -> Capability<()> {
        Err(NotApplicable(
            "Klaviyo deletes profiles by email through its data privacy API, and the suite's records are keyed by an integer id; deletes_follow_an_email_keyed_model covers deletes",
        ))
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        match change {
            "added" => self
                .emu
                .objects()
                .iter()
                .filter(|o| o.kind == "profile")
                .map(|o| int(&o.external_id))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"api_key": "pk_00000000deadbeef0000000000000000", "endpoint": self.emu.url()}),
            "Missing or invalid private key",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter(|r| r.path == "/api/profile-bulk-import-jobs")
            .map(|r| {
                let records = r.body["data"]["attributes"]["profiles"]["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let a = &p["attributes"];
                        let mut fields = Map::new();
                        if let Some(email) = a.get("email") {
                            fields.insert("email".into(), email.clone());
                        }
                        for (k, v) in a["properties"].as_object().into_iter().flatten() {
                            fields.insert(k.clone(), v.clone());
                        }
                        json!({"key": int(a["external_id"].as_str().unwrap()), "change": "added", "fields": fields})
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

    fn forget(&self, _keys: &[i64]) -> Capability<()> {
        Err(NotApplicable("see deletes()"))
    }
}

conformance_suite!(KlaviyoSubject::start().await);

/// Profiles (an import job) and events (one request each): exactly what Klaviyo receives.
#[tokio::test]
async fn syncs_send_exact_profiles_and_events() {
    let subject = KlaviyoSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("kl", "klaviyo", subject.config())
        .await
        .unwrap();
    let profile = vec![column("email", "email"), column("plan", "plan")];
    h.create_mapping_with("prof", "m", "kl", "upsert_profile", profile, None)
        .await
        .unwrap();
    let event = vec![
        literal("metric", json!("Plan Synced")),
        literal("time", json!("2026-01-02T03:04:05Z")),
        column("email", "email"),
        column("plan", "plan"),
    ];
    h.create_mapping_with("ev", "m", "kl", "track_event", event, None)
        .await
        .unwrap();
    for mapping in ["prof", "ev"] {
        let run = h.sync(mapping).await;
        assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    }
    let plan = |id: usize| ["free", "pro", "enterprise"][id % 3];
    let objects = subject.emu.objects();
    let profiles: Vec<&Value> = objects
        .iter()
        .filter(|o| o.kind == "profile")
        .map(|o| &o.attributes)
        .collect();
    for (i, profile) in profiles.iter().enumerate() {
        let id = i + 1;
        assert_eq!(
            **profile,
            json!({"external_id": id.to_string(), "email": format!("user{id}@example.com"),
                   "properties": {"plan": plan(id)}})
        );
    }
    assert_eq!(profiles.len(), 2);
    let events: Vec<&Value> = objects
        .iter()
        .filter(|o| o.kind == "event")
        .map(|o| &o.attributes)
        .collect();
    assert_eq!(events.len(), 2);
    for (i, event) in events.iter().enumerate() {
        let id = i + 1;
        assert_eq!(event["metric"]["data"]["attributes"]["name"], "Plan Synced");
        assert_eq!(event["time"], "2026-01-02T03:04:05.000Z");
        assert_eq!(event["properties"], json!({"plan": plan(id)}));
        assert_eq!(
            event["profile"]["data"]["attributes"],
            json!({"external_id": id.to_string(), "email": format!("user{id}@example.com")})
        );
        assert_eq!(event["unique_id"].as_str().map(str::len), Some(32));
    }
    let paths: Vec<String> = subject.emu.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/api/profile-bulk-import-jobs",
            "/api/events",
            "/api/events"
        ]
    );
}

/// With a model keyed by email, deleted records become deletion requests by email; a second
/// run has nothing left to send.
#[tokio::test]
async fn deletes_follow_an_email_keyed_model() {
    let subject = KlaviyoSubject::start().await;
    let h = Harness::start().await;
    let rows = customers(8);
    h.warehouse(&rows).await;
    h.create_model("m", "wh", "SELECT email, plan FROM customers", "email")
        .await
        .unwrap();
    h.create_destination("kl", "klaviyo", subject.config())
        .await
        .unwrap();
    let fields = vec![column("email", "email"), column("plan", "plan")];
    h.create_mapping_with("up", "m", "kl", "upsert_profile", fields, None)
        .await
        .unwrap();
    h.create_mapping("del", "m", "kl", "delete_profile", &[], None)
        .await
        .unwrap();
    for mapping in ["up", "del"] {
        let run = h.sync(mapping).await;
        assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    }
    assert!(subject.emu.profile("user1@example.com").is_some());
    retl_tests::write_parquet(&h.path("customers.parquet"), &rows[3..]);
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let (_, _, deleted, delivered, failed) = counts(&run);
    assert_eq!((deleted, delivered, failed), (3, 3, 0), "{run:?}");
    let mut emails = subject.emu.deleted();
    emails.sort();
    assert_eq!(
        emails,
        [
            "user1@example.com",
            "user2@example.com",
            "user3@example.com"
        ]
    );
    assert!(subject.emu.profile("user1@example.com").is_none());
    assert!(subject.emu.profile("user4@example.com").is_some());
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(counts(&run).2, 0, "{run:?}");
}
