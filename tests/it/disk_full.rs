//! A full disk: the data directory on a small tmpfs, filled while a run stages its extract and
//! while it commits; the run fails with the operating system's reason and loses nothing, and the
//! next run succeeds once space is back, without a restart (after a failed log append the store
//! reopens RocksDB in place).
//!
//! Mounting a tmpfs needs root (or CAP_SYS_ADMIN); without it the test says so and does
//! nothing else.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use retl_proto::v1;
use retl_testkit::emulators::webhook::{WebhookEmulator, WebhookOptions};
use retl_tests::{Customer, Harness, customers, write_parquet};
use serde_json::json;

/// A tmpfs mounted on a temp dir; unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs {
            path: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the file system of `dir` with `filler` until it is full, then frees `leave` bytes.
fn fill(filler: &Path, leave: u64) {
    let mut f = std::fs::File::create(filler).unwrap();
    let chunk = vec![7_u8; 256 * 1024];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = f.flush();
    let len = std::fs::metadata(filler).unwrap().len();
    f.set_len(len.saturating_sub(leave)).unwrap();
}

fn with_emails(n: i64, tag: &str) -> Vec<Customer> {
    customers(n)
        .into_iter()
        .map(|mut c| {
            c.email = format!("{}-{tag}@example.com", c.id.unwrap_or_default());
            c
        })
        .collect()
}

/// Triggers `up` until the store accepts writes again (it recovers by itself once space is
/// back), and waits for the run.
async fn sync_once_space_is_back(h: &Harness) -> v1::SyncRun {
    let started = Instant::now();
    loop {
        match h.trigger("up", false).await {
            Ok(run) => {
                eprintln!("writable again after {:?}", started.elapsed());
                return h.wait(&run.id).await;
            }
            Err(status) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the store did not recover within 30 s: {status:?}"
                );
                eprintln!("{status:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_run_cleanly_and_loses_nothing() {
    let data_dir = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(data_dir.path(), "48m") else {
        eprintln!(
            "a_full_disk_...: SKIPPED: mounting a tmpfs needs root or CAP_SYS_ADMIN (run the tests as root to include it)"
        );
        return;
    };
    let filler = data_dir.path().join("filler");
    let h = Harness::start_in(data_dir, |_| {}).await;
    let hook = WebhookEmulator::start(WebhookOptions::default())
        .await
        .unwrap();
    let rows = 100_000;
    h.warehouse(&with_emails(rows, "a")).await;
    h.model("SELECT id, email FROM customers").await;
    let limits = json!({"requests_per_second": 10_000, "burst": 100, "batch_size": 500});
    h.create_destination(
        "hook",
        "webhook",
        json!({"url": hook.url(), "limits": limits}),
    )
    .await
    .unwrap();
    h.create_mapping("up", "m", "hook", "upsert", &[("email", "email")], None)
        .await
        .unwrap();

    // 1. Full while staging the extract (room for the run's record, not for its extract).
    fill(&filler, 1024 * 1024);
    // The run's record may not fit either: then the API refuses the trigger with UNAVAILABLE
    // (not INTERNAL); otherwise the run fails. Either way the message names the fix.
    let message = match h.trigger("up", false).await {
        Ok(run) => {
            let run = h.wait(&run.id).await;
            assert_eq!(run.status(), v1::RunStatus::Failed, "{run:?}");
            run.error
        }
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
            status.message().to_string()
        }
    };
    assert!(
        message.contains("No space left on device") && message.contains("free space"),
        "the error gives the reason and the fix: {message}"
    );
    assert_eq!(
        hook.records().len(),
        0,
        "nothing was sent from a partial extract"
    );
    std::fs::remove_file(&filler).unwrap();
    let run = sync_once_space_is_back(&h).await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.counts.unwrap().delivered, rows as u64);

    // 2. Full while committing: every email changes; the disk fills after the first answer.
    write_parquet(&h.path("customers.parquet"), &with_emails(rows, "b"));
    hook.respond_after(Duration::from_millis(200));
    let before = hook.records().len();
    let run = h.trigger("up", false).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while hook.records().len() == before {
        assert!(Instant::now() < deadline, "no request was sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fill(&filler, 0);
    let run = h.wait(&run.id).await;
    assert_ne!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    // Still full: the store stays shut and says what to do (UNAVAILABLE, not INTERNAL).
    let err = h.trigger("up", false).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("free space"), "{}", err.message());
    std::fs::remove_file(&filler).unwrap();
    hook.respond_after(Duration::ZERO);
    // A failed write-ahead-log append leaves RocksDB refusing writes; with space back, the
    // store reopens itself at the next write: no restart. The next run delivers every change
    // that was not committed, and the destination ends up with every row's latest email.
    let run = h.sync("up").await;
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    let mut latest = std::collections::BTreeMap::new();
    for r in hook.records() {
        latest.insert(r.key.as_i64().unwrap(), r.fields.unwrap()["email"].clone());
    }
    assert_eq!(latest.len(), rows as usize);
    for (id, email) in latest {
        assert_eq!(email, json!(format!("{id}-b@example.com")), "key {id}");
    }
}
