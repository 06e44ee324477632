//! The command line: `retl serve` runs the daemon; every other command is a gRPC client of it.
//!
//! # Layout
//! - this file: global options, the command tree, the API [`Client`], [`CliError`], [`run`].
//! - [`serve`]: `retl serve`.
//! - [`source`], [`model`], [`destination`], [`mapping`], [`sync`]: one command group each.
//! - [`output`]: human tables and `--output json`.
//! - [`progress`]: live progress of a sync run (indicatif) and its summary.
//! - [`quickstart`]: `retl quickstart`, an end-to-end demo with no external service.
//! - [`sql`]: `retl sql`, queries and the interactive prompt.

pub mod destination;
pub mod dry_run;
pub mod explain;
pub mod failures;
pub mod mapping;
pub mod mapping_view;
pub mod model;
pub mod output;
pub mod progress;
pub mod quickstart;
pub mod schedule;
pub mod serve;
pub mod source;
pub mod sql;
pub mod sync;
pub mod test_record;
pub mod top;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use retl_proto::v1::destination_service_client::DestinationServiceClient;
use retl_proto::v1::mapping_service_client::MappingServiceClient;
use retl_proto::v1::model_service_client::ModelServiceClient;
use retl_proto::v1::query_service_client::QueryServiceClient;
use retl_proto::v1::source_service_client::SourceServiceClient;
use retl_proto::v1::sync_service_client::SyncServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::{BearerToken, InvalidToken};
use crate::daemon::ServeError;
pub use output::Output;

/// The address the CLI connects to and `retl serve` listens on by default.
pub const DEFAULT_PORT: u16 = 7543;

/// retl: a Reverse ETL daemon. Syncs warehouse models to business tools.
#[derive(Debug, Parser)]
#[command(name = "retl", version, about, long_about = None)]
pub struct Cli {
    /// Address of the retl daemon.
    #[arg(
        long,
        global = true,
        env = "RETL_ADDR",
        default_value = "http://127.0.0.1:7543"
    )]
    pub addr: String,
    /// API token (client: sent as `authorization: Bearer`; serve: the token to require).
    #[arg(long, global = true, env = "RETL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (gRPC API, health, reflection).
    Serve(serve::ServeArgs),
    /// End-to-end demo: sample Parquet warehouse -> file destination, two syncs, no setup.
    Quickstart(quickstart::QuickstartArgs),
    /// Commands that call a running daemon.
    #[command(flatten)]
    Api(ApiCommand),
}

/// Commands that call a running daemon (`--addr`, `--token`).
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Manage sources (warehouse connections).
    #[command(subcommand)]
    Source(source::SourceCommand),
    /// Manage models (SQL + unique id).
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Manage destinations and list destination types.
    #[command(subcommand)]
    Destination(destination::DestinationCommand),
    /// Manage mappings (model -> destination action).
    #[command(subcommand)]
    Mapping(mapping::MappingCommand),
    /// Run, watch and inspect syncs.
    #[command(subcommand)]
    Sync(sync::SyncCommand),
    /// Why one record of a mapping was or was not sent, and what the next run does with it.
    Explain(explain::ExplainArgs),
    /// A live view of running syncs: stage, throughput, pending, throttling (q to quit).
    Top(top::TopArgs),
    /// Read-only SQL over the staged extracts (`<model>`, `"<model>@<run id>"`) and the system
    /// tables (`retl.sync_runs`, `retl.run_errors`, `retl.pending`, `retl.state`, ...); without
    /// a query, an interactive prompt.
    Sql(sql::SqlArgs),
}

/// A CLI failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The daemon could not be reached.
    #[error(
        "could not connect to the retl daemon at {addr}: {message}; is `retl serve` running there? (set --addr or RETL_ADDR)"
    )]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        message: String,
    },
    /// The daemon answered with an error.
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Api(#[from] tonic::Status),
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// The daemon failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The token is not a valid header value.
    #[error(transparent)]
    Token(#[from] InvalidToken),
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A sync run ended without succeeding.
    #[error("sync run {run_id} ended with status {status}")]
    RunNotSucceeded {
        /// The run.
        run_id: String,
        /// Its final status.
        status: String,
    },
    /// The quickstart failed a check.
    #[error("quickstart: {0}")]
    Quickstart(String),
}

impl CliError {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> CliError {
        let path = path.as_ref().display().to_string();
        move |source| CliError::Io { path, source }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// The canonical name of a gRPC code, e.g. `NOT_FOUND`.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A gRPC channel to the daemon with the token interceptor.
pub type AuthChannel = InterceptedService<Channel, BearerToken>;

/// A client of the daemon's API.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    auth: BearerToken,
}

/// The message of an error and its sources, `a: b: c`.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

impl Client {
    /// Connects to `addr` (e.g. `http://127.0.0.1:7543`), sending `token` with every call.
    ///
    /// # Errors
    /// [`CliError::Connect`] when the address is invalid or nothing answers there.
    pub async fn connect(addr: &str, token: Option<&str>) -> Result<Self, CliError> {
        let auth = BearerToken::new(token)?;
        let connect_err = |message: String| CliError::Connect {
            addr: addr.to_string(),
            message,
        };
        let with_scheme = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let channel = Endpoint::from_shared(with_scheme)
            .map_err(|e| connect_err(error_chain(&e)))?
            .connect()
            .await
            .map_err(|e| connect_err(error_chain(&e)))?;
        Ok(Client { channel, auth })
    }

    /// The source service.
    pub fn sources(&self) -> SourceServiceClient<AuthChannel> {
        SourceServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The model service.
    pub fn models(&self) -> ModelServiceClient<AuthChannel> {
        ModelServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The destination service.
    pub fn destinations(&self) -> DestinationServiceClient<AuthChannel> {
        DestinationServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The mapping service.
    pub fn mappings(&self) -> MappingServiceClient<AuthChannel> {
        MappingServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The sync service.
    pub fn syncs(&self) -> SyncServiceClient<AuthChannel> {
        SyncServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The query service.
    pub fn query(&self) -> QueryServiceClient<AuthChannel> {
        QueryServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }
}

/// What every client command gets.
#[derive(Debug)]
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The output format.
    pub output: Output,
}

/// The config-changing flags shared by `source update` and `destination update`.
#[derive(Debug, Args)]
pub struct ConfigUpdateArgs {
    /// Config key to set, `key=value`; repeatable. Keys not named are kept.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Config keys to set, as a JSON object (a null value removes the key).
    #[arg(long)]
    pub config_json: Option<String>,
    /// Config key to remove; repeatable.
    #[arg(long, value_name = "KEY")]
    pub unset: Vec<String>,
    /// New human name.
    #[arg(long)]
    pub display_name: Option<String>,
}

/// What a `ConfigUpdateArgs` asks to change.
#[derive(Debug)]
pub struct ConfigUpdate {
    /// New human name, empty when unchanged.
    pub display_name: String,
    /// Config keys to set (null = remove).
    pub config: serde_json::Map<String, serde_json::Value>,
    /// The update mask paths.
    pub paths: Vec<String>,
}

impl ConfigUpdateArgs {
    /// The changes and the matching update mask.
    ///
    /// # Errors
    /// A malformed `--config`/`--config-json`, or nothing to update.
    pub fn into_update(self) -> Result<ConfigUpdate, CliError> {
        let mut config = parse_config(self.config_json.as_deref(), &self.config)?;
        for key in self.unset {
            config.insert(key, serde_json::Value::Null);
        }
        let mut paths = Vec::new();
        if self.display_name.is_some() {
            paths.push("display_name".to_string());
        }
        if !config.is_empty() {
            paths.push("config".to_string());
        }
        if paths.is_empty() {
            return Err(CliError::Usage(
                "nothing to update: pass --config, --config-json, --unset or --display-name".into(),
            ));
        }
        Ok(ConfigUpdate {
            display_name: self.display_name.unwrap_or_default(),
            config,
            paths,
        })
    }
}

/// Every item of a paginated List RPC; `page(token)` fetches one page as (items, next token).
///
/// # Errors
/// The first failed call.
pub async fn fetch_all<T, F, Fut>(mut page: F) -> Result<Vec<T>, CliError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let (items, next) = page(token).await?;
        all.extend(items);
        if next.is_empty() {
            return Ok(all);
        }
        token = next;
    }
}

/// Prints the result of a delete.
pub fn print_deleted(out: Output, kind: &str, id: &str) {
    match out {
        Output::Json => output::print_json(&serde_json::json!({})),
        Output::Table | Output::Csv => output::outln!("deleted {kind} {id}"),
    }
}

/// Parses `key=value` config pairs (value as JSON when it is valid JSON, else as a string) on
/// top of an optional `--config-json` object.
///
/// # Errors
/// [`CliError::Usage`] for a pair without `=` or JSON that is not an object.
pub fn parse_config(
    json: Option<&str>,
    pairs: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, CliError> {
    let mut map = match json {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => {
                return Err(CliError::Usage(
                    "--config-json must be a JSON object, e.g. '{\"path\": \"data.parquet\"}'"
                        .into(),
                ));
            }
            Err(e) => {
                return Err(CliError::Usage(format!(
                    "--config-json is not valid JSON: {e}"
                )));
            }
        },
    };
    for pair in pairs {
        let (key, value) = parse_pair("--config", pair)?;
        map.insert(key, value);
    }
    Ok(map)
}

/// Parses `key=value`; the value as JSON when it is valid JSON (numbers, booleans, objects,
/// arrays, quoted strings, null), else as a plain string.
///
/// # Errors
/// [`CliError::Usage`] naming `flag` when there is no `=` or the key is empty.
pub fn parse_pair(flag: &str, pair: &str) -> Result<(String, serde_json::Value), CliError> {
    let Some((key, raw)) = pair.split_once('=') else {
        return Err(CliError::Usage(format!(
            "{flag} expects key=value, got '{pair}'"
        )));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(CliError::Usage(format!("{flag} '{pair}' has an empty key")));
    }
    let value = serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.into()));
    Ok((key.to_string(), value))
}

/// Installs the log subscriber: `RETL_LOG` (env-filter syntax) or `default`, to stderr, as text.
pub fn init_logging(default: &str) {
    init_logging_as(default, serve::LogFormat::Text);
}

/// Installs the log subscriber: `RETL_LOG` (env-filter syntax) or `default`, to stderr, as
/// text or as one JSON object a line (`timestamp`, `level`, `target`, `fields`, `span`,
/// `spans`).
pub fn init_logging_as(default: &str, format: serve::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RETL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        serve::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        serve::LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// Runs a parsed command line; prints errors to stderr and returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
    let (default_log, log_format) = match &cli.command {
        Command::Serve(args) => ("info", args.log_format),
        _ => ("warn", serve::LogFormat::Text),
    };
    init_logging_as(default_log, log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), CliError> {
    let Cli {
        addr,
        token,
        output,
        command,
    } = cli;
    match command {
        Command::Serve(args) => serve::run(args, token).await,
        Command::Quickstart(args) => quickstart::run(args, output).await,
        Command::Api(ApiCommand::Mapping(mapping::MappingCommand::Schedule(args)))
            if args.preview =>
        {
            schedule::preview(&args, output)
        }
        Command::Api(command) => {
            let ctx = Context {
                client: Client::connect(&addr, token.as_deref()).await?,
                output,
            };
            match command {
                ApiCommand::Source(c) => source::run(&ctx, c).await,
                ApiCommand::Model(c) => model::run(&ctx, c).await,
                ApiCommand::Destination(c) => destination::run(&ctx, c).await,
                ApiCommand::Mapping(c) => mapping::run(&ctx, c).await,
                ApiCommand::Sync(c) => sync::run(&ctx, c).await,
                ApiCommand::Explain(args) => explain::run(&ctx, args).await,
                ApiCommand::Top(args) => top::run(&ctx, args).await,
                ApiCommand::Sql(args) => sql::run(&ctx, args).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use serde_json::json;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_values_parse_as_json_or_string() {
        let m = parse_config(
            Some(r#"{"a": 1, "b": "x"}"#),
            &[
                "b=hello world".into(),
                "port=5432".into(),
                "ssl=true".into(),
                "limits={\"batch_size\": 5}".into(),
                "url=https://x.test/a=b".into(),
            ],
        )
        .unwrap();
        assert_eq!(m["a"], json!(1));
        assert_eq!(m["b"], json!("hello world"));
        assert_eq!(m["port"], json!(5432));
        assert_eq!(m["ssl"], json!(true));
        assert_eq!(m["limits"], json!({"batch_size": 5}));
        assert_eq!(m["url"], json!("https://x.test/a=b"));
        assert!(parse_config(None, &["novalue".into()]).is_err());
        assert!(parse_config(Some("[1]"), &[]).is_err());
    }
}
