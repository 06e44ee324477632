//! HTTP Request actions: their specs, and a batch rendered into one request (URL and body).

use retl_engine::destination::spec::{ActionKind, ChangeKind};
use retl_engine::destination::{ActionSpec, DeliveryContext, Payload};
use serde_json::{Map, Value, json};

use super::config::{RESERVED_NAMES, RequestTemplate, Shape, ValidConfig};

/// The actions of the HTTP Request destination, in catalog order.
pub(crate) static ACTIONS: [ActionSpec; 2] = [
    ActionSpec {
        name: "upsert",
        display_name: "Upsert",
        description: "Sends added and updated records with the configured method, URL and body; any field name is accepted.",
        kind: ActionKind::Upsert,
        fields: &[],
        open_fields: true,
        sync_modes: &[],
    },
    ActionSpec {
        name: "delete",
        display_name: "Delete",
        description: "Sends the keys of deleted records with the configured delete_method, delete_url and delete_body (no fields).",
        kind: ActionKind::Delete,
        fields: &[],
        open_fields: false,
        sync_modes: &[],
    },
];

/// An HTTP Request action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpRequestAction {
    /// `upsert`: added and updated records, with fields.
    Upsert,
    /// `delete`: deleted records, keys only.
    Delete,
}

impl HttpRequestAction {
    /// The action of this spec (one of [`ACTIONS`]), matched by name.
    pub(crate) fn from_spec(spec: &ActionSpec) -> Option<Self> {
        match spec.name {
            "upsert" => Some(HttpRequestAction::Upsert),
            "delete" => Some(HttpRequestAction::Delete),
            _ => None,
        }
    }

    /// Its name, as templates read it in `action`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            HttpRequestAction::Upsert => "upsert",
            HttpRequestAction::Delete => "delete",
        }
    }
}

/// One request, rendered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rendered {
    /// The URL.
    pub(crate) url: reqwest::Url,
    /// The body, if any (JSON unless the template says otherwise).
    pub(crate) body: Option<Vec<u8>>,
}

/// A record as templates see it in `records`: `{"key", "change", "fields"}` (deletes have no
/// `fields`).
pub(crate) fn record_value(payload: &Payload) -> Value {
    let mut record = Map::new();
    record.insert("key".to_string(), payload.key.clone());
    record.insert("change".to_string(), json!(payload.change.as_str()));
    if payload.change != ChangeKind::Deleted {
        record.insert("fields".to_string(), fields_value(payload));
    }
    Value::Object(record)
}

/// The mapped fields as one JSON object.
fn fields_value(payload: &Payload) -> Value {
    Value::Object(
        payload
            .fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// Renders a batch into one request. The error is the reason every record of the batch is
/// rejected (a template that fails on these values, a URL that does not parse or leaves the
/// configured host).
pub(crate) fn render(
    config: &ValidConfig,
    request: &RequestTemplate,
    action: HttpRequestAction,
    ctx: &DeliveryContext,
    batch: &[Payload],
) -> Result<Rendered, String> {
    let mut values: Vec<(&str, Value)> = Vec::new();
    match (config.shape, batch) {
        (Shape::One, [payload]) => {
            for (name, value) in payload.fields.iter() {
                if !RESERVED_NAMES.contains(&name) {
                    values.push((name, value.clone()));
                }
            }
            values.push(("key", payload.key.clone()));
            values.push(("change", json!(payload.change.as_str())));
            values.push(("fields", fields_value(payload)));
        }
        (Shape::One, _) => {
            return Err(format!(
                "records_per_request 'one' got a batch of {} records (a bug in retl)",
                batch.len()
            ));
        }
        (Shape::Array, _) => {
            values.push(("records", batch.iter().map(record_value).collect()));
        }
    }
    values.push(("action", json!(action.name())));
    values.push(("mapping", json!(ctx.mapping_id.as_str())));
    values.push(("run", json!(ctx.run_id.as_str())));

    let url_text = config
        .templates
        .render(request.url, &values)
        .map_err(|e| format!("the URL template failed: {e}"))?;
    let url = reqwest::Url::parse(url_text.trim())
        .map_err(|e| format!("the URL template gave '{url_text}', which is not a URL: {e}"))?;
    if url.origin().ascii_serialization() != request.origin {
        return Err(format!(
            "the URL template gave '{url_text}', which leaves {}: a record value must not change the host",
            request.origin
        ));
    }
    let body = match request.body {
        Some(handle) => Some(
            config
                .templates
                .render(handle, &values)
                .map_err(|e| format!("the body template failed: {e}"))?
                .into_bytes(),
        ),
        None => default_body(config.shape, action, batch),
    };
    Ok(Rendered { url, body })
}

/// The body without a template: the mapped fields (an object, or an array of objects); for a
/// delete, nothing (one record) or the array of keys.
fn default_body(shape: Shape, action: HttpRequestAction, batch: &[Payload]) -> Option<Vec<u8>> {
    let value = match (shape, action) {
        (Shape::One, HttpRequestAction::Delete) => return None,
        (Shape::One, HttpRequestAction::Upsert) => batch.first().map(fields_value)?,
        (Shape::Array, HttpRequestAction::Delete) => {
            Value::Array(batch.iter().map(|p| p.key.clone()).collect())
        }
        (Shape::Array, HttpRequestAction::Upsert) => {
            Value::Array(batch.iter().map(fields_value).collect())
        }
    };
    Some(value.to_string().into_bytes())
}
