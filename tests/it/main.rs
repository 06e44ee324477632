//! The black-box suite: one test binary, a real daemon, real files, API emulators on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod alerts;
mod api;
mod bad_input;
mod delivery;
mod destinations;
mod disk_full;
mod dry_run;
mod explain;
mod failures;
mod flight_sql;
mod mappings;
mod metrics;
mod mysql;
mod observe;
mod previews;
mod query;
mod recovery;
mod schedules;
mod shared_extract;
mod sources;
mod sqlite;
mod stalls;
mod sync;
mod warehouses;
