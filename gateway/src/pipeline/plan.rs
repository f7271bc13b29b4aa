//! Step 5: the plan cache lookup and, on a miss, the front half of the pipeline run once — parse,
//! shape limits, validate, choose the operation, root-field, introspection and cost limits, plan,
//! bind the plan to the executor — with concurrent misses of one operation waiting for a single
//! run on a blocking thread.

use std::sync::Arc;

use switchyard_planner::plan::{FetchNode, PlanNode};
use switchyard_planner::QueryPlan;

use super::limits::Shape;
use super::plan_cache::Lookup;
use super::prepared::{PreparedOperation, SubscriptionPlan};
use super::{parse, validate, PrepareError, ResponseStatus};
use crate::error::{GraphQLError, GraphQLErrors, QUERY_PLANNING_FAILED};
use crate::Gateway;

impl Gateway {
    /// The cached prepared operation, or prepare + cache it on this thread (for synchronous
    /// callers: `switchyard plan`).
    pub(crate) fn prepare(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<Arc<PreparedOperation>, PrepareError> {
        let inner = &*self.inner;
        if let Some(hit) = inner.cache.get(query, operation_name) {
            inner.shared.metrics.plan_cache_hits.inc();
            return Ok(hit);
        }
        inner.shared.metrics.plan_cache_misses.inc();
        let prepared = Arc::new(self.prepare_uncached(query, operation_name)?);
        inner.cache.insert(query, operation_name, &prepared);
        Ok(prepared)
    }

    /// Like [`Gateway::prepare`] for requests: a miss is planned on a blocking thread (at most
    /// one per CPU at a time), and concurrent misses of one operation wait for a single run.
    pub(crate) async fn prepare_shared(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<Arc<PreparedOperation>, PrepareError> {
        let (hash, flight) = match self.inner.cache.lookup(query, operation_name) {
            Lookup::Hit(prepared) => {
                self.inner.shared.metrics.plan_cache_hits.inc();
                return Ok(prepared);
            }
            Lookup::Miss { hash, flight } => {
                self.inner.shared.metrics.plan_cache_misses.inc();
                (hash, flight)
            }
        };
        let mut leader = false;
        let result = flight
            .get_or_init(|| {
                leader = true;
                self.prepare_on_blocking_thread(query, operation_name)
            })
            .await
            .clone();
        if leader {
            self.inner
                .cache
                .land(hash, &flight, query, operation_name, &result);
        }
        result
    }

    async fn prepare_on_blocking_thread(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<Arc<PreparedOperation>, PrepareError> {
        let query = query.to_owned();
        let operation_name = operation_name.map(str::to_owned);
        self.on_planning_thread(move |gateway| {
            gateway
                .prepare_uncached(&query, operation_name.as_deref())
                .map(Arc::new)
        })
        .await
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "planning an operation panicked");
            Err((
                GraphQLErrors::single(GraphQLError::new(
                    "The gateway failed while planning this operation.",
                    QUERY_PLANNING_FAILED,
                )),
                ResponseStatus::PlanningFailed,
            ))
        })
    }

    /// Runs planning work on a blocking thread, at most one per CPU at a time, so planning
    /// never holds up the threads that serve requests.
    pub(super) async fn on_planning_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce(Gateway) -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let _permit = self
            .inner
            .planning
            .acquire()
            .await
            .expect("the planning semaphore is never closed");
        let gateway = self.clone();
        tokio::task::spawn_blocking(move || work(gateway)).await
    }

    /// Parse, check the expanded shape (before validation, whose field-merging rules would
    /// otherwise walk a fragment bomb), validate and choose the operation, check root fields,
    /// introspection and cost, plan, bind.
    pub(super) fn prepare_uncached(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<PreparedOperation, PrepareError> {
        let inner = &*self.inner;
        let request_error = |errors| (errors, ResponseStatus::RequestError);
        let ast = parse::parse(query).map_err(request_error)?;
        inner
            .limits
            .check_shape(&Shape::of_document(&ast))
            .map_err(request_error)?;
        let document = validate::validate(inner.executor.schema(), ast).map_err(request_error)?;
        let operation =
            validate::select_operation(&document, operation_name).map_err(request_error)?;
        super::limits::check_root_fields(&document, &operation, inner.limits.max_root_fields)
            .map_err(request_error)?;
        validate::check_introspection(&inner.executor, &document, &operation)
            .map_err(request_error)?;
        let cost = inner.cost_model.cost(&document, &operation, None);
        if !cost.uses_variables {
            inner.limits.check_cost(cost.value).map_err(request_error)?;
        }
        let plan = inner
            .planner
            .plan(&document, operation_name, &inner.plan_options)
            .map_err(|err| {
                (
                    GraphQLErrors::single(GraphQLError::new(
                        err.to_string(),
                        QUERY_PLANNING_FAILED,
                    )),
                    ResponseStatus::PlanningFailed,
                )
            })?;
        let document = Arc::new(document);
        let subscription = (operation.operation_type
            == apollo_compiler::ast::OperationType::Subscription)
            .then(|| split_subscription(&plan))
            .flatten()
            .map(|(root, rest)| SubscriptionPlan {
                root,
                rest: inner
                    .executor
                    .bind(Arc::clone(&document), operation.clone(), &rest),
            });
        let condition_variables =
            switchyard_planner::condition_variables(&operation.selection_set, &document.fragments)
                .into_boxed_slice();
        let variants =
            super::specialise::Variants::of(operation.operation_type, &condition_variables);
        Ok(PreparedOperation {
            condition_variables,
            variants,
            bound: inner.executor.bind(document, operation, &plan),
            plan,
            cost,
            metrics: std::sync::OnceLock::new(),
            subscription,
            schema: Arc::clone(inner.executor.schema()),
        })
    }
}

/// Splits a subscription plan into its root fetch and a plan of everything after it; `None`
/// when the plan does not start with one root fetch.
fn split_subscription(plan: &QueryPlan) -> Option<(FetchNode, QueryPlan)> {
    let root_fetch = |node: &PlanNode| match node {
        PlanNode::Fetch(fetch) if fetch.requires.is_none() => Some((**fetch).clone()),
        _ => None,
    };
    match plan.node.as_ref()? {
        node @ PlanNode::Fetch(_) => Some((root_fetch(node)?, QueryPlan { node: None })),
        PlanNode::Sequence { nodes } => {
            let (first, rest) = nodes.split_first()?;
            let root = root_fetch(first)?;
            let node = match rest {
                [] => None,
                [only] => Some(only.clone()),
                more => Some(PlanNode::Sequence {
                    nodes: more.to_vec(),
                }),
            };
            Some((root, QueryPlan { node }))
        }
        _ => None,
    }
}
