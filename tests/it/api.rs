//! The API's contract: auth, error codes and messages for bad input, secrets never returned,
//! persistence across restarts.

use retl::cli::Client;
use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, customers};
use serde_json::json;
use tonic::Code;

async fn base(h: &Harness) {
    h.warehouse(&customers(5)).await;
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let h = Harness::start().await;
    for token in [None, Some("wrong-token"), Some("bad\ntoken")] {
        let Ok(client) = Client::connect(&h.url(), token).await else {
            // A token that cannot be a header value is refused by the client itself.
            continue;
        };
        let err = client
            .sources()
            .list_sources(v1::ListSourcesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}: {err}");
        assert!(
            err.message().to_lowercase().contains("token"),
            "{}",
            err.message()
        );
    }
    // Health needs no token.
    let channel = tonic::transport::Endpoint::from_shared(h.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        resp.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn bad_models_are_refused_with_named_problems_and_nothing_is_stored() {
    let h = Harness::start().await;
    base(&h).await;
    let cases = [
        ("SELEC id FROM customers", "id", "syntax"),
        ("SELECT id FROM nowhere", "id", "nowhere"),
        ("CREATE TABLE x AS SELECT 1 AS id", "id", "read-only"),
        ("DROP TABLE customers", "id", "read-only"),
        ("SELECT email FROM customers", "id", "no column 'id'"),
        (
            "SELECT id, email FROM customers",
            "",
            "unique_id is required",
        ),
        (
            "SELECT id, active FROM customers",
            "active",
            "cannot be a unique id",
        ),
        (
            "SELECT id, email AS id FROM customers",
            "id",
            "distinct name",
        ),
    ];
    for (i, (sql, uid, needle)) in cases.iter().enumerate() {
        let err = h
            .create_model(&format!("bad{i}"), "wh", sql, uid)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{sql}: {err}");
        assert!(
            err.message().contains(needle),
            "{sql}: expected '{needle}' in '{}'",
            err.message()
        );
    }
    let err = h
        .create_model("m", "nope", "SELECT id FROM customers", "id")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("source 'nope'"), "{}", err.message());
    let list = h
        .client
        .models()
        .list_models(v1::ListModelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.models.is_empty(), "nothing was stored: {list:?}");
}

#[tokio::test]
async fn bad_mappings_are_refused_with_named_problems() {
    let h = Harness::start().await;
    base(&h).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": "http://127.0.0.1:9/hook"}))
        .await
        .unwrap();
    let err = h
        .create_mapping("x", "m", "hook", "upsert", &[("email", "e_mail")], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("no column 'e_mail'") && err.message().contains("email, plan"),
        "{}",
        err.message()
    );
    let err = h
        .create_mapping("x", "m", "hook", "upsert_contact", &[], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("upsert_contact") && err.message().contains("upsert, delete")
            || err.message().contains("delete, upsert"),
        "{}",
        err.message()
    );
    let err = h
        .create_mapping(
            "x",
            "m",
            "hook",
            "upsert",
            &[("email", "email")],
            Some((false, false, true)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("cannot receive deleted"),
        "{}",
        err.message()
    );
    let err = h
        .create_mapping("x", "nomodel", "hook", "upsert", &[], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = h
        .create_mapping("Bad Id", "m", "hook", "upsert", &[], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("not a valid id"),
        "{}",
        err.message()
    );
    let mappings = h.mappings().await;
    assert!(mappings.is_empty());
    let err = h
        .create_destination("d2", "webhook", json!({"url": "ftp://example"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("url"), "{}", err.message());
    let err = h
        .create_destination("d3", "carrier_pigeon", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("webhook"),
        "lists valid types: {}",
        err.message()
    );
}

#[tokio::test]
async fn disabled_mappings_and_destinations_refuse_to_sync() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    base(&h).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    h.create_mapping("up", "m", "hook", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    h.client
        .mappings()
        .set_mapping_enabled(v1::SetMappingEnabledRequest {
            mapping_id: "up".into(),
            enabled: false,
        })
        .await
        .unwrap();
    let err = h.trigger("up", false).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("disabled"), "{}", err.message());
    h.client
        .mappings()
        .set_mapping_enabled(v1::SetMappingEnabledRequest {
            mapping_id: "up".into(),
            enabled: true,
        })
        .await
        .unwrap();
    h.client
        .destinations()
        .update_destination(v1::UpdateDestinationRequest {
            destination: Some(v1::Destination {
                id: "hook".into(),
                enabled: Some(false),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["enabled".into()],
            }),
        })
        .await
        .unwrap();
    let err = h.trigger("up", false).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("destination 'hook' is disabled"),
        "{}",
        err.message()
    );
    assert_eq!(hook.request_count(), 0);
    let err = h.trigger("ghost", false).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn secrets_are_never_returned_and_definitions_survive_a_restart() {
    let mut h = Harness::start().await;
    base(&h).await;
    let secret = "very-secret-signing-key-123";
    h.create_destination(
        "hook",
        "webhook",
        json!({"url": "http://127.0.0.1:9/x", "signing_secret": secret}),
    )
    .await
    .unwrap();
    h.restart().await;
    let got = h
        .client
        .destinations()
        .get_destination(v1::GetDestinationRequest {
            destination_id: "hook".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.secret_fields_set, vec!["signing_secret".to_string()]);
    assert!(!format!("{got:?}").contains(secret));
    let list = h
        .client
        .destinations()
        .list_destinations(v1::ListDestinationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.destinations.len(), 1);
    assert!(!format!("{list:?}").contains(secret));
    let sources = h
        .client
        .sources()
        .list_sources(v1::ListSourcesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sources.sources.len(), 1, "the source survived the restart");
    // A request without its ids names what is missing.
    let err = h
        .client
        .mappings()
        .suggest_mappings(v1::SuggestMappingsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("model_id"), "{}", err.message());
}

#[tokio::test]
async fn malformed_authorization_headers_are_unauthenticated() {
    let h = Harness::start().await;
    let channel = tonic::transport::Endpoint::from_shared(h.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    for header in [
        "Basic dGVzdDp0ZXN0",
        "Bearer",
        "Bearer ",
        "bearer-test-token-7f3a9c",
        "test-token-7f3a9c",
    ] {
        let value: tonic::metadata::MetadataValue<tonic::metadata::Ascii> = header.parse().unwrap();
        let mut client = v1::source_service_client::SourceServiceClient::with_interceptor(
            channel.clone(),
            move |mut req: tonic::Request<()>| {
                req.metadata_mut().insert("authorization", value.clone());
                Ok(req)
            },
        );
        let err = client
            .list_sources(v1::ListSourcesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{header:?}: {err}");
    }
}

#[tokio::test]
async fn a_mapping_to_a_disabled_destination_is_refused_and_not_stored() {
    let h = Harness::start().await;
    base(&h).await;
    h.model("SELECT id, email FROM customers").await;
    h.client
        .destinations()
        .create_destination(v1::CreateDestinationRequest {
            destination_id: "off".into(),
            destination: Some(v1::Destination {
                r#type: "webhook".into(),
                config: Some(retl_tests::to_struct(
                    json!({"url": "http://127.0.0.1:9/x"}),
                )),
                enabled: Some(false),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let err = h
        .create_mapping("up", "m", "off", "upsert", &[("email", "email")], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert!(
        err.message().contains("destination 'off' is disabled"),
        "{}",
        err.message()
    );
    let mappings = h.mappings().await;
    assert!(mappings.is_empty());
}

#[tokio::test]
async fn sync_runs_page_newest_first() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    h.warehouse(&customers(3)).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    h.create_mapping("a", "m", "hook", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(h.sync("a").await.id);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = h
            .client
            .syncs()
            .list_sync_runs(v1::ListSyncRunsRequest {
                mapping_id: "a".into(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.sync_runs.len() <= 2);
        seen.extend(page.sync_runs.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids, "every run once, newest first");
}

#[tokio::test]
async fn extractions_of_one_source_queue_behind_its_limit() {
    let h = Harness::start().await;
    let err = h
        .create_source(
            "bad",
            json!({"path": "/tmp/x.parquet", "max_concurrent_extractions": 0}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("max_concurrent_extractions"),
        "{}",
        err.message()
    );
    // Big enough that an extraction takes a noticeable time.
    retl_tests::write_csv(&h.path("customers.csv"), &customers(150_000), None);
    h.create_source("wh", json!({"path": h.path("customers.csv").display().to_string(), "max_concurrent_extractions": 1}))
        .await
        .unwrap();
    h.model("SELECT id, email, plan FROM customers").await;
    let out = h.path("out");
    h.create_destination(
        "files",
        "file",
        json!({"directory": out.display().to_string()}),
    )
    .await
    .unwrap();
    for m in ["a", "b"] {
        h.create_mapping(
            m,
            "m",
            "files",
            "append_changes",
            &[("email", "email")],
            None,
        )
        .await
        .unwrap();
    }
    let (ra, rb) = tokio::join!(h.trigger("a", false), h.trigger("b", false));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let (a, b) = tokio::join!(h.wait(&ra.id), h.wait(&rb.id));
    for run in [&a, &b] {
        assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
        assert_eq!(run.counts.unwrap().delivered, 150_000);
    }
    // With one slot the extraction windows [start, start + extract] do not overlap.
    let window = |r: &v1::SyncRun| {
        let start = r.start_time.unwrap();
        let start_ms = start.seconds * 1000 + i64::from(start.nanos) / 1_000_000;
        (start_ms, start_ms + r.timings.unwrap().extract_ms as i64)
    };
    let (mut first, mut second) = (window(&a), window(&b));
    let queued = if first.0 > second.0 {
        std::mem::swap(&mut first, &mut second);
        a.timings.unwrap().queued_ms
    } else {
        b.timings.unwrap().queued_ms
    };
    assert!(
        second.0 + 5 >= first.1,
        "extractions overlapped: {first:?} {second:?}"
    );
    assert!(
        queued as i64 + 5 >= first.1 - first.0,
        "the second run waited in the queue ({queued} ms)"
    );
}

/// Clients that speak only reflection v1alpha (Python's grpcio-reflection, older grpcurl) list
/// the services; like every call but health it needs the token.
#[tokio::test]
async fn reflection_v1alpha_lists_the_services() {
    use futures::StreamExt;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let h = Harness::start().await;
    let channel = tonic::transport::Endpoint::from_shared(h.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let list = || {
        futures::stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }])
    };
    let err = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(list())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    let auth = retl::auth::BearerToken::new(Some(retl_tests::TOKEN)).unwrap();
    let mut responses = ServerReflectionClient::with_interceptor(channel, auth)
        .server_reflection_info(list())
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(services)) = response.message_response else {
        panic!("expected a service list, got {response:?}");
    };
    let names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    for name in retl::daemon::SERVICE_NAMES
        .into_iter()
        .chain(["grpc.health.v1.Health"])
    {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
}
