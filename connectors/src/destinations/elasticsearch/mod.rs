//! `elasticsearch`: indexes and deletes documents of one Elasticsearch index through the
//! `_bulk` API, one request per batch, the record's unique id as the document `_id`.
//!
//! # Files
//! - `config.rs`: `ElasticsearchConfig` (URL, index, API key or basic credentials), its catalog
//!   config fields, `validate()`.
//! - `actions.rs`: the action specs, `ElasticsearchAction`, one record → its NDJSON lines.
//! - `client.rs`: the one `_bulk` request per batch, per-item results, the index mapping
//!   (`test()`, fields).
//! - `tests.rs`: encoding and answer-parsing unit tests, round-trips against
//!   `retl_testkit::ElasticsearchEmulator`, the config drift test.
//!
//! Its emulator is `tests/testkit/src/emulators/elasticsearch.rs`; the conformance suite runs
//! it in `tests/it/destinations/elasticsearch.rs`. **Tested against the emulator only**: no
//! Elasticsearch server can be installed here; the emulator follows the documented contract
//! below.
//!
//! # API
//! `POST /<index>/_bulk` with `Content-Type: application/x-ndjson`, one action line per
//! record (and a source line, except for deletes), the body ending with a newline
//! (<https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-bulk.html>).
//! Authentication: `Authorization: ApiKey <encoded key>`
//! (<https://www.elastic.co/guide/en/elasticsearch/reference/current/security-api-create-api-key.html>)
//! or basic (`username`, `password`), or none for a cluster without security.
//! - `upsert_document`: sync mode `upsert` (default) sends `{"update": {"_id"}}` +
//!   `{"doc": {fields}, "doc_as_upsert": true}`: the mapped fields are merged into the
//!   document (other fields kept), which is created when missing; `update` sends the same
//!   without `doc_as_upsert` (a missing document is rejected: `404
//!   document_missing_exception`); `create` sends `{"create": {"_id"}}` + the fields (an
//!   existing document is rejected: `409 version_conflict_engine_exception`)
//!   (<https://www.elastic.co/guide/en/elasticsearch/reference/current/docs-update.html>).
//! - `delete_document`: `{"delete": {"_id"}}`; an item answered `404` (`"result":
//!   "not_found"`) is a document already gone: success.
//!
//! # Response contract
//! - **200** `{"errors": bool, "items": [{"<op>": {"_id", "status", "result", "error":
//!   {"type", "reason"}}}]}`, one item per operation in order: a 2xx item is accepted (and a
//!   delete's 404); an item `429` (`es_rejected_execution_exception`, the write queue full) or
//!   5xx is sent again after backoff; any other item (e.g. `400 document_parsing_exception`,
//!   a value the mapping cannot take) is rejected with its type and reason.
//! - **401** `security_exception` (unknown key or password), **403** (a key without the index
//!   privilege): authentication error. **413**: the body is over `http.max_content_length`:
//!   the engine halves the batch. **429** `es_rejected_execution_exception` for the whole
//!   request: throttled; Elasticsearch sends no `Retry-After`, so the engine's backoff decides
//!   the wait (<https://www.elastic.co/guide/en/elasticsearch/reference/current/rejected-requests.html>).
//!   **5xx**: transient. Other 4xx: the batch is rejected with `error.type: error.reason`.
//!
//! # Limits (documented)
//! - `http.max_content_length`, the largest request body, defaults to 100 MB
//!   (<https://www.elastic.co/guide/en/elasticsearch/reference/current/modules-network.html#http-settings>);
//!   the bulk docs say to keep requests well under it and to find the best size by
//!   experiment; Elastic's guide suggests starting around 5–15 MB per bulk request
//!   (<https://www.elastic.co/guide/en/elasticsearch/guide/current/bulk.html#_how_big_is_too_big>).
//! - No request rate is documented: a cluster pushes back with 429 when its write thread pool
//!   queue is full.
//! - `_id` at most 512 bytes (a longer unique id is rejected per record before sending);
//!   index names lowercase, at most 255 bytes, without `\ / * ? " < > | , # :` or spaces.
//!
//! Defaults: 1,000 documents or 10 MiB of payload per request (inside the 5–15 MB guidance),
//! 100 requests/s (retl's choice: not documented), 4 in flight, 5 attempts with backoff from
//! 1 s, 60 s timeout.
//!
//! # Test
//! `TestDestination` reads `GET /<index>/_mapping` (side-effect free; needs the
//! `view_index_metadata` privilege): 200 → the index exists with its fields, 404
//! (`index_not_found_exception`) → the first write creates it, 401/403 → refused. The index's
//! top-level mapped fields are the upsert action's fields (`retl destination fields`).
//!
//! # Not covered
//! `index` (whole-document replace) operations, scripted updates, `routing`, `pipeline`,
//! `refresh`, optimistic concurrency (`if_seq_no`), `version`/`version_type` external
//! versioning, data streams (which accept `create` only), nested field schemas from the
//! mapping (top-level fields only), compressed request bodies, Elastic Cloud ID (give the
//! deployment's URL), OpenSearch (same `_bulk` contract, untested).

mod actions;
mod client;
mod config;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use retl_engine::connector::DestinationType;
use retl_engine::destination::{
    Action, ActionSpec, DeliveryLimits, Destination, DestinationError, FieldInfo, undeclared_action,
};

use self::actions::{ACTIONS, ElasticsearchAction};
use self::client::{BoundAction, ElasticsearchClient};
use self::config::{CONFIG_FIELDS, ElasticsearchConfig};

/// The catalog entry and factory of the `elasticsearch` destination type.
pub(crate) fn destination_type() -> DestinationType {
    DestinationType {
        name: "elasticsearch",
        display_name: "Elasticsearch",
        description: "Indexes and deletes documents of an Elasticsearch index through the _bulk API, the record's unique id as the document _id.",
        config: CONFIG_FIELDS,
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// The default limits (see the module docs).
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 100.0,
        burst: 100,
        batch_size: 1000,
        max_batch_bytes: 10 * 1024 * 1024,
        max_in_flight: 4,
        max_attempts: 5,
        initial_backoff_ms: 1000,
        max_backoff_ms: 60_000,
        timeout_ms: 60_000,
        daily_request_budget: None,
    }
}

/// Builds an Elasticsearch destination from its config; no network access.
fn build(
    config: &serde_json::Value,
    limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(ElasticsearchDestination::new(config, &limits)?))
}

/// A configured Elasticsearch index.
#[derive(Debug)]
pub(crate) struct ElasticsearchDestination {
    client: Arc<ElasticsearchClient>,
}

impl ElasticsearchDestination {
    /// Parses and validates the config and prepares the client.
    pub(crate) fn new(
        config: &serde_json::Value,
        limits: &DeliveryLimits,
    ) -> Result<Self, DestinationError> {
        let config: ElasticsearchConfig = crate::destinations::parse_config(config)?;
        let client = ElasticsearchClient::new(config.validate()?, limits.timeout())?;
        Ok(ElasticsearchDestination {
            client: Arc::new(client),
        })
    }
}

#[async_trait]
impl Destination for ElasticsearchDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        self.client.test().await
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        let action = ElasticsearchAction::from_spec(spec)
            .ok_or_else(|| undeclared_action("elasticsearch", spec))?;
        Ok(Arc::new(BoundAction {
            spec,
            action,
            client: Arc::clone(&self.client),
        }))
    }

    async fn fields(&self, spec: &'static ActionSpec) -> Result<Vec<FieldInfo>, DestinationError> {
        let action = ElasticsearchAction::from_spec(spec)
            .ok_or_else(|| undeclared_action("elasticsearch", spec))?;
        if action == ElasticsearchAction::Delete {
            return Ok(FieldInfo::from_specs(spec.fields));
        }
        Ok(self
            .client
            .fields()
            .await?
            .unwrap_or_else(|| FieldInfo::from_specs(spec.fields)))
    }
}
