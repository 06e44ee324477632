//! The `zendesk` destination against `retl_testkit`'s Zendesk emulator: `upsert_user`
//! (`create_or_update_many`) is the upsert action, `delete_user` (`destroy_many`) the delete
//! action; plus a sync whose users the emulator checks field by field.
//!
//! Observed records are shown in the suite's shape, `{"key", "change", "fields"}`: each user
//! of a `create_or_update_many` request is an `added` record keyed by its `external_id` (the
//! record's unique id, `external_id` being unmapped), its fields the user without
//! `external_id` and with `user_fields` (where the mapped `plan` lands) flattened, i.e. the
//! payload the engine batched; each id of a `destroy_many` request is a `deleted` record. The
//! job status polls carry no records and are left out. Zendesk needs a `name` to create a
//! user, so the suite's upsert mapping also maps `name` (from the email column).

use retl_proto::v1;
use retl_testkit::ZendeskEmulator;
use retl_testkit::emulators::common::percent_decode;
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Map, Value, json};

use super::{Capability, Observed, Subject};

const EMAIL: &str = "admin@conformance.test";
const TOKEN: &str = "conformanceApiToken0123456789";

/// A Zendesk emulator accepting [`EMAIL`] and [`TOKEN`].
pub(crate) struct ZendeskSubject {
    emu: ZendeskEmulator,
}

impl ZendeskSubject {
    async fn start() -> Self {
        ZendeskSubject {
            emu: ZendeskEmulator::start(EMAIL, TOKEN).await.unwrap(),
        }
    }
}

fn int(id: &str) -> Option<i64> {
    id.parse().ok()
}

impl Subject for ZendeskSubject {
    fn destination_type(&self) -> &'static str {
        "zendesk"
    }

    fn config(&self) -> Value {
        json!({"email": EMAIL, "api_token": TOKEN, "base_url": self.emu.base_url()})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_user", None)
    }

    fn upsert_fields(&self) -> Vec<v1::FieldMapping> {
        vec![
            column("name", "email"),
            column("email", "email"),
            column("plan", "plan"),
        ]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_user", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let delete = change == "deleted";
        self.emu
            .writes()
            .into_iter()
            .filter(|w| (w.operation == "delete") == delete)
            .filter_map(|w| w.external_id.as_deref().and_then(int))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"email": EMAIL, "api_token": "revoked", "base_url": self.emu.base_url()}),
            "Couldn't authenticate you",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .emu
            .requests()
            .into_iter()
            .filter_map(|r| {
                let records: Vec<Value> = match (r.method.as_str(), r.path.as_str()) {
                    ("POST", "/api/v2/users/create_or_update_many") => r.body["users"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|user| {
                            let mut fields: Map<String, Value> =
                                user.as_object().cloned().unwrap_or_default();
                            let key = fields
                                .remove("external_id")
                                .and_then(|v| v.as_str().and_then(int));
                            if let Some(Value::Object(custom)) = fields.remove("user_fields") {
                                fields.extend(custom);
                            }
                            json!({"key": key, "change": "added", "fields": fields})
                        })
                        .collect(),
                    ("DELETE", "/api/v2/users/destroy_many") => r
                        .query
                        .get("external_ids")
                        .map(|ids| percent_decode(ids.as_str()))
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(int)
                        .map(|key| json!({"key": key, "change": "deleted"}))
                        .collect(),
                    _ => return None,
                };
                Some(Observed {
                    status: r.status,
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
        // destroy_many's job names only the users it found: an unknown id is no failure.
        self.emu.forget(keys.iter().map(i64::to_string));
        Ok(())
    }
}

conformance_suite!(ZendeskSubject::start().await);

/// Users arrive as Zendesk's user objects, the undeclared `plan` as a user field, through
/// one request and its job's polls.
#[tokio::test]
async fn a_sync_sends_zendesk_user_objects() {
    let subject = ZendeskSubject::start().await;
    subject.emu.set_polls_until_done(1);
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("zd", "zendesk", subject.config())
        .await
        .unwrap();
    let fields = vec![
        literal("name", json!("Customer")),
        column("email", "email"),
        literal("tags", json!(["retl"])),
        column("plan", "plan"),
    ];
    h.create_mapping_with("up", "m", "zd", "upsert_user", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let requests = subject.emu.requests();
    let calls: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[0], "POST /api/v2/users/create_or_update_many");
    let plan = |id: usize| ["free", "pro", "enterprise"][id % 3];
    let expected: Vec<Value> = (1..=2usize)
        .map(|id| {
            json!({"external_id": id.to_string(), "name": "Customer",
                   "email": format!("user{id}@example.com"), "tags": ["retl"],
                   "user_fields": {"plan": plan(id)}})
        })
        .collect();
    assert_eq!(requests[0].body, json!({"users": expected}));
    assert_eq!(
        subject.emu.user("2").unwrap()["user_fields"]["plan"],
        "enterprise"
    );
}
