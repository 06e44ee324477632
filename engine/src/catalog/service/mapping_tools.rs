//! What a user does while writing a mapping, before any sync: the fields an action takes for
//! this destination's account, suggested column/field pairs, and a test record sent for real
//! without touching the sync state.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use serde_json::Value;

use crate::catalog::service::MappingService;
use crate::connector::build::{build_destination, build_source};
use crate::destination::outcome::RecordOutcome;
use crate::destination::spec::{ActionSpec, ChangeKind, FieldInfo, Payload};
use crate::destination::{DeliveryContext, Exchange, ExchangeLog};
use crate::error::Error;
use crate::id::{MappingId, RunId};
use crate::mapping::expression::schema_of;
use crate::mapping::plan::{MappingPlan, default_selection};
use crate::mapping::spec::MappingDef;
use crate::mapping::suggest::{Suggestion, TypedColumn, suggest};
use crate::mapping::value::json_value;
use crate::model::plan::ModelSession;

/// The result of a test record.
#[derive(Debug, Clone)]
pub struct TestRecord {
    /// The unique id of the row sent.
    pub key: Value,
    /// The mapped record, as the action received it.
    pub payload: Payload,
    /// Whether the destination accepted it.
    pub accepted: bool,
    /// The destination's answer in words (its reason when it refused).
    pub message: String,
    /// The requests sent and the answers received, as the connector recorded them.
    pub exchanges: Vec<Exchange>,
}

impl MappingService {
    /// The fields `action` of destination `destination_id` takes for its account (static
    /// fields plus those the API reports, e.g. custom properties).
    ///
    /// # Errors
    /// `NotFound`; `InvalidArgument` for an unknown action; the destination's error when the
    /// API cannot be asked.
    pub async fn action_fields(
        &self,
        destination_id: &str,
        action: &str,
    ) -> Result<Vec<FieldInfo>, Error> {
        let (spec, built) = self.resolve_action(destination_id, action)?;
        Ok(built.destination.fields(spec).await?)
    }

    /// Suggested column for each field of `action` of `destination_id`, from the columns of
    /// `model_id`, best first.
    ///
    /// # Errors
    /// As [`MappingService::action_fields`]; `NotFound` for the model.
    pub async fn suggest(
        &self,
        model_id: &str,
        destination_id: &str,
        action: &str,
    ) -> Result<Vec<Suggestion>, Error> {
        let model = self.ctx.catalog.model(model_id)?;
        let fields = self.action_fields(destination_id, action).await?;
        let schema = schema_of(&model.columns);
        let columns: Vec<TypedColumn> = schema
            .fields()
            .iter()
            .filter(|f| f.name() != &model.unique_id || fields.iter().any(|x| x.name == *f.name()))
            .map(|f| TypedColumn {
                name: f.name().clone(),
                data_type: f.data_type().clone(),
            })
            .collect();
        Ok(suggest(&fields, &columns))
    }

    /// Maps one row of the mapping's model (the row whose unique id, as text, is `key`, else
    /// the first) and sends it to the destination; the sync state is not touched.
    ///
    /// `def` may be an unsaved mapping: it is validated as `CreateMapping` would.
    ///
    /// # Errors
    /// `InvalidArgument` for a mapping that does not validate; `NotFound` for a key that is not
    /// in the model (or an empty model); the source's error when the warehouse fails. What
    /// the destination answers, refusals included, is the result, not an error.
    pub async fn send_test_record(
        &self,
        def: &MappingDef,
        key: Option<String>,
    ) -> Result<TestRecord, Error> {
        let model = self.ctx.catalog.model(def.model_id.as_str())?;
        let (spec, built) = self.resolve_action(def.destination_id.as_str(), &def.action)?;
        let mut rules = def.rules();
        if rules.selection.is_empty() {
            rules.selection = default_selection(spec);
        }
        // Validated against the catalog's columns first, so errors read as on create.
        MappingPlan::compile(rules, &schema_of(&model.columns), spec)?;
        let source = build_source(
            &self.ctx.registry,
            &self.ctx.catalog.source(model.source_id.as_str())?,
        )?;
        let session =
            ModelSession::new(source.as_ref(), self.options.sort_memory_bytes, None).await?;
        let plan = session.plan(&model.sql).await?;
        let (schema, batches) = session
            .find_row(plan, &model.unique_id, key.clone())
            .await?;
        let Some(batch) = batches.into_iter().find(|b| b.num_rows() > 0) else {
            return Err(match key {
                Some(key) => Error::NotFound {
                    kind: "row",
                    id: key.clone(),
                    hint: format!(
                        "; model '{}' has no row whose {} is '{key}' (compared as text)",
                        model.id, model.unique_id
                    ),
                },
                None => Error::NotFound {
                    kind: "row",
                    id: "(first)".to_string(),
                    hint: format!("; model '{}' returned no rows", model.id),
                },
            });
        };
        let plan = MappingPlan::compile(rules, &schema, spec)?;
        let key_value = key_of(&schema, &batch, &model.unique_id)?;
        let columns = plan
            .columns
            .iter()
            .map(|c| {
                schema
                    .index_of(c)
                    .map(|i| Arc::clone(batch.column(i)))
                    .map_err(|e| Error::internal(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let evaluated = plan.evaluate(columns)?;
        let payload = plan
            .payload(&evaluated, 0, key_value.clone(), ChangeKind::Added)
            .map_err(|reason| {
                Error::invalid(
                    "mapping.fields",
                    format!("the row cannot be mapped: {reason}"),
                )
            })?;
        let action = built.destination.action(spec)?;
        let log = ExchangeLog::new();
        let ctx = DeliveryContext {
            destination_id: def.destination_id.clone(),
            mapping_id: MappingId::new(if def.id.as_str().is_empty() {
                "unsaved"
            } else {
                def.id.as_str()
            }),
            run_id: RunId::new(format!("test-{}", uuid::Uuid::now_v7())),
            sync_mode: plan.sync_mode,
            trace: Some(log.clone()),
        };
        let timeout = Duration::from_millis(built.limits.timeout_ms);
        let sent =
            tokio::time::timeout(timeout, action.send(&ctx, std::slice::from_ref(&payload))).await;
        let (accepted, message) = match sent {
            Err(_) => (
                false,
                format!(
                    "the destination did not answer within {} ms",
                    built.limits.timeout_ms
                ),
            ),
            Ok(Err(e)) => (false, e.to_string()),
            Ok(Ok(outcome)) => match outcome.records.first() {
                Some(RecordOutcome::Accepted) => (true, "accepted".to_string()),
                Some(RecordOutcome::Rejected { reason }) => (false, format!("rejected: {reason}")),
                Some(RecordOutcome::Retry { reason, .. }) => (
                    false,
                    format!("the destination asked to send it again later: {reason}"),
                ),
                None => (
                    false,
                    "the destination answered about no record".to_string(),
                ),
            },
        };
        Ok(TestRecord {
            key: key_value,
            payload,
            accepted,
            message,
            exchanges: log.exchanges(),
        })
    }

    /// The action spec and the built destination.
    fn resolve_action(
        &self,
        destination_id: &str,
        action: &str,
    ) -> Result<
        (
            &'static ActionSpec,
            crate::connector::build::BuiltDestination,
        ),
        Error,
    > {
        let def = self.ctx.catalog.destination(destination_id)?;
        let built = build_destination(&self.ctx.registry, &def)?;
        let spec = built
            .destination_type
            .action(action)
            .map_err(|e| Error::invalid("action", e.to_string()))?;
        Ok((spec, built))
    }
}

/// The unique id of row 0.
fn key_of(schema: &Schema, batch: &RecordBatch, unique_id: &str) -> Result<Value, Error> {
    let index = schema.index_of(unique_id).map_err(|_| {
        Error::precondition(format!(
            "the model no longer has its unique id column '{unique_id}'"
        ))
    })?;
    json_value(batch.column(index).as_ref(), 0).map_err(|e| Error::internal(e.to_string()))
}
