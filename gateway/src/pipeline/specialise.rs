//! Step 6b: the plan specialised by the values of the variables an operation's `@skip` /
//! `@include` conditions use. Per request, a lookup; planned once per combination of values.
//!
//! The plan cached with an operation (step 5) holds for every value: it keeps conditions on
//! variables as gates and sends them on to subgraphs. That can cost fetches. With
//! `{ allE0 { e0req @skip(if: $v) } listI0 { id } }` and `$v = true`, `allE0` (shareable) could
//! come from the subgraph that serves `listI0` in one request, but a plan that must also serve
//! `$v = false` picks the subgraph that can resolve `e0req`'s `@requires` and needs two. So
//! when an operation's conditions use few enough variables
//! (`switchyard_planner::specialised_conditions`), each combination of their values that
//! requests bring gets its own plan, with those conditions decided (the excluded selections are
//! not planned at all); at most `2^n` plans per operation, each charged to the operation's
//! plan-cache entry when it is planned (`PlanCache::charge`), so the cache's byte budget holds
//! them all. (An explicit `null` for a condition's variable is refused when variables are
//! coerced; should a value still not be a boolean, the general plan runs.)

use std::collections::BTreeMap;
use std::sync::Arc;

use apollo_compiler::Name;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::prepared::PreparedOperation;
use crate::Gateway;

/// The specialised plans of one operation, planned when a request first needs them: one slot
/// per combination of the values of its `condition_variables`, whose value `i` is bit `i` of the
/// slot's index; `None` inside when planning it failed (the general plan runs instead).
pub(crate) struct Variants {
    slots: Box<[OnceCell<Option<Arc<PreparedOperation>>>]>,
}

impl Variants {
    /// The variants an operation of this type whose conditions use `vars` can have, or `None`
    /// when it runs its general plan only (`switchyard_planner::specialisable`).
    pub(crate) fn of(kind: apollo_compiler::ast::OperationType, vars: &[Name]) -> Option<Self> {
        if !switchyard_planner::specialisable(kind, vars) {
            return None;
        }
        let slots = (0..1usize << vars.len()).map(|_| OnceCell::new()).collect();
        Some(Self { slots })
    }

    /// How many plans this operation may hold besides its general one.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The slot for these coerced values of `vars`, or `None` when a value is not a boolean.
    fn slot(vars: &[Name], variables: &Map<String, Value>) -> Option<usize> {
        let mut index = 0;
        for (bit, var) in vars.iter().enumerate() {
            match variables.get(var.as_str()) {
                Some(Value::Bool(true)) => index |= 1 << bit,
                Some(Value::Bool(false)) => {}
                _ => return None,
            }
        }
        Some(index)
    }

    /// The values of `vars` slot `index` stands for.
    fn values(vars: &[Name], index: usize) -> BTreeMap<String, bool> {
        vars.iter()
            .enumerate()
            .map(|(bit, var)| (var.to_string(), index & (1 << bit) != 0))
            .collect()
    }
}

impl Gateway {
    /// The plan to run `prepared` with these coerced variables: its variant for their condition
    /// values (planned now on a blocking thread if this is the first request with them, with
    /// concurrent first requests waiting for one run), or `prepared` itself.
    ///
    /// `request` (text and operation name) finds the plan-cache entry a new plan is charged to.
    pub(crate) async fn specialise(
        &self,
        prepared: &Arc<PreparedOperation>,
        request: (&str, Option<&str>),
        variables: &Map<String, Value>,
    ) -> Arc<PreparedOperation> {
        let Some(variants) = &prepared.variants else {
            return Arc::clone(prepared);
        };
        let vars = &prepared.condition_variables;
        let Some(index) = Variants::slot(vars, variables) else {
            return Arc::clone(prepared);
        };
        let variant = variants.slots[index]
            .get_or_init(|| async {
                let variant = self
                    .plan_variant(prepared, Variants::values(vars, index))
                    .await;
                if let Some(variant) = &variant {
                    self.inner.shared.metrics.specialised_plans.inc();
                    let (query, operation_name) = request;
                    let bytes = super::plan_cache::weigh_plan(variant);
                    self.inner
                        .cache
                        .charge(query, operation_name, prepared, bytes);
                }
                variant
            })
            .await;
        match variant {
            Some(variant) => Arc::clone(variant),
            None => Arc::clone(prepared),
        }
    }

    async fn plan_variant(
        &self,
        prepared: &Arc<PreparedOperation>,
        values: BTreeMap<String, bool>,
    ) -> Option<Arc<PreparedOperation>> {
        let general = Arc::clone(prepared);
        self.on_planning_thread(move |gateway| gateway.specialised_uncached(&general, values))
            .await
            .unwrap_or_else(|err| {
                tracing::error!(error = %err, "planning a specialised plan panicked");
                None
            })
    }

    /// Plans `general`'s operation with the conditions on `values` decided and binds it; `None`
    /// when it cannot be planned (the general plan, which could, runs instead).
    fn specialised_uncached(
        &self,
        general: &PreparedOperation,
        values: BTreeMap<String, bool>,
    ) -> Option<Arc<PreparedOperation>> {
        let inner = &*self.inner;
        let options = switchyard_planner::PlanOptions {
            condition_values: values,
            ..inner.plan_options.clone()
        };
        let document = general.bound.shared_document();
        let operation = general.operation();
        let name = operation.name.as_ref().map(|n| n.as_str());
        let plan = match inner.planner.plan(document, name, &options) {
            Ok(plan) => plan,
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    conditions = ?options.condition_values,
                    "an operation's specialised plan failed; running its general plan"
                );
                return None;
            }
        };
        Some(Arc::new(PreparedOperation {
            bound: inner
                .executor
                .bind(Arc::clone(document), operation.clone(), &plan),
            plan,
            cost: general.cost,
            metrics: std::sync::OnceLock::new(),
            subscription: None,
            condition_variables: general.condition_variables.clone(),
            variants: None,
            schema: Arc::clone(&general.schema),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GatewayConfig;

    fn count_fetches(node: &switchyard_planner::plan::PlanNode) -> usize {
        use switchyard_planner::plan::PlanNode;
        match node {
            PlanNode::Sequence { nodes } | PlanNode::Parallel { nodes } => {
                nodes.iter().map(count_fetches).sum()
            }
            PlanNode::Fetch(_) => 1,
            PlanNode::Flatten(flatten) => count_fetches(&flatten.node),
            PlanNode::Condition(cond) => {
                cond.if_clause.as_deref().map_or(0, count_fetches)
                    + cond.else_clause.as_deref().map_or(0, count_fetches)
            }
        }
    }

    fn fetches(prepared: &PreparedOperation) -> usize {
        prepared.plan().node.as_ref().map_or(0, count_fetches)
    }

    fn variables_of(value: serde_json::Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// `value` coerced for `prepared` as the pipeline does (defaults filled in).
    fn coerced(prepared: &PreparedOperation, value: serde_json::Value) -> Map<String, Value> {
        prepared
            .coerce_variables(Some(variables_of(value)))
            .expect("valid values")
    }

    /// Nothing is sent: the gateway points at the case's `.invalid` URLs and only plans.
    #[tokio::test]
    async fn each_combination_of_values_gets_one_plan_charged_to_the_entry() {
        let case = switchyard_testkit::Case::parse(include_str!(
            "../../tests/federation/cases/op_skip_variable_true_specialised_plan_one_subgraph.case"
        ))
        .expect("the case parses");
        let sdl = case.supergraph_sdl().expect("inline supergraph");
        let gateway = Gateway::from_supergraph_sdl(sdl, GatewayConfig::default())
            .expect("the supergraph loads");
        let query = "query($hide: Boolean!, $tags: Boolean = true) { \
                     items { id price @skip(if: $hide) } tags @include(if: $tags) }";
        let general = gateway.prepare_shared(query, None).await.expect("plans");
        let bytes = gateway.cached_bytes();
        assert_eq!(general.variants.as_ref().map(Variants::len), Some(4));

        let hidden = coerced(&general, serde_json::json!({"hide": true}));
        let one = gateway.specialise(&general, (query, None), &hidden).await;
        assert!(!Arc::ptr_eq(&one, &general));
        assert_eq!((fetches(&general), fetches(&one)), (2, 1));
        // The same values find the same plan; other values another one.
        let again = gateway.specialise(&general, (query, None), &hidden).await;
        assert!(Arc::ptr_eq(&one, &again));
        let shown = coerced(&general, serde_json::json!({"hide": false, "tags": false}));
        let other = gateway.specialise(&general, (query, None), &shown).await;
        assert!(!Arc::ptr_eq(&one, &other) && !Arc::ptr_eq(&other, &general));
        assert_eq!(fetches(&other), 1, "{}", other.plan());
        // Concurrent first requests with one combination share one planning run.
        let fresh = coerced(&general, serde_json::json!({"hide": false, "tags": true}));
        let (a, b) = tokio::join!(
            gateway.specialise(&general, (query, None), &fresh),
            gateway.specialise(&general, (query, None), &fresh)
        );
        assert!(Arc::ptr_eq(&a, &b));
        // An explicit null for a condition's (defaulted, nullable) variable is refused when the
        // variables are coerced, naming the variable; should a value still not be a boolean
        // here, the general plan runs.
        let refused = general
            .coerce_variables(Some(variables_of(
                serde_json::json!({"hide": true, "tags": null}),
            )))
            .expect_err("null cannot decide a condition");
        assert!(
            refused.0[0].message.contains("\"$tags\" is null"),
            "{:?}",
            refused.0
        );
        let null = variables_of(serde_json::json!({"hide": true, "tags": null}));
        assert!(Arc::ptr_eq(
            &gateway.specialise(&general, (query, None), &null).await,
            &general
        ));
        // All under the one entry, each plan charged to it once, when it was planned.
        assert_eq!(gateway.cached_operations(), 1);
        let planned: usize = [&one, &other, &a]
            .iter()
            .map(|variant| super::super::plan_cache::weigh_plan(variant))
            .sum();
        assert_eq!(gateway.cached_bytes(), bytes + planned);
        let metrics = gateway.metrics_text();
        assert!(
            metrics
                .lines()
                .any(|line| line == "switchyard_gateway_specialised_plans_total 3"),
            "{metrics}"
        );
        // A plan for a request whose operation is not the cached entry charges nothing.
        let before = gateway.cached_bytes();
        let uncached = Arc::new(
            gateway
                .prepare_uncached(query, None)
                .expect("plans the same operation again"),
        );
        gateway.specialise(&uncached, (query, None), &hidden).await;
        assert_eq!(gateway.cached_bytes(), before);
    }

    #[tokio::test]
    async fn operations_on_too_many_or_no_condition_variables_keep_their_general_plan() {
        let case = switchyard_testkit::Case::parse(include_str!(
            "../../tests/federation/cases/op_skip_variable_true_specialised_plan_one_subgraph.case"
        ))
        .expect("the case parses");
        let gateway = Gateway::from_supergraph_sdl(
            case.supergraph_sdl().expect("inline supergraph"),
            GatewayConfig::default(),
        )
        .expect("the supergraph loads");
        // One condition variable more than plans are specialised by, each on its own alias.
        let mut declarations = String::new();
        let mut fields = String::new();
        let mut all_true = Map::new();
        for i in 0..=switchyard_planner::MAX_SPECIALISED_CONDITIONS {
            declarations += &format!(" $v{i}: Boolean!");
            fields += &format!(" v{i}: id @skip(if: $v{i})");
            all_true.insert(format!("v{i}"), Value::Bool(true));
        }
        let many = format!("query({declarations}) {{ items {{{fields} }} }}");
        let general = gateway.prepare_shared(&many, None).await.expect("plans");
        assert!(general.variants.is_none());
        let values = coerced(&general, Value::Object(all_true));
        assert!(Arc::ptr_eq(
            &gateway.specialise(&general, (&many, None), &values).await,
            &general
        ));
        let none = gateway
            .prepare_shared("{ items { id } }", None)
            .await
            .expect("plans");
        assert!(none.variants.is_none());
    }
}
