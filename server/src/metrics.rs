//! The Prometheus endpoint: `GET /metrics` on its own listener (`retl serve --metrics-listen`),
//! serving the engine's metrics ([`retl_engine::metrics`]) as OpenMetrics text.
//!
//! It takes the daemon's token: with one, every scrape must send `Authorization: Bearer
//! <token>` (Prometheus: `authorization: { credentials_file: ... }` in the scrape config) and
//! gets 401 otherwise; without one, only a loopback address may be listened on, as for the
//! gRPC API.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use retl_engine::Engine;
use retl_engine::metrics::CONTENT_TYPE;
use tokio::net::TcpListener;

use crate::auth::TokenAuth;
use crate::serve_error::ServeError;

/// How a scraper passes the token; part of every 401 answer.
const HOW_TO: &str = "send the daemon's token as `Authorization: Bearer <token>` (Prometheus scrape config: `authorization: { credentials_file: /path/to/token }`)";

/// Resolves and binds the metrics address; refuses a non-loopback address without a token
/// before binding.
///
/// # Errors
/// [`ServeError::MetricsTokenRequired`] for a non-loopback address without a token;
/// [`ServeError::Listen`] when the address does not resolve or cannot be bound.
pub async fn bind(addr: &str, token: Option<&str>) -> Result<TcpListener, ServeError> {
    let listen_error = |source| ServeError::Listen {
        addr: addr.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(listen_error)?
        .collect();
    if let (None, Some(public)) = (token, addrs.iter().find(|a| !a.ip().is_loopback())) {
        return Err(ServeError::MetricsTokenRequired { addr: *public });
    }
    TcpListener::bind(addrs.as_slice())
        .await
        .map_err(listen_error)
}

/// What the handler needs.
#[derive(Clone)]
struct Scrape {
    engine: Engine,
    auth: TokenAuth,
}

async fn metrics(State(scrape): State<Scrape>, headers: HeaderMap) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    if let Err(message) = scrape.auth.check_header(presented, HOW_TO) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            message,
        )
            .into_response();
    }
    match scrape.engine.syncs().metrics_text() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
///
/// # Errors
/// The HTTP server failed (accepting connections).
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    auth: TokenAuth,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(Scrape { engine, auth });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
