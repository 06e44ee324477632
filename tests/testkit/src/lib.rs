//! Test infrastructure for retl: local emulators of the APIs retl delivers to, and throwaway
//! servers of the databases it reads from.
//!
//! This crate depends on **no retl crate**, so that `retl-connectors` can use it as a
//! dev-dependency (connector round-trip tests next to the code) without a dependency cycle.
//!
//! # Layout
//! - [`emulators`]: in-process HTTP servers on `127.0.0.1:0` that enforce a destination's
//!   documented contract (auth, batch limits, per-record errors, 429 with `Retry-After`) and keep
//!   a ledger of what they accepted, inspectable synchronously from a test.
//!   - [`emulators::webhook`]: the generic webhook contract of retl's `webhook` destination.
//!   - [`emulators::segment`], [`emulators::mixpanel`], [`emulators::braze`]: those APIs'
//!     documented contracts; [`emulators::common`] holds what they share.
//!   - [`emulators::amplitude`]: Amplitude's HTTP V2 `/2/httpapi` and Identify API.
//!   - [`emulators::posthog`]: PostHog's capture `/batch/`, `/flags` and persons `bulk_delete`.
//!   - [`emulators::hubspot`]: HubSpot's CRM v3 objects API (batch upsert/update/create/read/
//!     archive, properties), for the `hubspot` destination.
//!   - [`emulators::salesforce`]: Salesforce's OAuth 2.0 token endpoint and REST API (sObject
//!     Collections, query, describe), for the `salesforce` destination.
//! - [`postgres`]: [`PostgresServer`], a throwaway PostgreSQL cluster (`initdb` + `pg_ctl`) in a
//!   temp dir on 127.0.0.1 and a free port, with password authentication on TCP.
//! - [`mariadb`]: [`MariaDbServer`], a throwaway MariaDB server (`mariadb-install-db` +
//!   `mariadbd`), likewise.
//! - [`sink`]: [`HttpSink`], a fast counting (not recording) receiver of the webhook contract,
//!   with an optional rate limit, for benchmarks.
//! - [`launch`]: what both launchers share: [`LaunchError`], [`free_port`], [`wait_until`].
//!
//! # Conventions
//! - Every emulator binds its own ephemeral port: no fixed ports, no Docker, no shared state.
//! - An emulator stops when it is dropped; a database server is stopped and its temp dir deleted
//!   when it is dropped.
//! - Database servers use the system's binaries (`apt-get install -y postgresql mariadb-server`;
//!   `.ci/run` installs them). When the test process is root, the server programs run as the
//!   `postgres` / `mysql` system user, which own the server's temp dir.
//! - State sits behind a `std::sync::Mutex` held for short critical sections only, so tests read
//!   it without `.await`.

#![deny(missing_docs)]

pub mod emulators;
pub mod launch;
pub mod mariadb;
pub mod postgres;
pub mod sink;
mod tls;

pub use emulators::amplitude::{AmplitudeEmulator, AmplitudeEvent};
pub use emulators::braze::{BrazeEmulator, BrazeObject};
pub use emulators::mixpanel::{ImportedEvent, MixpanelEmulator, MixpanelProject, ProfileUpdate};
pub use emulators::posthog::{CapturedEvent, PosthogEmulator, PosthogProject};
pub use emulators::segment::{SegmentEmulator, SegmentMessage};
pub use emulators::webhook::{
    ReceivedRecord, ReceivedRequest, SIGNATURE_HEADER, WebhookEmulator, WebhookOptions, signature,
};
pub use launch::{LaunchError, free_port, wait_until};
pub use mariadb::MariaDbServer;
pub use postgres::PostgresServer;
pub use sink::{HttpSink, RateLimit, SinkOptions, SinkStats};
