//! Operation + Supergraph -> QueryPlan. Pure: no I/O, deterministic.
//!
//! The types in this file are the contract between the planner and the executor
//! (`switchyard-gateway`'s `execute` module). Add to them freely; restructure only with care, since
//! the executor matches on them.

use std::collections::HashSet;
use std::sync::Arc;

use apollo_compiler::validation::Valid;
use apollo_compiler::ExecutableDocument;
use serde::Serialize;

use crate::supergraph::Supergraph;

/// A plan for one operation: a tree of fetches to run against subgraphs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryPlan {
    /// The root node; `None` when the operation needs no subgraph (only `__typename` or
    /// introspection at the root, which the gateway answers itself).
    pub node: Option<PlanNode>,
}

/// One node of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind")]
pub enum PlanNode {
    /// Children run one after the other (later ones read what earlier ones merged).
    Sequence {
        /// The children, in order.
        nodes: Vec<PlanNode>,
    },
    /// Children run concurrently; none depends on another.
    Parallel {
        /// The children, in any order.
        nodes: Vec<PlanNode>,
    },
    /// One request to one subgraph.
    Fetch(Box<FetchNode>),
    /// Runs `node` (an entity fetch) for every object found at `path` in the merged data.
    Flatten(FlattenNode),
    /// Runs one branch or the other depending on a boolean variable (`@skip` / `@include`).
    Condition(ConditionNode),
}

/// Root-operation kind of a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum OperationKind {
    /// `query`
    Query,
    /// `mutation`
    Mutation,
    /// `subscription`
    Subscription,
}

/// A request to one subgraph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FetchNode {
    /// Subgraph name (as in `join__graph(name:)`).
    pub service_name: String,
    /// The complete GraphQL document sent to the subgraph. An entity fetch declares
    /// `$representations: [_Any!]!` and selects `_entities(representations: $representations)`.
    pub operation: String,
    /// Operation name put in the subgraph request, if any.
    pub operation_name: Option<String>,
    /// Root kind of `operation`.
    pub operation_kind: OperationKind,
    /// Names (without `$`) of client variables that `operation` uses; the executor forwards only these.
    pub variable_usages: Vec<String>,
    /// `None` for a root fetch. For an entity fetch: what to copy out of each object at the
    /// enclosing `Flatten` path to build its representation. Objects that match none of the
    /// selection's type conditions get no representation (and are not sent).
    pub requires: Option<Vec<RequiresSelection>>,
    /// Applied to each representation before it is sent (e.g. `@interfaceObject` sets
    /// `__typename` to the interface's name).
    pub input_rewrites: Vec<ValueRewrite>,
    /// Applied to each returned entity before it is merged into the object it came from.
    pub output_rewrites: Vec<ValueRewrite>,
}

/// One element of a representation selection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RequiresSelection {
    /// Copy a field. Read from the merged data under `response_key`, written into the
    /// representation under `name` (they differ when the planner had to alias the field).
    Field {
        /// The field's name in the subgraph schema; the key written into the representation.
        name: String,
        /// The key the value has in the merged data.
        response_key: String,
        /// Sub-selection for object-typed fields; empty for leaves.
        selections: Vec<RequiresSelection>,
    },
    /// Apply `selections` only when the object's `__typename` is `type_condition` (or implements /
    /// belongs to it); `None` applies always.
    InlineFragment {
        /// The type the object must be, if any.
        type_condition: Option<String>,
        /// What to copy when it matches.
        selections: Vec<RequiresSelection>,
    },
}

/// A change applied to a JSON object, at a path inside it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ValueRewrite {
    /// Set the value at `path` to `value`.
    SetValue {
        /// Where, relative to the object being rewritten.
        path: Vec<PathElement>,
        /// The new value.
        value: serde_json::Value,
    },
    /// Rename the key at the end of `path` to `rename_to`.
    RenameKey {
        /// Where, relative to the object being rewritten; ends with a `Key`.
        path: Vec<PathElement>,
        /// The new key.
        rename_to: String,
    },
}

/// Runs an entity fetch for the objects at a path of the merged data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlattenNode {
    /// Where the objects are, from the response root (response keys, `@` for list items).
    pub path: Vec<PathElement>,
    /// The node to run (a `Fetch` with `requires`).
    pub node: Box<PlanNode>,
}

/// One step of a path into the merged data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum PathElement {
    /// An object key (a response key: the alias if there is one).
    Key(String),
    /// Every item of a list (printed `@`).
    List,
    /// Keep only objects whose `__typename` is one of these types (printed `|[A,B]`).
    TypeCondition(Vec<String>),
}

/// A branch on a boolean variable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionNode {
    /// The variable's name, without `$`.
    pub condition: String,
    /// Runs when the variable is true.
    pub if_clause: Option<Box<PlanNode>>,
    /// Runs when the variable is false.
    pub else_clause: Option<Box<PlanNode>>,
}

/// What the planner is told besides the operation.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Progressive-override labels (`@join__field(overrideLabel:)`) that are switched on for this
    /// request; a field whose label is on is served by the overriding subgraph.
    pub enabled_override_labels: HashSet<String>,
}

/// Why an operation could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The named operation is not in the document (or a name is needed and missing).
    #[error("{0}")]
    UnknownOperation(String),
    /// No subgraph path resolves part of the operation.
    #[error("cannot plan: {0}")]
    Unsatisfiable(String),
}

/// Builds query plans for one supergraph.
#[derive(Debug, Clone)]
pub struct QueryPlanner {
    supergraph: Arc<Supergraph>,
}

impl QueryPlanner {
    /// A planner over `supergraph`.
    pub fn new(supergraph: Arc<Supergraph>) -> Self {
        Self { supergraph }
    }

    /// The supergraph this planner plans against.
    pub fn supergraph(&self) -> &Arc<Supergraph> {
        &self.supergraph
    }

    /// Plans `operation_name` (or the only operation) of a document already validated against
    /// the supergraph's API schema.
    pub fn plan(
        &self,
        _document: &Valid<ExecutableDocument>,
        _operation_name: Option<&str>,
        _options: &PlanOptions,
    ) -> Result<QueryPlan, PlanError> {
        Err(PlanError::Unsatisfiable(
            "planner not implemented yet".into(),
        ))
    }
}

impl std::fmt::Display for QueryPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QueryPlan {{ {:?} }}", self.node)
    }
}
