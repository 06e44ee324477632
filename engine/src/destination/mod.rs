//! Destinations: the [`Destination`] and [`Action`] traits, their specs and outcomes.

pub mod outcome;
pub mod spec;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::category::ErrorCategory;
use crate::id::{DestinationId, MappingId, RunId};
pub use outcome::{BatchOutcome, RecordOutcome};
pub use spec::{
    ActionSpec, ConfigField, DeliveryLimits, FieldInfo, FieldSpec, FieldType, Payload, SyncMode,
};
pub use trace::{Exchange, ExchangeLog};

/// A configured business tool: connection-level concerns only.
///
/// The engine owns everything around it: it resolves a mapping's action name against the
/// type's [`ActionSpec`]s (an unknown name never reaches the connector), computes the effective
/// [`DeliveryLimits`] (the type's defaults with the destination's `limits` overrides) and hands
/// them to the type's `build`, and its deliverer enforces them.
///
/// Duties:
/// 1. `test` checks reachability and credentials without changing data where the API allows.
/// 2. `action` binds one of the type's own action specs (resolved by the engine) to this
///    destination's client. A connector matches on `spec.name` into its one
///    `enum <Name>Action`; a spec it does not declare is a bug in retl
///    ([`DestinationError::Internal`]).
/// 3. `fields` lists the fields an action accepts for this account: by default the static
///    spec's fields; a connector whose API has account-specific fields (e.g. custom
///    properties) discovers them here.
#[async_trait]
pub trait Destination: Send + Sync + std::fmt::Debug {
    /// Checks reachability and credentials; returns a one-line summary.
    async fn test(&self) -> Result<String, DestinationError>;
    /// The action for this spec, which the engine took from the type's `actions`.
    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError>;
    /// The fields `spec` accepts for this destination's account. The default is the static
    /// `spec.fields`; override it to add fields discovered from the account (owned
    /// [`FieldInfo`]s, so they need no `'static` data).
    async fn fields(&self, spec: &'static ActionSpec) -> Result<Vec<FieldInfo>, DestinationError> {
        Ok(FieldInfo::from_specs(spec.fields))
    }
}

/// The error a connector returns from [`Destination::action`] for a spec it does not declare:
/// the engine resolves names against the type's own specs, so this is a bug in retl.
pub fn undeclared_action(destination_type: &str, spec: &ActionSpec) -> DestinationError {
    DestinationError::Internal {
        message: format!(
            "destination type '{destination_type}' was asked for action '{}', which it does not declare",
            spec.name
        ),
    }
}

/// Where a batch comes from; lets an action name files or idempotency keys per run.
#[derive(Debug, Clone)]
pub struct DeliveryContext {
    /// The destination being written.
    pub destination_id: DestinationId,
    /// The mapping whose changes these are.
    pub mapping_id: MappingId,
    /// The run delivering them.
    pub run_id: RunId,
    /// The mapping's sync mode (`None` when the action has a single behaviour).
    pub sync_mode: Option<SyncMode>,
    /// Where to record each request and its answer (`SendTestRecord`); `None` in syncs. A
    /// connector records every request it sends for the batch when this is set
    /// ([`DeliveryContext::record`]).
    pub trace: Option<ExchangeLog>,
}

impl DeliveryContext {
    /// Records one exchange when this delivery is traced; does nothing otherwise.
    pub fn record(&self, exchange: impl FnOnce() -> Exchange) {
        if let Some(log) = &self.trace {
            log.push(exchange());
        }
    }

    /// A stable idempotency key for `payload`: 32 hex digits of a hash of the mapping, the
    /// record's key, its change and the fingerprint of its mapped values. A record re-sent
    /// after a crash (same values) gets the same key, so an API that deduplicates by it
    /// (Segment's `messageId`, Mixpanel's `$insert_id`, ...) drops the copy; a changed record
    /// gets a new one.
    pub fn idempotency_key(&self, payload: &Payload) -> String {
        use xxhash_rust::xxh3::Xxh3;
        let mut hasher = Xxh3::new();
        hasher.update(self.mapping_id.as_str().as_bytes());
        hasher.update(&[0]);
        // A JSON value's text is canonical for the scalar keys retl produces.
        hasher.update(payload.key.to_string().as_bytes());
        hasher.update(&[0]);
        hasher.update(payload.change.as_str().as_bytes());
        if let Some(fingerprint) = payload.fingerprint {
            hasher.update(&fingerprint.to_le_bytes());
        }
        format!("{:032x}", hasher.digest128())
    }
}

/// One operation of a destination ("upsert", "delete", "Upsert Contact"); one call = one request.
///
/// Duties:
/// 1. `send` delivers one batch (never larger than the limits' batch size) in one API request.
/// 2. It returns `Ok` with exactly one [`RecordOutcome`] per input payload, in input order, when
///    the API answered about the records; it MUST NOT report `Accepted` for a record the API did
///    not accept.
/// 3. It returns `Err` when the whole request failed, classified by [`DestinationError`]
///    (retryable or not, with the server's `Retry-After` when it sent one).
///
/// # Cancellation
/// `send` may be dropped at an await point; an undelivered batch is then simply not acknowledged.
#[async_trait]
pub trait Action: Send + Sync {
    /// The action's static description and field schema.
    fn spec(&self) -> &'static ActionSpec;
    /// Sends one batch.
    async fn send(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError>;
}

/// A destination failure.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// The destination's configuration is invalid.
    #[error("invalid destination config field '{field}': {message}")]
    InvalidConfig {
        /// The config field.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No action of that name; raised when the engine resolves a name against the type's specs
    /// ([`DestinationType::action`](crate::connector::DestinationType::action)).
    #[error(
        "destination type '{destination_type}' has no action '{action}'; valid actions: {available}"
    )]
    UnknownAction {
        /// The destination type.
        destination_type: String,
        /// The requested action.
        action: String,
        /// Comma-separated valid action names.
        available: String,
    },
    /// The credentials were refused (401/403).
    #[error("destination refused the credentials: {message}")]
    Authentication {
        /// What the API said and what to check.
        message: String,
    },
    /// The request was too large for the destination (HTTP 413): the deliverer splits the batch.
    #[error("destination refused the request as too large: {message}")]
    PayloadTooLarge {
        /// What the API said.
        message: String,
    },
    /// The request was rejected permanently (4xx validation); retrying the same request will not help.
    #[error("destination rejected the request: {message}")]
    Rejected {
        /// What the API said.
        message: String,
    },
    /// A transient failure (timeout, connection error, 5xx, 429); a retry may succeed.
    #[error("destination temporarily failed: {message}")]
    Transient {
        /// What happened.
        message: String,
        /// How long the server asked to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
        /// Whether this was a rate-limit answer (429), which pauses the whole destination.
        throttled: bool,
    },
    /// A bug or an environment problem in retl itself (e.g. the TLS backend cannot start).
    #[error("internal destination error (this is a bug in retl or its environment): {message}")]
    Internal {
        /// What failed.
        message: String,
    },
    /// Local I/O failed (file destination).
    #[error("destination I/O error at {path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        message: String,
    },
}

impl DestinationError {
    /// The category of this error.
    pub fn category(&self) -> ErrorCategory {
        match self {
            DestinationError::InvalidConfig { .. } | DestinationError::UnknownAction { .. } => {
                ErrorCategory::InvalidArgument
            }
            DestinationError::Authentication { .. } => ErrorCategory::ExternalAuth,
            DestinationError::Rejected { .. } | DestinationError::PayloadTooLarge { .. } => {
                ErrorCategory::FailedPrecondition
            }
            DestinationError::Transient { .. } => ErrorCategory::Unavailable,
            DestinationError::Io { .. } | DestinationError::Internal { .. } => {
                ErrorCategory::Internal
            }
        }
    }

    /// Whether retrying the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DestinationError::Transient { .. })
    }

    /// Whether every later request of the run would fail the same way (refused credentials,
    /// broken configuration, a local environment failure), so the run must stop.
    pub fn stops_run(&self) -> bool {
        matches!(
            self,
            DestinationError::Authentication { .. }
                | DestinationError::InvalidConfig { .. }
                | DestinationError::Internal { .. }
        )
    }
}
