//! Shared machinery of the database launchers ([`crate::postgres`], [`crate::mariadb`]): the
//! error type, free ports, bounded waits, finding installed programs, and running a program
//! (as an unprivileged system user when the test process is root).
//!
//! Database server binaries refuse to run as root (PostgreSQL) or need to be told which user to
//! become (MariaDB). When the test process is root, the launchers therefore create their temp dir
//! owned by `postgres` / `mysql` and run the server programs as that user.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why a throwaway database server could not be set up, started, stopped or queried.
///
/// Every message names the step that failed; failures of a program carry its stderr (and, for a
/// server that did not come up, the end of the server log); a missing program says how to
/// install it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// A program the launcher needs is not installed.
    #[error("`{program}` was not found ({searched}); install it with `{install}`")]
    NotInstalled {
        /// The program that is missing, e.g. `initdb`.
        program: &'static str,
        /// Where it was looked for.
        searched: String,
        /// The command that installs it on Debian/Ubuntu.
        install: &'static str,
    },
    /// A program could not be started at all.
    #[error("{step}: could not run `{program}`: {source}")]
    Spawn {
        /// What the launcher was doing, e.g. `initdb (create the PostgreSQL data directory)`.
        step: String,
        /// The program, as it was invoked.
        program: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{step}: `{command}` failed ({status}){}", indent_detail(.output))]
    Failed {
        /// What the launcher was doing.
        step: String,
        /// The command line (program and arguments; passwords are passed in the environment and
        /// do not appear here).
        command: String,
        /// The exit status.
        status: String,
        /// The program's stderr (its stdout when stderr was empty), and the end of the server
        /// log where one exists.
        output: String,
    },
    /// Something did not happen within its time bound.
    #[error("{step}: gave up after {after:?}{}", indent_detail(.detail))]
    Timeout {
        /// What the launcher was waiting for.
        step: String,
        /// How long it waited.
        after: Duration,
        /// What is known about why, e.g. the end of the server log.
        detail: String,
    },
    /// A file-system or socket operation failed.
    #[error("{step}: {source}")]
    Io {
        /// What the launcher was doing.
        step: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}

impl LaunchError {
    /// The same error with `log` (e.g. the end of a server log) appended to its detail.
    pub(crate) fn with_log(self, log: &str) -> Self {
        if log.trim().is_empty() {
            return self;
        }
        let append = |text: String| {
            let log = format!("server log (end):\n{}", log.trim_end());
            if text.trim().is_empty() {
                log
            } else {
                format!("{}\n{log}", text.trim_end())
            }
        };
        match self {
            Self::Failed {
                step,
                command,
                status,
                output,
            } => Self::Failed {
                step,
                command,
                status,
                output: append(output),
            },
            Self::Timeout {
                step,
                after,
                detail,
            } => Self::Timeout {
                step,
                after,
                detail: append(detail),
            },
            other => other,
        }
    }

    pub(crate) fn io(step: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            step: step.into(),
            source,
        }
    }
}

fn indent_detail(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let mut out = String::from(":");
    for line in text.lines() {
        let _ = write!(out, "\n    {line}");
    }
    out
}

/// A TCP port on 127.0.0.1 that was free a moment ago: binds `127.0.0.1:0`, reads the port the
/// OS chose, and releases it.
///
/// Another process may take the port before the caller binds it; the launchers retry with a new
/// port when their server reports the address in use.
///
/// # Errors
/// [`LaunchError::Io`] when no socket can be bound on 127.0.0.1.
pub fn free_port() -> Result<u16, LaunchError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| LaunchError::io("bind 127.0.0.1:0 to find a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| LaunchError::io("read the port of 127.0.0.1:0", e))?
        .port();
    Ok(port)
}

/// Polls `probe` every 20 ms until it returns `Ok(true)`, for at most `timeout`.
///
/// `step` describes what is awaited ("PostgreSQL accepts connections") and appears in the
/// timeout error. A probe returns `Err` to give up at once (e.g. the server process exited).
///
/// # Errors
/// [`LaunchError::Timeout`] when `timeout` passes first; the probe's own error when it returns one.
pub async fn wait_until<F, Fut>(
    step: &str,
    timeout: Duration,
    mut probe: F,
) -> Result<(), LaunchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, LaunchError>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if probe().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LaunchError::Timeout {
                step: step.to_owned(),
                after: timeout,
                detail: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether this process runs as root (effective uid 0): read from `/proc/self/status`, else
/// from `id -u`.
pub(crate) fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        if let Ok(status) = std::fs::read_to_string("/proc/self/status")
            && let Some(line) = status.lines().find(|l| l.starts_with("Uid:"))
        {
            // Uid: real effective saved filesystem
            return line.split_whitespace().nth(2) == Some("0");
        }
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds `name` on `PATH`, then in `extra_dirs`.
pub(crate) fn find_program(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Where a program was looked for, for [`LaunchError::NotInstalled`].
pub(crate) fn searched(extra_dirs: &[&str]) -> String {
    let mut text = String::from("searched PATH");
    for dir in extra_dirs {
        let _ = write!(text, ", {dir}");
    }
    text
}

/// `runuser`, used to run server programs as their system user when the test process is root.
fn runuser() -> Result<PathBuf, LaunchError> {
    const DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
    find_program("runuser", DIRS).ok_or_else(|| LaunchError::NotInstalled {
        program: "runuser",
        searched: searched(DIRS),
        install: "apt-get install -y util-linux",
    })
}

/// A temp dir for one server, under `/tmp` (short paths keep Unix socket paths below their
/// 107-byte limit, and every system user can traverse `/tmp`), else under the OS temp dir. When
/// `owner` is set (the test process is root) the dir is handed to that system user.
pub(crate) fn server_dir(
    prefix: &str,
    owner: Option<&str>,
) -> Result<tempfile::TempDir, LaunchError> {
    let tmp = Path::new("/tmp");
    let parent = if tmp.is_dir() {
        tmp.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .map_err(|e| LaunchError::io(format!("create a temp dir under {}", parent.display()), e))?;
    if let Some(owner) = owner {
        chown(dir.path(), owner)?;
    }
    Ok(dir)
}

/// `chown -R <owner>: <path>` (the owner's login group).
pub(crate) fn chown(path: &Path, owner: &str) -> Result<(), LaunchError> {
    let step = format!("hand {} to the system user `{owner}`", path.display());
    let output = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{owner}:"))
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LaunchError::Spawn {
            step: step.clone(),
            program: "chown".to_owned(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LaunchError::Failed {
            step,
            command: format!("chown -R {owner}: {}", path.display()),
            status: output.status.to_string(),
            output: format!(
                "{}\n(does the system user `{owner}` exist? the server package creates it)",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

/// The last `max_lines` lines of a text file, or "" when it cannot be read.
pub(crate) fn tail(path: &Path, max_lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

/// One invocation of a program, described for error messages.
pub(crate) struct Run {
    step: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(&'static str, String)>,
    clear_env_prefixes: &'static [&'static str],
    as_user: Option<&'static str>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

impl Run {
    /// Runs `program` for `step` with a 30 s bound.
    pub(crate) fn new(step: impl Into<String>, program: &Path) -> Self {
        Self {
            step: step.into(),
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            clear_env_prefixes: &[],
            as_user: None,
            cwd: None,
            timeout: Duration::from_secs(30),
        }
    }

    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable (used for passwords, which must not appear in messages).
    pub(crate) fn env(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    /// Removes inherited environment variables starting with one of `prefixes` (`PG`, `MYSQL`),
    /// so the caller's environment cannot redirect the client.
    pub(crate) fn clear_env(mut self, prefixes: &'static [&'static str]) -> Self {
        self.clear_env_prefixes = prefixes;
        self
    }

    /// Runs the program as `user` via `runuser` (when `Some`).
    pub(crate) fn run_as(mut self, user: Option<&'static str>) -> Self {
        self.as_user = user;
        self
    }

    pub(crate) fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn describe(&self) -> String {
        let mut text = self.program.display().to_string();
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(char::is_whitespace) || arg.contains('\'') {
                let _ = write!(text, " '{}'", arg.replace('\'', r"'\''"));
            } else {
                let _ = write!(text, " {arg}");
            }
        }
        if let Some(user) = self.as_user {
            let _ = write!(text, " (as user {user})");
        }
        text
    }

    fn std_command(&self) -> Result<std::process::Command, LaunchError> {
        let mut cmd = match self.as_user {
            Some(user) => {
                let mut cmd = std::process::Command::new(runuser()?);
                cmd.args(["-u", user, "--"]).arg(&self.program);
                cmd
            }
            None => std::process::Command::new(&self.program),
        };
        cmd.args(&self.args);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if self
                .clear_env_prefixes
                .iter()
                .any(|prefix| key_text.starts_with(prefix))
            {
                cmd.env_remove(&key);
            }
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(cmd)
    }

    fn check(&self, output: std::process::Output) -> Result<String, LaunchError> {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(LaunchError::Failed {
            step: self.step.clone(),
            command: self.describe(),
            status: output.status.to_string(),
            output: if stderr.trim().is_empty() {
                stdout
            } else {
                stderr.into_owned()
            },
        })
    }

    fn spawn_error(&self, source: std::io::Error) -> LaunchError {
        LaunchError::Spawn {
            step: self.step.clone(),
            program: self.describe(),
            source,
        }
    }

    /// Runs the program to completion and returns its stdout; a non-zero exit is
    /// [`LaunchError::Failed`] with its stderr, and a run longer than the bound is killed and
    /// reported as [`LaunchError::Timeout`].
    pub(crate) async fn output(self) -> Result<String, LaunchError> {
        let mut cmd = tokio::process::Command::from(self.std_command()?);
        cmd.kill_on_drop(true);
        match tokio::time::timeout(self.timeout, cmd.output()).await {
            Ok(Ok(output)) => self.check(output),
            Ok(Err(source)) => Err(self.spawn_error(source)),
            Err(_) => Err(LaunchError::Timeout {
                step: self.step.clone(),
                after: self.timeout,
                detail: format!("`{}` did not finish and was killed", self.describe()),
            }),
        }
    }

    /// Like [`Run::output`], blocking the thread, for `Drop`. The time bound is left to the
    /// program itself (e.g. `pg_ctl -t`).
    pub(crate) fn output_blocking(self) -> Result<String, LaunchError> {
        let output = self
            .std_command()?
            .output()
            .map_err(|source| self.spawn_error(source))?;
        self.check(output)
    }
}

/// Percent-encodes `text` for the user-info or path part of a URL (everything but unreserved
/// characters).
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encode_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(url_encode("retl_user-1.x~"), "retl_user-1.x~");
        assert_eq!(url_encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
    }

    #[test]
    fn free_port_is_nonzero_and_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    }

    #[tokio::test]
    async fn wait_until_times_out_with_the_step_in_the_message() {
        let err = wait_until("the moon turns blue", Duration::from_millis(50), || async {
            Ok(false)
        })
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("the moon turns blue"), "{text}");
        assert!(text.contains("gave up after"), "{text}");
    }

    #[test]
    fn failed_error_shows_the_command_status_and_indented_output() {
        let err = LaunchError::Failed {
            step: "initdb (create the data directory)".to_owned(),
            command: "initdb -D /tmp/x".to_owned(),
            status: "exit status: 1".to_owned(),
            output: "line one\nline two".to_owned(),
        }
        .with_log("log line");
        let text = err.to_string();
        assert_eq!(
            text,
            "initdb (create the data directory): `initdb -D /tmp/x` failed (exit status: 1):\n    \
             line one\n    line two\n    server log (end):\n    log line"
        );
    }

    #[test]
    fn missing_program_says_how_to_install_it() {
        let err = LaunchError::NotInstalled {
            program: "initdb",
            searched: searched(&["/usr/lib/postgresql/*/bin"]),
            install: "apt-get install -y postgresql",
        };
        assert_eq!(
            err.to_string(),
            "`initdb` was not found (searched PATH, /usr/lib/postgresql/*/bin); install it with \
             `apt-get install -y postgresql`"
        );
    }
}
