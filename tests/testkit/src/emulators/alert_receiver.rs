//! A receiver of alert webhooks (retl's `--alert-webhook` / a mapping's alert targets): every
//! `POST` with a JSON body is kept and answered `200`, or the status set with
//! [`AlertReceiver::answer_with`]. Like a Slack incoming webhook, it needs a `text` field:
//! a body without one is answered `400` (`no_text`) and not kept.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use tokio::task::JoinHandle;

#[derive(Debug, Default)]
struct Inbox {
    alerts: Vec<Value>,
    attempts: usize,
    status: Option<u16>,
}

/// A running receiver on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct AlertReceiver {
    addr: SocketAddr,
    inbox: Arc<Mutex<Inbox>>,
    task: JoinHandle<()>,
}

async fn receive(State(inbox): State<Arc<Mutex<Inbox>>>, body: Bytes) -> StatusCode {
    let mut inbox = inbox.lock().unwrap_or_else(|e| e.into_inner());
    inbox.attempts += 1;
    if let Some(status) = inbox.status {
        return StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v.get("text").is_some_and(Value::is_string) => {
            inbox.alerts.push(v);
            StatusCode::OK
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

impl AlertReceiver {
    /// Binds `127.0.0.1:0` and starts serving.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&inbox));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(AlertReceiver { addr, inbox, task })
    }

    /// The webhook URL.
    pub fn url(&self) -> String {
        format!("http://{}/services/T000/B000/secret", self.addr)
    }

    /// The alerts received so far, in order.
    pub fn alerts(&self) -> Vec<Value> {
        self.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .alerts
            .clone()
    }

    /// Requests received so far (kept or not).
    pub fn attempts(&self) -> usize {
        self.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .attempts
    }

    /// Answers every request with `status` (not kept) from now; `None` accepts again.
    pub fn answer_with(&self, status: Option<u16>) {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner()).status = status;
    }
}

impl Drop for AlertReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
