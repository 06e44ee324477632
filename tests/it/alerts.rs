//! Alerts: one message per change of a condition, to the daemon's global targets and the
//! mapping's own.

use std::time::{Duration, Instant};

use retl_proto::v1;
use retl_testkit::emulators::alert_receiver::AlertReceiver;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, customers, write_parquet};
use serde_json::{Value, json};

/// Waits until `receiver` holds `n` alerts (alerts are sent after the run's end) and returns
/// them; checks that no more arrive for a moment.
async fn alerts(receiver: &AlertReceiver, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.alerts().len() < n {
        assert!(
            Instant::now() < deadline,
            "expected {n} alerts, got {:?}",
            receiver.alerts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = receiver.alerts();
    assert_eq!(got.len(), n, "{got:#?}");
    got
}

fn pairs(alerts: &[Value]) -> Vec<(String, String)> {
    let mut p: Vec<_> = alerts
        .iter()
        .map(|a| {
            (
                a["alert"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    p.sort();
    p
}

fn pair(alert: &str, state: &str) -> (String, String) {
    (alert.to_string(), state.to_string())
}

#[tokio::test]
async fn alerts_go_out_once_per_transition_to_global_and_mapping_targets() {
    let global = AlertReceiver::start().await.unwrap();
    let own = AlertReceiver::start().await.unwrap();
    let global_url = global.url();
    let h = Harness::start_with(|c| c.engine_options.alert_webhooks = vec![global_url]).await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    h.warehouse(&customers(20)).await;
    h.model("SELECT id, email FROM customers").await;
    let limits = json!({"max_attempts": 1, "requests_per_second": 1000, "burst": 100});
    h.create_destination(
        "hook",
        "webhook",
        json!({"url": hook.url(), "limits": limits}),
    )
    .await
    .unwrap();
    let mapping = h
        .client
        .mappings()
        .create_mapping(v1::CreateMappingRequest {
            mapping_id: "up".into(),
            mapping: Some(v1::Mapping {
                model_id: "m".into(),
                destination_id: "hook".into(),
                action: "upsert".into(),
                fields: vec![retl_tests::column("email", "email")],
                alerts: Some(v1::AlertPolicy {
                    webhook_urls: vec![own.url()],
                    failed_record_share: 0.25,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mapping.alerts.unwrap().failed_record_share, 0.25);

    // Every request fails: the run fails and all its records failed -> two alerts firing.
    hook.fail_next(1000, 500, None);
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    let first = alerts(&global, 2).await;
    assert_eq!(
        pairs(&first),
        vec![
            pair("failed_records", "firing"),
            pair("run_failed", "firing")
        ]
    );
    let failed = first.iter().find(|a| a["alert"] == "run_failed").unwrap();
    assert_eq!(failed["mapping_id"], "up");
    assert_eq!(failed["run_id"], json!(run.id));
    assert!(
        failed["text"]
            .as_str()
            .unwrap()
            .starts_with("[retl] FIRING run_failed on mapping 'up'"),
        "{failed}"
    );
    assert_eq!(pairs(&alerts(&own, 2).await), pairs(&first));

    // Failing again changes nothing: no message.
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    alerts(&global, 2).await;

    // Fixed: both resolve.
    hook.clear();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let all = alerts(&global, 4).await;
    assert_eq!(
        pairs(&all[2..]),
        vec![
            pair("failed_records", "resolved"),
            pair("run_failed", "resolved")
        ]
    );
    alerts(&own, 4).await;

    // 18 of 20 rows vanish: the mass-delete safety stop holds the deletes -> firing.
    write_parquet(&h.path("customers.parquet"), &customers(2));
    let run = h.sync("up").await;
    assert_eq!(run.counts.unwrap().deletes_held_back, 18, "{run:?}");
    let all = alerts(&global, 5).await;
    assert_eq!(pairs(&all[4..]), vec![pair("mass_delete_held", "firing")]);
    assert!(
        all[4]["message"]
            .as_str()
            .unwrap()
            .contains("--confirm-mass-delete")
    );
}

#[tokio::test]
async fn alert_settings_are_checked() {
    let h = Harness::start().await;
    h.warehouse(&customers(2)).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": "http://127.0.0.1:9/x"}))
        .await
        .unwrap();
    for (alerts, field) in [
        (
            v1::AlertPolicy {
                webhook_urls: vec!["hooks.slack.com/x".into()],
                failed_record_share: 0.0,
            },
            "mapping.alerts.webhook_urls[0]",
        ),
        (
            v1::AlertPolicy {
                webhook_urls: vec![],
                failed_record_share: 1.5,
            },
            "mapping.alerts.failed_record_share",
        ),
    ] {
        let err = h
            .client
            .mappings()
            .create_mapping(v1::CreateMappingRequest {
                mapping_id: "up".into(),
                mapping: Some(v1::Mapping {
                    model_id: "m".into(),
                    destination_id: "hook".into(),
                    action: "upsert".into(),
                    fields: vec![retl_tests::column("email", "email")],
                    alerts: Some(alerts),
                    ..Default::default()
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(field), "{}", err.message());
    }
}
