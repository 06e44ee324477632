//! Whole-query pushdown for SQL warehouses, shared by every database source
//! (`postgres`, `mysql`, `sqlite`).
//!
//! [`datafusion-federation`](https://github.com/datafusion-contrib/datafusion-federation)'s
//! optimizer rule replaces a plan (or sub-plan) whose tables all live in one database by one
//! scan holding that plan unparsed to SQL in the database's dialect, and its query planner
//! executes that scan there. Plans that mix sources keep DataFusion's plan, with each table's
//! projection, filter and limit pushed down.

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::optimizer::OptimizerRule;
use datafusion::prelude::SessionContext;
use datafusion_federation::{FederatedQueryPlanner, FederationOptimizerRule};

/// Installs the federation rule and planner in `ctx`; idempotent, and harmless for tables of
/// sources that are not federated (files).
///
/// The engine builds the session; a database source calls this from `register`.
pub(crate) fn install(ctx: &SessionContext) {
    let rule = Arc::new(FederationOptimizerRule::new());
    let state_ref = ctx.state_ref();
    let mut state = state_ref.write();
    if state.optimizers().iter().any(|r| r.name() == rule.name()) {
        return;
    }
    let mut rules = state.optimizers().to_vec();
    // After scalar subqueries become joins, as datafusion-federation's default rule list has it.
    let position = rules
        .iter()
        .position(|r| r.name() == "scalar_subquery_to_join")
        .map_or(rules.len(), |p| p + 1);
    rules.insert(position, rule);
    let rebuilt = SessionStateBuilder::new_from_existing(state.clone())
        .with_optimizer_rules(rules)
        .with_query_planner(Arc::new(FederatedQueryPlanner::new()))
        .build();
    *state = rebuilt;
}
