//! Test infrastructure for retl: local emulators of the APIs retl delivers to (and, later,
//! launchers for the databases it reads from).
//!
//! This crate depends on **no retl crate**, so that `retl-connectors` can use it as a
//! dev-dependency (connector round-trip tests next to the code) without a dependency cycle.
//!
//! # Layout
//! - [`emulators`]: in-process HTTP servers on `127.0.0.1:0` that enforce a destination's
//!   documented contract (auth, batch limits, per-record errors, 429 with `Retry-After`) and keep
//!   a ledger of what they accepted, inspectable synchronously from a test.
//!   - [`emulators::webhook`]: the generic webhook contract of retl's `webhook` destination.
//!
//! # Conventions
//! - Every emulator binds its own ephemeral port: no fixed ports, no Docker, no shared state.
//! - An emulator stops when it is dropped.
//! - State sits behind a `std::sync::Mutex` held for short critical sections only, so tests read
//!   it without `.await`.

#![deny(missing_docs)]

pub mod emulators;

pub use emulators::webhook::{
    ReceivedRecord, ReceivedRequest, SIGNATURE_HEADER, WebhookEmulator, WebhookOptions, signature,
};
