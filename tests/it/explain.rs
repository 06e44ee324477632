//! `ExplainRecord` / `retl explain <mapping> <key>`: for one record, whether and when it was
//! sent, and why not — one outcome after another, each as a user meets it.

use retl_engine::EngineOptions;
use retl_proto::v1;
use retl_testkit::emulators::segment::SegmentEmulator;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, column, customers, expression, write_parquet};
use serde_json::{Value, json};
use tonic::Code;

async fn explain(
    h: &Harness,
    mapping: &str,
    key: &str,
    fresh: bool,
) -> Result<v1::RecordExplanation, tonic::Status> {
    h.client
        .syncs()
        .explain_record(v1::ExplainRecordRequest {
            mapping_id: mapping.into(),
            key: key.into(),
            fresh,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn verdict(h: &Harness, mapping: &str, key: &str, fresh: bool) -> v1::RecordExplanation {
    let e = explain(h, mapping, key, fresh).await.unwrap();
    assert!(!e.reason.is_empty(), "{e:?}");
    e
}

/// A mapping of the emails of model `m` into webhook `hook`.
fn mapping(action: &str) -> v1::Mapping {
    v1::Mapping {
        model_id: "m".into(),
        destination_id: "hook".into(),
        action: action.into(),
        fields: if action == "upsert" {
            vec![column("email", "email")]
        } else {
            Vec::new()
        },
        ..Default::default()
    }
}

async fn create(h: &Harness, id: &str, mapping: v1::Mapping) {
    h.client
        .mappings()
        .create_mapping(v1::CreateMappingRequest {
            mapping_id: id.into(),
            mapping: Some(mapping),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn explain_follows_a_record_from_new_to_sent_failed_given_up_and_gone() {
    let h = Harness::start_with(|c| {
        c.engine_options = EngineOptions {
            staging_runs_kept: 5,
            ..EngineOptions::default()
        }
    })
    .await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    h.warehouse(&customers(20)).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    let mut up = mapping("upsert");
    up.retry_policy = Some(v1::RetryPolicy {
        max_runs: 2,
        max_age: None,
    });
    create(&h, "up", up).await;
    create(&h, "del", mapping("delete")).await;

    // Nothing staged yet: a clear precondition, or a fresh extract.
    let err = explain(&h, "up", "7", false).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("--fresh"), "{}", err.message());
    let e = verdict(&h, "up", "7", true).await;
    assert_eq!(e.verdict, "will_send", "{e:?}");
    assert_eq!(
        (e.next_change(), e.next_outcome.as_str()),
        (v1::ChangeKind::Added, "send")
    );
    assert_eq!(e.rows_in_extract, 1);
    assert!(e.state.is_none());
    let payload: Value = serde_json::from_str(&e.payload_fields_json).unwrap();
    assert_eq!(payload["email"], "user7@example.com");
    for unknown in ["999", "abc"] {
        let e = verdict(&h, "up", unknown, false).await;
        assert_eq!(e.verdict, "not_found", "{e:?}");
        assert!(e.reason.contains("check the value"), "{}", e.reason);
    }
    assert_eq!(hook.request_count(), 0, "explaining sends nothing");
    let err = explain(&h, "nope", "7", false).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = explain(&h, "up", "", false).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Sent: by which run, acknowledged.
    let first = h.sync("up").await;
    assert_eq!(first.status(), v1::RunStatus::Succeeded, "{first:?}");
    let e = verdict(&h, "up", "7", false).await;
    assert_eq!(e.verdict, "in_sync", "{e:?}");
    let state = e.state.clone().unwrap();
    assert_eq!(
        (state.run_id.as_str(), state.sent),
        (first.id.as_str(), Some(true))
    );
    assert_eq!(e.extract_fingerprint, state.fingerprint);
    assert!(
        e.reason.contains(&first.id) && e.reason.contains("acknowledged"),
        "{}",
        e.reason
    );
    // A mapping that does not send what it saw records it without sending.
    let del_first = h.sync("del").await;
    let e = verdict(&h, "del", "7", false).await;
    assert_eq!(e.verdict, "in_sync", "{e:?}");
    let state = e.state.unwrap();
    assert_eq!(
        (state.run_id.as_str(), state.sent),
        (del_first.id.as_str(), Some(false))
    );
    assert!(e.reason.contains("without sending"), "{}", e.reason);

    // Changed, then refused by the destination: failed, then given up.
    let mut rows = customers(20);
    rows[2].email = "changed3@example.com".into();
    write_parquet(&h.path("customers.parquet"), &rows);
    let e = verdict(&h, "up", "3", true).await;
    assert_eq!(
        (e.verdict.as_str(), e.next_change()),
        ("will_send", v1::ChangeKind::Updated)
    );
    assert_ne!(e.extract_fingerprint, e.state.as_ref().unwrap().fingerprint);
    assert!(e.reason.contains("mapped values changed"), "{}", e.reason);
    hook.reject_keys([json!(3)]);
    let failed = h.sync("up").await;
    assert_eq!(failed.counts.unwrap().failed, 1, "{failed:?}");
    let e = verdict(&h, "up", "3", false).await;
    assert_eq!(e.verdict, "failed", "{e:?}");
    assert_eq!(e.failure.as_ref().unwrap().attempts, 1);
    assert_eq!(e.errors[0].run_id, failed.id);
    assert_eq!(e.errors[0].stage, "deliver");
    assert!(e.reason.contains("failed in 1 run"), "{}", e.reason);
    h.sync("up").await;
    let e = verdict(&h, "up", "3", false).await;
    assert_eq!(e.verdict, "given_up", "{e:?}");
    assert!(e.failure.unwrap().given_up);
    assert!(e.reason.contains("retl sync retry up 3"), "{}", e.reason);

    // Gone from the model: the upsert mapping does not send deletes, the delete mapping does.
    rows.retain(|c| c.id != Some(20));
    write_parquet(&h.path("customers.parquet"), &rows);
    let e = verdict(&h, "up", "20", true).await;
    assert_eq!(
        (e.verdict.as_str(), e.next_change()),
        ("not_selected", v1::ChangeKind::Deleted)
    );
    assert!(
        e.reason.contains("does not send deleted records"),
        "{}",
        e.reason
    );
    let e = verdict(&h, "del", "20", false).await;
    assert_eq!(
        (e.verdict.as_str(), e.next_outcome.as_str()),
        ("will_send", "send")
    );
    assert_eq!(e.rows_in_extract, 0);
    let last_with_20 = e.last_seen_run_id.clone();
    assert!(!last_with_20.is_empty(), "{e:?}");
    let gone = h.sync("del").await;
    assert_eq!(gone.counts.unwrap().delivered, 1, "{gone:?}");
    let e = verdict(&h, "del", "20", false).await;
    assert_eq!(e.verdict, "left", "{e:?}");
    assert!(e.state.is_none());
    assert_eq!(e.last_seen_run_id, last_with_20);
    assert!(
        !e.left_run_id.is_empty() && e.left_run_id != last_with_20,
        "{e:?}"
    );
    assert!(
        e.reason.contains("not in the model any more"),
        "{}",
        e.reason
    );
}

#[tokio::test]
async fn explain_names_rejected_unmappable_marked_held_back_and_disabled_records() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let segment = SegmentEmulator::start("explainWriteKey0123").await.unwrap();
    let mut rows = customers(20);
    let mut twin = rows[4].clone();
    twin.email = "twin5@example.com".into();
    rows.push(twin);
    h.warehouse(&rows).await;
    h.model("SELECT id, email, plan FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    h.create_destination(
        "seg",
        "segment",
        json!({"write_key": "explainWriteKey0123", "endpoint": segment.url(), "settings_endpoint": segment.url()}),
    )
    .await
    .unwrap();
    let fields = vec![
        column("user_id", "email"),
        expression("event", "CASE WHEN id = 4 THEN NULL ELSE 'Synced' END"),
    ];
    h.create_mapping_with("ev", "m", "seg", "track", fields, None)
        .await
        .unwrap();
    let mut quiet = mapping("upsert");
    quiet.initial_sync = v1::InitialSync::MarkExistingSynced as i32;
    create(&h, "quiet", quiet).await;

    let e = verdict(&h, "ev", "5", true).await;
    assert_eq!(
        (e.verdict.as_str(), e.rows_in_extract),
        ("rejected", 2),
        "{e:?}"
    );
    assert!(e.detail.contains("duplicate"), "{e:?}");
    let e = verdict(&h, "ev", "4", false).await;
    assert_eq!(e.verdict, "unmappable", "{e:?}");
    assert!(
        e.detail.contains("event") && e.detail.contains("NULL"),
        "{e:?}"
    );
    let e = verdict(&h, "quiet", "7", false).await;
    assert_eq!(e.verdict, "marked_synced", "{e:?}");
    assert!(e.reason.contains("first run"), "{}", e.reason);

    h.client
        .mappings()
        .set_mapping_enabled(v1::SetMappingEnabledRequest {
            mapping_id: "ev".into(),
            enabled: false,
        })
        .await
        .unwrap();
    let e = verdict(&h, "ev", "7", false).await;
    assert_eq!(e.verdict, "disabled", "{e:?}");
    assert!(
        e.blockers
            .iter()
            .any(|b| b.contains("retl mapping enable ev")),
        "{e:?}"
    );

    // 17 of 19 synced keys vanish: the deletes wait behind the safety stop.
    let run = h.sync("quiet").await;
    assert_eq!(run.counts.unwrap().delivered, 0, "{run:?}");
    write_parquet(&h.path("customers.parquet"), &customers(2));
    let e = verdict(&h, "quiet", "15", true).await;
    assert_eq!(
        (e.verdict.as_str(), e.next_outcome.as_str()),
        ("held_back", "held_back")
    );
    assert!(e.reason.contains("--confirm-mass-delete"), "{}", e.reason);
    assert_eq!(hook.request_count(), 0);

    // The CLI prints the same answer for people and as JSON.
    let out = h
        .cli(&["--output", "table", "explain", "quiet", "15"])
        .await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("record 15 of mapping quiet: held_back\n"),
        "{text}"
    );
    assert!(text.contains(&format!("by run {}", run.id)), "{text}");
    let out = h.cli(&["--output", "json", "explain", "quiet", "15"]).await;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verdict"], "held_back");
    assert_eq!(json["state"]["run_id"], run.id);
    assert_eq!(json["state"]["sent"], false);
}
