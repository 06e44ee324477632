//! API emulators, one file per destination API.
//!
//! Each emulator:
//! 1. binds `127.0.0.1:0` and serves from a spawned tokio task, stopped on drop;
//! 2. enforces the API's documented contract (authentication, batch limits, per-record errors,
//!    rate limits answered with 429 + `Retry-After`);
//! 3. keeps a ledger of every request and of every record it *accepted*, so tests can assert
//!    conservation (nothing acknowledged that was not accepted) and count duplicates;
//! 4. offers fault controls (`fail_next`, `reject_keys`, ...) to drive the failure modes listed in
//!    RELIABILITY.md.
//!
//! To add an emulator for a new destination, copy [`webhook`], keep the same control names where
//! they apply, and document the subset of the real API it implements.

pub mod activecampaign;
pub mod airtable;
pub mod alert_receiver;
pub mod amplitude;
pub mod attio;
pub mod braze;
pub mod common;
pub mod customerio;
pub mod elasticsearch;
pub mod facebook_audiences;
pub mod google_analytics;
pub mod google_data_manager;
pub mod google_oauth;
pub mod google_sheets;
pub mod http_request;
pub mod hubspot;
mod hubspot_api;
pub mod intercom;
pub mod iterable;
pub mod klaviyo;
pub mod mailchimp;
pub mod marketo;
pub mod mixpanel;
pub mod pipedrive;
pub mod posthog;
pub mod salesforce;
mod salesforce_api;
pub mod segment;
pub mod sendgrid;
pub mod slack;
pub mod webhook;
pub mod zendesk;
