//! HTTP Request tests: config, rendering, answer parsing, round-trips against the webhook
//! emulator and the HTTP API emulator.

use retl_engine::destination::spec::ChangeKind;
use retl_engine::destination::{
    ActionSpec, DeliveryContext, DeliveryLimits, Destination, DestinationError, Payload,
    RecordOutcome,
};
use retl_engine::id::{DestinationId, MappingId, RunId};
use retl_testkit::HttpApiEmulator;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use serde_json::{Value, json};

use super::actions::{self, HttpRequestAction};
use super::client;
use super::config::{ErrorsAt, HttpRequestConfig};
use super::{HttpRequestDestination, destination_type};

fn ctx() -> DeliveryContext {
    DeliveryContext {
        destination_id: DestinationId::new("http"),
        mapping_id: MappingId::new("users"),
        run_id: RunId::new("run-1"),
        sync_mode: None,
        trace: None,
    }
}

fn payload(key: i64, fields: Value) -> Payload {
    Payload {
        key: json!(key),
        change: ChangeKind::Added,
        fields: fields.as_object().cloned().unwrap().into(),
        fingerprint: None,
    }
}

fn spec(name: &str) -> &'static ActionSpec {
    destination_type().action(name).unwrap()
}

fn limits(batch_size: usize) -> DeliveryLimits {
    DeliveryLimits {
        batch_size,
        timeout_ms: 2_000,
        ..(destination_type().default_limits)()
    }
}

fn destination(config: Value, batch_size: usize) -> HttpRequestDestination {
    HttpRequestDestination::new(&config, limits(batch_size)).unwrap()
}

fn config_error(config: Value, batch_size: usize) -> (String, String) {
    match HttpRequestDestination::new(&config, limits(batch_size)) {
        Err(DestinationError::InvalidConfig { field, message }) => (field, message),
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_validation_names_the_field_and_drift() {
    let url = "https://api.example.com/v1/users";
    let field = |config: Value, batch: usize| config_error(config, batch).0;
    assert_eq!(field(json!({"url": "api.example.com/x"}), 100), "url");
    assert_eq!(field(json!({"url": "https://{{ host }}/x"}), 100), "url");
    assert_eq!(
        field(json!({"url": "https://api.example.com{{ path }}"}), 100),
        "url"
    );
    assert_eq!(field(json!({"url": "ftp://api.example.com/x"}), 100), "url");
    assert_eq!(field(json!({"url": url, "method": "GET"}), 100), "method");
    assert_eq!(field(json!({"url": url, "body": "{{ a "}), 100), "body");
    // With arrays, templates read `records`, not a record's fields.
    let (f, message) = config_error(
        json!({"url": "https://api.example.com/users/{{ id }}"}),
        100,
    );
    assert_eq!(f, "url");
    assert!(message.contains("records"), "{message}");
    assert_eq!(
        field(json!({"url": url, "records_per_request": "one"}), 100),
        "limits.batch_size"
    );
    assert_eq!(
        field(json!({"url": url, "records_per_request": "many"}), 1),
        "records_per_request"
    );
    assert_eq!(
        field(json!({"url": url, "delete_method": "POST"}), 100),
        "delete_method"
    );
    assert_eq!(
        field(json!({"url": url, "error_index_field": "i"}), 100),
        "error_index_field"
    );
    assert_eq!(
        field(json!({"url": url, "errors_pointer": "errors"}), 100),
        "errors_pointer"
    );
    assert_eq!(
        field(json!({"url": url, "throttle_statuses": [200]}), 100),
        "throttle_statuses"
    );
    assert_eq!(
        field(
            json!({"url": url, "headers": {"Authorization": "Bearer x"}}),
            100
        ),
        "headers.Authorization"
    );
    assert_eq!(
        field(json!({"url": url, "headers": {"Host": "x"}}), 100),
        "headers.Host"
    );
    let (f, message) = config_error(json!({"url": url, "secret_headers": "Bearer hunter2"}), 100);
    assert_eq!(f, "secret_headers");
    assert!(!message.contains("hunter2"), "{message}");
    assert_eq!(
        field(
            json!({"url": url, "headers": {"X-Key": "a"}, "secret_headers": "{\"x-key\": \"b\"}"}),
            100
        ),
        "secret_headers.x-key"
    );
    assert_eq!(field(json!({"url": url, "verb": "POST"}), 100), "config");
    destination(
        json!({"url": "https://api.example.com/users/{{ id | urlencode }}", "records_per_request": "one"}),
        1,
    );
    retl_engine::config_fields::check_config_fields::<HttpRequestConfig>(destination_type().config)
        .unwrap();
}

#[test]
fn delete_action_needs_a_delete_url() {
    let dest = destination(json!({"url": "https://api.example.com/users"}), 100);
    match dest.action(spec("delete")) {
        Err(DestinationError::InvalidConfig { field, .. }) => assert_eq!(field, "delete_url"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a delete action without delete_url"),
    }
    assert!(dest.action(spec("upsert")).is_ok());
}

fn valid(config: Value, batch_size: usize) -> super::config::ValidConfig {
    serde_json::from_value::<HttpRequestConfig>(config)
        .unwrap()
        .validate(batch_size)
        .unwrap()
}

#[test]
fn one_record_renders_its_fields_by_name() {
    let config = valid(
        json!({"url": "https://api.example.com/users/{{ id | urlencode }}?run={{ run }}",
               "method": "PUT",
               "body": "{\"email\": {{ email | tojson }}, \"key\": {{ key }}, \"k\": {{ fields.key | tojson }}, \"change\": \"{{ change }}\"}",
               "records_per_request": "one"}),
        1,
    );
    let batch = [payload(
        7,
        json!({"id": "a b", "email": "a@example.com", "key": "shadowed"}),
    )];
    let rendered = actions::render(
        &config,
        &config.upsert,
        HttpRequestAction::Upsert,
        &ctx(),
        &batch,
    )
    .unwrap();
    assert_eq!(
        rendered.url.as_str(),
        "https://api.example.com/users/a%20b?run=run-1"
    );
    let body: Value = serde_json::from_slice(&rendered.body.unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"email": "a@example.com", "key": 7, "k": "shadowed", "change": "added"})
    );
    // A value that moves the request to another host rejects the record.
    let config = valid(
        json!({"url": "https://api.example.com/{{ path }}", "records_per_request": "one"}),
        1,
    );
    let batch = [payload(1, json!({"path": "@evil.example/x"}))];
    let rendered = actions::render(
        &config,
        &config.upsert,
        HttpRequestAction::Upsert,
        &ctx(),
        &batch,
    );
    assert!(rendered.is_ok_and(|r| r.url.host_str() == Some("api.example.com")));
    // Default bodies: the fields; a one-record delete has none.
    let config = valid(
        json!({"url": "https://api.example.com/u", "records_per_request": "one",
               "delete_url": "https://api.example.com/u/{{ key }}"}),
        1,
    );
    let batch = [payload(3, json!({"email": "x@example.com"}))];
    let rendered = actions::render(
        &config,
        &config.upsert,
        HttpRequestAction::Upsert,
        &ctx(),
        &batch,
    )
    .unwrap();
    assert_eq!(rendered.body.unwrap(), br#"{"email":"x@example.com"}"#);
    let delete = config.delete.as_ref().unwrap();
    let rendered = actions::render(
        &config,
        delete,
        HttpRequestAction::Delete,
        &ctx(),
        &[Payload::delete(json!(3))],
    )
    .unwrap();
    assert_eq!(rendered.url.as_str(), "https://api.example.com/u/3");
    assert_eq!(rendered.body, None);
}

#[test]
fn arrays_render_records_and_default_bodies() {
    let config = valid(
        json!({"url": "https://api.example.com/batch",
               "delete_url": "https://api.example.com/delete", "delete_method": "POST",
               "delete_body": "{\"ids\": {{ records | map(attribute='key') | list | tojson }}}"}),
        100,
    );
    let batch = [
        payload(1, json!({"email": "a@example.com", "plan": null})),
        payload(2, json!({"email": "b@example.com", "plan": "pro"})),
    ];
    let rendered = actions::render(
        &config,
        &config.upsert,
        HttpRequestAction::Upsert,
        &ctx(),
        &batch,
    )
    .unwrap();
    let body: Value = serde_json::from_slice(&rendered.body.unwrap()).unwrap();
    assert_eq!(
        body,
        json!([{"email": "a@example.com", "plan": null}, {"email": "b@example.com", "plan": "pro"}])
    );
    let deletes = [Payload::delete(json!(1)), Payload::delete(json!(2))];
    let delete = config.delete.as_ref().unwrap();
    let rendered =
        actions::render(&config, delete, HttpRequestAction::Delete, &ctx(), &deletes).unwrap();
    assert_eq!(rendered.body.unwrap(), br#"{"ids": [1,2]}"#);
    assert_eq!(
        actions::record_value(&batch[1]),
        json!({"key": 2, "change": "added", "fields": {"email": "b@example.com", "plan": "pro"}})
    );
}

fn errors_at(pointer: &str) -> ErrorsAt {
    ErrorsAt {
        pointer: pointer.to_string(),
        index_field: "index".to_string(),
        message_field: "message".to_string(),
    }
}

#[test]
fn per_record_errors_are_read_at_the_pointer() {
    let at = errors_at("/errors");
    let body = json!({"errors": [{"index": 1, "message": "bad email"}, {"index": "2"}]});
    let outcome = client::parse_errors(&at, body.to_string().as_bytes(), 3).unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert_eq!(
        outcome.records[1],
        RecordOutcome::Rejected {
            reason: "bad email".to_string()
        }
    );
    assert!(
        matches!(&outcome.records[2], RecordOutcome::Rejected { reason } if reason.contains("index"))
    );
    for accepted in [
        &b""[..],
        b"not json",
        br#"{"ok": true}"#,
        br#"{"errors": null}"#,
    ] {
        let outcome = client::parse_errors(&at, accepted, 2).unwrap();
        assert_eq!(outcome.records, vec![RecordOutcome::Accepted; 2]);
    }
    for broken in [
        json!({"errors": {"index": 0}}),
        json!({"errors": [{"index": 5}]}),
        json!({"errors": [{"message": "no index"}]}),
    ] {
        let result = client::parse_errors(&at, broken.to_string().as_bytes(), 2);
        assert!(
            matches!(result, Err(DestinationError::Rejected { .. })),
            "{broken}"
        );
    }
    // The answer itself is the array; bare indexes; custom member names.
    let at = ErrorsAt {
        pointer: String::new(),
        index_field: "i".to_string(),
        message_field: "why".to_string(),
    };
    let outcome = client::parse_errors(
        &at,
        json!([0, {"i": 1, "why": {"code": 3}}])
            .to_string()
            .as_bytes(),
        2,
    )
    .unwrap();
    assert!(matches!(
        &outcome.records[0],
        RecordOutcome::Rejected { .. }
    ));
    assert_eq!(
        outcome.records[1],
        RecordOutcome::Rejected {
            reason: r#"{"code":3}"#.to_string()
        }
    );
}

#[tokio::test]
async fn round_trip_against_the_webhook_emulator() {
    let hook = WebhookEmulator::start(WebhookOptions {
        bearer_token: Some("tok".to_string()),
        ..WebhookOptions::default()
    })
    .await
    .unwrap();
    hook.reject_keys([json!(2)]);
    let config = json!({
        "url": hook.url(),
        "body": "{\"action\": \"{{ action }}\", \"mapping\": \"{{ mapping }}\", \"records\": {{ records | tojson }}}",
        "secret_headers": "{\"Authorization\": \"Bearer tok\"}",
        "errors_pointer": "/errors",
    });
    let dest = destination(config, 100);
    let batch = [
        payload(1, json!({"email": "a@example.com"})),
        payload(2, json!({"email": "b@example.com"})),
    ];
    let outcome = dest
        .action(spec("upsert"))
        .unwrap()
        .send(&ctx(), &batch)
        .await
        .unwrap();
    assert_eq!(outcome.records[0], RecordOutcome::Accepted);
    assert!(
        matches!(&outcome.records[1], RecordOutcome::Rejected { reason } if reason.contains("rejected"))
    );
    let records = hook.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key, json!(1));
    assert_eq!(records[0].mapping.as_deref(), Some("users"));
    assert_eq!(
        records[0].fields.as_ref().unwrap()["email"],
        "a@example.com"
    );
    let request = &hook.requests()[0];
    assert_eq!(request.header("content-type"), Some("application/json"));

    let wrong =
        json!({"url": hook.url(), "secret_headers": "{\"Authorization\": \"Bearer nope\"}"});
    let result = destination(wrong, 100)
        .action(spec("upsert"))
        .unwrap()
        .send(&ctx(), &batch)
        .await;
    match result {
        Err(DestinationError::Authentication { message }) => {
            assert!(
                message.contains("missing or wrong bearer token"),
                "{message}"
            );
            assert!(!message.contains("nope"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn round_trip_against_the_api_emulator() {
    let api = HttpApiEmulator::start("k3y").await.unwrap();
    let config = json!({
        "url": format!("{}/v1/users/{{{{ id | urlencode }}}}", api.url()),
        "method": "PUT",
        "delete_url": format!("{}/v1/users/{{{{ key }}}}", api.url()),
        "records_per_request": "one",
        "secret_headers": "{\"X-Api-Key\": \"k3y\"}",
        "throttle_statuses": [503],
    });
    let dest = destination(config, 1);
    let upsert = dest.action(spec("upsert")).unwrap();
    let batch = [payload(5, json!({"id": 5, "email": "e@example.com"}))];
    let outcome = upsert.send(&ctx(), &batch).await.unwrap();
    assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    assert_eq!(
        api.user("5").unwrap(),
        json!({"id": 5, "email": "e@example.com"})
    );

    api.throttle_next(1, 3);
    match upsert.send(&ctx(), &batch).await {
        Err(DestinationError::Transient {
            retry_after,
            throttled,
            ..
        }) => {
            assert!(throttled);
            assert_eq!(retry_after, Some(std::time::Duration::from_secs(3)));
        }
        other => panic!("{other:?}"),
    }
    api.reject_keys(["6".to_string()]);
    let rejected = upsert.send(&ctx(), &[payload(6, json!({"id": 6}))]).await;
    assert!(
        matches!(rejected, Err(DestinationError::Rejected { message }) if message.contains("user 6 was rejected"))
    );

    // A delete of a user the API does not hold answers 404: already gone.
    let delete = dest.action(spec("delete")).unwrap();
    for _ in 0..2 {
        let outcome = delete
            .send(&ctx(), &[Payload::delete(json!(5))])
            .await
            .unwrap();
        assert_eq!(outcome.records, [RecordOutcome::Accepted]);
    }
    assert!(api.user("5").is_none());
    let methods: Vec<(String, String)> = api
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        methods.last().unwrap(),
        &("DELETE".to_string(), "/v1/users/5".to_string())
    );
}
