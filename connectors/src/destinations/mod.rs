//! Destination connectors, one folder each (see the crate docs for the file contract), and the
//! HTTP pieces they share.

pub(crate) mod activecampaign;
pub(crate) mod airtable;
pub(crate) mod amplitude;
pub(crate) mod attio;
pub(crate) mod braze;
pub(crate) mod change_files;
pub(crate) mod change_lines;
pub(crate) mod customerio;
pub(crate) mod elasticsearch;
pub(crate) mod event_fields;
pub(crate) mod facebook_audiences;
pub(crate) mod file;
pub(crate) mod google_ads;
pub(crate) mod google_analytics;
pub(crate) mod google_auth;
pub(crate) mod google_sheets;
pub(crate) mod hashing;
pub(crate) mod http;
pub(crate) mod http_request;
pub(crate) mod hubspot;
pub(crate) mod intercom;
pub(crate) mod iterable;
pub(crate) mod klaviyo;
pub(crate) mod mailchimp;
pub(crate) mod marketo;
pub(crate) mod mixpanel;
pub(crate) mod mysql;
pub(crate) mod per_record;
pub(crate) mod pipedrive;
pub(crate) mod postgres;
pub(crate) mod posthog;
pub(crate) mod record_api;
pub(crate) mod redis;
pub(crate) mod s3;
pub(crate) mod salesforce;
pub(crate) mod segment;
pub(crate) mod sendgrid;
pub(crate) mod slack;
pub(crate) mod table;
pub(crate) mod webhook;
pub(crate) mod zendesk;

use retl_engine::destination::DestinationError;
use serde::de::DeserializeOwned;

/// Parses a destination's JSON config into its typed form; unknown or mistyped fields are named.
pub(crate) fn parse_config<T: DeserializeOwned>(
    config: &serde_json::Value,
) -> Result<T, DestinationError> {
    T::deserialize(config).map_err(|e| DestinationError::InvalidConfig {
        field: "config".to_string(),
        message: e.to_string(),
    })
}

/// The error of a config field `field` that is invalid, with what is wrong and how to fix it.
pub(crate) fn invalid_config(
    field: impl Into<String>,
    message: impl Into<String>,
) -> DestinationError {
    DestinationError::InvalidConfig {
        field: field.into(),
        message: message.into(),
    }
}
