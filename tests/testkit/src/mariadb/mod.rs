//! A throwaway MariaDB server for one test: its own data dir in a temp dir, on 127.0.0.1 and a
//! free port, killed and deleted on drop.
//!
//! ```no_run
//! # async fn example() -> Result<(), retl_testkit::LaunchError> {
//! let db = retl_testkit::MariaDbServer::start().await?;
//! db.sql("CREATE TABLE users (id int PRIMARY KEY, email text)").await?; // in `retl_test`
//! db.create_user("reader", "s3cret").await?;
//! db.grant_select("reader", db.database()).await?;
//! let url = db.url_for("reader", "s3cret"); // mysql://reader:s3cret@127.0.0.1:PORT/retl_test
//! # let _ = url; Ok(()) }
//! ```
//!
//! # How it runs
//! - `mariadb-install-db --no-defaults --auth-root-authentication-method=normal --skip-test-db`:
//!   `root` has no password (over the socket and from 127.0.0.1); users made with
//!   [`MariaDbServer::create_user`] must give theirs.
//! - `mariadbd --no-defaults` (no `/etc/mysql` config is read) with `--bind-address=127.0.0.1`,
//!   the port, a socket in the temp dir, `--skip-name-resolve`, `utf8mb4`, time zone `+00:00`,
//!   and durability off (`innodb_flush_log_at_trx_commit=0`, no doublewrite) for speed.
//! - When the test process is root, the temp dir belongs to the `mysql` system user and both
//!   programs get `--user=mysql`.
//! - The database `retl_test` is created at start; [`MariaDbServer::sql`] uses it.
//! - TLS is off until [`MariaDbServer::enable_tls`], which makes a throwaway certificate
//!   authority and server certificate and restarts the server with `--ssl-cert`, `--ssl-key`
//!   and `--ssl-ca` (same port, same data).
//!
//! Starting takes about 0.7 s (`mariadb-install-db` ~0.5 s, start ~0.2 s).

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::launch::{
    LaunchError, Run, chown, find_program, free_port, is_root, searched, server_dir, tail,
    url_encode, wait_until,
};
use crate::tls::{Certificates, make_certificates};

const ROOT: &str = "root";
const DATABASE: &str = "retl_test";
const HOST: &str = "127.0.0.1";
const SYSTEM_USER: &str = "mysql";
const INSTALL: &str = "apt-get install -y --no-install-recommends mariadb-server";
const DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/bin",
    "/usr/local/bin",
    "/usr/local/mysql/bin",
];
const START_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 5;
/// Environment variables that would change what the client does (`MYSQL_PWD`, `MYSQL_HOST`, ...).
const CLIENT_ENV: &[&str] = &["MYSQL", "MARIADB"];

/// A running throwaway MariaDB server (see the [module docs](self)).
///
/// Dropping it kills the server and deletes its data.
#[derive(Debug)]
pub struct MariaDbServer {
    /// Temp dir holding `data/`, the server log, the pid file and the socket; deleted on drop.
    dir: tempfile::TempDir,
    /// The installed programs.
    bin: Binaries,
    /// TCP port on 127.0.0.1, kept across [`MariaDbServer::start_again`].
    port: u16,
    /// `Some("mysql")` when the test process is root.
    run_as: Option<&'static str>,
    /// The `mariadbd` process while it runs.
    child: Option<Child>,
    /// The certificates the server serves TLS with, after [`MariaDbServer::enable_tls`].
    tls: Option<Certificates>,
}

#[derive(Debug)]
struct Binaries {
    install_db: PathBuf,
    server: PathBuf,
    client: PathBuf,
    admin: PathBuf,
}

impl Binaries {
    fn find() -> Result<Self, LaunchError> {
        let find = |program: &'static str| {
            find_program(program, DIRS).ok_or_else(|| LaunchError::NotInstalled {
                program,
                searched: searched(DIRS),
                install: INSTALL,
            })
        };
        Ok(Self {
            server: find("mariadbd")?,
            install_db: find("mariadb-install-db")?,
            client: find("mariadb")?,
            admin: find("mariadb-admin")?,
        })
    }
}

/// `'text'` with backslashes and quotes escaped (the default `sql_mode` treats `\` as escape).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}

/// `` `name` `` with embedded backticks doubled.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl MariaDbServer {
    /// Creates a data dir in a new temp dir, starts `mariadbd` on 127.0.0.1 and a free port, waits
    /// until it answers, and creates the database `retl_test`.
    ///
    /// # Errors
    /// [`LaunchError::NotInstalled`] when the MariaDB programs are missing (the message says
    /// `apt-get install -y --no-install-recommends mariadb-server`); [`LaunchError::Failed`] with
    /// stderr and the server log when `mariadb-install-db` or the server fails;
    /// [`LaunchError::Timeout`] when the server does not answer within 30 s.
    pub async fn start() -> Result<Self, LaunchError> {
        let bin = Binaries::find()?;
        let run_as = is_root().then_some(SYSTEM_USER);
        let dir = server_dir("retl-mariadb-", run_as)?;
        let mut server = Self {
            dir,
            bin,
            port: 0,
            run_as,
            child: None,
            tls: None,
        };
        Run::new(
            "mariadb-install-db (create the MariaDB data dir)",
            &server.bin.install_db,
        )
        .arg("--no-defaults")
        .arg(format!("--datadir={}", server.data_dir().display()))
        .arg(format!("--tmpdir={}", server.tmp_dir()?.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            "--innodb-log-file-size=8M",
        ])
        .args(server.run_as.map(|user| format!("--user={user}")))
        .cwd(server.dir.path())
        .timeout(START_TIMEOUT)
        .output()
        .await?;
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port()?;
            // Each attempt starts with an empty log, so `port_was_taken` reads this attempt only.
            let _ = std::fs::remove_file(server.log_path());
            match server.launch().await {
                Ok(()) => {
                    server
                        .client("create the database retl_test", None)
                        .arg("-e")
                        .arg(format!("CREATE DATABASE {DATABASE}"))
                        .output()
                        .await?;
                    return Ok(server);
                }
                Err(e) if attempt < PORT_ATTEMPTS && server.port_was_taken() => {
                    tracing::debug!(port = server.port, error = %e, "port taken; retrying");
                }
                Err(e) => return Err(e),
            }
        }
        // The loop returns on its last attempt.
        Err(LaunchError::Timeout {
            step: "find a free port for MariaDB".to_owned(),
            after: START_TIMEOUT,
            detail: String::new(),
        })
    }

    /// Spawns `mariadbd` and waits until it answers `mariadb-admin ping` on its socket.
    async fn launch(&mut self) -> Result<(), LaunchError> {
        let log = self.log_path();
        let mut cmd = std::process::Command::new(&self.bin.server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!("--bind-address={HOST}"))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("mariadbd.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--tmpdir={}", self.tmp_dir()?.display()))
            .args([
                "--skip-name-resolve",
                "--skip-log-bin",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
                "--default-time-zone=+00:00",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=8M",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
            ])
            .args(self.run_as.map(|user| format!("--user={user}")))
            .args(self.tls.iter().flat_map(|tls| {
                [
                    format!("--ssl-cert={}", tls.cert.display()),
                    format!("--ssl-key={}", tls.key.display()),
                    format!("--ssl-ca={}", tls.ca.display()),
                ]
            }))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            step: "mariadbd (start MariaDB)".to_owned(),
            program: self.bin.server.display().to_string(),
            source,
        })?;
        self.child = Some(child);
        let ready = wait_until("MariaDB answers on its socket", START_TIMEOUT, || {
            let exited = self.child.as_mut().map(Child::try_wait);
            let ping = self.admin("ping").timeout(Duration::from_secs(5));
            async move {
                match exited {
                    Some(Ok(Some(status))) => Err(LaunchError::Failed {
                        step: "mariadbd (start MariaDB)".to_owned(),
                        command: "mariadbd".to_owned(),
                        status: status.to_string(),
                        output: String::new(),
                    }),
                    _ => Ok(ping.output().await.is_ok()),
                }
            }
        })
        .await;
        if let Err(e) = ready {
            self.kill();
            return Err(e.with_log(&tail(&log, 20)));
        }
        Ok(())
    }

    fn port_was_taken(&self) -> bool {
        let log = tail(&self.log_path(), 20);
        log.contains("Address already in use") || log.contains("Bind on TCP/IP port")
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `mariadb-admin <command>` as root over the socket.
    fn admin(&self, command: &str) -> Run {
        Run::new(format!("mariadb-admin {command}"), &self.bin.admin)
            .clear_env(CLIENT_ENV)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", ROOT, "--connect-timeout=5", command])
    }

    /// The `mariadb` client as root over the socket, batch mode without column names.
    fn client(&self, step: &str, database: Option<&str>) -> Run {
        Run::new(step, &self.bin.client)
            .clear_env(CLIENT_ENV)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", ROOT, "--default-character-set=utf8mb4", "-N", "-B"])
            .args(database.map(|db| format!("--database={db}")))
    }

    /// Shuts the server down cleanly (`mariadb-admin shutdown`) and waits for the process to
    /// exit; data is kept. Does nothing when it is already stopped.
    ///
    /// # Errors
    /// [`LaunchError::Failed`] when the shutdown command fails; [`LaunchError::Timeout`] when the
    /// process has not exited after 30 s (it is then killed).
    pub async fn stop(&mut self) -> Result<(), LaunchError> {
        if self.child.is_none() {
            return Ok(());
        }
        if let Err(e) = self.admin("shutdown").output().await {
            self.kill();
            return Err(e.with_log(&tail(&self.log_path(), 20)));
        }
        let exited = wait_until("mariadbd exits after shutdown", START_TIMEOUT, || {
            let exited = self
                .child
                .as_mut()
                .is_none_or(|child| matches!(child.try_wait(), Ok(Some(_)) | Err(_)));
            async move { Ok(exited) }
        })
        .await;
        self.kill();
        exited
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port and data dir. Does
    /// nothing when it is running.
    ///
    /// # Errors
    /// As for [`start`](Self::start); also when another process took the port meanwhile.
    pub async fn start_again(&mut self) -> Result<(), LaunchError> {
        if self.child.is_some() {
            return Ok(());
        }
        self.launch().await
    }

    /// Turns TLS on: makes a throwaway certificate authority and a server certificate for
    /// `127.0.0.1` / `localhost` signed by it (with the `openssl` program), and restarts the
    /// server with them (`--ssl-cert`, `--ssl-key`, `--ssl-ca`; MariaDB reads them only at
    /// start) on the same port and data. Plain TCP keeps working too. Returns the path of the
    /// authority's certificate (PEM), for a client's `sslrootcert`.
    ///
    /// # Errors
    /// [`LaunchError::NotInstalled`] without `openssl`; [`LaunchError::Failed`] when a step
    /// fails or the restarted server does not serve TLS; as for [`stop`](Self::stop) and
    /// [`start_again`](Self::start_again).
    pub async fn enable_tls(&mut self) -> Result<PathBuf, LaunchError> {
        let certificates = make_certificates(&self.dir.path().join("tls"), self.run_as).await?;
        let ca = certificates.ca.clone();
        self.tls = Some(certificates);
        if self.child.is_none() {
            return Ok(ca);
        }
        self.stop().await?;
        self.launch().await?;
        let have_ssl = self.sql("SELECT @@have_ssl").await?;
        if have_ssl != "YES" {
            return Err(LaunchError::Failed {
                step: "turn TLS on in MariaDB".to_owned(),
                command: "mariadbd --ssl-cert ... --ssl-key ... --ssl-ca ...".to_owned(),
                status: format!("@@have_ssl is {have_ssl}"),
                output: tail(&self.log_path(), 20),
            });
        }
        Ok(ca)
    }

    /// Runs `statement` (one or more, `;`-separated) as `root` over the socket in the database
    /// `retl_test`, with `mariadb -N -B -e`, and returns the output: rows on lines, columns
    /// separated by tabs, `NULL` for null, special characters escaped (`\n`, `\t`, `\\`), without
    /// the final newline.
    ///
    /// # Errors
    /// [`LaunchError::Failed`] with the client's stderr (the MariaDB error) when a statement fails
    /// or the server is not running.
    pub async fn sql(&self, statement: &str) -> Result<String, LaunchError> {
        self.client("mariadb (run SQL as root)", Some(DATABASE))
            .arg("-e")
            .arg(statement)
            .output()
            .await
            .map(trim_newline)
    }

    /// Runs `statement` like [`sql`](Self::sql), but over TCP on 127.0.0.1 as `user` with
    /// `password` (as a connector connects), in the database `retl_test`.
    ///
    /// # Errors
    /// [`LaunchError::Failed`] with the client's stderr, e.g. `Access denied for user`.
    pub async fn sql_as(
        &self,
        user: &str,
        password: &str,
        statement: &str,
    ) -> Result<String, LaunchError> {
        Run::new(
            format!("mariadb (run SQL as {user} over TCP)"),
            &self.bin.client,
        )
        .clear_env(CLIENT_ENV)
        .env("MYSQL_PWD", password)
        .arg("--no-defaults")
        .args(["--protocol=TCP", "-h", HOST, "-P", &self.port.to_string()])
        .args(["-u", user, "--connect-timeout=10"])
        .args(["--default-character-set=utf8mb4", "-N", "-B"])
        .arg(format!("--database={DATABASE}"))
        .arg("-e")
        .arg(statement)
        .output()
        .await
        .map(trim_newline)
    }

    /// Creates the user `name`@`%` with `password` (no privileges; see
    /// [`grant_select`](Self::grant_select), [`grant_all`](Self::grant_all)).
    ///
    /// # Errors
    /// As for [`sql`](Self::sql), e.g. when the user exists.
    pub async fn create_user(&self, name: &str, password: &str) -> Result<(), LaunchError> {
        self.sql(&format!(
            "CREATE USER {}@'%' IDENTIFIED BY {}",
            quote_literal(name),
            quote_literal(password)
        ))
        .await
        .map(drop)
    }

    /// `GRANT SELECT ON <database>.* TO <user>@'%'`.
    ///
    /// # Errors
    /// As for [`sql`](Self::sql).
    pub async fn grant_select(&self, user: &str, database: &str) -> Result<(), LaunchError> {
        self.grant("SELECT", user, database).await
    }

    /// `GRANT ALL PRIVILEGES ON <database>.* TO <user>@'%'`.
    ///
    /// # Errors
    /// As for [`sql`](Self::sql).
    pub async fn grant_all(&self, user: &str, database: &str) -> Result<(), LaunchError> {
        self.grant("ALL PRIVILEGES", user, database).await
    }

    async fn grant(&self, privileges: &str, user: &str, database: &str) -> Result<(), LaunchError> {
        self.sql(&format!(
            "GRANT {privileges} ON {}.* TO {}@'%'",
            quote_ident(database),
            quote_literal(user)
        ))
        .await
        .map(drop)
    }

    /// Creates the database `name`.
    ///
    /// # Errors
    /// As for [`sql`](Self::sql), e.g. when it exists.
    pub async fn create_database(&self, name: &str) -> Result<(), LaunchError> {
        self.sql(&format!("CREATE DATABASE {}", quote_ident(name)))
            .await
            .map(drop)
    }

    /// Kills every client connection but the one doing the killing, and returns how many it
    /// killed. Simulates a server-side disconnect.
    ///
    /// # Errors
    /// As for [`sql`](Self::sql).
    pub async fn kill_connections(&self) -> Result<u64, LaunchError> {
        let ids = self
            .sql(
                "SELECT id FROM information_schema.processlist \
                 WHERE id <> CONNECTION_ID() AND command NOT IN ('Daemon', 'Killed') \
                 AND user NOT IN ('system user', 'event_scheduler')",
            )
            .await?;
        let mut killed = 0;
        for id in ids.lines().map(str::trim).filter(|id| !id.is_empty()) {
            match self.sql(&format!("KILL CONNECTION {id}")).await {
                Ok(_) => killed += 1,
                // The connection ended on its own meanwhile.
                Err(e) if e.to_string().contains("Unknown thread id") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(killed)
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port on 127.0.0.1 (the same after [`start_again`](Self::start_again)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Unix socket (root connects there without a password).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadbd.sock")
    }

    /// The administrative user: `root`, without password (over the socket and from 127.0.0.1).
    pub fn root_user(&self) -> &str {
        ROOT
    }

    /// The database created at start: `retl_test`.
    pub fn database(&self) -> &str {
        DATABASE
    }

    /// `mysql://root@127.0.0.1:PORT/retl_test`.
    pub fn url(&self) -> String {
        format!("mysql://{ROOT}@{HOST}:{}/{DATABASE}", self.port)
    }

    /// `mysql://<user>:<password>@127.0.0.1:PORT/retl_test`, percent-encoded.
    pub fn url_for(&self, user: &str, password: &str) -> String {
        format!(
            "mysql://{}:{}@{HOST}:{}/{DATABASE}",
            url_encode(user),
            url_encode(password),
            self.port
        )
    }

    /// The server's error log so far (to print when a test fails).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mariadbd.log")
    }

    /// The server's own `--tmpdir`: concurrent servers sharing `/tmp` made
    /// `mariadb-install-db` fail now and then (`Could not remove temporary table`,
    /// `ERROR: 1051 Unknown table 'mysql.tmp_user_sys'`).
    fn tmp_dir(&self) -> Result<PathBuf, LaunchError> {
        let tmp = self.dir.path().join("tmp");
        if !tmp.is_dir() {
            std::fs::create_dir(&tmp)
                .map_err(|e| LaunchError::io(format!("create {}", tmp.display()), e))?;
            if let Some(user) = self.run_as {
                chown(&tmp, user)?;
            }
        }
        Ok(tmp)
    }

    /// The temp dir (tests check that drop deletes it).
    #[cfg(test)]
    fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

fn trim_newline(mut text: String) -> String {
    while text.ends_with('\n') {
        text.pop();
    }
    text
}

impl Drop for MariaDbServer {
    /// Kills the server (SIGKILL, then waits for it) and deletes its temp dir.
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests;
