//! Webhook actions: their specs, the request body encoding and the idempotency key.

use retl_engine::destination::spec::{ActionKind, ChangeKind, Fields};
use retl_engine::destination::{ActionSpec, DeliveryContext, DestinationError, Payload};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The actions of the webhook destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert",
        display_name: "Upsert",
        description: "Sends added and updated records with their mapped fields; any field name is accepted.",
        kind: ActionKind::Upsert,
        fields: &[],
        open_fields: true,
        sync_modes: &[],
    },
    ActionSpec {
        name: "delete",
        display_name: "Delete",
        description: "Sends the keys of deleted records (no fields). The receiver must answer 2xx for a key it does not know.",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// A webhook action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WebhookAction {
    /// `upsert`: added and updated records, with fields.
    Upsert,
    /// `delete`: deleted records, keys only.
    Delete,
}

impl WebhookAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert" => Some(WebhookAction::Upsert),
            "delete" => Some(WebhookAction::Delete),
            _ => None,
        }
    }

    /// Its name, as sent in the body's `action` (the same as its spec's name).
    pub(crate) fn name(self) -> &'static str {
        match self {
            WebhookAction::Upsert => "upsert",
            WebhookAction::Delete => "delete",
        }
    }
}

/// The JSON body of one request.
#[derive(Debug, Serialize)]
struct RequestBody<'a> {
    action: &'static str,
    mapping: &'a str,
    run: &'a str,
    records: Vec<RecordBody<'a>>,
}

/// One record of a request body; deletes carry no `fields`.
#[derive(Debug, Serialize)]
struct RecordBody<'a> {
    key: &'a serde_json::Value,
    change: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a Fields>,
}

/// Encodes a batch as the request body:
/// `{"action":"upsert","mapping":"...","run":"...","records":[{"key":...,"change":"added","fields":{...}}]}`.
///
/// # Errors
/// [`DestinationError::Rejected`] if a value cannot be serialized (not expected for JSON values).
pub(crate) fn encode(
    action: WebhookAction,
    ctx: &DeliveryContext,
    batch: &[Payload],
) -> Result<Vec<u8>, DestinationError> {
    let body = RequestBody {
        action: action.name(),
        mapping: ctx.mapping_id.as_str(),
        run: ctx.run_id.as_str(),
        records: batch
            .iter()
            .map(|p| RecordBody {
                key: &p.key,
                change: p.change,
                fields: (action == WebhookAction::Upsert).then_some(&p.fields),
            })
            .collect(),
    };
    serde_json::to_vec(&body).map_err(|e| DestinationError::Rejected {
        message: format!("the batch could not be encoded as JSON: {e}"),
    })
}

/// The `Idempotency-Key` of a batch: the same for every attempt at the same batch of a run
/// (hex SHA-256 over mapping, run, action and the keys in order, truncated to 32 characters).
pub(crate) fn idempotency_key(
    action: WebhookAction,
    ctx: &DeliveryContext,
    batch: &[Payload],
) -> String {
    let mut hasher = Sha256::new();
    for part in [ctx.mapping_id.as_str(), ctx.run_id.as_str(), action.name()] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    for payload in batch {
        hasher.update(payload.key.to_string().as_bytes());
        hasher.update([0u8]);
    }
    let mut key = hex::encode(hasher.finalize());
    key.truncate(32);
    key
}
