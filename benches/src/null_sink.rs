//! The `null` destination type: acknowledges every record without sending it anywhere, so a
//! sync to it measures the engine alone (extract, stage, diff, map, batch, commit). Bench-only:
//! it is registered into the bench's own [`Registry`](retl_engine::connector::Registry), never
//! into retl's.

use std::sync::Arc;

use async_trait::async_trait;
use retl_engine::connector::DestinationType;
use retl_engine::destination::spec::ActionKind;
use retl_engine::destination::{
    Action, ActionSpec, BatchOutcome, DeliveryContext, DeliveryLimits, Destination,
    DestinationError, Payload, undeclared_action,
};

/// The type name.
pub const NULL_TYPE: &str = "null";
/// Its one action.
pub const NULL_ACTION: &str = "accept_all";

static ACTIONS: [ActionSpec; 1] = [ActionSpec {
    name: NULL_ACTION,
    display_name: "Accept All",
    description: "Acknowledges every change (added, updated, deleted) without sending it; any field name is accepted.",
    kind: ActionKind::Mirror,
    fields: &[],
    open_fields: true,
    sync_modes: &[],
}];

/// The catalog entry and factory of the `null` destination type.
pub fn destination_type() -> DestinationType {
    DestinationType {
        name: NULL_TYPE,
        display_name: "Null sink (benchmarks)",
        description: "Acknowledges every record; measures the engine's own cost.",
        config: &[],
        actions: &ACTIONS,
        default_limits,
        build,
    }
}

/// Effectively unlimited: 1,000 records per batch, no rate limit to speak of.
fn default_limits() -> DeliveryLimits {
    DeliveryLimits {
        requests_per_second: 1e9,
        burst: 1_000_000,
        batch_size: 1_000,
        max_batch_bytes: 64 * 1024 * 1024,
        max_in_flight: 4,
        ..DeliveryLimits::default()
    }
}

fn build(
    _config: &serde_json::Value,
    _limits: DeliveryLimits,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(NullDestination))
}

/// A configured null sink.
#[derive(Debug)]
struct NullDestination;

#[async_trait]
impl Destination for NullDestination {
    async fn test(&self) -> Result<String, DestinationError> {
        Ok("the null sink accepts everything".to_string())
    }

    fn action(&self, spec: &'static ActionSpec) -> Result<Arc<dyn Action>, DestinationError> {
        match spec.name {
            NULL_ACTION => Ok(Arc::new(AcceptAll { spec })),
            _ => Err(undeclared_action(NULL_TYPE, spec)),
        }
    }
}

/// The `accept_all` action.
struct AcceptAll {
    spec: &'static ActionSpec,
}

#[async_trait]
impl Action for AcceptAll {
    fn spec(&self) -> &'static ActionSpec {
        self.spec
    }

    async fn send(
        &self,
        _ctx: &DeliveryContext,
        batch: &[Payload],
    ) -> Result<BatchOutcome, DestinationError> {
        Ok(BatchOutcome::all_accepted(batch.len()))
    }
}
