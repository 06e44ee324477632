//! The `google-ads-customer-match` destination against `retl_testkit`'s Data Manager API
//! emulator (with its OAuth token endpoint, a service account key signed with the test key
//! pair): `add_to_audience` is the upsert action with the email hashed; and syncs whose hashed
//! identifiers the emulator holds, including removals by a unique id that is the email.
//!
//! Observed records are each member's hashed email mapped back to the customer id it was
//! made from (`user<id>@example.com`), `added` for an ingest and `deleted` for a remove.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use retl_proto::v1;
use retl_testkit::GoogleDataManagerEmulator;
use retl_testkit::emulators::google_data_manager::sha256_hex;
use retl_testkit::emulators::google_oauth::GoogleOAuthOptions;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const ACCOUNT: &str = "1234567890";
const AUDIENCE: &str = "5550001";

/// The hashed email of customer `id`.
fn hashed(id: i64) -> String {
    sha256_hex(&format!("user{id}@example.com"))
}

/// Hashed email → customer id, for the ids the suite uses.
fn ids() -> &'static BTreeMap<String, i64> {
    static IDS: OnceLock<BTreeMap<String, i64>> = OnceLock::new();
    IDS.get_or_init(|| (1..=25_000).map(|id| (hashed(id), id)).collect())
}

fn id_of(member: &Value) -> i64 {
    member
        .pointer("/userData/userIdentifiers/0/emailAddress")
        .and_then(Value::as_str)
        .and_then(|h| ids().get(h).copied())
        .unwrap_or(0)
}

/// A Data Manager emulator of [`ACCOUNT`] and [`AUDIENCE`].
pub(crate) struct GoogleAdsSubject {
    emu: GoogleDataManagerEmulator,
}

impl GoogleAdsSubject {
    async fn start() -> Self {
        GoogleAdsSubject {
            emu: GoogleDataManagerEmulator::start(GoogleOAuthOptions::default(), ACCOUNT, AUDIENCE)
                .await
                .unwrap(),
        }
    }

    fn config_for(&self, account: &str) -> Value {
        let key = GoogleOAuthOptions::default().service_account_key_json(&self.emu.token_uri());
        json!({
            "service_account_key": key,
            "operating_account_id": account,
            "audience_id": AUDIENCE,
            "customer_match_terms_accepted": true,
            "api_url": self.emu.url(),
        })
    }
}

impl Subject for GoogleAdsSubject {
    fn destination_type(&self) -> &'static str {
        "google-ads-customer-match"
    }

    fn config(&self) -> Value {
        self.config_for(ACCOUNT)
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("add_to_audience", Some((true, true, false)))
    }

    /// `email` only: `plan` is not an identifier Google matches on.
    fn upsert_fields(&self) -> Vec<v1::FieldMapping> {
        vec![column("email", "email")]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("add_to_audience", Some((false, false, true)))
    }

    fn deletes(&self) -> Capability<()> {
        Err(NotApplicable(
            "the API removes members by their identifiers only, and the suite's model has an integer unique id; removal by a unique id that is an email is checked by deletes_remove_members_by_their_email",
        ))
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let members = match change {
            "added" => self.emu.ingested(),
            "deleted" => self.emu.removed(),
            _ => Vec::new(),
        };
        members.iter().map(id_of).collect()
    }

    /// Credentials the token endpoint accepts but without access to the account: `403
    /// PERMISSION_DENIED` from the API.
    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            self.config_for("111-111-1111"),
            "The caller does not have permission",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .map(|r| {
                let change = if r.path.ends_with(":remove") {
                    "deleted"
                } else {
                    "added"
                };
                let records = r.body["audienceMembers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| json!({"key": id_of(m), "change": change}))
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
        self.emu.reject_identifiers(keys.iter().map(|k| hashed(*k)));
        Ok(())
    }

    fn throttle_next(&self, seconds: u64) -> Capability<()> {
        self.emu.throttle_next(1, seconds);
        Ok(())
    }

    fn splits_by_bytes(&self) -> Capability<()> {
        Err(NotApplicable(
            "the API receives SHA-256 hashes of the mapped values, not the values the engine measured against max_batch_bytes",
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
        let values: Vec<String> = keys.iter().map(|k| hashed(*k)).collect();
        self.emu.forget(AUDIENCE, &values);
        Ok(())
    }
}

conformance_suite!(GoogleAdsSubject::start().await);

/// The members Google receives: the email normalised and hashed, consent as mapped.
#[tokio::test]
async fn a_sync_adds_hashed_members() {
    let subject = GoogleAdsSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, concat(' ', upper(email)) AS email FROM customers")
        .await;
    h.create_destination("gads", "google-ads-customer-match", subject.config())
        .await
        .unwrap();
    h.create_mapping_with(
        "buyers",
        "m",
        "gads",
        "add_to_audience",
        vec![
            column("email", "email"),
            literal("ad_user_data_consent", json!("granted")),
            literal("ad_personalization_consent", json!("granted")),
        ],
        None,
    )
    .await
    .unwrap();
    let run = h.sync("buyers").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let consent = json!({"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"});
    let members = subject.emu.members(AUDIENCE);
    assert_eq!(
        members,
        [
            json!({"userData": {"userIdentifiers": [{"emailAddress": hashed(1)}]}, "consent": consent}),
            json!({"userData": {"userIdentifiers": [{"emailAddress": hashed(2)}]}, "consent": consent}),
        ]
    );
    let request = &subject.emu.requests()[0];
    assert_eq!(
        request.body["destinations"][0]["productDestinationId"],
        AUDIENCE
    );
    assert_eq!(request.body["encoding"], "HEX");
    let test = h
        .client
        .destinations()
        .test_destination(v1::TestDestinationRequest {
            destination_id: "gads".to_string(),
        })
        .await;
    assert!(test.is_ok(), "{test:?}");
    assert_eq!(
        subject.emu.members(AUDIENCE).len(),
        2,
        "the test wrote nothing"
    );
}

/// With `unique_id_identifier: email`, records that leave the model are removed by their
/// hashed email; a removal sent again succeeds.
#[tokio::test]
async fn deletes_remove_members_by_their_email() {
    let subject = GoogleAdsSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.create_model("m", "wh", "SELECT email, plan FROM customers", "email")
        .await
        .unwrap();
    let mut config = subject.config();
    config["unique_id_identifier"] = json!("email");
    h.create_destination("gads", "google-ads-customer-match", config)
        .await
        .unwrap();
    h.create_mapping_with(
        "mirror",
        "m",
        "gads",
        "add_to_audience",
        vec![column("email", "email")],
        None,
    )
    .await
    .unwrap();
    let run = h.sync("mirror").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(subject.emu.members(AUDIENCE).len(), 3);
    subject.emu.forget(AUDIENCE, &[hashed(1)]);
    retl_tests::write_parquet(&h.path("customers.parquet"), &customers(3)[2..]);
    let run = h.sync("mirror").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let removed: Vec<i64> = subject.emu.removed().iter().map(id_of).collect();
    assert_eq!(
        removed,
        [1, 2],
        "one remove request with both, the missing one no error"
    );
    let members: Vec<i64> = subject.emu.members(AUDIENCE).iter().map(id_of).collect();
    assert_eq!(members, [3]);
}
