//! The `facebook-custom-audiences` destination against `retl_testkit`'s Custom Audiences
//! emulator: `add_users` is the upsert action (email hashed, the unique id as `EXTERN_ID`),
//! `remove_deleted_users` the delete action (by `EXTERN_ID`); and a sync whose hashed rows
//! the emulator holds.
//!
//! Observed records are each row's `EXTERN_ID` as the key, `added` for a `POST` and `deleted`
//! for a `DELETE`; the API receives hashes, so the byte-limit check does not apply.

use retl_proto::v1;
use retl_testkit::FacebookAudiencesEmulator;
use retl_tests::{Harness, column, customers};
use serde_json::{Value, json};

use super::{Capability, NotApplicable, Observed, Subject};

const TOKEN: &str = "EAAconformance";
const AUDIENCE: &str = "23850000000000042";

/// A Custom Audiences emulator of [`AUDIENCE`], accepting [`TOKEN`].
pub(crate) struct FacebookSubject {
    emu: FacebookAudiencesEmulator,
}

impl FacebookSubject {
    async fn start() -> Self {
        FacebookSubject {
            emu: FacebookAudiencesEmulator::start(TOKEN, AUDIENCE)
                .await
                .unwrap(),
        }
    }

    fn config_with(&self, token: &str) -> Value {
        json!({"access_token": token, "audience_id": AUDIENCE, "api_url": self.emu.url()})
    }
}

fn int(id: &str) -> i64 {
    id.parse().expect("integer EXTERN_ID")
}

impl Subject for FacebookSubject {
    fn destination_type(&self) -> &'static str {
        "facebook-custom-audiences"
    }

    fn config(&self) -> Value {
        self.config_with(TOKEN)
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("add_users", None)
    }

    /// `email` only: `plan` is not an identifier Meta matches on.
    fn upsert_fields(&self) -> Vec<v1::FieldMapping> {
        vec![column("email", "email")]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("remove_deleted_users", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let entries = match change {
            "added" => self.emu.added(),
            "deleted" => self.emu.removed(),
            _ => Vec::new(),
        };
        entries.iter().map(|e| int(&e["EXTERN_ID"])).collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            self.config_with("EAAnot-the-token"),
            "Invalid OAuth access token",
        ))
    }

    /// Each row as `{"key": <EXTERN_ID>, "change": "added" | "deleted"}`.
    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/users"))
            .map(|r| {
                let change = if r.method == "DELETE" {
                    "deleted"
                } else {
                    "added"
                };
                let records = r.body["payload"]["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(
                        |row| json!({"key": int(row[0].as_str().unwrap_or("0")), "change": change}),
                    )
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

    fn splits_by_bytes(&self) -> Capability<()> {
        Err(NotApplicable(
            "the API receives SHA-256 hashes of the mapped values, not the values the engine measured against max_batch_bytes",
        ))
    }

    fn throttle_status(&self) -> u16 {
        400
    }

    fn fail_everything(&self) -> Capability<()> {
        self.emu.fail_everything();
        Ok(())
    }

    fn recover(&self) {
        self.emu.clear();
    }

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        let ids: Vec<String> = keys.iter().map(i64::to_string).collect();
        self.emu.forget(&ids);
        Ok(())
    }
}

conformance_suite!(FacebookSubject::start().await);

/// The rows Meta receives: the email normalised and hashed, the unique id as EXTERN_ID.
#[tokio::test]
async fn a_sync_adds_hashed_users() {
    let subject = FacebookSubject::start().await;
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, upper(email) AS email FROM customers")
        .await;
    h.create_destination("fb", "facebook-custom-audiences", subject.config())
        .await
        .unwrap();
    h.create_mapping_with(
        "buyers",
        "m",
        "fb",
        "add_users",
        vec![column("email", "email")],
        None,
    )
    .await
    .unwrap();
    let run = h.sync("buyers").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let members: Vec<(String, String)> = subject
        .emu
        .members()
        .into_iter()
        .map(|m| (m["EXTERN_ID"].clone(), m["EMAIL"].clone()))
        .collect();
    let sha = retl_testkit::emulators::facebook_audiences::sha256_hex;
    assert_eq!(
        members,
        [
            ("1".to_string(), sha("user1@example.com")),
            ("2".to_string(), sha("user2@example.com")),
        ]
    );
}
