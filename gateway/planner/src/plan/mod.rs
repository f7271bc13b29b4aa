//! Operation + Supergraph -> QueryPlan. Pure: no I/O, deterministic.
//!
//! The types in this file are the contract between the planner and the executor
//! (`switchyard-gateway`'s `execute` module). Add to them freely; restructure only with care, since
//! the executor matches on them.
//!
//! # Conventions the executor relies on
//!
//! - Root `__schema`, `__type` and `__typename` are answered by the gateway: they never appear
//!   in fetches, and an operation with only those plans to `node: None`.
//! - Fetched data uses the client's response keys (aliases), so it merges as is. Fields the
//!   planner adds (keys, `@requires` inputs, `__typename`) use their own names; when a response
//!   key at that object (any type condition, any nesting level inside a shared field) already
//!   means something else, they read an unconditional client field selecting the same leaf
//!   under its alias, else get the first free alias of `_sy_<name>`, `_sy_<name>_1`, ...;
//!   `RequiresSelection::Field::response_key` then says where to read it.
//! - `__typename` is fetched for every object at an abstract position (interface / union) and on
//!   every object a later entity fetch builds a representation from, and on every object whose
//!   whole selection `@skip`/`@include` can drop at run time (async-graphql subgraphs answer an
//!   object with no selected field as `null`, where the spec says `{}`).
//! - Fetch selections do not keep client field order; the executor shapes the response by
//!   walking the client operation over the merged data.
//! - Query fetches are `query <Op>__<service>__<n>(...)` when the client operation has a name
//!   (`n` numbers the fetches of one plan), else anonymous; variables are declared with the client's
//!   types (and defaults) and listed in `variable_usages`. Entity fetches are
//!   `query($representations:[_Any!]!,...){_entities(representations:$representations){...}}`.
//! - One task owns a request's merged data; no lock guards it. The executor prepares a fetch
//!   from a shared borrow of the data (representations, variables), sends it, and merges the
//!   result with exclusive access when it completes. A `Sequence` child starts once the one
//!   before it is merged; the children of a `Parallel` are in flight together, and a `Sequence`
//!   inside one moves on without waiting for its siblings. So a fetch may read only what the
//!   steps before it in enclosing `Sequence`s merged, never a `Parallel` sibling's data (siblings
//!   merge in the order they complete).
//! - Mutations: root fields run in order, one `Sequence` step per run of consecutive fields
//!   served by the same subgraph (such a run shares one fetch). A response key selected again
//!   later is one field run once (CollectFields): the later selection's sub-selections join
//!   the first's field (the subgraph sees one field). When the selections of a repeated key
//!   hang on variables, which one is first depends on their values: the plan branches on those
//!   variables (`Condition` nodes, at most 4 variables) and plans each assignment with the
//!   conditions it decides applied (`MutationTree`).
//! - `@skip` / `@include`: literal conditions are applied at plan time. Variable conditions stay
//!   in the subgraph operations (with the variable forwarded), and a fetch whose whole content is
//!   under a condition is wrapped in a `Condition` node, so a skipped branch sends no request.
//!   Keys and `@requires` inputs are fetched under the condition of the jump that needs them,
//!   so an entity fetch whose representation carries such an input serves only content under
//!   that condition: other content at the same path gets a fetch of its own (an object whose
//!   representation lacks a field is not sent, and would lose every field of the fetch).
//! - An entity fetch's `requires` has one `... on Type` fragment per concrete type it accepts;
//!   objects at the `Flatten` path matching none are not sent. Per-type splits at the last
//!   level share one fetch (the path has no trailing type condition); identical fetches under
//!   sibling type conditions higher up share one too, their path listing every type at that
//!   step (`library.@|[Book,Movie].related.@`).
//! - Entity fetches to one subgraph with the same selection, representations, rewrites and
//!   conditions, at the same stage of the plan but under different paths (`a.@` and `b.@`:
//!   two root fields reaching the same entity type) are one fetch: `FlattenNode::other_paths`
//!   lists the further paths, the executor collects the objects of every path into one
//!   representation list (each representation sent once) and routes each result back.
//!   Entity fetches to one subgraph whose selections differ stay separate fetches (a union
//!   would hand each path fields, errors and nulls it did not ask for); when they become ready
//!   together (children of one `Parallel`, or fetches in different branches waiting for the
//!   same response), the executor sends them in one request, each `_entities` under its own
//!   alias (`gateway/src/execute/batch.rs`).
//! - `ValueRewrite` paths may start with `TypeCondition([T])`: the rewrite applies only to
//!   objects whose `__typename` is `T`. `@interfaceObject` jumps use this to set `__typename` to
//!   the interface name in representations (the returned entities carry no `__typename`, so the
//!   concrete one already in the merged data is kept).
//! - `output_rewrites` apply to root fetches' data as well as to each returned entity, before
//!   merging. Fields that one subgraph selection set would select under one response name with
//!   different types (`A.id: ID!` and `B.id: ID` in sibling fragments: valid for the client,
//!   rejected by the subgraph's `FieldsInSetCanMerge`) are aliased `_sy_<key>_<n>` and renamed
//!   back by `RenameKey` rewrites (`conflict.rs`); `switchyard plan` prints them as `rename`.
//! - A valid operation that cannot be planned is a `PlanError` naming the field; the gateway
//!   answers it with `data: null` and a `QUERY_PLANNING_FAILED` error. Fields are never dropped
//!   silently.
//!
//! # How the planner searches
//!
//! The walk is greedy where nothing can go wrong and searches where something can. Where it
//! has a choice it lists the candidates best-first by a cheap estimate, plans them from the
//! same starting state (the fetch groups are shared copy-on-write, so a snapshot is cheap) and
//! rolls back those that fail (`Walk::choose`). Planning fails only when every candidate of a
//! choice fails, and then with an error that names the field. The choices:
//! - the subgraph of a root field, among those that resolve it (most of the selection resolved
//!   locally first, `@provides` counted): the subgraph decides the whole subtree, so the
//!   candidates are compared and the cheapest kept — fewest fetches, the earlier candidate on
//!   ties. A candidate is cut off as soon as it reaches the fetch count of the best so far,
//!   and the comparison ends early when one adds no fetch (or one, and no candidate left could
//!   reuse an existing fetch). Past a budget of evaluations per operation the first candidate
//!   that plans is kept;
//! - each entity jump for fields the current subgraph lacks: (subgraph, entity type, key),
//!   ordered by fields served, key available without a further jump, how much of the
//!   sub-selection the target resolves; the first that plans, together with the jumps for what
//!   it leaves, is kept. Only one key is tried when some key is available directly.
//!   A jump may plan only part of the fields it took (a field deep inside needs a subgraph the
//!   target cannot reach from there): what it left goes back to the object the jump started
//!   from and takes a jump of its own (`category { details }` from a, `category { id }` from
//!   b). Only progress counts — a jump that leaves as much as it took has failed — so the
//!   search ends. A candidate that fails, alone or among others, leaves nothing behind.
//!
//! What a walk cannot plan from where it is comes back as `Unplanned`: the selections left,
//! relative to the object being walked. Each field wraps what its sub-selection left, and the
//! enclosing object's walk tries to reach the wrapped field by an entity jump from there. So a
//! field no subgraph can be entered for directly (a value type, a type whose key lives
//! elsewhere) is fetched through the nearest enclosing entity that can be entered, by
//! selecting the path to it again (`_entities(Product) { category { details } }`); only at the
//! root does what is left become a planning error.
//!
//! Loops cannot run away: providing the same fields at the same object from the same subgraph
//! while already doing so fails that candidate at once, and entity jumps nest at most
//! `MAX_JUMP_DEPTH` deep.
//!
//! # Which types an abstract position is planned for
//!
//! - The subgraph's own field type counts (`@join__field(type:)`): where the supergraph says
//!   `Media` but the subgraph says `Book`, fragments on other types are dropped and `... on Book`
//!   is flattened, with `__typename` still fetched for the client's fragments.
//! - Fragment conditions mean what they mean in the supergraph. Where an abstract condition would
//!   select other objects in the subgraph (it lacks an `@join__implements` or a union member), the
//!   fragment is sent as one `... on T` per concrete type it means.
//! - On a shareable path (a field that several subgraphs could serve at that position), only
//!   the concrete types that every one of those subgraphs can return are fetched, as Apollo
//!   Router and Hive Router do: a plan may be served by any of them, so it relies only on what
//!   all of them know. Objects of the other types keep `__typename` and nothing else. A
//!   subgraph counts only if it can reach the position: it resolves every field from the root
//!   or from an enclosing entity it can enter. A value type's field that another subgraph also
//!   defines, but that nothing leads to there, does not narrow the types.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

mod conflict;
mod display;
mod group;
mod planner;

pub use display::path_string;
pub use planner::QueryPlanner;

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
    /// A root fetch's top-level response keys (fragments entered, `__typename` left out, each
    /// once), in selection order: where the executor puts the errors of a fetch that failed as a
    /// whole. Empty for an entity fetch, whose errors go to the objects it was sent for.
    pub root_keys: Vec<String>,
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
    /// More paths the same fetch serves: the objects at `path` and at each of these are sent in
    /// one request (one representation list) and each result goes back where it came from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_paths: Vec<Vec<PathElement>>,
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
    /// Values of variables that `@skip` / `@include` conditions use, known when planning: the
    /// conditions on them are decided now (the selections they exclude are not fetched and the
    /// rest go to subgraphs without them), so the plan holds only for requests with these values.
    /// Conditions on other variables are decided at run time.
    pub condition_values: BTreeMap<String, bool>,
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
