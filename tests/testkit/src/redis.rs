//! A throwaway Redis server for one test: its own dir in a temp dir, on 127.0.0.1 and a free
//! port, killed and deleted on drop.
//!
//! ```no_run
//! # async fn example() -> Result<(), retl_testkit::LaunchError> {
//! let redis = retl_testkit::RedisServer::start_with_password("s3cret").await?;
//! redis.cli(&["HSET", "user:1", "email", "a@example.com"]).await?;
//! let monitor = redis.tail(&["MONITOR"])?; // every command the server runs, to a file
//! # let _ = monitor; Ok(()) }
//! ```
//!
//! # How it runs
//! - `redis-server` (Debian's `redis-server` package) with every setting on its command line
//!   (no config file is read): `--bind 127.0.0.1`, the port, `--dir` the temp dir, no
//!   persistence (`--save ''`, `--appendonly no`), its log in the temp dir, and
//!   `--requirepass` when started with a password.
//! - Ready when `redis-cli PING` answers `PONG`.
//! - [`RedisServer::cli`] runs `redis-cli` against it (the password through `REDISCLI_AUTH`,
//!   never on the command line); [`RedisServer::tail`] keeps a `redis-cli` running (e.g.
//!   `MONITOR` or `PSUBSCRIBE`) with its output in a file, stopped on drop.
//!
//! Starting takes a few tens of milliseconds.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::launch::{LaunchError, Run, find_program, free_port, searched, tail, wait_until};

const HOST: &str = "127.0.0.1";
const INSTALL: &str = "apt-get install -y --no-install-recommends redis-server";
const DIRS: &[&str] = &["/usr/bin", "/usr/sbin", "/usr/local/bin"];
const START_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 5;
/// Environment variables that would change what the client does.
const CLIENT_ENV: &[&str] = &["REDISCLI_"];

/// A running throwaway Redis server (see the [module docs](self)).
///
/// Dropping it kills the server and deletes its dir.
#[derive(Debug)]
pub struct RedisServer {
    /// Temp dir holding the log and the tails' output; deleted on drop.
    dir: tempfile::TempDir,
    server: PathBuf,
    client: PathBuf,
    port: u16,
    password: Option<String>,
    child: Option<Child>,
}

/// A `redis-cli` kept running with its output in a file ([`RedisServer::tail`]); stopped on
/// drop.
#[derive(Debug)]
pub struct Tail {
    child: Child,
    path: PathBuf,
}

impl Tail {
    /// The output so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// Starts a server without a password.
    ///
    /// # Errors
    /// [`LaunchError::NotInstalled`] when `redis-server` or `redis-cli` is missing (the message
    /// says `apt-get install -y --no-install-recommends redis-server`); [`LaunchError::Failed`]
    /// or [`LaunchError::Timeout`] with the server log when it does not come up.
    pub async fn start() -> Result<Self, LaunchError> {
        Self::launch_new(None).await
    }

    /// Starts a server that requires `password` (`requirepass`: the `default` user's password).
    ///
    /// # Errors
    /// As for [`start`](Self::start).
    pub async fn start_with_password(password: &str) -> Result<Self, LaunchError> {
        Self::launch_new(Some(password.to_string())).await
    }

    async fn launch_new(password: Option<String>) -> Result<Self, LaunchError> {
        let find = |program: &'static str| {
            find_program(program, DIRS).ok_or_else(|| LaunchError::NotInstalled {
                program,
                searched: searched(DIRS),
                install: INSTALL,
            })
        };
        let dir = tempfile::Builder::new()
            .prefix("retl-redis-")
            .tempdir()
            .map_err(|e| LaunchError::io("create a temp dir for Redis", e))?;
        let mut server = RedisServer {
            dir,
            server: find("redis-server")?,
            client: find("redis-cli")?,
            port: 0,
            password,
            child: None,
        };
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port()?;
            let _ = std::fs::remove_file(server.log_path());
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(e) if attempt < PORT_ATTEMPTS && server.port_was_taken() => {
                    tracing::debug!(port = server.port, error = %e, "port taken; retrying");
                }
                Err(e) => return Err(e),
            }
        }
        Err(LaunchError::Timeout {
            step: "find a free port for Redis".to_owned(),
            after: START_TIMEOUT,
            detail: String::new(),
        })
    }

    async fn launch(&mut self) -> Result<(), LaunchError> {
        let mut cmd = std::process::Command::new(&self.server);
        cmd.arg("--bind")
            .arg(HOST)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--protected-mode", "no", "--databases", "16"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            cmd.arg("--requirepass").arg(password);
        }
        let child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            step: "redis-server (start Redis)".to_owned(),
            program: self.server.display().to_string(),
            source,
        })?;
        self.child = Some(child);
        let ready = wait_until("Redis answers PING", START_TIMEOUT, || {
            let exited = self.child.as_mut().map(Child::try_wait);
            let ping = self
                .run("redis-cli PING", &["PING"])
                .timeout(Duration::from_secs(5));
            async move {
                match exited {
                    Some(Ok(Some(status))) => Err(LaunchError::Failed {
                        step: "redis-server (start Redis)".to_owned(),
                        command: "redis-server".to_owned(),
                        status: status.to_string(),
                        output: String::new(),
                    }),
                    _ => Ok(ping.output().await.is_ok_and(|out| out.trim() == "PONG")),
                }
            }
        })
        .await;
        if let Err(e) = ready {
            self.kill();
            return Err(e.with_log(&tail(&self.log_path(), 20)));
        }
        Ok(())
    }

    fn port_was_taken(&self) -> bool {
        tail(&self.log_path(), 20).contains("Address already in use")
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// `redis-cli -h 127.0.0.1 -p <port> <args>` (raw output), the password in the
    /// environment.
    fn run(&self, step: &str, args: &[&str]) -> Run {
        let run = Run::new(step, &self.client)
            .clear_env(CLIENT_ENV)
            .args(["-h", HOST, "-p", &self.port.to_string(), "--raw"])
            .args(args);
        match &self.password {
            Some(password) => run.env("REDISCLI_AUTH", password.clone()),
            None => run,
        }
    }

    /// Runs one command with `redis-cli --raw` and returns its output without the final
    /// newline (an error reply is output too: `redis-cli` exits 0 on it).
    ///
    /// # Errors
    /// [`LaunchError::Failed`] when `redis-cli` fails (e.g. the server is gone).
    pub async fn cli(&self, args: &[&str]) -> Result<String, LaunchError> {
        let mut out = self
            .run(&format!("redis-cli {}", args.first().unwrap_or(&"")), args)
            .output()
            .await?;
        while out.ends_with('\n') {
            out.pop();
        }
        Ok(out)
    }

    /// Keeps `redis-cli <args>` running (`MONITOR`, `PSUBSCRIBE ...`) with its output going to
    /// a file of the server's dir, until the returned [`Tail`] is dropped.
    ///
    /// # Errors
    /// [`LaunchError::Spawn`] or [`LaunchError::Io`] when it cannot start.
    pub fn tail(&self, args: &[&str]) -> Result<Tail, LaunchError> {
        let path = self.dir.path().join(format!(
            "tail-{}.txt",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let file = std::fs::File::create(&path)
            .map_err(|e| LaunchError::io(format!("create {}", path.display()), e))?;
        let mut cmd = std::process::Command::new(&self.client);
        cmd.args(["-h", HOST, "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REDISCLI_") {
                cmd.env_remove(&key);
            }
        }
        if let Some(password) = &self.password {
            cmd.env("REDISCLI_AUTH", password);
        }
        let child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            step: format!("redis-cli {} (follow Redis)", args.join(" ")),
            program: self.client.display().to_string(),
            source,
        })?;
        Ok(Tail { child, path })
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password, when started with one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The server's log so far (to print when a test fails).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RedisServer {
    /// Kills the server (SIGKILL, then waits for it); the temp dir is deleted after.
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_answers_and_requires_its_password() {
        let redis = RedisServer::start_with_password("pw").await.unwrap();
        assert_eq!(redis.cli(&["HSET", "k", "f", "v"]).await.unwrap(), "1");
        assert_eq!(redis.cli(&["HGET", "k", "f"]).await.unwrap(), "v");
        let monitor = redis.tail(&["MONITOR"]).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        redis.cli(&["ECHO", "marker"]).await.unwrap();
        wait_until("MONITOR shows the marker", Duration::from_secs(5), || {
            let seen = monitor.text().contains("\"marker\"");
            async move { Ok(seen) }
        })
        .await
        .unwrap();
        let dir = redis.dir().to_path_buf();
        drop(monitor);
        drop(redis);
        assert!(!dir.exists());
    }
}
