//! The `http` (HTTP Request) destination against two API shapes, each through the whole
//! conformance suite:
//! - `webhook_shape`: `retl_testkit`'s webhook emulator, reached with a body template that
//!   writes its `{"action", "records": [...]}` contract, a bearer token in `secret_headers`
//!   and per-record errors at `/errors`;
//! - `api_shape`: `retl_testkit`'s HTTP API emulator: the default body (a bare JSON array of
//!   the mapped fields), `X-Api-Key` in `secret_headers`, `{"errors": [{"index", "message"}]}`
//!   and `503` + `Retry-After` as its throttle signal (`throttle_statuses: [503]`), deletes
//!   through a `delete_body` template.
//!
//! Plus a sync through the daemon with one record per request (`PUT /v1/users/{{ id }}`)
//! whose bodies the emulator holds field by field.

use retl_testkit::HttpApiEmulator;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, column, customers};
use serde_json::{Value, json};

use super::{Capability, Observed, Subject};
#[allow(unused_imports)]
use super::{
    a_per_record_rejection_leaves_only_the_rejected_pending,
    a_resent_delete_of_a_missing_record_succeeds, batches_split_at_the_byte_limit,
    batches_split_at_the_documented_count_limit, nothing_is_acknowledged_that_was_not_accepted,
    refused_credentials_stop_the_run_with_the_reason, throttling_is_obeyed,
};

/// The bearer token the webhook emulator requires.
const TOKEN: &str = "http-conformance-token";
/// The API key the API emulator requires.
const API_KEY: &str = "http-conformance-key";

/// The webhook emulator requiring [`TOKEN`].
pub(crate) struct WebhookShape {
    hook: WebhookEmulator,
}

impl WebhookShape {
    async fn start() -> Self {
        let hook = WebhookEmulator::start(WebhookOptions {
            bearer_token: Some(TOKEN.to_string()),
            ..WebhookOptions::default()
        })
        .await
        .unwrap();
        WebhookShape { hook }
    }

    fn config_with(&self, token: &str) -> Value {
        let body = "{\"action\": \"{{ action }}\", \"mapping\": \"{{ mapping }}\", \"run\": \"{{ run }}\", \"records\": {{ records | tojson }}}";
        json!({
            "url": self.hook.url(),
            "body": body,
            "delete_url": self.hook.url(),
            "delete_method": "POST",
            "delete_body": body,
            "secret_headers": json!({"Authorization": format!("Bearer {token}")}).to_string(),
            "errors_pointer": "/errors",
        })
    }
}

impl Subject for WebhookShape {
    fn destination_type(&self) -> &'static str {
        "http"
    }

    fn config(&self) -> Value {
        self.config_with(TOKEN)
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert", None)
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        self.hook
            .records()
            .into_iter()
            .filter(|r| r.change.as_deref() == Some(change))
            .map(|r| r.key.as_i64().expect("integer key"))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((
            self.config_with("not-the-token"),
            "missing or wrong bearer token",
        ))
    }

    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .hook
            .requests()
            .into_iter()
            .map(|r| Observed {
                status: r.status,
                records: r.body["records"].as_array().cloned().unwrap_or_default(),
                at: r.received_at,
            })
            .collect())
    }

    fn reject_keys(&self, keys: &[i64]) -> Capability<()> {
        self.hook.reject_keys(keys.iter().map(|k| json!(k)));
        Ok(())
    }

    fn throttle_next(&self, seconds: u64) -> Capability<()> {
        self.hook.fail_next(1, 429, Some(seconds));
        Ok(())
    }

    fn fail_everything(&self) -> Capability<()> {
        self.hook.fail_next(usize::MAX, 503, None);
        Ok(())
    }

    fn recover(&self) {
        self.hook.clear();
    }

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        // The receiver answers 404 (JSON) to a delete of records it does not have, which the
        // default delete_gone_statuses count as deleted.
        self.hook.not_found_for_missing_deletes();
        self.hook.forget(keys.iter().map(|k| json!(k)));
        Ok(())
    }
}

mod webhook_shape {
    conformance_suite!(super::WebhookShape::start().await);
}

/// The HTTP API emulator accepting [`API_KEY`].
pub(crate) struct ApiShape {
    api: HttpApiEmulator,
}

impl ApiShape {
    async fn start() -> Self {
        ApiShape {
            api: HttpApiEmulator::start(API_KEY).await.unwrap(),
        }
    }

    fn config_with(&self, key: &str) -> Value {
        json!({
            "url": format!("{}/v1/users/batch", self.api.url()),
            "delete_url": format!("{}/v1/users/delete", self.api.url()),
            "delete_method": "POST",
            "delete_body": "{\"ids\": {{ records | map(attribute='key') | list | tojson }}}",
            "secret_headers": json!({"X-Api-Key": key}).to_string(),
            "errors_pointer": "/errors",
            "throttle_statuses": [503],
        })
    }
}

fn int(id: &str) -> i64 {
    id.parse().expect("integer id")
}

impl Subject for ApiShape {
    fn destination_type(&self) -> &'static str {
        "http"
    }

    fn config(&self) -> Value {
        self.config_with(API_KEY)
    }

    fn upsert_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("upsert", None)
    }

    /// The API identifies users by an `id` in the body: `id`, `email`, `plan`.
    fn upsert_fields(&self) -> Vec<retl_proto::v1::FieldMapping> {
        vec![
            column("id", "id"),
            column("email", "email"),
            column("plan", "plan"),
        ]
    }

    fn delete_action(&self) -> (&'static str, Option<(bool, bool, bool)>) {
        ("delete", None)
    }

    fn accepted(&self, change: &str) -> Vec<i64> {
        let operation = if change == "deleted" {
            "delete"
        } else {
            "upsert"
        };
        self.api
            .accepted()
            .into_iter()
            .filter(|w| w.operation == operation)
            .map(|w| int(&w.id))
            .collect()
    }

    fn refused_credentials(&self) -> Capability<(Value, &'static str)> {
        Ok((self.config_with("wrong-key"), "invalid API key"))
    }

    /// Batch upserts shown as `{"key": id, "change": "added", "fields": <the user object>}`
    /// (the payload the engine batched, `id` being a mapped field); each id of a delete as a
    /// `deleted` record.
    fn requests(&self) -> Capability<Vec<Observed>> {
        Ok(self
            .api
            .requests()
            .into_iter()
            .map(|r| {
                let records = if r.path == "/v1/users/delete" {
                    r.body["ids"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|id| json!({"key": id, "change": "deleted"}))
                        .collect()
                } else {
                    r.body
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|user| json!({"key": user["id"], "change": "added", "fields": user}))
                        .collect()
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
        self.api.reject_keys(keys.iter().map(i64::to_string));
        Ok(())
    }

    fn throttle_next(&self, seconds: u64) -> Capability<()> {
        self.api.throttle_next(1, seconds);
        Ok(())
    }

    fn throttle_status(&self) -> u16 {
        503
    }

    fn fail_everything(&self) -> Capability<()> {
        self.api.fail_everything();
        Ok(())
    }

    fn recover(&self) {
        self.api.clear();
    }

    fn forget(&self, keys: &[i64]) -> Capability<()> {
        // The batch delete answers ids it does not hold without an error.
        self.api.forget(keys.iter().map(i64::to_string));
        Ok(())
    }
}

mod api_shape {
    conformance_suite!(super::ApiShape::start().await);
}

/// One record per request: `PUT /v1/users/{{ id }}` with a body template; the API holds
/// exactly the rendered bodies, and a rejected user is a record error of the run.
#[tokio::test]
async fn one_record_per_request_sends_the_rendered_url_and_body() {
    let subject = ApiShape::start().await;
    subject.api.reject_keys(["3".to_string()]);
    let h = Harness::start().await;
    h.warehouse(&customers(4)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    let config = json!({
        "url": format!("{}/v1/users/{{{{ id | urlencode }}}}", subject.api.url()),
        "method": "PUT",
        "body": "{\"id\": {{ id }}, \"email\": {{ email | tojson }}, \"plan\": {{ plan | upper | tojson }}, \"source\": {{ mapping | tojson }}}",
        "records_per_request": "one",
        "secret_headers": json!({"X-Api-Key": API_KEY}).to_string(),
        "throttle_statuses": [503],
        "limits": {"batch_size": 1, "requests_per_second": 100, "burst": 10, "max_attempts": 2, "initial_backoff_ms": 10},
    });
    h.create_destination("api", "http", config).await.unwrap();
    let fields = vec![
        column("id", "id"),
        column("email", "email"),
        column("plan", "plan"),
    ];
    h.create_mapping_with("users", "m", "api", "upsert", fields, None)
        .await
        .unwrap();
    let run = h.sync("users").await;
    assert_eq!(
        run.status(),
        retl_proto::v1::RunStatus::PartiallyFailed,
        "{run:?}"
    );
    let errors: Vec<&str> = run.record_errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(errors, ["3"], "{run:?}");
    let plan = |id: usize| ["FREE", "PRO", "ENTERPRISE"][id % 3];
    for id in [1usize, 2, 4] {
        assert_eq!(
            subject.api.user(&id.to_string()).unwrap(),
            json!({"id": id, "email": format!("user{id}@example.com"), "plan": plan(id), "source": "users"})
        );
    }
    assert!(subject.api.user("3").is_none());
    let requests = subject.api.requests();
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().all(|r| r.method == "PUT"
        && r.header("x-api-key") == Some(API_KEY)
        && r.header("content-type") == Some("application/json")));
    let mut paths: Vec<String> = requests.into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/v1/users/1", "/v1/users/2", "/v1/users/3", "/v1/users/4"]
    );
}
