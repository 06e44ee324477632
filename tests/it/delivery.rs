//! Delivery behaviour end to end: signatures, rate limits and 429 pauses, cancel, and batches
//! split until the receiver takes them (webhook emulator).

use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, customers};
use serde_json::json;

use super::sync::received;

#[tokio::test]
async fn hmac_signatures_are_verified_by_the_receiver() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions {
        hmac_secret: Some("s3cret-signing-key".to_string()),
        ..Default::default()
    })
    .await
    .unwrap();
    h.warehouse(&customers(5)).await;
    h.model("SELECT * FROM customers").await;
    h.create_destination("signed", "webhook", json!({"url": hook.url(), "signing_secret": "s3cret-signing-key", "limits": {"batch_size": 2}}))
        .await
        .unwrap();
    h.create_destination(
        "unsigned",
        "webhook",
        json!({"url": hook.url(), "limits": {"max_attempts": 1}}),
    )
    .await
    .unwrap();
    h.create_mapping("a", "m", "signed", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    h.create_mapping("b", "m", "unsigned", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    let run = h.sync("a").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        hook.request_count(),
        3,
        "batch size 2 -> 3 requests for 5 records"
    );
    let run = h.sync("b").await;
    assert_eq!(
        run.status(),
        v1::RunStatus::Failed,
        "an unsigned request is refused: {run:?}"
    );
    assert!(run.error.contains("credentials"), "{}", run.error);
}

#[tokio::test]
async fn the_rate_limit_spaces_requests_and_a_429_pauses_the_destination() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    h.warehouse(&customers(6)).await;
    h.model("SELECT id, email FROM customers").await;
    // 5 requests per second, no burst, one record per request.
    h.create_destination("slow", "webhook", json!({"url": hook.url(), "limits": {"requests_per_second": 5, "burst": 1, "batch_size": 1, "max_in_flight": 1}}))
        .await
        .unwrap();
    h.create_mapping("a", "m", "slow", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    let run = h.sync("a").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 6);
    for pair in reqs.windows(2) {
        let gap = pair[1]
            .received_at
            .duration_since(pair[0].received_at)
            .unwrap();
        assert!(
            gap >= std::time::Duration::from_millis(150),
            "requests {gap:?} apart at 5/s"
        );
    }

    // The receiver allows 2 requests per second and answers 429 + Retry-After beyond that.
    let hook2 = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    hook2.rate_limit(2, std::time::Duration::from_secs(1));
    h.create_destination("fast", "webhook", json!({"url": hook2.url(), "limits": {"requests_per_second": 1000, "burst": 100, "batch_size": 1, "max_in_flight": 1, "max_attempts": 10}}))
        .await
        .unwrap();
    h.create_mapping("b", "m", "fast", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    let run = h.sync("b").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(received(&hook2, 0, "added"), (1..=6).collect());
    let reqs = hook2.requests();
    let throttled: Vec<usize> = (0..reqs.len()).filter(|&i| reqs[i].status == 429).collect();
    assert!(
        !throttled.is_empty(),
        "the receiver throttled at least once"
    );
    for &i in &throttled {
        // The emulator's Retry-After is at least 1 s; one request in flight, so the next one
        // must wait it out.
        if let Some(next) = reqs.get(i + 1) {
            let gap = next
                .received_at
                .duration_since(reqs[i].received_at)
                .unwrap();
            assert!(
                gap >= std::time::Duration::from_millis(950),
                "next request {gap:?} after a 429"
            );
        }
    }
}

#[tokio::test]
async fn cancelling_a_run_keeps_what_was_acknowledged() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    hook.respond_after(std::time::Duration::from_millis(100));
    h.warehouse(&customers(60)).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": hook.url(), "limits": {"batch_size": 1, "max_in_flight": 1, "requests_per_second": 1000, "burst": 10}}))
        .await
        .unwrap();
    h.create_mapping("a", "m", "hook", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    let run = h.trigger("a", false).await.unwrap();
    // Live progress: wait until a few records were delivered.
    loop {
        let live = h
            .client
            .syncs()
            .get_sync_run(v1::GetSyncRunRequest {
                run_id: run.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if live.counts.unwrap_or_default().delivered >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    h.client
        .syncs()
        .cancel_sync_run(v1::CancelSyncRunRequest {
            run_id: run.id.clone(),
        })
        .await
        .unwrap();
    let done = h.wait(&run.id).await;
    assert_eq!(done.status(), v1::RunStatus::Cancelled, "{done:?}");
    let c = done.counts.unwrap();
    assert!(c.delivered >= 3 && c.delivered < 60, "{c:?}");
    assert_eq!(c.selected, c.delivered + c.failed);
    // The next run sends the rest, and nothing that was acknowledged.
    hook.clear();
    let next = h.sync("a").await;
    assert_eq!(next.status(), v1::RunStatus::Succeeded, "{next:?}");
    assert_eq!(next.counts.unwrap().added, 60 - c.delivered);
    assert_eq!(hook.records().len() as u64, 60 - c.delivered);
    let err = h
        .client
        .syncs()
        .cancel_sync_run(v1::CancelSyncRunRequest {
            run_id: run.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn a_batch_too_large_for_the_receiver_is_split_until_it_fits() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    hook.max_batch(7);
    h.warehouse(&customers(50)).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination(
        "hook",
        "webhook",
        json!({"url": hook.url(), "limits": {"batch_size": 25}}),
    )
    .await
    .unwrap();
    h.create_mapping("a", "m", "hook", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    let run = h.sync("a").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(received(&hook, 0, "added"), (1..=50).collect());
    let reqs = hook.requests();
    assert!(
        reqs.iter().any(|r| r.status == 413),
        "the receiver refused the large batches"
    );
    for r in reqs.iter().filter(|r| r.status == 200) {
        assert!(r.body["records"].as_array().unwrap().len() <= 7);
    }
}
