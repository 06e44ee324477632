//! [`ServeError`]: why the daemon could not start or stopped with an error (shared by the gRPC
//! listener in `daemon.rs` and the metrics listener in `metrics.rs`).

use std::net::SocketAddr;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No token was configured and the listener is reachable from other machines.
    #[error(
        "refusing to serve on {addr} without a token: anyone who can reach it could read and change syncs; pass --token, --token-file or RETL_TOKEN, or listen on a loopback address such as 127.0.0.1:7543"
    )]
    TokenRequired {
        /// The listener's address.
        addr: SocketAddr,
    },
    /// No token was configured and the metrics listener is reachable from other machines.
    #[error(
        "refusing to serve metrics on {addr} without a token: anyone who can reach it could read the names and volumes of every sync; pass --token, --token-file or RETL_TOKEN, or use a loopback address such as --metrics-listen 127.0.0.1:9464"
    )]
    MetricsTokenRequired {
        /// The metrics listener's address.
        addr: SocketAddr,
    },
    /// Binding or inspecting the listener failed.
    #[error("could not listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data directory could not be opened.
    #[error("could not open the data directory {path}: {source}")]
    Engine {
        /// The data directory.
        path: String,
        /// The engine's error.
        source: retl_engine::Error,
    },
    /// The reflection service could not be built (a bug: the descriptor set is compiled in).
    #[error("internal error (this is a bug in retl, please report it): gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server error: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The in-process daemon task panicked or was aborted.
    #[error("internal error (this is a bug in retl, please report it): daemon task ended: {0}")]
    Task(String),
}
