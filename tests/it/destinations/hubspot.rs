//! The `hubspot` destination against `retl_testkit`'s HubSpot emulator: every check applies,
//! plus a sync whose requests the emulator checks field by field.
//!
//! The suite's model is keyed by `id`, so contacts are matched by a unique custom property
//! `retl_id` holding it (`contact_id_property`), which is also what deletes look up. The
//! records of [`Observed`] are HubSpot's inputs in the suite's shape: `key` is the id
//! property value HubSpot received (as the model's integer), `fields` the properties it
//! received; HubSpot does not tell added from updated, so every write is `added`, and the
//! lookups and archives of a delete are `deleted`.

use retl_proto::v1;
use retl_testkit::emulators::hubspot::{HubSpotEmulator, HubSpotOptions};
use retl_tests::{Harness, column, customers, literal};
use serde_json::{Value, json};

use super::{Capability, Observed, Subject};

/// The private app token the emulator requires.
const TOKEN: &str = "pat-na1-conformance";

async fn emulator() -> HubSpotEmulator {
    HubSpotEmulator::start(HubSpotOptions {
        access_token: TOKEN.to_string(),
        properties: vec![
            ("contacts".into(), "plan".into(), false),
            ("contacts".into(), "retl_id".into(), true),
        ],
    })
    .await
    .unwrap()
}

/// A HubSpot emulator with the custom properties `plan` and `retl_id` (unique).
pub(crate) struct HubSpotSubject {
    hub: HubSpotEmulator,
}

impl HubSpotSubject {
    async fn start() -> Self {
        HubSpotSubject {
            hub: emulator().await,
        }
    }

    fn key(value: Option<&Value>) -> Option<i64> {
        value.and_then(Value::as_str).and_then(|s| s.parse().ok())
    }
}

impl Subject for HubSpotSubject {
    fn destination_type(&self) -> &'static str {
        "hubspot"
    }

    fn config(&self) -> Value {
        json!({"access_token": TOKEN, "base_url": self.hub.base_url(), "contact_id_property": "retl_id"})
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert_contact", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete_contact", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let archive = change == "deleted";
        self.hub
            .records()
            .into_iter()
            .filter(|r| (r.operation == "archive") == archive)
            .filter_map(|r| {
                r.id.and_then(|id| id.parse().ok())
                    .or_else(|| Self::key(r.properties.get("retl_id")))
            })
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            json!({"access_token": "pat-na1-revoked", "base_url": self.hub.base_url(), "contact_id_property": "retl_id"}),
            "Authentication credentials not found",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        let archived: Vec<(String, Option<i64>)> = self
            .hub
            .records()
            .into_iter()
            .filter(|r| r.operation == "archive")
            .map(|r| (r.object_id, Self::key(r.properties.get("retl_id"))))
            .collect();
        Ok(self
            .hub
            .requests()
            .into_iter()
            .map(|r| {
                let inputs = r.body["inputs"].as_array().cloned().unwrap_or_default();
                let operation = r
                    .path
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                let records = inputs
                    .iter()
                    .map(|input| match operation.as_str() {
                        "upsert" | "update" | "create" => {
                            let id = input
                                .get("id")
                                .or_else(|| input["properties"].get("retl_id"));
                            let mut fields = input["properties"].clone();
                            if let Some(f) = fields.as_object_mut() {
                                f.remove("retl_id");
                            }
                            json!({"key": Self::key(id), "change": "added", "fields": fields})
                        }
                        "read" => json!({"key": Self::key(input.get("id")), "change": "deleted"}),
                        _ => {
                            let object_id = input["id"].as_str().unwrap_or_default();
                            let key = archived
                                .iter()
                                .find(|(id, _)| id == object_id)
                                .and_then(|(_, k)| *k);
                            json!({"key": key, "change": "deleted"})
                        }
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
        self.hub.reject_keys(keys.iter().map(i64::to_string));
        Ok(())
    }

    fn throttle_next(&self, seconds: u64) -> Capability<()> {
        self.hub.throttle_next(Some(seconds));
        Ok(())
    }

    fn fail_everything(&self) -> Capability<()> {
        self.hub.fail_next(usize::MAX, 503);
        Ok(())
    }

    fn recover(&self) {
        self.hub.clear();
    }

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        let values: Vec<String> = keys.iter().map(i64::to_string).collect();
        self.hub.forget("contacts", "retl_id", &values);
        Ok(())
    }
}

conformance_suite!(HubSpotSubject::start().await);

/// A sync through the daemon: HubSpot receives exactly the documented inputs.
#[tokio::test]
async fn a_sync_sends_hubspot_exactly_the_mapped_inputs() {
    let hub = emulator().await;
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination(
        "crm",
        "hubspot",
        json!({"access_token": TOKEN, "base_url": hub.base_url()}),
    )
    .await
    .unwrap();
    let fields = vec![
        column("id", "email"),
        literal("lifecyclestage", json!("customer")),
        column("plan", "plan"),
    ];
    h.create_mapping_with("up", "m", "crm", "upsert_contact", fields, None)
        .await
        .unwrap();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");

    let requests = hub.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/crm/v3/objects/contacts/batch/upsert");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    let mut inputs = request.body["inputs"].as_array().cloned().unwrap();
    inputs.sort_by_key(|i| i["id"].as_str().map(str::to_string));
    let expected: Vec<Value> = customers(3)
        .iter()
        .map(|c| {
            json!({
                "idProperty": "email",
                "id": c.email,
                "properties": {"lifecyclestage": "customer", "plan": c.plan},
            })
        })
        .collect();
    for (input, expected) in inputs.iter().zip(&expected) {
        let mut input = input.clone();
        let trace = input.as_object_mut().unwrap().remove("objectWriteTraceId");
        assert!(trace.is_some_and(|t| t.is_string()), "{input}");
        assert_eq!(&input, expected);
    }
    let contacts = hub.objects("contacts");
    assert_eq!(contacts.len(), 3);
    assert!(
        contacts
            .iter()
            .all(|(_, p)| p["lifecyclestage"] == "customer")
    );

    // Update-only: a contact HubSpot does not hold is rejected per record, through
    // batch/update.
    retl_tests::write_parquet(&h.path("customers.parquet"), &customers(4));
    h.client
        .mappings()
        .create_mapping(v1::CreateMappingRequest {
            mapping_id: "upd".to_string(),
            mapping: Some(v1::Mapping {
                model_id: "m".to_string(),
                destination_id: "crm".to_string(),
                action: "upsert_contact".to_string(),
                fields: vec![column("id", "email"), column("plan", "plan")],
                sync_mode: v1::SyncMode::Update as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let run = h.sync("upd").await;
    assert_eq!(run.status(), v1::RunStatus::PartiallyFailed, "{run:?}");
    let errors: Vec<_> = run
        .record_errors
        .iter()
        .map(|e| (e.key.clone(), e.reason.clone()))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "4");
    assert!(errors[0].1.contains("OBJECT_NOT_FOUND"), "{errors:?}");
    let update = hub.requests().pop().unwrap();
    assert_eq!(update.path, "/crm/v3/objects/contacts/batch/update");
    assert_eq!(update.status, 207);
    assert_eq!(update.body["inputs"].as_array().map(Vec::len), Some(4));
    assert_eq!(hub.objects("contacts").len(), 3);
}

/// Suggestions cover HubSpot's custom properties, discovered from the account.
#[tokio::test]
async fn suggestions_include_the_accounts_custom_properties() {
    let hub = emulator().await;
    let h = Harness::start().await;
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination(
        "crm",
        "hubspot",
        json!({"access_token": TOKEN, "base_url": hub.base_url()}),
    )
    .await
    .unwrap();
    let suggestions = h
        .client
        .mappings()
        .suggest_mappings(v1::SuggestMappingsRequest {
            model_id: "m".to_string(),
            destination_id: "crm".to_string(),
            action: "upsert_contact".to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .suggestions;
    let pairs: Vec<(&str, &str)> = suggestions
        .iter()
        .map(|s| (s.field.as_str(), s.column.as_str()))
        .collect();
    assert!(pairs.contains(&("email", "email")), "{suggestions:?}");
    assert!(
        pairs.contains(&("plan", "plan")),
        "'plan' is a custom property of the account, not a declared field: {suggestions:?}"
    );
    assert!(
        hub.requests()
            .iter()
            .any(|r| r.path == "/crm/v3/properties/contacts"),
        "the properties were read from the account"
    );
}
