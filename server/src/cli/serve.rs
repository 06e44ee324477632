//! `retl serve`: run the daemon until Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::cli::CliError;
use crate::daemon::{DaemonConfig, ServeError, serve};

/// Options of `retl serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; without a token only a loopback address is allowed.
    #[arg(long, default_value = "127.0.0.1:7543")]
    pub listen: String,
    /// Data directory (catalog, sync state, staged extracts).
    #[arg(long, env = "RETL_DATA_DIR", default_value = "./retl-data")]
    pub data_dir: PathBuf,
    /// Read the API token from this file (first line); takes precedence over --token / RETL_TOKEN.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Keep at most this many finished runs per mapping in the run history.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs_kept: u64,
    /// Forget finished runs older than this many days.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=36500))]
    pub run_history_days: u64,
    /// Stop a run whose stage and counts have not moved for this long (a query that never
    /// returns, a destination that never answers) and report it failed: `10m`, `90s`, `1h`.
    #[arg(long, default_value = "10m", value_parser = seconds_at_least_one)]
    pub stall_timeout: std::time::Duration,
    /// At shutdown (Ctrl-C, SIGTERM), let the requests in flight finish and commit what they
    /// acknowledge for at most this long: `30s`, `2m`.
    #[arg(long, default_value = "30s", value_parser = seconds_at_least_one)]
    pub shutdown_grace: std::time::Duration,
    /// Staged extracts kept per model (queryable as `"<model>@<run id>"`); older ones are
    /// deleted after each run.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub staging_runs_kept: u64,
    /// Longest a SQL query (`retl sql`, `ExecuteQuery`) may run: `5m`, `30s`.
    #[arg(long, default_value = "5m", value_parser = seconds_at_least_one)]
    pub query_timeout: std::time::Duration,
    /// Most rows a SQL query returns.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub query_max_rows: u64,
    /// Send the alerts of every mapping (failed runs, failed records, deletes held back,
    /// records given up; one message per change) to this http(s) webhook; repeatable. A Slack
    /// incoming-webhook URL works as is.
    #[arg(long = "alert-webhook", value_name = "URL")]
    pub alert_webhooks: Vec<String>,
    /// Serve Prometheus metrics on GET /metrics at this address (e.g. 127.0.0.1:9464); takes
    /// the token like the API, and without one only a loopback address is allowed.
    #[arg(long, env = "RETL_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Log format on stderr: `text`, or `json` (one JSON object a line, for log collectors).
    #[arg(long, env = "RETL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `90s`, `10m`, `1h` -> a duration of at least one second.
fn seconds_at_least_one(text: &str) -> Result<std::time::Duration, String> {
    match retl_engine::schedule::text::duration_seconds(text) {
        Some(s) if s >= 1 => Ok(std::time::Duration::from_secs(s)),
        _ => Err(format!(
            "expected a duration of at least 1s such as 90s, 10m or 1h, got '{text}'"
        )),
    }
}

/// How the daemon writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields`, `span`, `spans`.
    Json,
}

fn read_token_file(path: &PathBuf) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path).map_err(CliError::io(path))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(CliError::Usage(format!(
            "--token-file {} is empty; write the token on its first line",
            path.display()
        )));
    }
    Ok(token)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// Runs `retl serve` with the global `--token` (or `RETL_TOKEN`).
///
/// # Errors
/// A missing token on a non-loopback address, an unreadable token file, a busy port, or a data
/// directory that cannot be opened.
pub async fn run(args: ServeArgs, token: Option<String>) -> Result<(), CliError> {
    let token = match (&args.token_file, token) {
        (Some(path), _) => Some(read_token_file(path)?),
        (None, Some(t)) if t.trim().is_empty() => {
            return Err(CliError::Usage("--token / RETL_TOKEN is empty".into()));
        }
        (None, t) => t,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&args.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: args.listen.clone(),
            source,
        })?
        .collect();
    // Refuse before binding: any non-loopback address without a token.
    if let (None, Some(addr)) = (&token, addrs.iter().find(|a| !a.ip().is_loopback())) {
        return Err(ServeError::TokenRequired { addr: *addr }.into());
    }
    let listener = tokio::net::TcpListener::bind(addrs.as_slice())
        .await
        .map_err(|source| ServeError::Listen {
            addr: args.listen.clone(),
            source,
        })?;
    let mut config = DaemonConfig::new(args.data_dir, token);
    config.metrics_listen = args.metrics_listen;
    config.engine_options.run_history_runs_kept =
        usize::try_from(args.runs_kept).unwrap_or(usize::MAX);
    config.engine_options.run_history_max_age =
        std::time::Duration::from_secs(args.run_history_days * 24 * 3600);
    config.engine_options.stall_timeout = args.stall_timeout;
    config.engine_options.shutdown_grace = args.shutdown_grace;
    config.engine_options.staging_runs_kept =
        usize::try_from(args.staging_runs_kept).unwrap_or(usize::MAX);
    config.engine_options.query_timeout = args.query_timeout;
    config.engine_options.query_max_rows = args.query_max_rows;
    for url in &args.alert_webhooks {
        retl_engine::alert::check_webhook_url("--alert-webhook", url)
            .map_err(|e| CliError::Usage(e.to_string()))?;
    }
    config.engine_options.alert_webhooks = args.alert_webhooks;
    serve(listener, config, shutdown_signal()).await?;
    Ok(())
}
