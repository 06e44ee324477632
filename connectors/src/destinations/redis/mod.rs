//! `redis`: one hash per record in a Redis database, at `key_prefix` + the record's unique id:
//! `HSET` of the mapped fields, `DEL` for deletes, one `MULTI`/`EXEC` pipeline per batch.
//!
//! # Files
//! - `config.rs`: `RedisConfig`, its catalog config fields, `validate()`.
//! - `actions.rs`: the action specs, `RedisAction`, one record → its commands.
//! - `client.rs`: the connection, the one pipeline per batch with per-command results,
//!   `PING` for `test()`.
//! - `tests.rs`: encoding and config unit tests, and deliveries into a real `redis-server`
//!   started by the testkit (`retl_testkit::RedisServer`).
//!
//! The conformance suite runs it against a real `redis-server` in
//! `tests/it/destinations/redis.rs` (Debian's `redis-server` package; `scripts/setup.sh test`
//! installs it).
//!
//! # Commands
//! - Connecting: `AUTH [username] password` (with a password; `username` is an ACL user,
//!   Redis 6+), `SELECT database`
//!   (<https://redis.io/docs/latest/commands/auth/>).
//! - `set_hash`: `HSET key field value [field value ...]` for the record's non-null fields and
//!   `HDEL key field ...` for its null ones (a hash has no null), so the hash holds what the
//!   record holds; fields that are not mapped are kept. Text is stored as it is; numbers,
//!   booleans, objects and arrays as their JSON text
//!   (<https://redis.io/docs/latest/commands/hset/>).
//! - `delete_hash`: `DEL key`; a key that does not exist is already gone: success
//!   (<https://redis.io/docs/latest/commands/del/>).
//! - A batch is one pipeline wrapped in `MULTI`/`EXEC`: the server runs its commands one after
//!   the other with no other client's command in between, and a connection lost before `EXEC`
//!   applies none of them (<https://redis.io/docs/latest/develop/interact/transactions/>).
//!   Redis does not roll back a command that fails at run time: the record of a failed command
//!   (e.g. `WRONGTYPE`: its key holds another type) is rejected with the server's message, the
//!   others are accepted.
//!
//! # Errors
//! A refused login (`WRONGPASS`, `NOAUTH`) or a missing ACL permission (`NOPERM`) stops the
//! run with the fix. A lost connection, a timeout, a read-only replica (`READONLY`), memory
//! full under `noeviction` (`OOM`), `LOADING`, `BUSY`, `MISCONF`, `MASTERDOWN`, `CLUSTERDOWN`,
//! `TRYAGAIN` and a transaction discarded by one of them (`EXECABORT`) are transient: the batch
//! is retried with backoff on a new connection.
//!
//! # Limits
//! Redis documents no request rate: it answers as fast as it runs commands. A string (a key or
//! a field value) is at most 512 MB
//! (<https://redis.io/docs/latest/develop/data-types/strings/>); the pipelining guide
//! recommends batches of a reasonable size, "for instance 10k commands", rather than one
//! huge pipeline, since the server queues the replies in memory
//! (<https://redis.io/docs/latest/develop/use/pipelining/>); a client's query buffer is at
//! most `client-query-buffer-limit`, 1 GB by default.
//!
//! Defaults: 1,000 records per pipeline (at most 2,000 commands, under the 10k guidance),
//! 8 MiB of payload, 1,000 pipelines/s (retl's choice), 4 in flight on the one multiplexed
//! connection, 5 attempts, 30 s per answer.
//!
//! # Test
//! `TestDestination` connects (`AUTH`, `SELECT`) and sends `PING`, which changes nothing.
//!
//! # Not covered
//! TLS (`rediss://`), Redis Cluster and Sentinel, expiry (`EXPIRE`/TTL), other data types
//! (strings, JSON documents, sorted sets), replacing the whole hash (fields not mapped are
//! kept), sync modes `update`/`create` (`HSET` always creates), RESP3.

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

use self::actions::{ACTIONS, RedisAction};
use self::client::{BoundAction, RedisClient};
use self::config::{CONFIG_FIELDS, RedisConfig};

/// The catalog entry and factory of the `redis` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "redis",
        display_name: "Redis hashes",
        description: "Writes each record as a Redis hash at a key prefix + its unique id (HSET), deletes with DEL; one MULTI/EXEC pipeline per batch.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 1000.0,
        burst: 100,
        batch_size: 1000,
        max_batch_bytes: 8 * 1024 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 200,
        max_backoff_ms: 10_000,
        timeout_ms: 30_000,
        daily_request_budget: None,
    }
}

/// Builds a Redis destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(RedisDestination::new(config, &limits)?))
}

/// A configured Redis database.
#[derive(Debug)]
pub(crate) struct RedisDestination {
    client: Arc<RedisClient>,
}

impl RedisDestination {
    /// Parses and validates the config; touches no network.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: RedisConfig = crate::destinations::parse_config(config)?;
        Ok(RedisDestination {
            client: Arc::new(RedisClient::new(config.validate()?, limits.timeout())),
        })
    }
}

#[async_trait]
impl Destination for RedisDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action =
            RedisAction::from_spec(spec).ok_or_else(|| undeclared_action("redis", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }
}
