//! retl connectors: every source and destination type retl ships, one folder each, registered in
//! one place ([`registry`]).
//!
//! # Layout
//! - `sources/`: warehouse connections (`impl retl_engine::source::Source`).
//!   - `sources/files/`: local Parquet, CSV and NDJSON files (type `files`).
//!   - `sources/postgres/`: PostgreSQL and Amazon Redshift (type `postgres`), whole models
//!     pushed down through DataFusion federation.
//!   - `sources/mysql/`: MySQL and MariaDB (type `mysql`), whole models pushed down the same
//!     way.
//!   - `sources/sqlite/`: a SQLite database file, opened read-only (type `sqlite`), whole
//!     models pushed down the same way.
//! - `destinations/`: business tools (`impl retl_engine::destination::Destination`).
//!   - `destinations/http.rs`: the shared HTTP pieces (client, status classification,
//!     `Retry-After` parsing).
//!   - `destinations/http_request/`: a configurable HTTP request (type `http`): method, URL and
//!     body templates, secret headers, per-record errors at a JSON pointer.
//!   - `destinations/webhook/`: a generic JSON webhook (type `webhook`), **the reference
//!     connector**: copy it when writing a new HTTP destination.
//!   - `destinations/file/`: JSON lines appended to local files (type `file`), the zero-setup
//!     destination of the quickstart.
//!   - `destinations/segment/`: Segment's HTTP Tracking API (type `segment`).
//!   - `destinations/mixpanel/`: Mixpanel `/import` events and `/engage` profiles (type
//!     `mixpanel`).
//!   - `destinations/airtable/`: records of an Airtable table, upserted on a merge field
//!     (type `airtable`).
//!   - `destinations/facebook_audiences/`: Meta Customer File Custom Audiences (type
//!     `facebook-custom-audiences`), identifiers hashed by `destinations/hashing.rs`.
//!   - `destinations/google_ads/`: Google Ads Customer Match audiences through the Data
//!     Manager API (type `google-ads-customer-match`), identifiers hashed by
//!     `destinations/hashing.rs`.
//!   - `destinations/google_auth/`: OAuth 2.0 access tokens for Google APIs (service-account
//!     JWT or refresh token, cached, renewed after a 401), shared by the Google destinations.
//!   - `destinations/google_sheets/`: one tab of a Google spreadsheet mirroring a model by
//!     key (type `google-sheets`).
//!   - `destinations/hashing.rs`: normalisation and SHA-256 hashing of personal identifiers
//!     for ad audiences (Meta, Google).
//!   - `destinations/braze/`: Braze `/users/track` and `/users/delete` (type `braze`).
//!   - `destinations/event_fields.rs`: payload helpers those three share (ids, times, open
//!     object fields).
//!   - `destinations/posthog/`: PostHog capture `/batch/` events and person properties,
//!     persons API deletes (type `posthog`).
//!   - `destinations/per_record.rs`: one paced request per record, for actions whose API has
//!     no batch endpoint.
//!   - `destinations/iterable/`: Iterable users bulk update, events track bulk and user
//!     delete (type `iterable`).
//!   - `destinations/klaviyo/`: Klaviyo profile bulk import jobs, events and data privacy
//!     deletions (type `klaviyo`).
//!   - `destinations/sendgrid/`: SendGrid Marketing Campaigns contacts upsert and delete (type
//!     `sendgrid`).
//!   - `destinations/mailchimp/`: Mailchimp audience members batch upsert and archive (type
//!     `mailchimp`).
//!   - `destinations/activecampaign/`: ActiveCampaign contact sync and delete, one contact per
//!     request (type `activecampaign`).
//!   - `destinations/amplitude/`: Amplitude HTTP V2 events and Identify API user
//!     properties (type `amplitude`).
//!   - `destinations/hubspot/`: HubSpot CRM contacts and companies (type `hubspot`).
//!   - `destinations/intercom/`: Intercom user contacts by external id (type `intercom`).
//!   - `destinations/zendesk/`: Zendesk Support users in bulk, through background jobs (type
//!     `zendesk`).
//!   - `destinations/pipedrive/`: Pipedrive persons and organizations (type `pipedrive`).
//!   - `destinations/marketo/`: Marketo leads with OAuth client credentials (type `marketo`).
//!   - `destinations/attio/`: records of an Attio object by a matching attribute (type `attio`).
//!   - `destinations/salesforce/`: records of one Salesforce object (type `salesforce`).
//!   - `destinations/postgres/`: rows of a PostgreSQL table (type `postgres`), written in
//!     transactions with a per-record fallback.
//!   - `destinations/mysql/`: rows of a MySQL or MariaDB table (type `mysql`), likewise.
//!   - `destinations/table.rs`: what those two share (actions, the table's description, the
//!     checks of a batch, created tables' column kinds).
//!   - `destinations/elasticsearch/`: documents of an Elasticsearch index through `_bulk`
//!     (type `elasticsearch`).
//!   - `destinations/redis/`: one Redis hash per record, one `MULTI`/`EXEC` pipeline per
//!     batch (type `redis`).
//!   - `destinations/s3/`: JSON-lines, CSV or Parquet objects in an S3 bucket through
//!     `object_store`, one per batch under a folder per run (type `s3`).
//!   - `destinations/google_analytics/`: Google Analytics 4 Measurement Protocol events
//!     (type `google-analytics-4`).
//!   - `destinations/customerio/`: Customer.io Track API v2 batch identify, event and delete
//!     (type `customerio`).
//!   - `destinations/slack/`: one message per record through a Slack incoming webhook (type
//!     `slack`).
//!   - `destinations/change_lines.rs`: the JSON-lines form of changes that `file` and `s3`
//!     write.
//!   - `destinations/change_files.rs`: the file formats of a batch of changes (JSON lines,
//!     CSV, Parquet): one encoder each, their columns and column types.
//!
//! # Division of labour with the engine
//! The engine batches, rate-limits (one limiter per destination), retries with backoff and
//! jitter, honours `Retry-After`, applies the request timeout and commits acknowledged records.
//! It also resolves a mapping's action name against the type's [`ActionSpec`]s (an unknown name
//! is refused before any connector code runs) and computes the effective [`DeliveryLimits`]
//! (the type's defaults with the destination's `limits` overrides), which `build` receives.
//! A connector only (1) parses and validates its configuration, (2) declares its catalog entry
//! ([`ConfigField`]s, actions and their [`FieldSpec`]s, default [`DeliveryLimits`]), and (3)
//! makes exactly **one** request per batch in `Action::send`, classifying the answer:
//! `Ok(BatchOutcome)` with one outcome per record, or a [`DestinationError`] (`Transient` for
//! 408/425/429/5xx/timeouts with the parsed `Retry-After`, `Authentication` for 401/403,
//! `Rejected` for other 4xx).
//!
//! # How to add a destination
//! Four steps, and nothing else (`destinations/webhook/` and `destinations/file/` have exactly
//! this shape; copy `webhook` for an HTTP API):
//!
//! 1. **A folder** `destinations/<name>/`, declared by one `mod <name>;` line in
//!    `destinations/mod.rs`, with these files (STYLE.md, "Per-connector file contract"):
//!    - `mod.rs`: `//!` docs (what it delivers to, links to the API docs, documented limits, the
//!      response contract) and `pub(crate) fn destination_type() -> DestinationType` (name,
//!      config fields, `&ACTIONS`, `default_limits`, `build`), the destination struct and its
//!      `impl Destination`: `test()`; `action(spec)`, which matches `spec.name` into the one
//!      `enum <Name>Action` and answers
//!      [`undeclared_action`](retl_engine::destination::undeclared_action) otherwise; and, only
//!      when the API has account-specific fields (custom properties), `fields(spec)`;
//!    - `config.rs`: a typed `Config` (`serde(deny_unknown_fields)`, every field documented,
//!      [`Secret`](retl_engine::secret::Secret) for credentials), its `CONFIG_FIELDS:
//!      &[ConfigField]` (`secret: true` for credentials) and `validate()`; `build` must not
//!      touch the network or the filesystem;
//!    - `actions.rs`: `ACTIONS: [ActionSpec; n]` (nested fields through `children`), the
//!      `enum <Name>Action`, payload encoding, and the `Action` impl holding the resolved
//!      `&'static ActionSpec`;
//!    - `client.rs`: auth, endpoint, the one call per batch, answer → `BatchOutcome`, error
//!      classification via `destinations/http.rs`;
//!    - `tests.rs`: config, encoding and parsing unit tests, round-trips against the emulator,
//!      and the config drift test
//!      (`retl_engine::config_fields::check_config_fields::<Config>(CONFIG_FIELDS)`).
//! 2. **An emulator** `tests/testkit/src/emulators/<name>.rs` (and its `pub mod` line),
//!    enforcing the API's documented contract (auth, batch limits, per-record errors, 429 +
//!    `Retry-After`, the answer to a delete of a missing record) with the fault controls the
//!    conformance suite drives. A destination without an API (like `file`) has none.
//! 3. **One line in [`registry`]**. Never edit a shared enum per connector.
//! 4. **One file in `tests/it/destinations/`**, `<name>.rs` (and its `mod` line), implementing
//!    the suite's `Subject` over the emulator and expanding `conformance_suite!`: every check
//!    must pass, or be declared not applicable with the reason.
//!
//! Then regenerate the catalog snapshot (`RETL_UPDATE_SNAPSHOTS=1 cargo test --workspace --lib
//! destination_types_snapshot`, `server/testdata/destination_types.json`) and review its diff.
//!
//! # How to add a source
//! A folder `sources/<name>/` (declared in `sources/mod.rs`) with `mod.rs` (`//!` docs and
//! `pub(crate) fn source_type() -> SourceType`), `config.rs` (typed config, its
//! `CONFIG_FIELDS: &[ConfigField]` with the same drift test, `validate()`), `source.rs`
//! (`impl Source`), `types.rs` (warehouse type → Arrow type) and `tests.rs`; then one line in
//! [`registry`]. A folder may hold further files beside the mandatory ones, each named for its
//! role and listed in `mod.rs`'s docs (e.g. `executor.rs` for a source that runs pushed-down SQL
//! itself).
//!
//! [`ActionSpec`]: retl_engine::destination::ActionSpec
//! [`ConfigField`]: retl_engine::destination::ConfigField
//! [`FieldSpec`]: retl_engine::destination::FieldSpec
//! [`DeliveryLimits`]: retl_engine::destination::DeliveryLimits
//! [`DestinationError`]: retl_engine::destination::DestinationError

#![deny(missing_docs)]

pub mod alerts;
mod destinations;
mod sources;

use retl_engine::connector::Registry;

/// Every connector type retl ships: exactly one line per connector.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register_source(sources::files::source_type());
    registry.register_source(sources::postgres::source_type());
    registry.register_source(sources::sqlite::source_type());
    registry.register_source(sources::mysql::source_type());
    registry.register_destination(destinations::webhook::destination_type());
    registry.register_destination(destinations::file::destination_type());
    registry.register_destination(destinations::segment::destination_type());
    registry.register_destination(destinations::mixpanel::destination_type());
    registry.register_destination(destinations::braze::destination_type());
    registry.register_destination(destinations::hubspot::destination_type());
    registry.register_destination(destinations::salesforce::destination_type());
    registry.register_destination(destinations::postgres::destination_type());
    registry.register_destination(destinations::mysql::destination_type());
    registry.register_destination(destinations::elasticsearch::destination_type());
    registry.register_destination(destinations::redis::destination_type());
    registry.register_destination(destinations::posthog::destination_type());
    registry.register_destination(destinations::s3::destination_type());
    registry.register_destination(destinations::iterable::destination_type());
    registry.register_destination(destinations::klaviyo::destination_type());
    registry.register_destination(destinations::sendgrid::destination_type());
    registry.register_destination(destinations::mailchimp::destination_type());
    registry.register_destination(destinations::activecampaign::destination_type());
    registry.register_destination(destinations::intercom::destination_type());
    registry.register_destination(destinations::http_request::destination_type());
    registry.register_destination(destinations::airtable::destination_type());
    registry.register_destination(destinations::facebook_audiences::destination_type());
    registry.register_destination(destinations::attio::destination_type());
    registry.register_destination(destinations::marketo::destination_type());
    registry.register_destination(destinations::pipedrive::destination_type());
    registry.register_destination(destinations::zendesk::destination_type());
    registry.register_destination(destinations::amplitude::destination_type());
    registry.register_destination(destinations::google_analytics::destination_type());
    registry.register_destination(destinations::customerio::destination_type());
    registry.register_destination(destinations::slack::destination_type());
    registry.register_destination(destinations::google_ads::destination_type());
    registry.register_destination(destinations::google_sheets::destination_type());
    match alerts::WebhookAlertSink::new() {
        Ok(sink) => {
            registry.set_alert_sink(std::sync::Arc::new(sink));
        }
        Err(e) => tracing::warn!(error = %e, "alerts will only be logged"),
    }
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lists_every_connector_once() {
        let registry = registry();
        let sources: Vec<_> = registry.source_types().map(|s| s.name).collect();
        let destinations: Vec<_> = registry.destination_types().map(|d| d.name).collect();
        assert_eq!(sources, ["files", "mysql", "postgres", "sqlite"]);
        assert_eq!(
            destinations,
            [
                "activecampaign",
                "airtable",
                "amplitude",
                "attio",
                "braze",
                "customerio",
                "elasticsearch",
                "facebook-custom-audiences",
                "file",
                "google-ads-customer-match",
                "google-analytics-4",
                "google-sheets",
                "http",
                "hubspot",
                "intercom",
                "iterable",
                "klaviyo",
                "mailchimp",
                "marketo",
                "mixpanel",
                "mysql",
                "pipedrive",
                "postgres",
                "posthog",
                "redis",
                "s3",
                "salesforce",
                "segment",
                "sendgrid",
                "slack",
                "webhook",
                "zendesk"
            ]
        );
        for destination in registry.destination_types() {
            assert!((destination.default_limits)().validate().is_ok());
            assert!(!destination.actions.is_empty());
        }
    }
}
