//! End-to-end syncs: Parquet/CSV source -> webhook emulator, checked key by key.

use std::collections::BTreeSet;

use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Customer, Harness, counts, customers, write_csv, write_parquet};
use serde_json::{Value, json};

fn keys(values: impl IntoIterator<Item = Value>) -> BTreeSet<i64> {
    values
        .into_iter()
        .map(|v| v.as_i64().expect("integer key"))
        .collect()
}

/// Keys the emulator accepted with this change kind since `from` (a record index).
pub(crate) fn received(hook: &WebhookEmulator, from: usize, change: &str) -> BTreeSet<i64> {
    keys(
        hook.records()
            .into_iter()
            .skip(from)
            .filter(|r| r.change.as_deref() == Some(change))
            .map(|r| r.key),
    )
}

/// Source `wh` over `customers.parquet`, model `m` (id, email, plan), webhook `hook`, and an
/// upsert mapping `up` (email, plan) plus a delete mapping `del`.
async fn setup(h: &Harness, hook: &WebhookEmulator, rows: &[Customer]) {
    h.warehouse(rows).await;
    h.model("SELECT id, email, plan, last_login FROM customers")
        .await;
    h.create_destination("hook", "webhook", json!({"url": hook.url(), "limits": {"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50}}))
        .await
        .unwrap();
    h.create_mapping(
        "up",
        "m",
        "hook",
        "upsert",
        &[("email", "email"), ("plan", "plan")],
        None,
    )
    .await
    .unwrap();
    h.create_mapping("del", "m", "hook", "delete", &[], None)
        .await
        .unwrap();
}

#[tokio::test]
async fn three_runs_send_exactly_the_changes() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let mut rows = customers(50);
    setup(&h, &hook, &rows).await;

    // Run 1: everything is added.
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(counts(&run), (50, 0, 0, 50, 0));
    assert_eq!(received(&hook, 0, "added"), (1..=50).collect());
    let del = h.sync("del").await;
    assert_eq!(
        del.counts.unwrap().delivered,
        0,
        "first run of a delete mapping sends nothing"
    );

    // Run 2: update 3 (mapped column), touch 5 unmapped columns, insert 2, delete 4.
    for r in rows
        .iter_mut()
        .filter(|r| [2, 4, 6].contains(&r.id.unwrap()))
    {
        r.email = format!("changed{}@example.com", r.id.unwrap());
    }
    for r in rows
        .iter_mut()
        .filter(|r| (10..15).contains(&r.id.unwrap()))
    {
        r.last_login = "2030-12-31".to_string();
    }
    rows.retain(|r| ![20, 21, 22, 23].contains(&r.id.unwrap()));
    rows.extend(customers(52).into_iter().skip(50));
    write_parquet(&h.path("customers.parquet"), &rows);
    let before = hook.records().len();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let c = run.counts.unwrap();
    assert_eq!((c.added, c.updated, c.deleted), (2, 3, 4));
    assert_eq!(c.extracted, c.added + c.updated + c.unchanged + c.rejected);
    assert_eq!(c.selected, c.delivered + c.failed);
    assert_eq!(received(&hook, before, "added"), BTreeSet::from([51, 52]));
    assert_eq!(
        received(&hook, before, "updated"),
        BTreeSet::from([2, 4, 6])
    );
    assert!(
        received(&hook, before, "deleted").is_empty(),
        "an upsert mapping sends no deletes"
    );
    let before = hook.records().len();
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        received(&hook, before, "deleted"),
        BTreeSet::from([20, 21, 22, 23])
    );
    assert!(
        received(&hook, before, "added").is_empty()
            && received(&hook, before, "updated").is_empty()
    );
    let deletes: Vec<_> = hook.records().into_iter().skip(before).collect();
    assert!(deletes.iter().all(|r| r.action == "delete"));

    // Run 3: nothing changed -> nothing sent.
    let before = hook.request_count();
    let run = h.sync("up").await;
    assert_eq!(counts(&run), (0, 0, 0, 0, 0));
    assert_eq!(run.counts.unwrap().unchanged, 48);
    let run = h.sync("del").await;
    assert_eq!(run.counts.unwrap().deleted, 0);
    assert_eq!(
        hook.request_count(),
        before,
        "no request when nothing changed"
    );
}

#[tokio::test]
async fn the_extract_order_does_not_change_what_is_found() {
    // An extract out of key order goes through the key index sort; one in key order does not.
    // Both must find the same changes and fingerprint rows alike.
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let mut rows = customers(40);
    rows.reverse();
    setup(&h, &hook, &rows).await;
    let run = h.sync("up").await;
    assert_eq!(counts(&run), (40, 0, 0, 40, 0), "{run:?}");
    assert_eq!(received(&hook, 0, "added"), (1..=40).collect());
    h.sync("del").await;

    // Odd ids first, then even ones; 3 updated, 2 deleted, 2 added.
    rows.sort_by_key(|r| {
        let id = r.id.unwrap_or_default();
        (id % 2 == 0, id)
    });
    for r in rows
        .iter_mut()
        .filter(|r| [7, 8, 33].contains(&r.id.unwrap()))
    {
        r.plan = Some("enterprise-plus".to_string());
    }
    rows.retain(|r| ![1, 40].contains(&r.id.unwrap()));
    rows.splice(0..0, customers(42).into_iter().skip(40));
    write_parquet(&h.path("customers.parquet"), &rows);
    let before = hook.records().len();
    let run = h.sync("up").await;
    let c = run.counts.unwrap();
    assert_eq!((c.added, c.updated, c.deleted, c.unchanged), (2, 3, 2, 35));
    assert_eq!(received(&hook, before, "added"), BTreeSet::from([41, 42]));
    assert_eq!(
        received(&hook, before, "updated"),
        BTreeSet::from([7, 8, 33])
    );
    let before = hook.records().len();
    h.sync("del").await;
    assert_eq!(received(&hook, before, "deleted"), BTreeSet::from([1, 40]));

    // The same rows in key order: nothing changed.
    rows.sort_by_key(|r| r.id);
    write_parquet(&h.path("customers.parquet"), &rows);
    let run = h.sync("up").await;
    assert_eq!(counts(&run), (0, 0, 0, 0, 0), "{run:?}");
    assert_eq!(run.counts.unwrap().unchanged, 40);
}

#[tokio::test]
async fn failed_deliveries_are_resent_after_a_restart_and_acked_ones_are_not() {
    let mut h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    setup(&h, &hook, &customers(30)).await;
    // Keys 5 and 7 are rejected per record; the first request fails with 500 (retried).
    hook.reject_keys([json!(5), json!(7)]);
    hook.fail_next(1, 500, None);
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::PartiallyFailed, "{run:?}");
    let c = run.counts.unwrap();
    assert_eq!((c.selected, c.delivered, c.failed), (30, 28, 2));
    let errors: BTreeSet<String> = run.record_errors.iter().map(|e| e.key.clone()).collect();
    assert_eq!(errors, BTreeSet::from(["5".to_string(), "7".to_string()]));
    assert!(
        hook.requests().iter().any(|r| r.status == 500),
        "the 500 was injected"
    );

    h.restart().await;
    hook.clear();
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        received(&hook, 0, "added"),
        BTreeSet::from([5, 7]),
        "only the unacknowledged records are sent again"
    );
}

#[tokio::test]
async fn unmapped_column_changes_send_nothing_and_deleted_only_mapping_sends_only_deletes() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let mut rows = customers(20);
    setup(&h, &hook, &rows).await;
    h.create_mapping(
        "only-del",
        "m",
        "hook",
        "delete",
        &[],
        Some((false, false, true)),
    )
    .await
    .unwrap();
    h.sync("up").await;
    let first = h.sync("only-del").await;
    assert_eq!(
        first.counts.unwrap().not_selected,
        20,
        "adds not selected still advance the state"
    );
    for r in &mut rows {
        r.last_login = "1999-01-01".to_string();
    }
    rows[0].email = "new@example.com".to_string();
    rows.retain(|r| r.id != Some(9));
    write_parquet(&h.path("customers.parquet"), &rows);
    let before = hook.records().len();
    let run = h.sync("only-del").await;
    assert_eq!(received(&hook, before, "deleted"), BTreeSet::from([9]));
    assert_eq!(hook.records().len() - before, 1, "only the delete was sent");
    let run_up = h.sync("up").await;
    assert_eq!(
        counts(&run_up),
        (0, 1, 1, 1, 0),
        "last_login is unmapped: only the email change is sent"
    );
    assert_eq!(
        run.counts.unwrap().updated,
        0,
        "a mapping without fields never sees updates"
    );
}

#[tokio::test]
async fn null_and_duplicate_keys_are_rejected_and_never_deleted() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let mut rows = customers(10);
    setup(&h, &hook, &rows).await;
    h.sync("up").await;
    h.sync("del").await;
    // Key 3 now occurs twice, one row has a null id.
    let mut dup = rows[2].clone();
    dup.email = "dup@example.com".to_string();
    rows.push(dup);
    rows.push(Customer {
        id: None,
        ..rows[0].clone()
    });
    write_parquet(&h.path("customers.parquet"), &rows);
    let before = hook.records().len();
    let run = h.sync("up").await;
    let c = run.counts.unwrap();
    assert_eq!(c.rejected, 3, "{run:?}");
    assert_eq!(c.extracted, c.added + c.updated + c.unchanged + c.rejected);
    assert_eq!(hook.records().len(), before, "rejected rows are never sent");
    let reasons: Vec<&str> = run
        .record_errors
        .iter()
        .map(|e| e.reason.as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("occurs 2 times")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("is null")), "{reasons:?}");
    let run = h.sync("del").await;
    assert_eq!(
        run.counts.unwrap().deleted,
        0,
        "a duplicated key is not a deleted key"
    );
    assert!(received(&hook, before, "deleted").is_empty());
    // Fix the data: key 3 is back to one row with its original values: nothing to send.
    rows.truncate(10);
    write_parquet(&h.path("customers.parquet"), &rows);
    let run = h.sync("up").await;
    assert_eq!(counts(&run), (0, 0, 0, 0, 0));
}

#[tokio::test]
async fn a_partial_extract_fails_the_run_and_deletes_nothing() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let rows = customers(3000);
    write_csv(&h.path("customers.csv"), &rows, None);
    h.create_source(
        "wh",
        json!({"path": h.path("customers.csv").display().to_string()}),
    )
    .await
    .unwrap();
    h.model("SELECT id, email FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    h.create_mapping("del", "m", "hook", "delete", &[], None)
        .await
        .unwrap();
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    // The file breaks two thousand rows in: the reader fails part-way through.
    write_csv(&h.path("customers.csv"), &rows, Some(2000));
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
    assert!(!run.error.is_empty());
    assert_eq!(run.counts.unwrap().deleted, 0);
    assert_eq!(hook.request_count(), 0, "nothing was sent");
    // Repaired: still nothing to delete.
    write_csv(&h.path("customers.csv"), &rows, None);
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.counts.unwrap().deleted, 0);
}

#[tokio::test]
async fn a_mass_drop_is_held_back_until_confirmed() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let rows = customers(40);
    setup(&h, &hook, &rows).await;
    h.sync("del").await;
    write_parquet(&h.path("customers.parquet"), &rows[..10]);
    let run = h.sync("del").await;
    assert_eq!(run.status(), v1::RunStatus::PartiallyFailed, "{run:?}");
    assert_eq!(run.counts.unwrap().deletes_held_back, 30);
    assert!(
        run.warnings.iter().any(|w| w.contains("safety stop")),
        "{:?}",
        run.warnings
    );
    assert_eq!(hook.request_count(), 0);
    let run = h.sync_with("del", true).await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(received(&hook, 0, "deleted"), (11..=40).collect());
}

#[tokio::test]
async fn mark_existing_synced_sends_only_later_changes() {
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let mut rows = customers(20);
    h.warehouse(&rows).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination("hook", "webhook", json!({"url": hook.url()}))
        .await
        .unwrap();
    h.client
        .mappings()
        .create_mapping(v1::CreateMappingRequest {
            mapping_id: "a".into(),
            mapping: Some(v1::Mapping {
                model_id: "m".into(),
                destination_id: "hook".into(),
                action: "upsert".into(),
                fields: vec![v1::FieldMapping {
                    field: "email".into(),
                    source: Some(v1::field_mapping::Source::Column("email".into())),
                }],
                initial_sync: v1::InitialSync::MarkExistingSynced as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let run = h.sync("a").await;
    let c = run.counts.unwrap();
    assert_eq!(
        (c.added, c.not_selected, c.delivered),
        (20, 20, 0),
        "{run:?}"
    );
    assert_eq!(hook.request_count(), 0);
    rows[4].email = "changed@example.com".into();
    rows.push(customers(21).pop().unwrap());
    write_parquet(&h.path("customers.parquet"), &rows);
    let run = h.sync("a").await;
    assert_eq!(counts(&run), (1, 1, 0, 2, 0));
    assert_eq!(
        keys(hook.records().into_iter().map(|r| r.key)),
        BTreeSet::from([5, 21])
    );
}

/// A `MakeWriter` collecting log output in memory.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

/// The process-wide log buffer, installed on first use.
fn global_logs() -> LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        logs
    })
    .clone()
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn secrets_appear_in_no_log_line_even_at_trace_level() {
    // One process-wide subscriber at TRACE level (a thread-local one can miss events whose
    // callsites other tests registered first); it sees every test's logs, which must all be
    // free of these secrets.
    let logs = global_logs();
    let signing = "signing-secret-0d8e7c";
    let bearer = "Bearer api-token-5b1f2a";
    let h = Harness::start().await;
    let hook = WebhookEmulator::start(WebhookOptions {
        bearer_token: Some("api-token-5b1f2a".into()),
        hmac_secret: Some(signing.into()),
        ..Default::default()
    })
    .await
    .unwrap();
    h.warehouse(&customers(5)).await;
    h.model("SELECT id, email FROM customers").await;
    h.create_destination(
        "hook",
        "webhook",
        json!({"url": hook.url(), "auth_header": bearer, "signing_secret": signing}),
    )
    .await
    .unwrap();
    h.create_mapping("a", "m", "hook", "upsert", &[("email", "email")], None)
        .await
        .unwrap();
    let run = h.sync("a").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(hook.records().len(), 5, "the secrets were used");
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(
        text.contains("sync run ended"),
        "logs were captured ({} bytes)",
        text.len()
    );
    assert!(
        !text.contains(signing),
        "the signing secret leaked into a log line"
    );
    assert!(
        !text.contains("api-token-5b1f2a"),
        "the auth header leaked into a log line"
    );
    assert!(
        !text.contains(retl_tests::TOKEN),
        "the daemon token leaked into a log line"
    );
}
