//! [`ExchangeLog`]: the requests a connector sent and the answers it got, kept only when asked
//! (`SendTestRecord` shows them to the user; syncs never keep them).

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One request to a destination's API and its answer, without credentials.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exchange {
    /// What was asked: `POST https://api.example.com/v1/batch`, or for a database the statement.
    pub request: String,
    /// The exact body sent (JSON as sent; other bodies as text). Never carries credentials: a
    /// connector whose API takes them in the body replaces them with `"<redacted>"`.
    pub request_body: serde_json::Value,
    /// The answer's status (HTTP status code), when one came.
    pub status: Option<u16>,
    /// The answer's body (JSON as received, other bodies as text), or the transport error.
    pub response_body: serde_json::Value,
}

impl Exchange {
    /// A body as a JSON value: parsed when it is JSON, else its text.
    pub fn body_value(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
        })
    }
}

/// The exchanges of one traced delivery, shared between the caller and the connector.
#[derive(Debug, Clone, Default)]
pub struct ExchangeLog {
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl ExchangeLog {
    /// An empty log.
    pub fn new() -> Self {
        ExchangeLog::default()
    }

    /// Adds one exchange.
    pub fn push(&self, exchange: Exchange) {
        // A poisoned lock only means another recorder panicked; the log is still usable.
        let mut guard = self.exchanges.lock().unwrap_or_else(|e| e.into_inner());
        guard.push(exchange);
    }

    /// Every exchange so far, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        let guard = self.exchanges.lock().unwrap_or_else(|e| e.into_inner());
        guard.clone()
    }
}
