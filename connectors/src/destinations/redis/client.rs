//! The Redis client: one multiplexed connection (re-opened after a failure), one `MULTI`/`EXEC`
//! pipeline per batch with per-command results, `PING` for `test()`; [`BoundAction`].

use std::sync::Arc;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisConnectionInfo,
    RedisError, RedisResult, Value as RedisValue,
};
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DestinationError, Exchange, Payload,
    RecordOutcome,
};
use serde_json::{Value, json};

use super::actions::{RedisAction, commands};
use super::config::ValidConfig;

/// Server error codes that mean the server cannot take writes now: a replica (`READONLY`),
/// out of memory under `noeviction` (`OOM`), loading its data (`LOADING`), a script running
/// (`BUSY`), snapshots failing (`MISCONF`), a cluster or master down (`CLUSTERDOWN`,
/// `MASTERDOWN`, `TRYAGAIN`), a transaction discarded by one of these (`EXECABORT`).
const TRANSIENT_CODES: &[&str] = &[
    "READONLY",
    "OOM",
    "LOADING",
    "BUSY",
    "MISCONF",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "TRYAGAIN",
    "EXECABORT",
];

/// Writes hashes to one Redis database.
#[derive(Debug)]
pub(crate) struct RedisClient {
    config: ValidConfig,
    timeout: std::time::Duration,
    /// Opened on first use (never by `build`), dropped after a connection failure.
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl RedisClient {
    /// A client of this config; `timeout` bounds each answer.
    pub(crate) fn new(config: ValidConfig, timeout: std::time::Duration) -> Self {
        RedisClient {
            config,
            timeout,
            connection: tokio::sync::Mutex::new(None),
        }
    }

    /// The connection, opened (AUTH, SELECT) when there is none.
    async fn connection(&self) -> Result<MultiplexedConnection, DestinationError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let c = &self.config;
        let mut redis = RedisConnectionInfo::default().set_db(i64::from(c.database));
        if let Some(username) = &c.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &c.password {
            redis = redis.set_password(password.expose());
        }
        let info = ConnectionAddr::Tcp(c.host.clone(), c.port)
            .into_connection_info()
            .map_err(|e| self.error(&e))?
            .set_redis_settings(redis);
        let client = redis::Client::open(info).map_err(|e| self.error(&e))?;
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(c.connect_timeout))
            .set_response_timeout(Some(self.timeout));
        let connection = client
            .get_multiplexed_async_connection_with_config(&settings)
            .await
            .map_err(|e| self.error(&e))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Forgets a connection that failed, so the next call opens a new one.
    async fn reset(&self, error: &RedisError) {
        if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
            *self.connection.lock().await = None;
        }
    }

    /// A failure of the connection or of the whole pipeline as a `DestinationError`.
    pub(crate) fn error(&self, error: &RedisError) -> DestinationError {
        let c = &self.config;
        let address = c.address();
        let code = error.code().unwrap_or("");
        if error.kind() == ErrorKind::AuthenticationFailed || matches!(code, "WRONGPASS" | "NOAUTH")
        {
            let user = c.username.as_deref().unwrap_or("default");
            return DestinationError::Authentication {
                message: format!(
                    "Redis at {address} refused user '{user}': authentication failed ({error}); check username and password (without username the password is the default user's requirepass)"
                ),
            };
        }
        if code == "NOPERM" {
            let user = c.username.as_deref().unwrap_or("default");
            return DestinationError::Authentication {
                message: format!(
                    "user '{user}' may not run this on Redis at {address}: {error}; run ACL SETUSER {user} +ping +select +multi +exec +hset +hdel +del ~{}*",
                    c.key_prefix
                ),
            };
        }
        if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_timeout()
            || TRANSIENT_CODES.contains(&code)
        {
            return DestinationError::Transient {
                message: format!("Redis at {address} failed: {error}"),
                retry_after: None,
                throttled: false,
            };
        }
        DestinationError::Rejected {
            message: format!("Redis at {address} refused the commands: {error}"),
        }
    }

    /// `test()`: `PING` after connecting (which runs `AUTH` and `SELECT`).
    pub(crate) async fn test(&self) -> Result<String, DestinationError> {
        let mut connection = self.connection().await?;
        let pong: RedisResult<String> = redis::cmd("PING").query_async(&mut connection).await;
        match pong {
            Ok(answer) => Ok(format!(
                "Redis at {} answered {answer} (database {}); hashes are written at {}<unique id>",
                self.config.address(),
                self.config.database,
                self.config.key_prefix
            )),
            Err(e) => {
                self.reset(&e).await;
                Err(self.error(&e))
            }
        }
    }

    /// Sends one batch as one `MULTI`/`EXEC` pipeline and reads each command's result.
    pub(crate) async fn send(
        &self,
        action: RedisAction,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        let mut outcomes = vec![RecordOutcome::Accepted; batch.len()];
        let mut pipe = redis::pipe();
        pipe.atomic().ignore_errors();
        let mut owners = Vec::new();
        let mut trace = Vec::new();
        for (i, payload) in batch.iter().enumerate() {
            match commands(action, &self.config.key_prefix, payload) {
                Ok(commands) => {
                    for (name, args) in commands {
                        let command = pipe.cmd(name);
                        for arg in &args {
                            command.arg(arg);
                        }
                        owners.push(i);
                        if ctx.trace.is_some() {
                            let mut words = vec![Value::String(name.to_string())];
                            words.extend(args.into_iter().map(Value::String));
                            trace.push(Value::Array(words));
                        }
                    }
                }
                Err(reason) => outcomes[i] = RecordOutcome::Rejected { reason },
            }
        }
        if owners.is_empty() {
            return Ok(BatchOutcome { records: outcomes });
        }
        let mut connection = self.connection().await?;
        let result: RedisResult<Vec<RedisResult<RedisValue>>> =
            pipe.query_async(&mut connection).await;
        ctx.record(|| Exchange {
            request: "MULTI ... EXEC".to_string(),
            request_body: Value::Array(trace),
            status: None,
            response_body: match &result {
                Ok(results) => json!({"commands": results.len(), "errors": results.iter().filter(|r| r.is_err()).count()}),
                Err(e) => json!({"error": e.to_string()}),
            },
        });
        let results = match result {
            Ok(results) => results,
            Err(e) => {
                self.reset(&e).await;
                return Err(self.error(&e));
            }
        };
        if results.len() != owners.len() {
            return Err(DestinationError::Rejected {
                message: format!(
                    "Redis answered {} results for {} commands; nothing is acknowledged",
                    results.len(),
                    owners.len()
                ),
            });
        }
        for (owner, result) in owners.into_iter().zip(results) {
            if let Err(e) = result {
                let code = e.code().unwrap_or("");
                if TRANSIENT_CODES.contains(&code) {
                    return Err(self.error(&e));
                }
                outcomes[owner] = RecordOutcome::Rejected {
                    reason: format!("Redis refused the command: {e}"),
                };
            }
        }
        Ok(BatchOutcome { records: outcomes })
    }
}

/// An action bound to a destination's client; what `Destination::action` hands the engine.
pub(crate) struct BoundAction {
    /// The spec the engine resolved (one of [`super::actions::ACTIONS`]).
    pub(crate) spec: &'static ActionSpec,
    /// Which action.
    pub(crate) action: RedisAction,
    /// The destination's client.
    pub(crate) client: Arc<RedisClient>,
}

#[async_trait]
impl Action for BoundAction {
    fn spec(&self) -> &'static ActionSpec {
        self.spec
    }

    async fn send(
        &self,
        ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        self.client.send(self.action, ctx, batch).await
    }
}
