//! The `retl` binary as a child process: `retl serve --log-format json` writes one JSON object a
//! line, and `retl top --once` shows a running sync.

use std::process::Stdio;
use std::time::Duration;

use retl::cli::Client;
use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Harness, TOKEN, customers, retl_binary};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn serve_writes_json_logs_one_object_a_line() {
    let data = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(retl_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env("RETL_TOKEN", TOKEN)
        .env("RETL_LOG_FORMAT", "json")
        .env_remove("RETL_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut logged: Vec<Value> = Vec::new();
    let parse = |line: &str| -> Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    // The address comes from the "listening" line itself (port 0 was asked for).
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("retl serve exited");
            let v = parse(&line);
            logged.push(v.clone());
            if v["fields"]["message"] == "retl daemon listening" {
                return v["fields"]["addr"].as_str().unwrap().to_string();
            }
        }
    })
    .await
    .expect("the daemon logged that it listens");

    let client = Client::connect(&addr, Some(TOKEN)).await.unwrap();
    client
        .sources()
        .list_sources(v1::ListSourcesRequest::default())
        .await
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    while let Some(line) = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the daemon stops on SIGTERM")
        .unwrap()
    {
        logged.push(parse(&line));
    }
    assert!(child.wait().await.unwrap().success());
    for v in &logged {
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                .contains(&v["level"].as_str().unwrap_or("")),
            "{v}"
        );
        assert!(v["target"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
        assert!(v["fields"]["message"].is_string(), "{v}");
        assert!(v["timestamp"].is_string(), "{v}");
    }
    let messages: Vec<&str> = logged
        .iter()
        .filter_map(|v| v["fields"]["message"].as_str())
        .collect();
    for expected in [
        "serving Prometheus metrics on /metrics",
        "retl daemon listening",
        "shutdown signal received",
        "retl daemon stopped",
    ] {
        assert!(
            messages.contains(&expected),
            "{expected} not in {messages:?}"
        );
    }
}

#[tokio::test]
async fn top_once_shows_a_running_sync() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    hook.respond_after(Duration::from_millis(150));
    hook.fail_next(1, 429, Some(1));
    h.warehouse(&customers(40)).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination("slow", "webhook", json!({"url": hook.url(), "limits": {"batch_size": 1, "max_in_flight": 1, "requests_per_second": 1000, "burst": 10}}))
        .await
        .unwrap();
    h.create_mapping("a", "m", "slow", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    let run = h.trigger("a", false).await.unwrap();
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
        if live.counts.unwrap_or_default().delivered >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let top = |json: bool| {
        let mut cmd = tokio::process::Command::new(retl_binary());
        cmd.args(["--addr", &h.url(), "top", "--once"])
            .env("RETL_TOKEN", TOKEN)
            .stdin(Stdio::null());
        if json {
            cmd.args(["--output", "json"]);
        }
        cmd.output()
    };
    let out = top(false).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("retl top: 1 in progress"), "{text}");
    let header = text.lines().find(|l| l.starts_with("MAPPING")).unwrap();
    assert!(
        header.split_whitespace().eq([
            "MAPPING",
            "STAGE",
            "EXTRACTED",
            "DELIVERED/SELECTED",
            "ROWS/S",
            "PENDING",
            "FAILED",
            "THROTTLED",
            "ELAPSED",
            "RUN"
        ]),
        "{text}"
    );
    let cells: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("a "))
        .unwrap_or_else(|| panic!("no line for mapping a: {text}"))
        .split_whitespace()
        .collect();
    assert_eq!(cells[1], "delivering", "{text}");
    assert_eq!(cells[2], "40", "{text}");
    // Selection runs ahead of delivery as the diff goes: delivered/selected, both counting.
    let (delivered, selected) = cells[3].split_once('/').unwrap();
    assert!(delivered.parse::<u64>().unwrap() >= 2, "{text}");
    assert!(selected.parse::<u64>().unwrap() <= 40, "{text}");
    assert_eq!(cells[7], "1", "one throttled answer: {text}");
    assert_eq!(cells[9], run.id, "{text}");

    let out = top(true).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["id"], run.id);
    assert_eq!(runs[0]["counts"]["throttled"], 1);

    h.client
        .syncs()
        .cancel_sync_run(v1::CancelSyncRunRequest {
            run_id: run.id.clone(),
        })
        .await
        .unwrap();
    h.wait(&run.id).await;
}
