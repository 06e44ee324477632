//! The daemon: one engine over a data directory, served over gRPC on a listener the caller binds,
//! until a shutdown future resolves.
//!
//! Served on one port: the six `retl.v1` services, Arrow Flight SQL
//! (`arrow.flight.protocol.FlightService`, [`crate::flight`]), `grpc.health.v1.Health` (always
//! open, SERVING for every service and for `""`), and gRPC reflection v1 and v1alpha. Reflection is
//! token-protected like the API (DESIGN.md: every call except health needs the token); grpcurl
//! sends `-H` headers on its reflection calls too, so `grpcurl -H 'authorization: Bearer <token>'
//! ... list` works.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use retl_engine::{Engine, EngineOptions};
use retl_proto::v1::destination_service_server::{self, DestinationServiceServer};
use retl_proto::v1::mapping_service_server::{self, MappingServiceServer};
use retl_proto::v1::model_service_server::{self, ModelServiceServer};
use retl_proto::v1::query_service_server::{self, QueryServiceServer};
use retl_proto::v1::source_service_server::{self, SourceServiceServer};
use retl_proto::v1::sync_service_server::{self, SyncServiceServer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;

use crate::auth::TokenAuth;
use crate::grpc::{DestinationApi, MappingApi, ModelApi, QueryApi, SourceApi, SyncApi};

/// The gRPC service names of the `retl.v1` API.
pub const SERVICE_NAMES: [&str; 6] = [
    source_service_server::SERVICE_NAME,
    model_service_server::SERVICE_NAME,
    destination_service_server::SERVICE_NAME,
    mapping_service_server::SERVICE_NAME,
    sync_service_server::SERVICE_NAME,
    query_service_server::SERVICE_NAME,
];

/// Everything the daemon needs besides its listener.
#[derive(Clone)]
pub struct DaemonConfig {
    /// The data directory (catalog, state, staging); created when missing.
    pub data_dir: PathBuf,
    /// The token every call except health must carry; `None` = no authentication, allowed only
    /// on a loopback listener.
    pub token: Option<String>,
    /// Engine settings.
    pub engine_options: EngineOptions,
    /// Where to serve Prometheus `/metrics` (e.g. `127.0.0.1:9464`); `None` = not served.
    /// Takes the token like the API; without one only a loopback address is allowed.
    pub metrics_listen: Option<String>,
}

impl std::fmt::Debug for DaemonConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonConfig")
            .field("data_dir", &self.data_dir)
            .field("token", &self.token.as_ref().map(|_| "**REDACTED**"))
            .field("engine_options", &self.engine_options)
            .field("metrics_listen", &self.metrics_listen)
            .finish()
    }
}

impl DaemonConfig {
    /// A config with default engine options.
    pub fn new(data_dir: impl Into<PathBuf>, token: Option<String>) -> Self {
        DaemonConfig {
            data_dir: data_dir.into(),
            token,
            engine_options: EngineOptions::default(),
            metrics_listen: None,
        }
    }
}

pub use crate::serve_error::ServeError;

/// Opens the engine over `config.data_dir` and serves it on `listener` until `shutdown`
/// resolves; then stops running syncs (they are cancelled and recorded) and returns.
///
/// # Errors
/// [`ServeError::TokenRequired`] when no token is configured and the listener is not on a
/// loopback address; [`ServeError::Engine`] when the data directory cannot be opened;
/// [`ServeError::Transport`] when the server fails.
pub async fn serve(
    listener: TcpListener,
    config: DaemonConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    check_listener(&listener, config.token.as_deref())?;
    let metrics = bind_metrics(&config).await?;
    let engine = open_engine(&config).await?;
    serve_engine(listener, metrics, engine, config.token.as_deref(), shutdown).await
}

/// Binds the metrics listener when the config asks for one.
async fn bind_metrics(config: &DaemonConfig) -> Result<Option<TcpListener>, ServeError> {
    match &config.metrics_listen {
        Some(addr) => Ok(Some(
            crate::metrics::bind(addr, config.token.as_deref()).await?,
        )),
        None => Ok(None),
    }
}

fn check_listener(listener: &TcpListener, token: Option<&str>) -> Result<SocketAddr, ServeError> {
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: "the given listener".to_string(),
        source,
    })?;
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::TokenRequired { addr });
    }
    Ok(addr)
}

async fn open_engine(config: &DaemonConfig) -> Result<Engine, ServeError> {
    Engine::open(
        &config.data_dir,
        crate::registry(),
        config.engine_options.clone(),
    )
    .await
    .map_err(|source| ServeError::Engine {
        path: config.data_dir.display().to_string(),
        source,
    })
}

/// Serves an opened engine (see [`serve`]), and its metrics when given a listener for them;
/// shuts the engine down when the server stops.
async fn serve_engine(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    engine: Engine,
    token: Option<&str>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = check_listener(&listener, token)?;
    let auth = TokenAuth::from_token(token);
    if !auth.is_required() {
        tracing::warn!(%addr, "serving WITHOUT authentication (no token configured); only do this on a trusted machine");
    }

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    for name in SERVICE_NAMES
        .into_iter()
        .chain([crate::flight::SERVICE_NAME])
    {
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(retl_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // v1alpha for the clients that speak only it (Python's grpcio-reflection, older grpcurl and
    // Evans); v1 for the rest.
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let metrics_stop = tokio_util::sync::CancellationToken::new();
    if let Some(metrics) = metrics {
        let metrics_addr = metrics.local_addr().ok();
        tracing::info!(addr = ?metrics_addr, "serving Prometheus metrics on /metrics");
        let stop = metrics_stop.clone().cancelled_owned();
        let (engine, auth) = (engine.clone(), auth.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(metrics, engine, auth, stop).await {
                tracing::error!(error = %e, "the metrics server stopped");
            }
        });
    }
    engine.start_scheduler();
    tracing::info!(%addr, data_dir = %engine.data_dir().display(), authentication = auth.is_required(), "retl daemon listening");
    let result = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(InterceptedService::new(reflection_v1, auth.clone()))
        .add_service(InterceptedService::new(reflection_v1alpha, auth.clone()))
        .add_service(SourceServiceServer::with_interceptor(
            SourceApi::new(engine.clone()),
            auth.clone(),
        ))
        .add_service(ModelServiceServer::with_interceptor(
            ModelApi::new(engine.clone()),
            auth.clone(),
        ))
        .add_service(DestinationServiceServer::with_interceptor(
            DestinationApi::new(engine.clone()),
            auth.clone(),
        ))
        .add_service(MappingServiceServer::with_interceptor(
            MappingApi::new(engine.clone()),
            auth.clone(),
        ))
        .add_service(SyncServiceServer::with_interceptor(
            SyncApi::new(engine.clone()),
            auth.clone(),
        ))
        .add_service(QueryServiceServer::with_interceptor(
            QueryApi::new(engine.clone()),
            auth.clone(),
        ))
        .add_service(crate::flight::server(
            engine.clone(),
            crate::flight::FlightAuth::new(auth),
        ))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    metrics_stop.cancel();
    tracing::info!("retl daemon stopping: cancelling running syncs");
    engine.shutdown().await;
    tracing::info!("retl daemon stopped");
    Ok(result?)
}

/// A daemon running in this process (tests, `retl quickstart`).
///
/// Dropping it shuts the daemon down in the background; [`InProcessDaemon::stop`] waits for it.
#[derive(Debug)]
pub struct InProcessDaemon {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), ServeError>>,
}

impl InProcessDaemon {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of the Prometheus endpoint, e.g. `http://127.0.0.1:34568/metrics`, when the
    /// config asked for one.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics_addr.map(|a| format!("http://{a}/metrics"))
    }

    /// The URL clients connect to, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the daemon and waits until running syncs have stopped.
    ///
    /// # Errors
    /// What the server returned, or [`ServeError::Task`] if its task panicked.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.handle)
            .await
            .map_err(|e| ServeError::Task(e.to_string()))?
    }
}

/// Opens the engine and serves it on `127.0.0.1:0` in a background task (and its metrics on
/// `config.metrics_listen`, e.g. `127.0.0.1:0`, when set).
///
/// # Errors
/// [`ServeError::Listen`] or [`ServeError::Engine`] when it cannot start; nothing runs then.
pub async fn spawn_in_process(config: DaemonConfig) -> Result<InProcessDaemon, ServeError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|source| ServeError::Listen {
            addr: "127.0.0.1:0".to_string(),
            source,
        })?;
    let addr = check_listener(&listener, config.token.as_deref())?;
    let metrics = bind_metrics(&config).await?;
    let metrics_addr = metrics.as_ref().and_then(|l| l.local_addr().ok());
    let engine = open_engine(&config).await?;
    let (tx, rx) = oneshot::channel::<()>();
    let token = config.token.clone();
    let handle = tokio::spawn(async move {
        serve_engine(listener, metrics, engine, token.as_deref(), async move {
            let _ = rx.await;
        })
        .await
    });
    Ok(InProcessDaemon {
        addr,
        metrics_addr,
        shutdown: Some(tx),
        handle,
    })
}

#[cfg(test)]
mod tests {
    use retl_proto::v1;
    use retl_proto::v1::source_service_client::SourceServiceClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Health;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::cli::Client;

    /// A unique directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("retl-daemon-test-{}", uuid_like()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn uuid_like() -> String {
        use rand::Rng;
        let bytes: [u8; 12] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[tokio::test]
    async fn health_is_open_and_the_api_needs_the_token() {
        let dir = TempDir::new();
        let daemon = spawn_in_process(DaemonConfig::new(dir.path(), Some("t0k3n".into())))
            .await
            .unwrap();

        let channel = tonic::transport::Endpoint::from_shared(daemon.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(channel.clone());
        for service in ["", "retl.v1.SyncService", crate::flight::SERVICE_NAME] {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status();
            assert_eq!(status, Health::Serving, "{service}");
        }

        let err = SourceServiceClient::new(channel)
            .list_sources(v1::ListSourcesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(err.message().contains("authorization: Bearer"));

        let wrong = Client::connect(&daemon.url(), Some("nope")).await.unwrap();
        let err = wrong
            .sources()
            .list_sources(v1::ListSourcesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);

        let client = Client::connect(&daemon.url(), Some("t0k3n")).await.unwrap();
        let list = client
            .sources()
            .list_sources(v1::ListSourcesRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(list.sources.is_empty());

        // Request-shape errors name the field.
        let err = client
            .models()
            .create_model(v1::CreateModelRequest {
                model_id: "m".into(),
                model: Some(v1::Model {
                    source_id: "s".into(),
                    unique_id: "id".into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("model.sql is required"),
            "{}",
            err.message()
        );

        // A request without its required ids names them.
        let err = client
            .mappings()
            .suggest_mappings(v1::SuggestMappingsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("model_id"), "{}", err.message());

        // A schedule that is not one names the accepted forms.
        let err = client
            .mappings()
            .create_mapping(v1::CreateMappingRequest {
                mapping_id: "m".into(),
                mapping: Some(v1::Mapping {
                    model_id: "m".into(),
                    destination_id: "d".into(),
                    action: "a".into(),
                    schedule: Some(v1::Schedule {
                        schedule: Some(v1::schedule::Schedule::Cron("every five minutes".into())),
                        time_zone: String::new(),
                    }),
                    ..Default::default()
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("has 3 fields; write 5") && err.message().contains("accepted:"),
            "{}",
            err.message()
        );

        daemon.stop().await.unwrap();
    }

    #[tokio::test]
    async fn reflection_lists_the_services_with_the_token() {
        use futures::StreamExt;
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

        let dir = TempDir::new();
        let daemon = spawn_in_process(DaemonConfig::new(dir.path(), Some("t".into())))
            .await
            .unwrap();
        let channel = tonic::transport::Endpoint::from_shared(daemon.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let request = || {
            tokio_stream::iter([ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }])
        };
        let err = ServerReflectionClient::new(channel.clone())
            .server_reflection_info(request())
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);

        let auth = crate::auth::BearerToken::new(Some("t")).unwrap();
        let mut stream = ServerReflectionClient::with_interceptor(channel, auth)
            .server_reflection_info(request())
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            stream.next().await.unwrap().unwrap().message_response
        else {
            panic!("expected a service list");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for name in SERVICE_NAMES {
            assert!(
                names.iter().any(|n| n == name),
                "{name} missing from {names:?}"
            );
        }
        daemon.stop().await.unwrap();
    }

    #[tokio::test]
    async fn refuses_a_public_listener_without_a_token() {
        let dir = TempDir::new();
        let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
        let err = serve(
            listener,
            DaemonConfig::new(dir.path(), None),
            std::future::pending(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ServeError::TokenRequired { .. }), "{err}");
        assert!(err.to_string().contains("--token"));
    }

    #[tokio::test]
    async fn loopback_without_a_token_is_open() {
        let dir = TempDir::new();
        let daemon = spawn_in_process(DaemonConfig::new(dir.path(), None))
            .await
            .unwrap();
        let client = Client::connect(&daemon.url(), None).await.unwrap();
        let types = client
            .destinations()
            .list_destination_types(v1::ListDestinationTypesRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(types.destination_types.iter().any(|t| t.name == "file"));
        daemon.stop().await.unwrap();
    }
}
