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
//!   - [`emulators::airtable`]: Airtable's records endpoints for one base (upsert with
//!     `performUpsert`, list with a `filterByFormula` subset, delete by ids, 5 requests/s).
//!   - [`emulators::facebook_audiences`]: Meta's Custom Audience users endpoint (hashed
//!     schema rows, invalid entry samples, Graph error codes).
//!   - [`emulators::google_oauth`]: Google's OAuth 2.0 token endpoint (service-account JWTs
//!     verified with a committed test key pair, refresh tokens), mountable beside a Google API
//!     emulator, and the bearer check those emulators apply.
//!   - [`emulators::google_sheets`]: the Sheets API v4 values and `deleteDimension` endpoints
//!     over an in-memory grid (A1 ranges, per-minute quotas, the cell limit), beside that
//!     token endpoint, for the `google-sheets` destination.
//!   - [`emulators::http_request`]: a generic JSON REST API (bare arrays, `X-Api-Key`, `503`
//!     as the throttle signal), the second API shape of the `http` destination.
//!   - [`emulators::google_analytics`]: the GA4 Measurement Protocol and its validation server.
//!   - [`emulators::customerio`]: Customer.io's Track API v2 batch and account region.
//!   - [`emulators::slack`]: a Slack incoming webhook, for the `slack` destination.
//!   - [`emulators::hubspot`]: HubSpot's CRM v3 objects API (batch upsert/update/create/read/
//!     archive, properties), for the `hubspot` destination.
//!   - [`emulators::iterable`]: Iterable's bulk user update, bulk event tracking and user
//!     delete endpoints, for the `iterable` destination.
//!   - [`emulators::klaviyo`]: Klaviyo's JSON:API profile bulk import jobs, events and data
//!     privacy deletions, for the `klaviyo` destination.
//!   - [`emulators::sendgrid`]: SendGrid's Marketing Campaigns contacts upsert, lookup by email
//!     and delete, for the `sendgrid` destination.
//!   - [`emulators::mailchimp`]: Mailchimp's audience batch subscribe and member archive, with
//!     its 10-connection limit, for the `mailchimp` destination.
//!   - [`emulators::activecampaign`]: ActiveCampaign's contact sync, lookup and delete, for
//!     the `activecampaign` destination.
//!   - [`emulators::intercom`]: Intercom's contacts API (create, look-up by external id,
//!     update, archive; 10-second rate windows), for the `intercom` destination.
//!   - [`emulators::zendesk`]: Zendesk's Users API bulk endpoints and job statuses, for the
//!     `zendesk` destination.
//!   - [`emulators::pipedrive`]: Pipedrive's persons and organizations endpoints (search, add,
//!     update, delete; 2-second burst windows), for the `pipedrive` destination.
//!   - [`emulators::marketo`]: Marketo's identity endpoint and lead endpoints (error codes
//!     answered with HTTP 200), for the `marketo` destination.
//!   - [`emulators::attio`]: Attio's record assert, query and delete, for the `attio`
//!     destination.
//!   - [`emulators::salesforce`]: Salesforce's OAuth 2.0 token endpoint and REST API (sObject
//!     Collections, query, describe), for the `salesforce` destination.
//!   - [`emulators::elasticsearch`]: Elasticsearch's `_bulk` and mapping APIs, for the
//!     `elasticsearch` destination.
//! - [`postgres`]: [`PostgresServer`], a throwaway PostgreSQL cluster (`initdb` + `pg_ctl`) in a
//!   temp dir on 127.0.0.1 and a free port, with password authentication on TCP.
//! - [`mariadb`]: [`MariaDbServer`], a throwaway MariaDB server (`mariadb-install-db` +
//!   `mariadbd`), likewise.
//! - [`redis`]: [`RedisServer`], a throwaway `redis-server` on 127.0.0.1 and a free port, with
//!   `redis-cli` for commands and for following `MONITOR` or keyspace events.
//! - [`sink`]: [`HttpSink`], a fast counting (not recording) receiver of the webhook contract,
//!   with an optional rate limit, for benchmarks.
//! - [`launch`]: what both launchers share: [`LaunchError`], [`free_port`], [`wait_until`].
//!
//! # Conventions
//! - Every emulator binds its own ephemeral port: no fixed ports, no Docker, no shared state.
//! - An emulator stops when it is dropped; a database server is stopped and its temp dir deleted
//!   when it is dropped.
//! - Database servers use the system's binaries (`apt-get install -y postgresql mariadb-server
//!   redis-server`; `.ci/run` installs them). When the test process is root, the PostgreSQL and
//!   MariaDB programs run as the `postgres` / `mysql` system user, which own the server's temp
//!   dir.
//! - State sits behind a `std::sync::Mutex` held for short critical sections only, so tests read
//!   it without `.await`.

#![deny(missing_docs)]

pub mod emulators;
pub mod launch;
pub mod mariadb;
pub mod postgres;
pub mod redis;
pub mod sink;
mod tls;

pub use emulators::activecampaign::ActiveCampaignEmulator;
pub use emulators::airtable::{AirtableEmulator, AirtableRequest, Row as AirtableRow};
pub use emulators::amplitude::{AmplitudeEmulator, AmplitudeEvent};
pub use emulators::attio::{AttioEmulator, AttioObject, AttioWrite};
pub use emulators::braze::{BrazeEmulator, BrazeObject};
pub use emulators::customerio::{CustomerioEmulator, CustomerioEntry};
pub use emulators::elasticsearch::{ElasticsearchEmulator, ElasticsearchOptions, EsOperation};
pub use emulators::facebook_audiences::FacebookAudiencesEmulator;
pub use emulators::google_analytics::{Ga4Event, GoogleAnalyticsEmulator};
pub use emulators::google_data_manager::GoogleDataManagerEmulator;
pub use emulators::google_oauth::{GoogleOAuth, GoogleOAuthEmulator, GoogleOAuthOptions};
pub use emulators::google_sheets::{GoogleSheetsEmulator, GoogleSheetsOptions, SheetsRequest};
pub use emulators::http_request::{AcceptedWrite, HttpApiEmulator};
pub use emulators::intercom::{IntercomContact, IntercomEmulator, IntercomWrite};
pub use emulators::iterable::{IterableEmulator, IterableObject};
pub use emulators::klaviyo::{KlaviyoEmulator, KlaviyoObject};
pub use emulators::mailchimp::MailchimpEmulator;
pub use emulators::marketo::{MarketoEmulator, MarketoWrite};
pub use emulators::mixpanel::{ImportedEvent, MixpanelEmulator, MixpanelProject, ProfileUpdate};
pub use emulators::pipedrive::{PipedriveEmulator, PipedriveWrite};
pub use emulators::posthog::{CapturedEvent, PosthogEmulator, PosthogProject};
pub use emulators::segment::{SegmentEmulator, SegmentMessage};
pub use emulators::sendgrid::SendgridEmulator;
pub use emulators::slack::{PostedMessage, SlackEmulator, SlackWebhook};
pub use emulators::webhook::{
    ReceivedRecord, ReceivedRequest, SIGNATURE_HEADER, WebhookEmulator, WebhookOptions, signature,
};
pub use emulators::zendesk::{ZendeskEmulator, ZendeskWrite};
pub use launch::{LaunchError, free_port, wait_until};
pub use mariadb::MariaDbServer;
pub use postgres::PostgresServer;
pub use redis::RedisServer;
pub use sink::{HttpSink, RateLimit, SinkOptions, SinkStats};
