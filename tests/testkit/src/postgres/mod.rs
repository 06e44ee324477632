//! A throwaway PostgreSQL server for one test: its own cluster in a temp dir, on 127.0.0.1 and a
//! free port, stopped and deleted on drop.
//!
//! ```no_run
//! # async fn example() -> Result<(), retl_testkit::LaunchError> {
//! let pg = retl_testkit::PostgresServer::start().await?;
//! pg.psql("CREATE TABLE users (id int PRIMARY KEY, email text)").await?;
//! pg.create_user("reader", "s3cret").await?;
//! pg.psql("GRANT SELECT ON users TO reader").await?;
//! let url = pg.url_for("reader", "s3cret"); // postgres://reader:s3cret@127.0.0.1:PORT/postgres
//! # let _ = url; Ok(()) }
//! ```
//!
//! # How it runs
//! - `initdb -U retl -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256
//!   --no-sync`, with the superuser password [`PostgresServer::superuser_password`]: Unix-socket
//!   connections are trusted (that is how [`PostgresServer::psql`] connects), TCP connections
//!   must present a valid password, so tests of wrong credentials see a real refusal.
//! - `pg_ctl -w start` with `listen_addresses=127.0.0.1`, the port, `unix_socket_directories` =
//!   the temp dir, `fsync=off`, `synchronous_commit=off`, `full_page_writes=off` and
//!   `timezone=UTC`.
//! - Binaries: `initdb` on `PATH` (symlinks resolved, so its sibling `pg_ctl` and `psql` are the
//!   same version), else the newest `/usr/lib/postgresql/*/bin`.
//! - PostgreSQL refuses to run as root: when the test process is root, the temp dir belongs to the
//!   `postgres` system user and `initdb`/`pg_ctl` run as that user via `runuser`.
//!
//! Starting takes about half a second (`initdb --no-sync` ~0.4 s, start ~0.1 s).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::launch::{
    LaunchError, Run, chown, find_program, free_port, is_root, searched, server_dir, tail,
    url_encode,
};
use crate::tls::make_certificates;

const SUPERUSER: &str = "retl";
const SUPERUSER_PASSWORD: &str = "retl-superuser";
const DATABASE: &str = "postgres";
const HOST: &str = "127.0.0.1";
const SYSTEM_USER: &str = "postgres";
const INSTALL: &str = "apt-get install -y postgresql";
const BIN_DIRS_PATTERN: &str = "/usr/lib/postgresql/*/bin";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 5;
/// Environment variables that would redirect `psql` (`PGHOST`, `PGPASSWORD`, ...).
const CLIENT_ENV: &[&str] = &["PG"];

/// A running throwaway PostgreSQL server (see the [module docs](self)).
///
/// Dropping it stops the server (immediate mode) and deletes its data.
#[derive(Debug)]
pub struct PostgresServer {
    /// Temp dir holding `data/`, the server log and the Unix socket; deleted on drop.
    dir: tempfile::TempDir,
    /// The installed programs.
    bin: Binaries,
    /// TCP port on 127.0.0.1, kept across [`PostgresServer::start_again`].
    port: u16,
    /// `Some("postgres")` when the test process is root.
    run_as: Option<&'static str>,
    /// Whether the server was started and not stopped since.
    running: bool,
}

#[derive(Debug)]
struct Binaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
}

impl Binaries {
    fn find() -> Result<Self, LaunchError> {
        let not_installed = |program| LaunchError::NotInstalled {
            program,
            searched: searched(&[BIN_DIRS_PATTERN]),
            install: INSTALL,
        };
        let dir = server_bin_dir().ok_or_else(|| not_installed("initdb"))?;
        let sibling = |name: &'static str| {
            let path = dir.join(name);
            if path.is_file() {
                Some(path)
            } else {
                find_program(name, &[])
            }
        };
        Ok(Self {
            initdb: dir.join("initdb"),
            pg_ctl: sibling("pg_ctl").ok_or_else(|| not_installed("pg_ctl"))?,
            psql: sibling("psql").ok_or_else(|| not_installed("psql"))?,
        })
    }
}

/// The directory of `initdb`: `PATH` first (symlinks resolved), else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn server_bin_dir() -> Option<PathBuf> {
    if let Some(initdb) = find_program("initdb", &[]) {
        let resolved = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        if let Some(dir) = resolved.parent() {
            return Some(dir.to_path_buf());
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = name
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// `"name"` with embedded quotes doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled (`standard_conforming_strings` is on).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl PostgresServer {
    /// Creates a cluster in a new temp dir and starts it on 127.0.0.1 and a free port.
    ///
    /// The superuser is `retl` (password [`superuser_password`](Self::superuser_password)); the
    /// database `postgres` exists.
    ///
    /// # Errors
    /// [`LaunchError::NotInstalled`] when the PostgreSQL server binaries are missing (the message
    /// says `apt-get install -y postgresql`); [`LaunchError::Failed`] with the program's stderr and
    /// the server log when `initdb` or the start fails; [`LaunchError::Timeout`] when the server
    /// does not accept connections within 30 s.
    pub async fn start() -> Result<Self, LaunchError> {
        let bin = Binaries::find()?;
        let run_as = is_root().then_some(SYSTEM_USER);
        let dir = server_dir("retl-pg-", run_as)?;
        let mut server = Self {
            dir,
            bin,
            port: 0,
            run_as,
            running: false,
        };
        server.initdb().await?;
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port()?;
            // Each attempt starts with an empty log, so `port_was_taken` reads this attempt only.
            let _ = std::fs::remove_file(server.log_path());
            match server.pg_ctl_start().await {
                Ok(()) => return Ok(server),
                Err(e) if attempt < PORT_ATTEMPTS && server.port_was_taken() => {
                    tracing::debug!(port = server.port, error = %e, "port taken; retrying");
                }
                Err(e) => return Err(e),
            }
        }
        // The loop returns on its last attempt.
        Err(LaunchError::Timeout {
            step: "find a free port for PostgreSQL".to_owned(),
            after: START_TIMEOUT,
            detail: String::new(),
        })
    }

    async fn initdb(&self) -> Result<(), LaunchError> {
        let pwfile = self.dir.path().join("superuser-password");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD)
            .map_err(|e| LaunchError::io(format!("write {}", pwfile.display()), e))?;
        if let Some(user) = self.run_as {
            chown(&pwfile, user)?;
        }
        Run::new("initdb (create the PostgreSQL cluster)", &self.bin.initdb)
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C.UTF-8"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--no-sync", "--no-instructions"])
            .run_as(self.run_as)
            .cwd(self.dir.path())
            .timeout(START_TIMEOUT)
            .output()
            .await?;
        let settings = format!(
            "\n# retl-testkit\nlisten_addresses = '{HOST}'\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             shared_buffers = 32MB\ntimezone = 'UTC'\nlog_timezone = 'UTC'\n",
            self.dir.path().display()
        );
        let conf = self.data_dir().join("postgresql.conf");
        let append = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new().append(true).open(&conf)?;
            file.write_all(settings.as_bytes())
        };
        append().map_err(|e| LaunchError::io(format!("append settings to {}", conf.display()), e))
    }

    async fn pg_ctl_start(&mut self) -> Result<(), LaunchError> {
        let log = self.log_path();
        Run::new("pg_ctl start (start PostgreSQL)", &self.bin.pg_ctl)
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .args(["-o", &format!("-p {}", self.port)])
            .args(["-w", "-t", &START_TIMEOUT.as_secs().to_string(), "start"])
            .run_as(self.run_as)
            .cwd(self.dir.path())
            .timeout(START_TIMEOUT + Duration::from_secs(5))
            .output()
            .await
            .map_err(|e| e.with_log(&tail(&log, 20)))?;
        self.running = true;
        Ok(())
    }

    fn port_was_taken(&self) -> bool {
        let log = tail(&self.log_path(), 20);
        log.contains("could not bind") || log.contains("Address already in use")
    }

    /// Stops the server with `pg_ctl -m fast stop` (clients are disconnected, data is kept).
    /// Does nothing when it is already stopped.
    ///
    /// # Errors
    /// [`LaunchError::Failed`] with the server log when `pg_ctl` fails.
    pub async fn stop(&mut self) -> Result<(), LaunchError> {
        if !self.running {
            return Ok(());
        }
        self.pg_ctl_stop("fast")
            .output()
            .await
            .map_err(|e| e.with_log(&tail(&self.log_path(), 20)))?;
        self.running = false;
        Ok(())
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port and data dir. Does
    /// nothing when it is running.
    ///
    /// # Errors
    /// As for [`start`](Self::start); also when another process took the port meanwhile.
    pub async fn start_again(&mut self) -> Result<(), LaunchError> {
        if self.running {
            return Ok(());
        }
        self.pg_ctl_start().await
    }

    fn pg_ctl_stop(&self, mode: &str) -> Run {
        Run::new(
            format!("pg_ctl stop -m {mode} (stop PostgreSQL)"),
            &self.bin.pg_ctl,
        )
        .arg("-D")
        .arg(self.data_dir())
        .args(["-m", mode, "-w", "-t", "30", "stop"])
        .run_as(self.run_as)
        .cwd(self.dir.path())
        .timeout(Duration::from_secs(35))
    }

    /// Terminates every client session (`pg_terminate_backend`) except the one running this
    /// query, and returns how many it terminated. Simulates a server-side disconnect.
    ///
    /// # Errors
    /// As for [`psql`](Self::psql).
    pub async fn kill_connections(&self) -> Result<u64, LaunchError> {
        let out = self
            .psql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
            )
            .await?;
        out.trim().parse().map_err(|_| LaunchError::Failed {
            step: "kill_connections".to_owned(),
            command: "psql".to_owned(),
            status: "unexpected output".to_owned(),
            output: out,
        })
    }

    /// Runs `sql` as the superuser `retl` on the database `postgres`, over the Unix socket, with
    /// `psql -X -v ON_ERROR_STOP=1 -At -c`, and returns psql's output: rows on lines, columns
    /// separated by `|`, without the final newline. `sql` may hold several statements (the output
    /// is the last one's).
    ///
    /// # Errors
    /// [`LaunchError::Failed`] with psql's stderr (the PostgreSQL error) when a statement fails or
    /// the server is not running.
    pub async fn psql(&self, sql: &str) -> Result<String, LaunchError> {
        self.psql_for(sql, Duration::from_secs(30)).await
    }

    /// [`psql`](Self::psql) for a long statement (a bulk load, a benchmark query): psql is
    /// killed after `timeout` instead of 30 s.
    ///
    /// # Errors
    /// As for [`psql`](Self::psql); [`LaunchError::Timeout`] after `timeout`.
    pub async fn psql_for(&self, sql: &str, timeout: Duration) -> Result<String, LaunchError> {
        self.psql_command("psql (run SQL as the superuser)", sql)
            .timeout(timeout)
            .arg("-h")
            .arg(self.dir.path())
            .args(["-U", SUPERUSER])
            .output()
            .await
            .map(trim_newline)
    }

    /// Turns TLS on: makes a throwaway certificate authority and a server certificate for
    /// `127.0.0.1` / `localhost` signed by it (with the `openssl` program), points the server
    /// at them and reloads its configuration. Plain TCP keeps working too. Returns the path
    /// of the authority's certificate (PEM), for a client's `sslrootcert`.
    ///
    /// # Errors
    /// [`LaunchError::NotInstalled`] without `openssl`; [`LaunchError::Failed`] when a step
    /// fails.
    pub async fn enable_tls(&self) -> Result<PathBuf, LaunchError> {
        let certificates = make_certificates(&self.dir.path().join("tls"), self.run_as).await?;
        // One statement per call: psql -c runs a multi-statement string as one transaction,
        // where ALTER SYSTEM is refused.
        for statement in [
            format!(
                "ALTER SYSTEM SET ssl_cert_file = '{}'",
                certificates.cert.display()
            ),
            format!(
                "ALTER SYSTEM SET ssl_key_file = '{}'",
                certificates.key.display()
            ),
            "ALTER SYSTEM SET ssl = on".to_owned(),
            "SELECT pg_reload_conf()".to_owned(),
        ] {
            self.psql(&statement).await?;
        }
        // The reload is asynchronous: wait until the server reports TLS on.
        for _ in 0..100 {
            if self.psql("SHOW ssl").await? == "on" {
                return Ok(certificates.ca);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(LaunchError::Timeout {
            step: "turn TLS on in PostgreSQL".to_owned(),
            after: Duration::from_secs(5),
            detail: tail(&self.log_path(), 20),
        })
    }

    /// Runs `sql` like [`psql`](Self::psql), but over TCP on 127.0.0.1 as `user` with `password`
    /// (password authentication, as a connector connects), on the database `postgres`.
    ///
    /// # Errors
    /// [`LaunchError::Failed`] with psql's stderr, e.g. `password authentication failed for user`.
    pub async fn psql_as(
        &self,
        user: &str,
        password: &str,
        sql: &str,
    ) -> Result<String, LaunchError> {
        self.psql_command(format!("psql (run SQL as {user} over TCP)"), sql)
            .args(["-h", HOST, "-U", user, "-w"])
            .env("PGPASSWORD", password)
            .output()
            .await
            .map(trim_newline)
    }

    fn psql_command(&self, step: impl Into<String>, sql: &str) -> Run {
        Run::new(step, &self.bin.psql)
            .clear_env(CLIENT_ENV)
            .env("PGCONNECT_TIMEOUT", "10")
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-At"])
            .args(["-p", &self.port.to_string(), "-d", DATABASE])
            .arg("-c")
            .arg(sql)
    }

    /// Creates a login role `name` with `password` (no other privileges; grant them with
    /// [`psql`](Self::psql)).
    ///
    /// # Errors
    /// As for [`psql`](Self::psql), e.g. when the role exists.
    pub async fn create_user(&self, name: &str, password: &str) -> Result<(), LaunchError> {
        self.psql(&format!(
            "CREATE ROLE {} LOGIN PASSWORD {}",
            quote_ident(name),
            quote_literal(password)
        ))
        .await
        .map(drop)
    }

    /// Creates the database `name`, owned by the superuser.
    ///
    /// # Errors
    /// As for [`psql`](Self::psql), e.g. when the database exists.
    pub async fn create_database(&self, name: &str) -> Result<(), LaunchError> {
        self.psql(&format!("CREATE DATABASE {}", quote_ident(name)))
            .await
            .map(drop)
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port on 127.0.0.1 (the same after [`start_again`](Self::start_again)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser: `retl`.
    pub fn user(&self) -> &str {
        SUPERUSER
    }

    /// The superuser's password, required on TCP connections.
    pub fn superuser_password(&self) -> &str {
        SUPERUSER_PASSWORD
    }

    /// The database that exists from the start: `postgres`.
    pub fn database(&self) -> &str {
        DATABASE
    }

    /// `postgres://retl:<superuser password>@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_for(SUPERUSER, SUPERUSER_PASSWORD)
    }

    /// `postgres://<user>:<password>@127.0.0.1:PORT/postgres`, percent-encoded.
    pub fn url_for(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{}:{}@{HOST}:{}/{DATABASE}",
            url_encode(user),
            url_encode(password),
            self.port
        )
    }

    /// The directory of the Unix socket (for `host=<dir>` connections, trusted without password).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server log so far (to print when a test fails).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }
}

fn trim_newline(mut text: String) -> String {
    while text.ends_with('\n') {
        text.pop();
    }
    text
}

impl Drop for PostgresServer {
    /// Stops the server (`pg_ctl -m immediate stop`, blocking) and deletes its temp dir. A
    /// `postmaster.pid` left by a start that failed or timed out also triggers the stop.
    fn drop(&mut self) {
        let pid_file = self.data_dir().join("postmaster.pid");
        if (self.running || pid_file.exists())
            && let Err(e) = self.pg_ctl_stop("immediate").output_blocking()
        {
            tracing::warn!(error = %e, "could not stop the throwaway PostgreSQL server");
        }
    }
}

#[cfg(test)]
mod tests;
