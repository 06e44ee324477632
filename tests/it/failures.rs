//! Records that keep failing, across runs: sent again by every run with their current values,
//! given up by the mapping's retry policy and then skipped, listed with their last error, tried
//! afresh when they change, and retried on demand.

use std::collections::BTreeSet;

use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, column, counts, customers, write_parquet};
use serde_json::{Value, json};

/// Keys of the records the webhook received since request `from`.
fn sent_since(hook: &WebhookEmulator, from: usize) -> BTreeSet<i64> {
    hook.requests()[from..]
        .iter()
        .flat_map(|r| r.body["records"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["key"].as_i64())
        .collect()
}

async fn failed_records(h: &Harness, given_up_only: bool) -> Vec<v1::FailedRecord> {
    h.client
        .syncs()
        .list_failed_records(v1::ListFailedRecordsRequest {
            mapping_id: "up".into(),
            given_up_only,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records
}

#[tokio::test]
async fn a_failing_record_is_retried_given_up_listed_and_tried_afresh() {
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    hook.reject_keys([json!(3)]);
    let h = Harness::start().await;
    h.warehouse(&customers(5)).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    h.client
        .mappings()
        .create_mapping(v1::CreateMappingRequest {
            mapping_id: "up".into(),
            mapping: Some(v1::Mapping {
                model_id: "m".into(),
                destination_id: "hook".into(),
                action: "upsert".into(),
                fields: vec![column("email", "email")],
                retry_policy: Some(v1::RetryPolicy {
                    max_runs: 2,
                    max_age: None,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap();

    // Run 1: record 3 fails; it is pending with the destination's reason.
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::PartiallyFailed, "{run:?}");
    let records = failed_records(&h, false).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!((r.key.as_str(), r.attempts, r.given_up), ("3", 1, false));
    assert_eq!(r.last_run_id, run.id);
    assert!(!r.last_error.is_empty());
    assert!(failed_records(&h, true).await.is_empty());

    // Run 2: only record 3 is sent again; it fails a second time and is given up.
    let before = hook.requests().len();
    let run = h.sync("up").await;
    assert_eq!(sent_since(&hook, before), BTreeSet::from([3]));
    let c = run.counts.unwrap();
    assert_eq!((c.failed, c.newly_given_up), (1, 1), "{run:?}");
    assert!(
        run.warnings.iter().any(|w| w.contains("given up")),
        "{run:?}"
    );
    let records = failed_records(&h, true).await;
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].attempts, records[0].given_up), (2, true));

    // Run 3: the given-up record is skipped (counted, with a warning), nothing is sent.
    let before = hook.requests().len();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(hook.requests().len(), before, "nothing sent");
    let c = run.counts.unwrap();
    assert_eq!((c.selected, c.given_up, c.failed), (1, 1, 0), "{run:?}");
    assert!(
        run.warnings
            .iter()
            .any(|w| w.contains("retl sync retry up")),
        "{run:?}"
    );

    // Retried on demand: the next run sends it again (still rejected: pending, attempts anew).
    let answer = h
        .client
        .syncs()
        .retry_failed_records(v1::RetryFailedRecordsRequest {
            mapping_id: "up".into(),
            keys: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.records, 1);
    let before = hook.requests().len();
    let run = h.sync("up").await;
    assert_eq!(sent_since(&hook, before), BTreeSet::from([3]));
    assert_eq!(run.counts.unwrap().failed, 1);
    let records = failed_records(&h, false).await;
    assert_eq!(
        (records[0].attempts, records[0].given_up),
        (1, false),
        "{records:?}"
    );

    // It fails again (given up), then changes: a changed record is tried afresh, and once
    // delivered it leaves the list.
    h.sync("up").await;
    assert!(failed_records(&h, true).await.len() == 1);
    hook.clear();
    let mut rows = customers(5);
    rows[2].email = "changed3@example.com".into();
    write_parquet(&h.path("customers.parquet"), &rows);
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let (added, _, _, delivered, _) = counts(&run);
    assert_eq!(
        (added, delivered),
        (1, 1),
        "never delivered, so still new: {run:?}"
    );
    let sent: Vec<Value> = hook.records().into_iter().map(|r| r.key).collect();
    assert_eq!(sent, [json!(3)]);
    assert!(failed_records(&h, false).await.is_empty());

    // Bad input names the field.
    let err = h
        .client
        .syncs()
        .list_failed_records(v1::ListFailedRecordsRequest {
            mapping_id: "up".into(),
            page_token: "not-hex".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("page_token"), "{}", err.message());
    let err = h
        .client
        .mappings()
        .update_mapping(v1::UpdateMappingRequest {
            mapping: Some(v1::Mapping {
                id: "up".into(),
                retry_policy: Some(v1::RetryPolicy {
                    max_runs: 3,
                    max_age: Some(prost_types::Duration {
                        seconds: 5,
                        nanos: 0,
                    }),
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["retry_policy".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("max_age"), "{}", err.message());
}
