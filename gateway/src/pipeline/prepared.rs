//! What the front half of the pipeline (parse, limits, validate, plan) produces: an operation
//! made ready to run any number of times, cached with its plan (`plan_cache.rs`), so the hot
//! path never re-parses, re-validates or re-plans.

use std::sync::Arc;

use apollo_compiler::ast::OperationType;
use apollo_compiler::executable::Operation;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Node, Schema};
use switchyard_planner::plan::FetchNode;
use switchyard_planner::QueryPlan;

use super::limits::Cost;
use crate::execute::BoundPlan;

/// A validated, planned operation, ready to execute any number of times.
pub struct PreparedOperation {
    /// The plan bound to the executor, with the document and operation it shapes responses by.
    pub(crate) bound: BoundPlan,
    pub(crate) plan: QueryPlan,
    /// The estimated cost; redone per request when a list size comes from a variable.
    pub(crate) cost: Cost,
    /// This operation's metric handles, resolved on its first run.
    pub(crate) metrics: std::sync::OnceLock<Arc<crate::metrics::OperationMetrics>>,
    /// For a subscription: its plan split into the upstream root fetch and the bound rest, or
    /// `None` when it cannot be split (its root field is not served by one subgraph alone).
    pub(crate) subscription: Option<SubscriptionPlan>,
    /// The variables its `@skip` / `@include` conditions use (checked for `null` per request).
    pub(crate) condition_variables: Box<[apollo_compiler::Name]>,
    /// Plans specialised by the values of the variables its `@skip` / `@include` use
    /// (`specialise.rs`); `None` when it runs this general plan only.
    pub(crate) variants: Option<super::specialise::Variants>,
    /// The API schema, for checking variable values.
    pub(super) schema: Arc<Valid<Schema>>,
}

/// A subscription's plan as the gateway runs it: the root fetch goes upstream as a subscription,
/// the rest runs once per event (entity fetches).
#[derive(Debug)]
pub(crate) struct SubscriptionPlan {
    pub(crate) root: FetchNode,
    pub(crate) rest: BoundPlan,
}

impl std::fmt::Debug for PreparedOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedOperation")
            .field("operation", &self.operation().name)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl PreparedOperation {
    /// The query plan this operation runs.
    pub fn plan(&self) -> &QueryPlan {
        &self.plan
    }

    /// The validated client document.
    pub fn document(&self) -> &Valid<ExecutableDocument> {
        self.bound.document()
    }

    /// The operation of the document that runs.
    pub fn operation(&self) -> &Node<Operation> {
        self.bound.operation()
    }

    /// Whether the operation is a mutation (never collapsed, never over GET).
    pub fn is_mutation(&self) -> bool {
        self.operation().operation_type == OperationType::Mutation
    }

    /// Whether the operation is a subscription (served only over a streaming transport).
    pub fn is_subscription(&self) -> bool {
        self.operation().operation_type == OperationType::Subscription
    }
}
