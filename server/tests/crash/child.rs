//! The `retl` binary as a child process over a data directory: started, waited for, killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use retl::cli::Client;
use retl_proto::v1;
use retl_testkit::free_port;

/// The token every child daemon requires.
pub(crate) const TOKEN: &str = "crash-test-token";

static STARTS: AtomicUsize = AtomicUsize::new(0);

/// A running `retl serve`.
pub(crate) struct ChildDaemon {
    child: Child,
    /// A client of its API.
    pub(crate) client: Client,
    /// Its log file (stdout and stderr).
    pub(crate) log: PathBuf,
}

impl ChildDaemon {
    /// Starts `retl serve` over `data_dir` with `env` added, logging to a new file in `log_dir`,
    /// and waits until it answers API calls.
    pub(crate) async fn start(
        data_dir: &Path,
        log_dir: &Path,
        env: &[(&str, &str)],
    ) -> ChildDaemon {
        ChildDaemon::start_with(data_dir, log_dir, env, &[]).await
    }

    /// [`ChildDaemon::start`] with more `retl serve` arguments.
    pub(crate) async fn start_with(
        data_dir: &Path,
        log_dir: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> ChildDaemon {
        for _attempt in 0..5 {
            let n = STARTS.fetch_add(1, Ordering::SeqCst);
            let log = log_dir.join(format!("daemon-{n:03}.log"));
            let file = std::fs::File::create(&log).unwrap();
            let port = free_port().unwrap();
            let addr = format!("127.0.0.1:{port}");
            let mut child = Command::new(env!("CARGO_BIN_EXE_retl"))
                .args(["serve", "--listen", &addr, "--data-dir"])
                .arg(data_dir)
                .args(args)
                .env("RETL_TOKEN", TOKEN)
                .env("RETL_LOG", "warn")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(file.try_clone().unwrap())
                .stderr(file)
                .spawn()
                .expect("start the retl binary");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("in use") {
                        break; // another process took the port: try another
                    }
                    panic!("retl serve exited with {status} at start:\n{text}");
                }
                if let Ok(client) = Client::connect(&addr, Some(TOKEN)).await {
                    let answer = client
                        .mappings()
                        .list_mappings(v1::ListMappingsRequest::default())
                        .await;
                    if answer.is_ok() {
                        return ChildDaemon { child, client, log };
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "retl serve did not answer within 60 s:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("could not find a free port for retl serve in 5 attempts");
    }

    /// Kills the process with SIGKILL and reaps it.
    pub(crate) fn kill(self) {
        // Drop kills with SIGKILL and reaps.
        drop(self);
    }

    /// Sends SIGTERM (what `systemctl stop` and `docker stop` send).
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub(crate) async fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "log of the daemon ({}):\n{}",
                self.log.display(),
                tail.join("\n")
            );
        }
    }
}
