//! Arrow Flight SQL on the daemon's gRPC port: standard clients (the ADBC Flight SQL driver,
//! `pyarrow.flight`, the Arrow Flight SQL JDBC driver and so DBeaver) list and query the same
//! tables as `QueryService.ExecuteQuery` and `retl sql`.
//!
//! # Layout
//! - [`service`]: [`FlightSqlApi`], the `FlightSqlService` over [`retl_engine::query::QueryService`]:
//!   statements, prepared statements, metadata, handshake, and the clear refusals.
//! - [`metadata`]: the catalog, schema, table and table-type listings with the spec's filters.
//! - [`sql_info`]: what `GetSqlInfo` answers (server name and version, read-only, SQL dialect).
//! - [`auth`]: [`FlightAuth`], the token check for Flight calls (bearer header, or basic auth
//!   whose password is the token).
//!
//! # Behaviour
//! - Queries go through [`retl_engine::query::QueryService`]: one read-only statement, the
//!   daemon's row limit and timeout; what a user can get wrong is `INVALID_ARGUMENT` or
//!   `NOT_FOUND` with the engine's message, never `INTERNAL`.
//! - Stateless: a statement's ticket and a prepared statement's handle carry the SQL itself, so
//!   they survive a daemon restart and closing a prepared statement frees nothing. `GetFlightInfo`
//!   plans the query (for its schema) without running it; `DoGet` runs it.
//! - Prepared statements take no parameters: binding parameter rows is refused with
//!   `INVALID_ARGUMENT`.
//! - Not supported, answered with `UNIMPLEMENTED` and a message saying so: primary, exported and
//!   imported keys, cross references, XDBC type info, updates, bulk ingest, Substrait plans,
//!   transactions, savepoints and query cancellation (a client cancels by dropping its `DoGet`).

pub mod auth;
pub mod metadata;
pub mod service;
pub mod sql_info;

use arrow_flight::flight_service_server::FlightServiceServer;
use retl_engine::Engine;
use tonic::service::interceptor::InterceptedService;

pub use auth::FlightAuth;
pub use service::FlightSqlApi;

/// The gRPC service name clients call (`arrow.flight.protocol.FlightService`).
pub const SERVICE_NAME: &str =
    <FlightServiceServer<FlightSqlApi> as tonic::server::NamedService>::NAME;

/// The Flight SQL service over `engine`, behind `auth`, ready to add to a tonic server.
pub fn server(
    engine: Engine,
    auth: FlightAuth,
) -> InterceptedService<FlightServiceServer<FlightSqlApi>, FlightAuth> {
    FlightServiceServer::with_interceptor(FlightSqlApi::new(engine, auth.clone()), auth)
}
