//! `slack`: posts one message per added or updated record to a Slack channel through an
//! incoming webhook.
//!
//! # Files
//! - `config.rs`: `SlackConfig` (the webhook URL, a secret), its catalog config field,
//!   `validate()` (the URL's shape).
//! - `actions.rs`: the `send_message` spec, `SlackAction`, one record → one message.
//! - `client.rs`: the one `POST` per batch (of one record), the answer → `BatchOutcome`.
//! - `tests.rs`: encoding and classification unit tests, round-trips against
//!   `retl_testkit::SlackEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/slack.rs`; the conformance suite runs it in
//! `tests/it/destinations/slack.rs`.
//!
//! # API
//! `send_message`: `POST <webhook_url>` with `Content-Type: application/json` and the body
//! `{"text": ..., "blocks": [...]}` (`blocks` only when mapped)
//! (<https://api.slack.com/messaging/webhooks>). There is no other auth: the URL (with its
//! token) is the credential, so it is a secret, and neither errors nor recorded exchanges
//! show its token. `text` is a mapped field: build it with a template mapping, e.g.
//! `{{ email }} upgraded to *{{ plan }}*` (Slack mrkdwn). With `blocks`, `text` is the
//! notification fallback (<https://api.slack.com/reference/messaging/payload>).
//!
//! Records are checked before sending (rejected alone, nothing sent): `text` must be
//! non-empty and at most 40,000 characters (Slack truncates longer messages,
//! <https://api.slack.com/methods/chat.postMessage#truncating>); `blocks` must be a JSON
//! array (or text holding one) of at most 50 blocks, each an object with a `type`
//! (<https://api.slack.com/reference/block-kit/blocks>).
//!
//! # Limits (documented)
//! - Rate: "Posting messages: 1 per second. Short bursts >1 allowed. If you attempt bursts,
//!   there is no guarantee that messages will arrive in order"; incoming webhooks are
//!   limited per webhook, and over the limit Slack answers `429` with `Retry-After`
//!   (<https://api.slack.com/docs/rate-limits>).
//! - Batch: an incoming webhook takes one message per request: no batching.
//! - Payload bytes: not documented beyond the text and block limits above; retl's choice.
//!
//! Defaults: 1 request/s, burst 3 (retl's choice for Slack's unquantified "short bursts"),
//! 1 record per request, 1 MiB per request (retl's choice), 1 in flight (messages arrive in
//! order), 5 attempts, backoff 1 s to 60 s, 30 s timeout. A batch of more than one record
//! (a `limits.batch_size` override) is refused as too large before anything is sent, so the
//! engine halves it down to single messages.
//!
//! # Actions
//! | action | kind | sync modes | record operation |
//! |---|---|---|---|
//! | `send_message` | upsert (added and updated records) | `add` | one message per record |
//!
//! There is no delete: a webhook cannot edit or remove what it posted.
//!
//! # Response contract
//! (<https://api.slack.com/messaging/webhooks#handling_errors>,
//! <https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks>)
//! - **200** `ok`: posted.
//! - **400** `invalid_payload`, `no_text`, `invalid_blocks`, `too_many_attachments`,
//!   `user_not_found`: this message is rejected (the record is failed, the run goes on).
//! - **403** `invalid_token`, `action_prohibited`, `posting_to_general_channel_denied`:
//!   authentication error, the run stops.
//! - **404** `no_service`, `channel_not_found`, `no_team`, `team_disabled`, and **410**
//!   `channel_is_archived`: the webhook or its channel is gone: a config error on
//!   `webhook_url`, the run stops.
//! - **429** (`Retry-After` honoured, the destination pauses), **5xx** (`rollup_error`),
//!   timeouts: transient, retried.
//!
//! # Test
//! An incoming webhook has no side-effect-free call: every accepted `POST` posts a message.
//! (The error to an invalid body might tell a live token from a revoked one, but Slack does
//! not document the order of its checks, so retl does not rely on it.) So `TestDestination`
//! sends nothing: it reports that the URL has an incoming webhook's shape (`build` already
//! refused any other) and that the token was not checked.
//!
//! # Not covered
//! Deduplication (Slack has none for webhooks: a message whose answer was lost is posted
//! again on retry), legacy `attachments`, overriding `channel`/`username`/`icon_*` (ignored
//! by app webhooks), threads (`thread_ts`), editing or deleting messages (needs the Web API
//! and a bot token: `chat.postMessage`/`chat.update`/`chat.delete`), Workflow Builder
//! trigger URLs, form-encoded `payload=` bodies.

mod actions;
mod client;
mod config;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use retl_engine::connector::DestinationType;
use retl_engine::destination::{
    Action, ActionSpec, DeliveryLimits, Destination, DestinationError, undeclared_action,
};

use self::actions::{ACTIONS, SlackAction};
use self::client::{BoundAction, SlackClient};
use self::config::{CONFIG_FIELDS, SlackConfig};

/// The catalog entry and factory of the `slack` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "slack",
        display_name: "Slack",
        description: "Posts one message per added or updated record (templated text, optional Block Kit blocks) to a Slack channel through an incoming webhook.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits: Slack's documented rate, one message per request (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 1.0,
        burst: 3,
        batch_size: 1,
        max_batch_bytes: 1024 * 1024,
        max_in_flight: 1,
        max_attempts: 5,
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds a Slack destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(SlackDestination::new(config, limits)?))
}

/// A configured incoming webhook.
#[derive(Debug)]
pub(crate) struct SlackDestination {
    client: Arc<SlackClient>,
}

impl SlackDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: SlackConfig = crate::destinations::parse_config(config)?;
        let client = SlackClient::new(config.validate()?, limits.timeout())?;
        Ok(SlackDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for SlackDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        Ok(format!(
            "{} has the shape of a Slack incoming webhook; nothing was sent (every accepted request to an incoming webhook posts a message, so there is no side-effect-free check) and the token was not verified",
            self.client.shown_url()
        ))
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            SlackAction::from_spec(spec).ok_or_else(|| undeclared_action("slack", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
