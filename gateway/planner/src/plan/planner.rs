//! The planning algorithm.
//!
//! A recursive walk of the client selection, "selection set at type T inside the fetch group of
//! subgraph S": fields S can resolve are added to S's fetch; the others are grouped by the
//! subgraph that can resolve most of them, and reached through an entity fetch keyed by a `@key`
//! whose fields S (or further jumps) can provide. `@requires` inputs are planned the same way
//! before the dependent fetch. Entity fetches to the same subgraph at the same response path
//! share one group unless that would create a dependency cycle; identical groups at paths that
//! differ only by type conditions are merged afterwards; the groups' dependency DAG then
//! becomes Sequence / Parallel nodes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use apollo_compiler::executable::OperationType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Name};

use super::group::{FieldText, Group, Groups};
use super::{
    ConditionNode, FetchNode, FlattenNode, OperationKind, PathElement, PlanError, PlanNode,
    PlanOptions, QueryPlan, RequiresSelection, ValueRewrite,
};
use crate::selection::{normalize, NField, NFrag, NSel};
use crate::supergraph::{FieldAvailability, KeyDef, Supergraph};

/// Prefix of aliases the planner gives to fields it adds when their name is already a client
/// response key for a different field.
const ALIAS_PREFIX: &str = "_sy_";
/// Bound on nested entity jumps for one requirement; deeper means the supergraph loops.
const MAX_JUMP_DEPTH: usize = 24;

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
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        options: &PlanOptions,
    ) -> Result<QueryPlan, PlanError> {
        let op = document
            .operations
            .get(operation_name)
            .map_err(|e| PlanError::UnknownOperation(e.message().to_string()))?;
        let sels = normalize(
            &op.selection_set,
            &document.fragments,
            &options.condition_values,
        );
        let kind = match op.operation_type {
            OperationType::Query => OperationKind::Query,
            OperationType::Mutation => OperationKind::Mutation,
            OperationType::Subscription => OperationKind::Subscription,
        };
        let var_decls: Vec<(String, String)> = op
            .variables
            .iter()
            .map(|v| {
                let mut decl = format!("${}:{}", v.name, v.ty);
                if let Some(default) = &v.default_value {
                    decl.push_str(&format!("={default}"));
                }
                (v.name.to_string(), decl)
            })
            .collect();
        let sg = &*self.supergraph;
        let root_type = op.selection_set.ty.clone();

        // Root fields in order, with the directive wrappers of the fragments they sit in.
        let mut roots: Vec<RootField> = Vec::new();
        flatten_root(sg, &root_type, &sels, &mut Vec::new(), &mut roots);
        roots.retain(|(f, _)| !matches!(f.name.as_str(), "__typename" | "__schema" | "__type"));
        if roots.is_empty() {
            return Ok(QueryPlan { node: None });
        }

        let mut namer = Namer {
            op_name: op.name.as_ref().map(|n| n.to_string()),
            counter: 0,
        };
        let mut planner = Walk {
            sg,
            opts: options,
            groups: Groups::default(),
            depth: 0,
            gate: Vec::new(),
            touched: Vec::new(),
            input: false,
            restrict: None,
            reach: (0..sg.subgraphs().len()).collect(),
            providing: Vec::new(),
            client_root: &sels,
            evaluations: 0,
            limit: None,
        };
        let node = if kind == OperationKind::Mutation {
            let vars = repeated_root_condition_variables(&roots);
            if vars.len() > MAX_MUTATION_BRANCH_VARIABLES {
                return Err(PlanError::Unsatisfiable(format!(
                    "a mutation root field is selected more than once under conditions on {} \
                     variables (${}); at most {MAX_MUTATION_BRANCH_VARIABLES} are supported",
                    vars.len(),
                    vars.iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", $"),
                )));
            }
            let tree = MutationTree::build(
                &planner,
                &root_type,
                &roots,
                &vars,
                &mut Vec::new(),
                &mut String::new(),
            )?;
            MutationPlanner {
                planner: &mut planner,
                root_type: &root_type,
                var_decls: &var_decls,
                namer: &mut namer,
            }
            .plan(tree)?
        } else {
            for (field, conds) in &roots {
                planner
                    .plan_root_field(&root_type, field, conds, None)
                    .map_err(|u| u.reason)?;
            }
            let mut groups = std::mem::take(&mut planner.groups).into_vec();
            super::group::merge_sibling_groups(&mut groups);
            super::group::merge_across_paths(&mut groups);
            build_node(sg, groups, kind, &root_type, &var_decls, &mut namer)
        };
        Ok(QueryPlan { node })
    }
}

/// A directive wrapper (`... @include(if: $v)`) and the variables it uses.
type Cond = (String, Vec<Name>, Vec<(Name, bool)>);

/// At most this many variables may decide which selection of a repeated mutation root field
/// runs: the plan branches on each of them (2^n alternatives).
const MAX_MUTATION_BRANCH_VARIABLES: usize = 4;

/// The variables that decide whether a mutation root field selected more than once under one
/// response key is selected at each of its places (its own and its fragments' `@skip` /
/// `@include`), in order of appearance.
fn repeated_root_condition_variables(roots: &[RootField]) -> Vec<Name> {
    let mut vars: Vec<Name> = Vec::new();
    for (i, (field, conds)) in roots.iter().enumerate() {
        let key = field.response_key();
        let repeated = roots
            .iter()
            .enumerate()
            .any(|(j, (other, _))| j != i && other.response_key() == key);
        if !repeated {
            continue;
        }
        let gates = field
            .gate
            .iter()
            .chain(conds.iter().flat_map(|c| c.2.iter()));
        for (var, _) in gates {
            if !vars.contains(var) {
                vars.push(var.clone());
            }
        }
    }
    vars
}

/// The root fields selected when every `(variable, value)` of `assignment` holds, with the
/// conditions it decides taken off (they hold).
fn roots_under(roots: &[RootField], assignment: &[(Name, bool)]) -> Vec<RootField> {
    if assignment.is_empty() {
        return roots.to_vec();
    }
    let decided = |var: &Name| assignment.iter().any(|(assigned, _)| assigned == var);
    let holds = |(var, value): &(Name, bool)| {
        assignment
            .iter()
            .all(|(assigned, to)| assigned != var || to == value)
    };
    let mut out = Vec::new();
    for (field, conds) in roots {
        if !(field.gate.iter().all(holds) && conds.iter().all(|c| c.2.iter().all(holds))) {
            continue;
        }
        let mut field = (**field).clone();
        field.gate.retain(|(var, _)| !decided(var));
        field.directives = print_conditions(&field.gate);
        field.vars.retain(|var| {
            !decided(var)
                || field.gate.iter().any(|(g, _)| g == var)
                || uses_variable(&field.args, var)
        });
        let conds = conds
            .iter()
            .filter_map(|(_, _, gate)| {
                let gate: Vec<(Name, bool)> = gate
                    .iter()
                    .filter(|(var, _)| !decided(var))
                    .cloned()
                    .collect();
                let mut vars: Vec<Name> = Vec::new();
                for (var, _) in &gate {
                    if !vars.contains(var) {
                        vars.push(var.clone());
                    }
                }
                (!gate.is_empty()).then(|| (print_conditions(&gate), vars, gate))
            })
            .collect();
        out.push((Arc::new(field), conds));
    }
    out
}

/// ` @include(if: $a) @skip(if: $b)` for a gate (how `normalize` prints the conditions it keeps).
fn print_conditions(gate: &[(Name, bool)]) -> String {
    gate.iter()
        .map(|(var, include)| {
            let directive = if *include { "include" } else { "skip" };
            format!(" @{directive}(if: ${var})")
        })
        .collect()
}

/// Whether printed arguments use `$name`.
fn uses_variable(args: &str, name: &str) -> bool {
    args.match_indices('$').any(|(at, _)| {
        let rest = &args[at + 1..];
        rest.starts_with(name)
            && !rest[name.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// A mutation's root fields in order, as runs of consecutive fields of one subgraph (each run
/// shares a fetch), for root fields whose repeated response keys are selected unconditionally
/// at every place (see [`repeated_root_condition_variables`]).
///
/// Selections of one response key are one field (CollectFields), run once where the key first
/// appears: a later one's sub-selections join the first's field, so the subgraph sees one field
/// (subgraphs that run every selection of a mutation field, as async-graphql does, would run it
/// twice otherwise).
fn mutation_runs(
    planner: &Walk<'_>,
    root_type: &Name,
    roots: Vec<RootField>,
) -> Result<Vec<(usize, Vec<RootField>)>, PlanError> {
    let mut runs: Vec<(usize, Vec<RootField>)> = Vec::new();
    let mut firsts: Vec<(Name, (usize, usize))> = Vec::new();
    for (field, conds) in roots {
        let key = field.response_key().clone();
        if let Some(&(_, (run, at))) = firsts.iter().find(|(k, _)| *k == key) {
            let slot = &mut runs[run].1[at].0;
            *slot = Arc::new(merge_later_selection(slot, &field));
            continue;
        }
        let prev = runs.last().map(|r| r.0);
        let graph = planner.choose_root_graph(root_type, &field, prev, &[])?;
        match runs.last_mut() {
            Some((g, fields)) if *g == graph => fields.push((field, conds)),
            _ => runs.push((graph, vec![(field, conds)])),
        }
        firsts.push((key, (runs.len() - 1, runs[runs.len() - 1].1.len() - 1)));
    }
    Ok(runs)
}

/// Root field `first` with the sub-selections of `later` (the same response key, selected
/// whenever `first` is) added.
fn merge_later_selection(first: &NField, later: &NField) -> NField {
    let mut merged = first.clone();
    merged.children.extend(later.children.iter().cloned());
    merged
}

/// A mutation's runs of root fields (see [`mutation_runs`]) for each assignment of the
/// variables its repeated root fields hang on, as a decision tree on those variables. A
/// variable whose value leaves the same runs either way is not branched on.
enum MutationTree {
    Runs(Vec<(usize, Vec<RootField>)>),
    Branch(Name, Box<MutationTree>, Box<MutationTree>),
}

impl MutationTree {
    /// The tree for the rest of `vars`, with `assignment` made; `signature` is set to a
    /// printout that is equal for equal trees.
    fn build(
        planner: &Walk<'_>,
        root_type: &Name,
        roots: &[RootField],
        vars: &[Name],
        assignment: &mut Vec<(Name, bool)>,
        signature: &mut String,
    ) -> Result<Self, PlanError> {
        let Some((var, rest)) = vars.split_first() else {
            let runs = mutation_runs(planner, root_type, roots_under(roots, assignment))?;
            // Only a branch compares signatures (most mutations hang on no variable at all).
            if !assignment.is_empty() {
                *signature = format!("{runs:?}");
            }
            return Ok(MutationTree::Runs(runs));
        };
        let mut branch = |value: bool, signature: &mut String| {
            assignment.push((var.clone(), value));
            let tree = Self::build(planner, root_type, roots, rest, assignment, signature);
            assignment.pop();
            tree
        };
        let (mut if_signature, mut else_signature) = (String::new(), String::new());
        let if_tree = branch(true, &mut if_signature)?;
        let else_tree = branch(false, &mut else_signature)?;
        if if_signature == else_signature {
            *signature = if_signature;
            return Ok(if_tree);
        }
        *signature = format!("${var}?({if_signature}):({else_signature})");
        Ok(MutationTree::Branch(
            var.clone(),
            Box::new(if_tree),
            Box::new(else_tree),
        ))
    }
}

/// Plans a mutation: one alternative per assignment of the variables its repeated root fields
/// hang on (none for most), chosen at run time by `Condition` nodes. In each alternative every
/// selection of a repeated field is either gone or certainly selected, so the field runs
/// exactly once, at its first place (CollectFields with the request's variable values).
struct MutationPlanner<'p, 'a> {
    planner: &'p mut Walk<'a>,
    root_type: &'p Name,
    var_decls: &'p [(String, String)],
    namer: &'p mut Namer,
}

impl MutationPlanner<'_, '_> {
    fn plan(&mut self, tree: MutationTree) -> Result<Option<PlanNode>, PlanError> {
        let runs = match tree {
            MutationTree::Branch(var, if_tree, else_tree) => {
                let if_clause = self.plan(*if_tree)?.map(Box::new);
                let else_clause = self.plan(*else_tree)?.map(Box::new);
                if if_clause.is_none() && else_clause.is_none() {
                    return Ok(None);
                }
                return Ok(Some(PlanNode::Condition(ConditionNode {
                    condition: var.to_string(),
                    if_clause,
                    else_clause,
                })));
            }
            MutationTree::Runs(runs) => runs,
        };
        let sg = self.planner.sg;
        let mut nodes = Vec::new();
        for (graph, fields) in runs {
            self.planner.groups.clear();
            self.planner.touched.clear();
            for (field, conds) in &fields {
                self.planner
                    .plan_root_field(self.root_type, field, conds, Some(graph))
                    .map_err(|u| u.reason)?;
            }
            let mut groups = std::mem::take(&mut self.planner.groups).into_vec();
            super::group::merge_sibling_groups(&mut groups);
            super::group::merge_across_paths(&mut groups);
            if let Some(node) = build_node(
                sg,
                groups,
                OperationKind::Mutation,
                self.root_type,
                self.var_decls,
                self.namer,
            ) {
                nodes.push(node);
            }
        }
        Ok(sequence(nodes))
    }
}

/// A root field and the directive wrappers of the fragments it sits in.
type RootField = (Arc<NField>, Vec<Cond>);

/// How promising a root subgraph is: fields of the selection it resolves itself, whether the
/// plan already fetches from it, then earlier subgraphs first.
type RootScore = (usize, bool, std::cmp::Reverse<usize>);

/// How good an entity jump is: fields served, key directly available, sub-selection the
/// target resolves by itself, then earlier subgraphs first.
type JumpScore = (usize, bool, usize, std::cmp::Reverse<usize>);

/// Fields a jump takes out of the pending list (by index), with what it leaves of each (the
/// rest of a shared value object, if any).
type Taken = Vec<(usize, Option<Arc<NField>>)>;

fn flatten_root(
    sg: &Supergraph,
    ty: &Name,
    sels: &[NSel],
    conds: &mut Vec<Cond>,
    out: &mut Vec<RootField>,
) {
    for sel in sels {
        match sel {
            NSel::Field(f) => out.push((f.clone(), conds.clone())),
            NSel::Frag(frag) => {
                if frag.cond.as_ref().is_some_and(|c| !sg.applies(c, ty)) {
                    continue;
                }
                let wrapped = !frag.directives.is_empty();
                if wrapped {
                    conds.push((
                        frag.directives.clone(),
                        frag.vars.clone(),
                        frag.gate.clone(),
                    ));
                }
                flatten_root(sg, ty, &frag.children, conds, out);
                if wrapped {
                    conds.pop();
                }
            }
        }
    }
}

/// Fields of `sels` that apply to an object of concrete type `ty`, fragments without directives
/// expanded; fragments with directives are returned separately (they become wrappers).
fn flatten(
    sg: &Supergraph,
    ty: &str,
    sels: &[NSel],
    fields: &mut Vec<Arc<NField>>,
    wrapped: &mut Vec<Arc<NFrag>>,
) {
    for sel in sels {
        match sel {
            NSel::Field(f) => fields.push(f.clone()),
            NSel::Frag(frag) => {
                if frag.cond.as_ref().is_some_and(|c| !sg.applies(c, ty)) {
                    continue;
                }
                if frag.directives.is_empty() {
                    flatten(sg, ty, &frag.children, fields, wrapped);
                } else {
                    wrapped.push(frag.clone());
                }
            }
        }
    }
}

/// All fields applying to `ty`, directive wrappers included (for feasibility checks).
fn flatten_all(sg: &Supergraph, ty: &str, sels: &[NSel], out: &mut Vec<Arc<NField>>) {
    for sel in sels {
        match sel {
            NSel::Field(f) => out.push(f.clone()),
            NSel::Frag(frag) => {
                if frag.cond.as_ref().is_none_or(|c| sg.applies(c, ty)) {
                    flatten_all(sg, ty, &frag.children, out);
                }
            }
        }
    }
}

/// If `provided` (a `@provides` selection at an object of type `ty`) covers `field`, the
/// provided sub-selection.
fn provided_match(sg: &Supergraph, provided: &[NSel], ty: &str, field: &str) -> Option<Vec<NSel>> {
    if provided.is_empty() {
        return None;
    }
    let mut fields = Vec::new();
    flatten_all(sg, ty, provided, &mut fields);
    let mut found = false;
    let mut children = Vec::new();
    for f in fields {
        if f.name == field {
            found = true;
            children.extend(f.children.iter().cloned());
        }
    }
    found.then_some(children)
}

/// `field` with another sub-selection (a part of a shared value object).
fn with_children(field: &NField, children: Vec<NSel>) -> Arc<NField> {
    let mut copy = field.clone();
    copy.children = children;
    Arc::new(copy)
}

/// `frag` with another sub-selection, same type condition and directives.
fn frag_with_children(frag: &NFrag, children: Vec<NSel>) -> NSel {
    let mut copy = frag.clone();
    copy.children = children;
    NSel::Frag(Arc::new(copy))
}

fn path_with(path: &[PathElement], extra: PathElement) -> Vec<PathElement> {
    let mut out = Vec::with_capacity(path.len() + 1);
    out.extend_from_slice(path);
    out.push(extra);
    out
}

fn field_path(path: &[PathElement], field: &NField) -> Vec<PathElement> {
    let mut out = path_with(path, PathElement::Key(field.response_key().to_string()));
    out.extend(std::iter::repeat_n(PathElement::List, field.list_depth));
    out
}

/// The planning state for one operation (or one mutation step).
struct Walk<'a> {
    sg: &'a Supergraph,
    opts: &'a PlanOptions,
    groups: Groups,
    depth: usize,
    /// `@skip` / `@include` conditions of the selections being walked.
    gate: Vec<(Name, bool)>,
    /// Groups in the order the walk added content to them; a requirement walk reads the part
    /// it appended to learn which fetches the dependent fetch waits for.
    touched: Vec<usize>,
    /// Whether the walk plans inputs (keys, `@requires` fields) rather than client fields.
    input: bool,
    /// The concrete types the next walked abstract position is planned for, when fewer than
    /// its subgraph's own ([`Self::restricted_types`]; set by `emit_field`).
    restrict: Option<Vec<Name>>,
    /// The subgraphs that could serve the object being walked at its position in the
    /// operation: those that resolve every field on the way from the nearest enclosing entity
    /// they can enter (or from the root). Decides which subgraphs share a path
    /// ([`Self::restricted_types`]).
    reach: Vec<usize>,
    /// Requirements being provided, innermost last, as (subgraph, field set, object path
    /// address and length):
    /// providing the same fields at the same object from the same subgraph again is a cycle.
    providing: Vec<(usize, usize, usize, usize)>,
    /// The client operation's root selection: [`Self::provide`] reads, at a requirement's
    /// response path, every key any client field there uses (the walk sees one field at a
    /// time, and a same-keyed sibling planned later would otherwise clash with it).
    client_root: &'a [NSel],
    /// Candidates tried so far; past [`MAX_EVALUATIONS`] the first that works is kept.
    evaluations: usize,
    /// While comparing candidates: the fetch count at which the one being planned is no
    /// longer cheaper than the best found.
    limit: Option<usize>,
}

/// Why part of a selection could not be planned the way the walk went.
///
/// `sels` is what is left, relative to the object the returning function was planning: a walk
/// plans everything else at its object and returns the rest, `emit_field` wraps it in the field
/// (`category { details }`), and the enclosing object's walk then tries to reach that with an
/// entity jump from there, so a field no subgraph can be entered for directly is fetched
/// through the nearest enclosing entity that can be (`_entities(Product) { category { details }
/// }`). Empty `sels`: nothing an enclosing object could fetch instead; `reason` says why.
struct Unplanned {
    sels: Vec<NSel>,
    reason: PlanError,
}

impl From<PlanError> for Unplanned {
    fn from(reason: PlanError) -> Self {
        Self {
            sels: Vec::new(),
            reason,
        }
    }
}

/// The result of planning part of an operation.
type Planned = Result<(), Unplanned>;

/// Takes what a field's planning left into `nonlocal`, for a jump from the current object;
/// passes on a failure nothing at this object could retry.
fn defer(
    result: Planned,
    nonlocal: &mut Vec<Arc<NField>>,
    reason: &mut Option<PlanError>,
) -> Planned {
    match result {
        Ok(()) => Ok(()),
        Err(u) if u.sels.is_empty() => Err(u),
        Err(u) => {
            let rest = as_fields(u.sels, nonlocal);
            debug_assert!(rest.is_empty(), "a field's remainder is that field");
            reason.get_or_insert(u.reason);
            Ok(())
        }
    }
}

/// How many selections `sels` holds, nested ones included.
fn sel_size(sels: &[NSel]) -> usize {
    sels.iter()
        .map(|sel| match sel {
            NSel::Field(f) => 1 + sel_size(&f.children),
            NSel::Frag(frag) => 1 + sel_size(&frag.children),
        })
        .sum()
}

/// [`sel_size`] of fields.
fn fields_size(fields: &[Arc<NField>]) -> usize {
    fields.iter().map(|f| 1 + sel_size(&f.children)).sum()
}

/// Moves the fields of `sels` into `out`; returns the other selections.
fn as_fields(sels: Vec<NSel>, out: &mut Vec<Arc<NField>>) -> Vec<NSel> {
    let mut rest = Vec::new();
    for sel in sels {
        match sel {
            NSel::Field(f) => out.push(f),
            other => rest.push(other),
        }
    }
    rest
}

/// An object being planned: group `g` fetches it at `obj_loc`, at response path `path`.
#[derive(Clone, Copy)]
struct At<'x> {
    g: usize,
    obj_loc: &'x [usize],
    path: &'x [PathElement],
    ty: &'x Name,
    /// What a `@provides` makes resolvable at the object in `g`'s subgraph.
    provided: &'x [NSel],
    /// The directive wrappers (fragments with `@skip`/`@include`) the walk is inside.
    conds: &'x [Cond],
    /// The client's selection at the object: its response keys are taken.
    client: &'x [NSel],
}

/// Where a selection is added: group `g`'s selection at `loc`, at response path `path`.
#[derive(Clone, Copy)]
struct Slot<'x> {
    g: usize,
    loc: &'x [usize],
    path: &'x [PathElement],
}

/// What a walk could not plan at its object so far, and the first reason why.
#[derive(Default)]
struct Left {
    sels: Vec<NSel>,
    reason: Option<PlanError>,
}

impl Left {
    /// `Err` with what is left once any part failed.
    fn into_result(self) -> Planned {
        match self.reason {
            Some(reason) => Err(Unplanned {
                sels: self.sels,
                reason,
            }),
            None => Ok(()),
        }
    }
}

/// Whether a candidate could add to fetches that already exist (see `Walk::choose`).
type Reuses<'f, W, C> = &'f dyn Fn(&W, &C) -> bool;

/// Relative cost of the plan built so far: fetches, then the longest chain of fetches that
/// wait for one another.
type Cost = (usize, usize);

/// Bound on the candidates compared per operation. Each choice between candidates plans every
/// candidate to the end of its subtree, so nested choices multiply; past the bound a choice
/// keeps the first candidate that plans, which is still correct, only possibly not cheapest.
const MAX_EVALUATIONS: usize = 256;

/// A chosen entity jump.
#[derive(Clone)]
struct Jump<'a> {
    graph: usize,
    /// Type the target subgraph resolves: the object type, or an `@interfaceObject` interface.
    entity: Name,
    key: &'a KeyDef,
    fields: Vec<Arc<NField>>,
    /// For a jump out of an `@interfaceObject` subgraph: a selection planned in the target at
    /// the interface as an abstract type (the target knows the concrete types).
    abstract_sels: Option<Vec<NSel>>,
}

impl<'a> Walk<'a> {
    /// Plans with each candidate in turn from the same starting state, rolling back those that
    /// fail; fails only when every candidate fails, with the first candidate's error.
    ///
    /// With `reuses: None` the first candidate that plans is kept (candidates come best-first
    /// by a cheap estimate). With `Some(reuses)` the cheapest that plans is kept ([`Cost`]:
    /// fewest fetches, earlier candidates on ties): a candidate stops as soon as it has added
    /// as many fetches as the best so far, and the search stops at one that adds none, or adds
    /// one while no candidate left could add to an existing fetch (`reuses`).
    fn choose<C>(
        &mut self,
        candidates: &[C],
        reuses: Option<Reuses<'_, Self, C>>,
        mut run: impl FnMut(&mut Self, &C) -> Planned,
    ) -> Planned {
        let saved = self.groups.clone();
        if let [only] = candidates {
            // A failed candidate leaves nothing behind, so what is left can be planned anew.
            let touched = self.touched.len();
            let result = run(self, only);
            if result.is_err() {
                self.groups = saved;
                self.touched.truncate(touched);
            }
            return result;
        }
        let touched = self.touched.len();
        let outer_limit = self.limit;
        let mut best: Option<(Cost, Groups, Vec<usize>)> = None;
        let mut error = None;
        for (i, candidate) in candidates.iter().enumerate() {
            if i > 0 {
                self.groups.clone_from(&saved);
                self.touched.truncate(touched);
            }
            self.evaluations += 1;
            let result = run(self, candidate);
            self.limit = outer_limit;
            match result {
                Ok(()) => {
                    let Some(reuses) = reuses else {
                        return Ok(());
                    };
                    let added = self.groups.len() - saved.len();
                    let unbeatable = added == 0
                        || (added == 1 && !candidates[i + 1..].iter().any(|c| reuses(self, c)));
                    let cost = self.cost();
                    if best.as_ref().is_none_or(|(b, _, _)| cost < *b) {
                        let tail = self.touched.split_off(touched);
                        best = Some((cost, std::mem::take(&mut self.groups), tail));
                        // Later candidates are cut off once they are no cheaper.
                        let cap = saved.len() + added;
                        self.limit = Some(outer_limit.map_or(cap, |l| l.min(cap)));
                    }
                    if unbeatable || self.evaluations > MAX_EVALUATIONS {
                        break;
                    }
                }
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        self.limit = outer_limit;
        self.touched.truncate(touched);
        match best {
            Some((_, groups, tail)) => {
                self.groups = groups;
                self.touched.extend(tail);
                Ok(())
            }
            None => {
                self.groups = saved;
                Err(error.unwrap_or_else(|| PlanError::Unsatisfiable("no candidate".into()).into()))
            }
        }
    }

    /// Fails a candidate that has grown to the size of a cheaper one already found.
    fn within_limit(&self) -> Planned {
        match self.limit {
            Some(limit) if self.groups.len() >= limit => {
                Err(PlanError::Unsatisfiable("a cheaper plan was found".into()).into())
            }
            _ => Ok(()),
        }
    }

    /// See [`Cost`].
    fn cost(&self) -> Cost {
        let n = self.groups.len();
        let mut chain = vec![0usize; n];
        // Dependencies point at groups created earlier, so one pass in creation order settles
        // every chain; a later-created dependency (possible after merges) only makes the
        // figure an estimate, which is all the comparison needs.
        for i in 0..n {
            chain[i] = 1 + self.groups[i]
                .deps
                .iter()
                .filter(|&&d| d < i)
                .map(|&d| chain[d])
                .max()
                .unwrap_or(0);
        }
        (n, chain.into_iter().max().unwrap_or(0))
    }

    fn touch(&mut self, g: usize) {
        if self.touched.last() != Some(&g) {
            self.touched.push(g);
        }
    }

    fn push_gate(&mut self, gate: &[(Name, bool)]) {
        self.gate.extend(gate.iter().cloned());
    }

    fn pop_gate(&mut self, gate: &[(Name, bool)]) {
        self.gate.truncate(self.gate.len() - gate.len());
    }

    fn gate_with(&self, extra: &[(Name, bool)]) -> Vec<(Name, bool)> {
        let mut out = self.gate.clone();
        out.extend(extra.iter().cloned());
        out
    }

    fn service(&self, g: usize) -> usize {
        self.groups[g].service
    }

    fn local(
        &self,
        graph: usize,
        ty: &str,
        field: &NField,
        provided: &[NSel],
    ) -> (bool, Option<Vec<NSel>>) {
        if field.name == "__typename" {
            return (true, None);
        }
        let prov = provided_match(self.sg, provided, ty, &field.name);
        let avail =
            self.sg
                .field_availability(graph, ty, &field.name, &self.opts.enabled_override_labels);
        let local = match avail {
            FieldAvailability::Yes => true,
            FieldAvailability::External | FieldAvailability::No => prov.is_some(),
            FieldAvailability::Requires(_) => false,
        };
        (local, prov)
    }

    /// Whether `graph` resolves all of `sels` at an object of concrete type `ty` by itself.
    fn all_local(&self, graph: usize, ty: &str, sels: &[NSel], provided: &[NSel]) -> bool {
        if self.sg.type_in_graph(graph, ty).is_none() {
            return false;
        }
        let mut fields = Vec::new();
        flatten_all(self.sg, ty, sels, &mut fields);
        fields.iter().all(|f| {
            let (local, prov) = self.local(graph, ty, f, provided);
            if !local {
                return false;
            }
            if f.name == "__typename" || !self.sg.is_composite(&f.ty) {
                return true;
            }
            let mut child_prov = prov.unwrap_or_default();
            if let Some(p) = self.sg.provides(graph, ty, &f.name) {
                child_prov.extend(p.iter().cloned());
            }
            if self.sg.is_abstract(&f.ty) {
                self.all_local_abstract(graph, &f.ty, &f.children, &child_prov)
            } else {
                self.all_local(graph, &f.ty, &f.children, &child_prov)
            }
        })
    }

    /// Whether `graph` resolves `sels` at an abstract position without splitting per type.
    fn all_local_abstract(&self, graph: usize, ty: &str, sels: &[NSel], provided: &[NSel]) -> bool {
        if self
            .sg
            .type_in_graph(graph, ty)
            .is_none_or(|t| t.interface_object)
        {
            return false;
        }
        for sel in sels {
            if let NSel::Field(f) = sel {
                if f.name == "__typename" {
                    continue;
                }
                let avail = self.sg.field_availability(
                    graph,
                    ty,
                    &f.name,
                    &self.opts.enabled_override_labels,
                );
                let provided_here = provided_match(self.sg, provided, ty, &f.name).is_some();
                if !matches!(avail, FieldAvailability::Yes) && !provided_here {
                    return false;
                }
            }
        }
        self.sg
            .possible_types_in(graph, ty)
            .iter()
            .all(|c| self.all_local(graph, c, sels, provided))
    }

    /// The concrete types an object at a position of type `ty` may have in `graph`.
    fn position_types(&self, graph: usize, ty: &str) -> Vec<Name> {
        if self.sg.is_abstract(ty) {
            self.sg.possible_types_in(graph, ty).to_vec()
        } else {
            Name::new(ty).map(|n| vec![n]).unwrap_or_default()
        }
    }

    /// Of the concrete types `at`, those a fragment on `cond` applies to, by the supergraph's
    /// rules (what the client means).
    fn condition_targets(&self, cond: &str, at: &[Name]) -> Vec<Name> {
        at.iter()
            .filter(|t| self.sg.applies(cond, t))
            .cloned()
            .collect()
    }

    /// The type `parent.field` has in `graph`: the subgraph may declare a narrower one than
    /// the supergraph (`@join__field(type:)`), e.g. `Book` where the supergraph has a union.
    fn sub_type(&self, graph: usize, parent: &str, field: &NField) -> Name {
        if !self.sg.has_own_field_types(graph) {
            return field.ty.clone();
        }
        self.sg
            .field_type_in(graph, parent, &field.name)
            .map(|t| t.trim_matches(|c| c == '[' || c == ']' || c == '!'))
            .filter(|t| *t != field.ty.as_str() && self.sg.is_composite(t))
            .and_then(|t| Name::new(t).ok())
            .unwrap_or_else(|| field.ty.clone())
    }

    /// The subgraphs that could serve `parent.field` at the current position: they resolve the
    /// field and either reach the parent object the same way ([`Self::reach`]) or can enter it
    /// (it is an entity with a resolvable key there).
    fn field_reach(&self, parent: &str, field: &NField) -> Vec<usize> {
        let labels = &self.opts.enabled_override_labels;
        (0..self.sg.subgraphs().len())
            .filter(|&h| {
                matches!(
                    self.sg.field_availability(h, parent, &field.name, labels),
                    FieldAvailability::Yes
                ) && (self.reach.contains(&h)
                    || self
                        .sg
                        .type_in_graph(h, parent)
                        .is_some_and(|t| t.keys.iter().any(|k| k.resolvable)))
            })
            .collect()
    }

    /// For an abstract-typed field that several subgraphs could serve at this position (a
    /// shareable path: [`Self::reach`], set to the field's by the caller), the concrete types
    /// to plan for in `graph` when they are fewer than `graph`'s own: only the types every one
    /// of those subgraphs can return (the reference routers' rule: the plan relies only on
    /// what any subgraph serving the path would return). `None` when all of `graph`'s types
    /// qualify. A subgraph that defines the field but cannot reach this position (no root
    /// field or enterable entity leads there) does not count.
    fn restricted_types(
        &self,
        graph: usize,
        parent: &str,
        field: &NField,
        sub: &Name,
    ) -> Option<Vec<Name>> {
        if !self.sg.is_abstract(sub) {
            return None;
        }
        let serving = &self.reach;
        if serving.len() < 2 || !serving.contains(&graph) {
            return None;
        }
        let own = self.position_types(graph, sub);
        let common: Vec<Name> = own
            .iter()
            .filter(|t| {
                serving.iter().all(|&h| {
                    let other = self.sub_type(h, parent, field);
                    self.position_types(h, &other).contains(t)
                })
            })
            .cloned()
            .collect();
        (common.len() != own.len()).then_some(common)
    }

    /// Copies `sels` into group `g` as they are (the caller checked they are all local).
    /// `at`: the concrete types objects here may have when fewer than the subgraph's own
    /// ([`Self::restricted_types`]). A fragment on an abstract type that would select other
    /// objects in the subgraph than in the supergraph (the subgraph lacks an implementation or
    /// member) is written as one fragment per concrete type it means.
    fn emit_local(
        &mut self,
        g: usize,
        loc: &[usize],
        parent: &str,
        at: Option<&[Name]>,
        sels: &[NSel],
    ) {
        let graph = self.service(g);
        for sel in sels {
            match sel {
                NSel::Field(f) => {
                    let composite = self.sg.is_composite(&f.ty);
                    let floc = self.groups[g]
                        .sel
                        .add_field(loc, FieldText::of(f), composite);
                    self.groups[g]
                        .vars
                        .extend(f.vars.iter().map(|v| v.to_string()));
                    if composite {
                        if self.sg.is_abstract(&f.ty) {
                            self.groups[g].sel.add_typename(&floc);
                        }
                        let sub = self.sub_type(graph, parent, f);
                        let reach = self.field_reach(parent, f);
                        let outer = std::mem::replace(&mut self.reach, reach);
                        let restricted = self.restricted_types(graph, parent, f, &sub);
                        self.emit_local(g, &floc, &sub, restricted.as_deref(), &f.children);
                        self.reach = outer;
                    }
                }
                NSel::Frag(frag) => {
                    let mut inner_at = None;
                    if let Some(cond) = frag.cond.as_deref().filter(|c| *c != parent) {
                        let own = self.position_types(graph, parent);
                        let targets = self.condition_targets(cond, at.unwrap_or(&own));
                        if targets.is_empty() {
                            continue;
                        }
                        let natural: Vec<Name> = if self.sg.type_in_graph(graph, cond).is_none() {
                            Vec::new()
                        } else {
                            let members = self.position_types(graph, cond);
                            own.iter()
                                .filter(|t| members.contains(t))
                                .cloned()
                                .collect()
                        };
                        if natural != targets {
                            for t in &targets {
                                let c = (t.as_str() != parent).then_some(t.as_str());
                                let floc = self.groups[g].sel.add_inline(loc, c, &frag.directives);
                                self.groups[g]
                                    .vars
                                    .extend(frag.vars.iter().map(|v| v.to_string()));
                                self.emit_local(g, &floc, t, None, &frag.children);
                            }
                            continue;
                        }
                        if self.sg.is_abstract(cond) {
                            inner_at = Some(targets);
                        }
                    }
                    let cond = frag.cond.as_deref().filter(|c| *c != parent);
                    let floc = self.groups[g].sel.add_inline(loc, cond, &frag.directives);
                    self.groups[g]
                        .vars
                        .extend(frag.vars.iter().map(|v| v.to_string()));
                    let inner = cond.unwrap_or(parent).to_string();
                    let inner_at = inner_at
                        .as_deref()
                        .or(if cond.is_none() { at } else { None });
                    self.emit_local(g, &floc, &inner, inner_at, &frag.children);
                }
            }
        }
    }

    /// Picks the subgraph for a root field: the requested one if it can, else the best of
    /// [`Self::root_candidates`].
    fn choose_root_graph(
        &self,
        root: &Name,
        field: &NField,
        prefer: Option<usize>,
        exclude: &[usize],
    ) -> Result<usize, PlanError> {
        let candidates = self.root_candidates(root, field, exclude);
        if let Some(p) = prefer {
            if candidates.contains(&p) {
                return Ok(p);
            }
        }
        candidates.first().copied().ok_or_else(|| {
            PlanError::Unsatisfiable(format!("no subgraph resolves `{root}.{}`", field.name))
        })
    }

    /// The subgraphs that resolve a root field, most promising first: the one that resolves
    /// most of the field's selection by itself, then one already fetched from, then
    /// declaration order.
    fn root_candidates(&self, root: &Name, field: &NField, exclude: &[usize]) -> Vec<usize> {
        let labels = &self.opts.enabled_override_labels;
        let existing: Vec<usize> = self
            .groups
            .iter()
            .filter(|g| !g.entity)
            .map(|g| g.service)
            .collect();
        let mut scored: Vec<(RootScore, usize)> = (0..self.sg.subgraphs().len())
            .filter(|g| !exclude.contains(g))
            .filter(|&g| {
                matches!(
                    self.sg.field_availability(g, root, &field.name, labels),
                    FieldAvailability::Yes
                )
            })
            .map(|g| {
                let provided = self.sg.provides(g, root, &field.name).unwrap_or(&[]);
                let score = (
                    self.coverage(g, &field.ty, &field.children, provided),
                    existing.contains(&g),
                    std::cmp::Reverse(g),
                );
                (score, g)
            })
            .collect();
        scored.sort_by_key(|s| std::cmp::Reverse(s.0));
        scored.into_iter().map(|(_, g)| g).collect()
    }

    /// How many fields of `sels` (recursively) `graph` resolves without leaving, counting what
    /// a `@provides` (`provided`) makes available.
    fn coverage(&self, graph: usize, ty: &str, sels: &[NSel], provided: &[NSel]) -> usize {
        if !self.sg.is_composite(ty) {
            return 0;
        }
        let types: Vec<Name> = if self.sg.is_abstract(ty) {
            self.sg.possible_types_in(graph, ty).to_vec()
        } else {
            Name::new(ty).map(|n| vec![n]).unwrap_or_default()
        };
        let mut total = 0;
        for t in &types {
            let mut fields = Vec::new();
            flatten_all(self.sg, t, sels, &mut fields);
            for f in fields {
                if f.name == "__typename" {
                    continue;
                }
                let (local, prov) = self.local(graph, t, &f, provided);
                if !local {
                    continue;
                }
                total += 1;
                if !f.children.is_empty() {
                    let mut below = prov.unwrap_or_default();
                    if let Some(p) = self.sg.provides(graph, t, &f.name) {
                        below.extend(p.iter().cloned());
                    }
                    total += self.coverage(graph, &f.ty, &f.children, &below);
                }
            }
        }
        total
    }

    fn root_group(&mut self, graph: usize) -> usize {
        if let Some(i) = self
            .groups
            .iter()
            .position(|g| !g.entity && g.service == graph)
        {
            return i;
        }
        self.groups.push(Group::new(graph, false, Vec::new()));
        self.groups.len() - 1
    }

    fn plan_root_field(
        &mut self,
        root: &Name,
        field: &Arc<NField>,
        conds: &[Cond],
        graph: Option<usize>,
    ) -> Planned {
        if let Some(graph) = graph {
            return self.plan_root_field_in(graph, root, field, conds, true);
        }
        let candidates = self.root_candidates(root, field, &[]);
        if candidates.is_empty() {
            return Err(PlanError::Unsatisfiable(format!(
                "no subgraph resolves `{root}.{}`",
                field.name
            ))
            .into());
        }
        // Which subgraph a root field comes from decides the whole subtree: compare them.
        let reuses =
            |s: &Self, &graph: &usize| s.groups.iter().any(|g| !g.entity && g.service == graph);
        self.choose(&candidates, Some(&reuses), |s, &first| {
            s.plan_root_field_in(first, root, field, conds, false)
        })
    }

    /// Plans a root field starting in subgraph `first`; `fixed` forbids splitting it across
    /// subgraphs (mutations).
    fn plan_root_field_in(
        &mut self,
        first: usize,
        root: &Name,
        field: &Arc<NField>,
        conds: &[Cond],
        fixed: bool,
    ) -> Planned {
        let object = self.sg.is_composite(&field.ty) && !self.sg.is_abstract(&field.ty);
        // Lists are not split: merging two subgraphs' lists item by item would trust both to
        // return the same items in the same order.
        let splittable = self.is_value_type(&field.ty) || field.list_depth == 0;
        let provided = self.sg.provides(first, root, &field.name).unwrap_or(&[]);
        if fixed
            || !object
            || !splittable
            || self.all_local(first, &field.ty, &field.children, provided)
            || self.choose_root_graph(root, field, None, &[first]).is_err()
        {
            return self.emit_root_field(first, root, field, conds);
        }
        // A shared root field one subgraph only partly resolves: every subgraph that adds
        // something fetches its part in parallel (fewer sequential steps than entity jumps);
        // what none of them resolves directly is reached from the first by entity jumps.
        let (here, mut rest) = self.split_value(first, &field.ty, &field.children);
        let mut parts = vec![(first, here.unwrap_or_default())];
        let mut used = vec![first];
        while !rest.is_empty() {
            let rest_field = with_children(field, rest.clone());
            let Ok(next) = self.choose_root_graph(root, &rest_field, None, &used) else {
                break;
            };
            used.push(next);
            if let (Some(part), left) = self.split_value(next, &field.ty, &rest) {
                parts.push((next, part));
                rest = left;
            }
        }
        parts[0].1.extend(rest);
        for (graph, sels) in parts {
            if !sels.is_empty() {
                self.emit_root_field(graph, root, &with_children(field, sels), conds)?;
            }
        }
        Ok(())
    }

    fn emit_root_field(
        &mut self,
        graph: usize,
        root: &Name,
        field: &NField,
        conds: &[Cond],
    ) -> Planned {
        let g = self.root_group(graph);
        self.within_limit()?;
        let mut loc = Vec::new();
        let mut gate: Vec<(Name, bool)> = Vec::new();
        for (dirs, vars, g_) in conds {
            gate.extend(g_.iter().cloned());
            loc = self.groups[g].sel.add_inline(&loc, None, dirs);
            self.groups[g]
                .vars
                .extend(vars.iter().map(|v| v.to_string()));
        }
        // What the field leads to (entity jumps, their keys) hangs on the fragments' conditions
        // as much as the field does (`emit_field` adds the field's own): without them the root
        // fetch lost its `Condition` node whenever a jump contributed to it, and a skipped
        // fragment still sent its fetch.
        let wrappers = gate.len();
        self.push_gate(&gate);
        gate.extend(field.gate.iter().cloned());
        self.groups[g].contribute(&gate);
        let planned = self.emit_field(
            Slot {
                g,
                loc: &loc,
                path: &[],
            },
            root,
            field,
            None,
        );
        self.pop_gate(&gate[..wrappers]);
        planned
    }

    /// Adds `field` (resolvable by the slot's subgraph on `parent`) at the slot and plans its
    /// sub-selection.
    fn emit_field(
        &mut self,
        slot: Slot<'_>,
        parent: &str,
        field: &NField,
        provided: Option<Vec<NSel>>,
    ) -> Planned {
        let Slot { g, loc, path } = slot;
        let graph = self.service(g);
        let composite = self.sg.is_composite(&field.ty);
        let floc = self.groups[g]
            .sel
            .add_field(loc, FieldText::of(field), composite);
        self.groups[g]
            .vars
            .extend(field.vars.iter().map(|v| v.to_string()));
        self.touch(g);
        if composite {
            let mut child_prov = provided.unwrap_or_default();
            if let Some(p) = self.sg.provides(graph, parent, &field.name) {
                child_prov.extend(p.iter().cloned());
            }
            let child_path = field_path(path, field);
            let sub = self.sub_type(graph, parent, field);
            if sub != field.ty && self.sg.is_abstract(&field.ty) && !self.sg.is_abstract(&sub) {
                // An abstract position the subgraph types as one object type: the response
                // still needs `__typename` to match the client's fragments.
                self.groups[g].sel.add_typename(&floc);
            }
            self.push_gate(&field.gate);
            let reach = self.field_reach(parent, field);
            let outer = std::mem::replace(&mut self.reach, reach);
            self.restrict = self.restricted_types(graph, parent, field, &sub);
            let child = Slot {
                g,
                loc: &floc,
                path: &child_path,
            };
            let result = self.walk_composite(child, &sub, &field.children, &child_prov);
            self.reach = outer;
            self.pop_gate(&field.gate);
            if let Err(mut unplanned) = result {
                // What the sub-selection left is left of this field, at the parent object.
                if !unplanned.sels.is_empty() {
                    let rest = std::mem::take(&mut unplanned.sels);
                    unplanned.sels = vec![NSel::Field(with_children(field, rest))];
                }
                return Err(unplanned);
            }
        }
        Ok(())
    }

    /// Plans `sels` at a position of type `ty` (object or abstract) that the slot's group
    /// fetches at the slot.
    fn walk_composite(
        &mut self,
        slot: Slot<'_>,
        ty: &Name,
        sels: &[NSel],
        provided: &[NSel],
    ) -> Planned {
        let Slot { g, loc, path } = slot;
        let graph = self.service(g);
        let restrict = self.restrict.take();
        let object = At {
            g,
            obj_loc: loc,
            path,
            ty,
            provided,
            conds: &[],
            client: sels,
        };
        if !self.sg.is_abstract(ty)
            || self
                .sg
                .type_in_graph(graph, ty)
                .is_some_and(|t| t.interface_object)
        {
            return self.walk_object(object, loc, sels);
        }
        self.groups[g].sel.add_typename(loc);
        if self.all_local_abstract(graph, ty, sels, provided) {
            self.emit_local(g, loc, ty, restrict.as_deref(), sels);
            return Ok(());
        }
        // Keep at the interface level what every possible type resolves here; split the rest
        // into `... on Type` per possible type.
        let possible = restrict.unwrap_or_else(|| self.sg.possible_types_in(graph, ty).to_vec());
        self.touch(g);
        let mut left = Left::default();
        let rest = self.walk_shared(object, &possible, &mut left)?;
        if rest.is_empty() {
            return left.into_result();
        }
        if possible.is_empty() {
            // No object this subgraph can return here has the fields: dropping them would
            // answer without them, so this way of planning them fails.
            let mut fields = Vec::new();
            flatten_all(self.sg, ty, &rest, &mut fields);
            if let Some(f) = fields.iter().find(|f| f.name != "__typename") {
                return Err(Unplanned {
                    sels: rest,
                    reason: PlanError::Unsatisfiable(format!(
                        "no subgraph can resolve `{ty}.{}`: subgraph `{}` has no type implementing `{ty}`",
                        f.name,
                        self.sg.subgraphs()[graph].name
                    )),
                });
            }
        }
        for c in &possible {
            let mut fields = Vec::new();
            flatten_all(self.sg, c, &rest, &mut fields);
            if fields.iter().all(|f| f.name == "__typename") {
                // Only `__typename` (already fetched) or nothing applies to this type.
                continue;
            }
            let cloc = self.groups[g].sel.add_inline(loc, Some(c), "");
            let cpath = path_with(path, PathElement::TypeCondition(vec![c.to_string()]));
            let at = At {
                obj_loc: &cloc,
                path: &cpath,
                ty: c,
                ..object
            };
            if let Err(u) = self.walk_object(at, &cloc, &rest) {
                if u.sels.is_empty() {
                    return Err(u);
                }
                left.sels.push(NSel::Frag(Arc::new(NFrag {
                    cond: Some(c.clone()),
                    directives: String::new(),
                    vars: Vec::new(),
                    gate: Vec::new(),
                    children: u.sels,
                })));
                left.reason.get_or_insert(u.reason);
            }
        }
        left.into_result()
    }

    /// At an abstract position: plans the selections every possible type resolves in the
    /// group's subgraph at the abstract level, and returns the rest (for `... on Type`
    /// fragments per possible type).
    fn walk_shared(
        &mut self,
        at: At<'_>,
        possible: &[Name],
        left: &mut Left,
    ) -> Result<Vec<NSel>, Unplanned> {
        let At {
            g,
            obj_loc: loc,
            path,
            ty,
            provided,
            client: sels,
            ..
        } = at;
        let graph = self.service(g);
        let slot = Slot { g, loc, path };
        let mut rest: Vec<NSel> = Vec::new();
        for sel in sels {
            match sel {
                NSel::Field(f) => {
                    if f.name == "__typename" {
                        self.groups[g].sel.add_field(loc, FieldText::of(f), false);
                        continue;
                    }
                    let (on_iface, prov) = self.local(graph, ty, f, provided);
                    let everywhere =
                        on_iface && possible.iter().all(|c| self.local(graph, c, f, provided).0);
                    if everywhere {
                        if let Err(u) = self.emit_field(slot, ty, f, prov) {
                            if u.sels.is_empty() {
                                return Err(u);
                            }
                            left.sels.extend(u.sels);
                            left.reason.get_or_insert(u.reason);
                        }
                    } else {
                        rest.push(sel.clone());
                    }
                }
                NSel::Frag(frag) => {
                    let cond = frag.cond.as_deref().unwrap_or(ty.as_str());
                    let targets = self.condition_targets(cond, possible);
                    if targets.is_empty() {
                        continue;
                    }
                    let local = targets
                        .iter()
                        .all(|c| self.all_local(graph, c, &frag.children, provided));
                    if local {
                        self.emit_local(g, loc, ty, Some(possible), std::slice::from_ref(sel));
                    } else {
                        rest.push(sel.clone());
                    }
                }
            }
        }
        Ok(rest)
    }

    /// Plans `sels` at an object of type `at.ty` whose data group `at.g` fetches at
    /// `at.obj_loc`. Client fields go to `loc` (inside `at.conds` directive wrappers below
    /// `at.obj_loc`); inputs for other fetches go to `at.obj_loc`. `at.client` is the client's
    /// selection at this object, used to avoid response-key collisions for fields the planner
    /// adds.
    fn walk_object(&mut self, at: At<'_>, loc: &[usize], sels: &[NSel]) -> Planned {
        let At { g, ty, .. } = at;
        self.touch(g);
        let here = self.jump_from_interface_object(at, sels)?;
        let sels = here.as_deref().unwrap_or(sels);
        let mut fields = Vec::new();
        let mut wrapped = Vec::new();
        flatten(self.sg, ty, sels, &mut fields, &mut wrapped);
        let mut left = Left::default();
        let nonlocal = self.walk_fields(at, loc, fields, &mut left.reason)?;
        for frag in wrapped {
            self.walk_wrapped(at, loc, &frag, &mut left)?;
        }
        if !nonlocal.is_empty() {
            if let Err(u) = self.jump_all(at, nonlocal) {
                if u.sels.is_empty() {
                    return Err(u);
                }
                left.sels.extend(u.sels);
                left.reason = Some(u.reason);
            }
        }
        match left.reason {
            Some(reason) if !left.sels.is_empty() => Err(Unplanned {
                sels: left.sels,
                reason,
            }),
            _ => Ok(()),
        }
    }

    /// At an `@interfaceObject` position (while planning client fields): an
    /// `@interfaceObject` subgraph knows neither the concrete type nor its fields, so
    /// `__typename`, type-specific fragments and foreign fields come from a subgraph that has
    /// the interface as an entity. Plans that jump; returns what is left to plan here, or
    /// `None` when nothing was jumped for (plan `sels` as they are).
    fn jump_from_interface_object(
        &mut self,
        at: At<'_>,
        sels: &[NSel],
    ) -> Result<Option<Vec<NSel>>, Unplanned> {
        let At {
            g, ty, provided, ..
        } = at;
        let graph = self.service(g);
        if self.input
            || !self.sg.is_abstract(ty)
            || !self
                .sg
                .type_in_graph(graph, ty)
                .is_some_and(|t| t.interface_object)
        {
            return Ok(None);
        }
        let mut local = Vec::new();
        let mut rest = Vec::new();
        self.split_interface_object(ty, sels, &mut local, &mut rest);
        if rest.is_empty() {
            return Ok(None);
        }
        let Some(mut jump) = self.interface_entity_jump(graph, ty, rest) else {
            return Ok(None);
        };
        // Fields this subgraph lacks that the subgraph reached anyway has ride along in the
        // same fetch; the others take their own cheapest jump.
        let labels = &self.opts.enabled_override_labels;
        let (along, stay): (Vec<NSel>, Vec<NSel>) = local.into_iter().partition(|sel| {
            matches!(sel, NSel::Field(f)
            if !self.local(graph, ty, f, provided).0
                && matches!(
                    self.sg.field_availability(jump.graph, ty, &f.name, labels),
                    FieldAvailability::Yes
                ))
        });
        if let Some(sels) = jump.abstract_sels.as_mut() {
            sels.extend(along);
        }
        if let Some(left) = self.jump(at, jump)? {
            return Err(left);
        }
        Ok(Some(stay))
    }

    /// Plans the object's own fields that its group's subgraph resolves; returns the others,
    /// with what a field's planning left for a jump from this object.
    fn walk_fields(
        &mut self,
        at: At<'_>,
        loc: &[usize],
        fields: Vec<Arc<NField>>,
        reason: &mut Option<PlanError>,
    ) -> Result<Vec<Arc<NField>>, Unplanned> {
        let At {
            g,
            path,
            ty,
            provided,
            ..
        } = at;
        let graph = self.service(g);
        let slot = Slot { g, loc, path };
        let mut nonlocal: Vec<Arc<NField>> = Vec::new();
        for f in fields {
            if f.name == "__typename" {
                self.groups[g].sel.add_field(loc, FieldText::of(&f), false);
                self.groups[g]
                    .vars
                    .extend(f.vars.iter().map(|v| v.to_string()));
                continue;
            }
            let (local, prov) = self.local(graph, ty, &f, provided);
            if !local {
                nonlocal.push(f);
                continue;
            }
            let child_prov = prov.clone().unwrap_or_default();
            if self.is_value_type(&f.ty)
                && self.sg.provides(graph, ty, &f.name).is_none()
                && !self.all_local(graph, &f.ty, &f.children, &child_prov)
            {
                if self.whole_elsewhere(graph, ty, &f) {
                    // Another subgraph must be reached for part of it anyway and serves all
                    // of it: one source for the object, nothing to deep-merge.
                    nonlocal.push(f);
                    continue;
                }
                // A value object several subgraphs share: each fetches its own fields of it.
                let (here, rest) = self.split_value(graph, &f.ty, &f.children);
                if let Some(here) = here {
                    let result = self.emit_field(slot, ty, &with_children(&f, here), prov);
                    defer(result, &mut nonlocal, reason)?;
                }
                if !rest.is_empty() {
                    nonlocal.push(with_children(&f, rest));
                }
                continue;
            }
            // What the field's sub-selection cannot get from here (no subgraph can be entered
            // at the objects below) is fetched again through this object.
            let result = self.emit_field(slot, ty, &f, prov);
            defer(result, &mut nonlocal, reason)?;
        }
        Ok(nonlocal)
    }

    /// Plans a fragment that only carries `@skip` / `@include`, inside its own wrapper.
    fn walk_wrapped(
        &mut self,
        at: At<'_>,
        loc: &[usize],
        frag: &NFrag,
        left: &mut Left,
    ) -> Planned {
        let g = at.g;
        let wloc = self.groups[g].sel.add_inline(loc, None, &frag.directives);
        self.groups[g]
            .vars
            .extend(frag.vars.iter().map(|v| v.to_string()));
        let mut inner_conds = at.conds.to_vec();
        inner_conds.push((
            frag.directives.clone(),
            frag.vars.clone(),
            frag.gate.clone(),
        ));
        self.push_gate(&frag.gate);
        let inner = At {
            conds: &inner_conds,
            ..at
        };
        let result = self.walk_object(inner, &wloc, &frag.children);
        self.pop_gate(&frag.gate);
        if let Err(u) = result {
            if u.sels.is_empty() {
                return Err(u);
            }
            left.sels.push(frag_with_children(frag, u.sels));
            left.reason.get_or_insert(u.reason);
        }
        Ok(())
    }

    /// Whether `ty` is an object type no subgraph can be entered into by key: its fields can
    /// only be fetched together with the field that returns it.
    fn is_value_type(&self, ty: &str) -> bool {
        let sg = self.sg;
        sg.is_composite(ty)
            && !sg.is_abstract(ty)
            && !(0..sg.subgraphs().len()).any(|g| {
                sg.type_in_graph(g, ty)
                    .is_some_and(|t| t.keys.iter().any(|k| k.resolvable))
            })
    }

    /// Whether a subgraph other than `from`, reachable by an entity jump from an object of type
    /// `ty`, resolves value-typed field `f` with its whole sub-selection.
    fn whole_elsewhere(&self, from: usize, ty: &Name, f: &NField) -> bool {
        let labels = &self.opts.enabled_override_labels;
        (0..self.sg.subgraphs().len()).any(|graph| {
            graph != from
                && self.entity_types(graph, ty).iter().any(|entity| {
                    matches!(
                        self.sg.field_availability(graph, entity, &f.name, labels),
                        FieldAvailability::Yes
                    )
                })
                && self.all_local(graph, &f.ty, &f.children, &[])
        })
    }

    /// Splits a selection on object type `ty` into what `graph` resolves and the rest (both
    /// keep the nesting through shared value objects and fragments). `None` for the local part
    /// when `graph` resolves none of it.
    fn split_value(&self, graph: usize, ty: &str, sels: &[NSel]) -> (Option<Vec<NSel>>, Vec<NSel>) {
        let mut local = Vec::new();
        let mut rest = Vec::new();
        let mut useful = false;
        for sel in sels {
            let f = match sel {
                NSel::Field(f) => f,
                NSel::Frag(frag) => {
                    if frag.cond.as_ref().is_some_and(|c| !self.sg.applies(c, ty)) {
                        continue;
                    }
                    // Fragments keep their directives: each part stays under the same wrapper.
                    let (l, r) = self.split_value(graph, ty, &frag.children);
                    if let Some(l) = l {
                        useful = true;
                        local.push(frag_with_children(frag, l));
                    }
                    if !r.is_empty() {
                        rest.push(frag_with_children(frag, r));
                    }
                    continue;
                }
            };
            if f.name == "__typename" {
                local.push(sel.clone());
                continue;
            }
            if !self.local(graph, ty, f, &[]).0 {
                rest.push(sel.clone());
                continue;
            }
            if self.is_value_type(&f.ty) && !self.all_local(graph, &f.ty, &f.children, &[]) {
                let (l, r) = self.split_value(graph, &f.ty, &f.children);
                if let Some(l) = l {
                    useful = true;
                    local.push(NSel::Field(with_children(f, l)));
                }
                if !r.is_empty() {
                    rest.push(NSel::Field(with_children(f, r)));
                }
                continue;
            }
            useful = true;
            local.push(sel.clone());
        }
        if !useful {
            // `__typename` alone is no reason to fetch here: it goes with the rest.
            let all = sels
                .iter()
                .filter(|sel| match sel {
                    NSel::Frag(frag) => frag.cond.as_ref().is_none_or(|c| self.sg.applies(c, ty)),
                    NSel::Field(_) => true,
                })
                .cloned()
                .collect();
            return (None, all);
        }
        (Some(local), rest)
    }

    /// Splits a selection at an `@interfaceObject` position into what is planned from here
    /// (the subgraph's own fields, and jumps for fields it lacks) and what needs the concrete
    /// type (`__typename`, fragments on other types).
    fn split_interface_object(
        &self,
        ty: &str,
        sels: &[NSel],
        local: &mut Vec<NSel>,
        rest: &mut Vec<NSel>,
    ) {
        for sel in sels {
            match sel {
                // Only `__typename` and type-specific fragments need the concrete type; other
                // fields this subgraph lacks take the cheapest jump, which may be another
                // `@interfaceObject` subgraph rather than the one that knows the types.
                NSel::Field(f) => {
                    if f.name == "__typename" {
                        rest.push(sel.clone());
                    } else {
                        local.push(sel.clone());
                    }
                }
                NSel::Frag(frag) => {
                    let same = frag.cond.as_deref().is_none_or(|c| c == ty);
                    if same && frag.directives.is_empty() {
                        self.split_interface_object(ty, &frag.children, local, rest);
                    } else {
                        rest.push(sel.clone());
                    }
                }
            }
        }
    }

    /// A jump from an `@interfaceObject` subgraph to one that has interface `ty` as an entity.
    fn interface_entity_jump(&self, from: usize, ty: &Name, sels: Vec<NSel>) -> Option<Jump<'a>> {
        let sg = self.sg;
        let mut fallback = None;
        for graph in 0..sg.subgraphs().len() {
            if graph == from {
                continue;
            }
            let Some(info) = sg.type_in_graph(graph, ty) else {
                continue;
            };
            if info.interface_object {
                continue;
            }
            for key in info.keys.iter().filter(|k| k.resolvable) {
                let jump = Jump {
                    graph,
                    entity: ty.clone(),
                    key,
                    fields: Vec::new(),
                    abstract_sels: Some(sels.clone()),
                };
                if self.all_local(from, ty, &key.fields, &[]) {
                    return Some(jump);
                }
                fallback.get_or_insert(jump);
            }
        }
        fallback
    }

    /// Routes fields group `g` cannot resolve to other subgraphs. Every way to reach a
    /// subgraph that has some of them (subgraph, entity type, key) is a candidate; each is
    /// planned together with what it leaves for further jumps, and the cheapest that plans is
    /// kept. When none plans, the fields are returned as [`Unplanned`], for the enclosing
    /// object to reach.
    fn jump_all(&mut self, at: At<'_>, remaining: Vec<Arc<NField>>) -> Planned {
        let At {
            g, ty, provided, ..
        } = at;
        if remaining.is_empty() {
            return Ok(());
        }
        let from = self.service(g);
        let candidates = self.jump_candidates(from, ty, &remaining, provided);
        // Served fields leave `remaining`; what they leave of a shared value object stays.
        let rest_after = |taken: &Taken| {
            let mut rest = remaining.clone();
            for (i, left) in taken.iter().rev() {
                match left {
                    Some(left) => rest[*i] = left.clone(),
                    None => {
                        rest.remove(*i);
                    }
                }
            }
            rest
        };
        let direct = match candidates.len() {
            0 => Err(PlanError::Unsatisfiable(format!(
                "no subgraph can resolve `{ty}.{}` from subgraph `{}`",
                remaining[0].name,
                self.sg.subgraphs()[from].name
            ))
            .into()),
            // Jumps are tried best-first by their estimate; the first that plans is kept. A
            // jump may plan only part of what it took (a field below needs a subgraph the
            // target cannot reach): what it left joins the rest, for a jump from here.
            _ => self.choose(&candidates, None, |s, (jump, taken)| {
                let left = s.jump(at, jump.clone())?;
                let mut rest = rest_after(taken);
                if let Some(left) = left {
                    let other = as_fields(left.sels, &mut rest);
                    debug_assert!(other.is_empty(), "a jump leaves fields");
                }
                s.jump_all(at, rest)
            }),
        };
        // Whatever went wrong, these fields are what is left at this object: the enclosing
        // object may reach them.
        direct.map_err(|u| Unplanned {
            sels: remaining.into_iter().map(NSel::Field).collect(),
            reason: u.reason,
        })
    }

    /// The entity jumps that take some of `remaining` from subgraph `from` at an object of
    /// type `ty`, best first: most fields served, key available without a further jump, most
    /// of the sub-selection resolved there, earlier subgraphs first.
    fn jump_candidates(
        &self,
        from: usize,
        ty: &Name,
        remaining: &[Arc<NField>],
        provided: &[NSel],
    ) -> Vec<(Jump<'a>, Taken)> {
        let sg = self.sg;
        let labels = &self.opts.enabled_override_labels;
        let mut scored: Vec<((JumpScore, usize), Jump<'a>, Taken)> = Vec::new();
        for graph in 0..sg.subgraphs().len() {
            for entity in self.entity_types(graph, ty) {
                // (index in `remaining`, what this subgraph fetches of it, what is left)
                let mut served: Vec<(usize, Arc<NField>, Option<Arc<NField>>)> = Vec::new();
                for (i, f) in remaining.iter().enumerate() {
                    match sg.field_availability(graph, &entity, &f.name, labels) {
                        FieldAvailability::Yes if graph != from => {}
                        FieldAvailability::Requires(_) => {}
                        _ => continue,
                    }
                    if self.is_value_type(&f.ty) && !self.all_local(graph, &f.ty, &f.children, &[])
                    {
                        let (here, rest) = self.split_value(graph, &f.ty, &f.children);
                        let Some(here) = here else { continue };
                        let rest = (!rest.is_empty()).then(|| with_children(f, rest));
                        served.push((i, with_children(f, here), rest));
                    } else {
                        served.push((i, f.clone(), None));
                    }
                }
                if served.is_empty() {
                    continue;
                }
                let Some(info) = sg.type_in_graph(graph, &entity) else {
                    continue;
                };
                let depth: usize = served
                    .iter()
                    .map(|(_, f, _)| self.coverage(graph, &f.ty, &f.children, &[]))
                    .sum();
                let taken: Taken = served
                    .iter()
                    .map(|(i, _, rest)| (*i, rest.clone()))
                    .collect();
                let fields: Vec<Arc<NField>> = served.into_iter().map(|(_, f, _)| f).collect();
                // A key available here costs no jump to provide: when one is, it is the only
                // key worth trying; otherwise every key is a candidate.
                let mut keys = info.keys.iter().filter(|k| k.resolvable).enumerate();
                let direct = keys
                    .clone()
                    .find(|(_, k)| self.all_local(from, ty, &k.fields, provided));
                let score = (
                    fields.len(),
                    direct.is_some(),
                    depth,
                    std::cmp::Reverse(graph),
                );
                let jump = |key: &'a KeyDef, fields: Vec<Arc<NField>>| Jump {
                    graph,
                    entity: entity.clone(),
                    key,
                    fields,
                    abstract_sels: None,
                };
                if let Some((k, key)) = direct {
                    scored.push(((score, usize::MAX - k), jump(key, fields), taken));
                    continue;
                }
                let first = keys.next();
                for (k, key) in keys {
                    scored.push((
                        (score, usize::MAX - k),
                        jump(key, fields.clone()),
                        taken.clone(),
                    ));
                }
                if let Some((k, key)) = first {
                    scored.push(((score, usize::MAX - k), jump(key, fields), taken));
                }
            }
        }
        if scored.len() > 1 {
            scored.sort_by_key(|s| std::cmp::Reverse(s.0));
        }
        scored.into_iter().map(|(_, j, t)| (j, t)).collect()
    }

    /// The types an entity fetch to `graph` may use for objects of type `ty`: `ty` itself when
    /// it has a resolvable key there, and interfaces of `ty` that are `@interfaceObject`s there.
    fn entity_types(&self, graph: usize, ty: &Name) -> Vec<Name> {
        let mut out = Vec::new();
        let has_key = |t: &str| {
            self.sg
                .type_in_graph(graph, t)
                .is_some_and(|info| info.keys.iter().any(|k| k.resolvable))
        };
        if has_key(ty) {
            out.push(ty.clone());
        }
        for iface in self.sg.interfaces_of(ty) {
            let is_object = self
                .sg
                .type_in_graph(graph, &iface)
                .is_some_and(|info| info.interface_object);
            if is_object && has_key(&iface) {
                out.push(iface);
            }
        }
        out
    }

    /// Makes `sels` (key or `@requires` fields) available in the merged data at the object,
    /// aliasing top-level fields whose name a client field uses for something else. Returns
    /// the (possibly aliased) selections and the groups that fetch them.
    fn provide(
        &mut self,
        at: At<'_>,
        sels: &[NSel],
    ) -> Result<(Vec<NSel>, BTreeSet<usize>), Unplanned> {
        let At {
            g,
            obj_loc,
            path,
            ty,
            client,
            ..
        } = at;
        // Every response key at this object is in scope, whatever type condition or
        // directive wraps it: the client's and what the fetch already selects there.
        let mut occupied = Vec::new();
        occupants_of_client(Some((self.sg, ty)), client, true, &mut occupied);
        occupants_of_tree(self.groups[g].sel.node(obj_loc), &mut occupied);
        let elsewhere = client_at_path(self.client_root, path);
        occupants_of_client(None, &elsewhere, false, &mut occupied);
        let renamed = alias_requirements(sels, &occupied);
        // Providing these fields here again, further down, means they need themselves.
        // (The path is passed down by reference unchanged while the walk stays at the object.)
        let marker = (
            self.service(g),
            sels.as_ptr() as usize,
            path.as_ptr() as usize,
            path.len(),
        );
        if self.providing.contains(&marker) {
            return Err(PlanError::Unsatisfiable(format!(
                "the fields `{ty}` needs from subgraph `{}` depend on themselves",
                self.sg.subgraphs()[marker.0].name
            ))
            .into());
        }
        self.providing.push(marker);
        let start = self.touched.len();
        // Inputs of another fetch: at an `@interfaceObject` position they need no concrete
        // type, so no jump for `__typename` is planned for them.
        let outer = std::mem::replace(&mut self.input, true);
        // Nested jumps for these inputs add keys at the same object: the client's fields and
        // the inputs themselves stay in scope for their aliases.
        let scope: Vec<NSel> = client.iter().chain(renamed.iter()).cloned().collect();
        let inputs = At {
            conds: &[],
            client: &scope,
            ..at
        };
        let result = self.walk_object(inputs, obj_loc, &renamed);
        self.input = outer;
        self.providing.pop();
        result?;
        let touched = self.touched[start..].iter().copied().collect();
        Ok((renamed, touched))
    }

    /// Plans `jump`; `Ok(Some(left))` when it planned only part of its fields, `left` being
    /// the rest (always less than it took, so a search over jumps ends).
    fn jump(&mut self, at: At<'_>, jump: Jump<'a>) -> Result<Option<Unplanned>, Unplanned> {
        let ty = at.ty;
        if self.depth >= MAX_JUMP_DEPTH {
            return Err(PlanError::Unsatisfiable(format!(
                "entity jumps for `{ty}` nest too deep (a key or @requires cycle?)"
            ))
            .into());
        }
        self.depth += 1;
        // Fields whose `@requires` select one field with different arguments cannot share a
        // representation (it has one value per field name): each set that can goes in its own
        // fetch.
        let mut result: Result<Option<Unplanned>, Unplanned> = Ok(None);
        for fields in self.compatible_requirement_sets(&jump) {
            let part = Jump {
                fields,
                ..jump.clone()
            };
            match self.jump_inner(at, part) {
                Ok(None) => {}
                Ok(Some(left)) => match &mut result {
                    Ok(Some(all)) => all.sels.extend(left.sels),
                    _ => result = Ok(Some(left)),
                },
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.depth -= 1;
        result
    }

    /// Splits a jump's fields into sets whose `@requires` never select the same field name
    /// with different arguments; one set when nothing conflicts (the usual case).
    fn compatible_requirement_sets(&self, jump: &Jump<'a>) -> Vec<Vec<Arc<NField>>> {
        let requirement = |f: &NField| match self.sg.field_availability(
            jump.graph,
            &jump.entity,
            &f.name,
            &self.opts.enabled_override_labels,
        ) {
            FieldAvailability::Requires(req) => req,
            _ => &[],
        };
        let mut sets: Vec<(Vec<Arc<NField>>, Vec<&NField>)> = Vec::new();
        for f in &jump.fields {
            let req: Vec<&NField> = top_fields(requirement(f));
            let fits = |taken: &Vec<&NField>| {
                !req.iter().any(|r| {
                    taken.iter().any(|t| {
                        t.name == r.name
                            && (t.args != r.args || t.children.len() != r.children.len())
                    })
                })
            };
            match sets.iter_mut().find(|(_, taken)| fits(taken)) {
                Some((fields, taken)) => {
                    fields.push(f.clone());
                    taken.extend(req);
                }
                None => sets.push((vec![f.clone()], req)),
            }
        }
        if sets.is_empty() {
            // An interface-object jump with only abstract selections.
            return vec![Vec::new()];
        }
        sets.into_iter().map(|(fields, _)| fields).collect()
    }

    /// Plans one jump under the conditions all of its fields hang on: the jump's keys,
    /// `@requires` inputs and entity fetch are needed only when those hold, so they are fetched
    /// only then (a field left out by `@include(if: false)` used to have its `@requires` input
    /// fetched all the same; difftest seed 180020).
    fn jump_inner(&mut self, at: At<'_>, jump: Jump<'a>) -> Result<Option<Unplanned>, Unplanned> {
        let common: Vec<(Name, bool)> = match (&jump.abstract_sels, jump.fields.first()) {
            (None, Some(first)) => first
                .gate
                .iter()
                .filter(|c| jump.fields.iter().all(|f| f.gate.contains(c)))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        self.push_gate(&common);
        let result = self.jump_gated(at, jump);
        self.pop_gate(&common);
        result
    }

    fn jump_gated(&mut self, at: At<'_>, jump: Jump<'a>) -> Result<Option<Unplanned>, Unplanned> {
        let At {
            g,
            obj_loc,
            path,
            ty,
            conds,
            ..
        } = at;
        let sg = self.sg;
        self.groups[g].sel.add_typename(obj_loc);
        let gate = self.gate.clone();
        self.groups[g].contribute(&gate);
        let mut deps = BTreeSet::from([g]);
        let (key_sels, touched) = self.provide(at, &jump.key.fields)?;
        deps.extend(touched);
        let mut rep = vec![RequiresSelection::Field {
            name: "__typename".into(),
            response_key: "__typename".into(),
            selections: Vec::new(),
        }];
        rep.extend(to_requires(sg, &key_sels));
        for f in &jump.fields {
            if let FieldAvailability::Requires(req) = sg.field_availability(
                jump.graph,
                &jump.entity,
                &f.name,
                &self.opts.enabled_override_labels,
            ) {
                let (req_sels, touched) = self.provide(at, req)?;
                deps.extend(touched);
                rep.extend(to_requires(sg, &req_sels));
            }
        }
        let e = self.entity_group(jump.graph, path, &deps, ty, &rep);
        self.within_limit()?;
        let group = &mut self.groups[e];
        group.add_rep(ty, rep);
        if jump.entity != *ty {
            let rewrite = ValueRewrite::SetValue {
                path: vec![
                    PathElement::TypeCondition(vec![ty.to_string()]),
                    PathElement::Key("__typename".into()),
                ],
                value: serde_json::Value::String(jump.entity.to_string()),
            };
            if !group.input_rewrites.contains(&rewrite) {
                group.input_rewrites.push(rewrite);
            }
        }
        let mut eloc = group.sel.add_inline(&[], Some(&jump.entity), "");
        for (dirs, vars, _) in conds {
            eloc = group.sel.add_inline(&eloc, None, dirs);
            group.vars.extend(vars.iter().map(|v| v.to_string()));
        }
        self.touched.extend(deps);
        self.touch(e);
        // Content under an interface-object fragment is the same for every concrete type at the
        // path, so what it returns sits at the group's own (type-condition-free) path.
        let own_path = self.groups[e].path.clone();
        let path = if jump.entity != *ty {
            &own_path[..]
        } else {
            path
        };
        if let Some(sels) = &jump.abstract_sels {
            let gate = self.gate.clone();
            self.groups[e].contribute(&gate);
            let slot = Slot {
                g: e,
                loc: &eloc,
                path,
            };
            self.walk_composite(slot, ty, sels, &[])?;
        }
        let mut left: Option<Unplanned> = None;
        for f in &jump.fields {
            let gate = self.gate_with(&f.gate);
            self.groups[e].contribute(&gate);
            let slot = Slot {
                g: e,
                loc: &eloc,
                path,
            };
            match self.emit_field(slot, &jump.entity, f, None) {
                Ok(()) => {}
                Err(u) if !u.sels.is_empty() => match &mut left {
                    Some(all) => all.sels.extend(u.sels),
                    None => left = Some(u),
                },
                Err(u) => return Err(u),
            }
        }
        match left {
            // Only progress counts: a jump that planned nothing of what it took failed.
            Some(left) if sel_size(&left.sels) >= fields_size(&jump.fields) => Err(left),
            left => Ok(left),
        }
    }

    /// Whether group `a` (transitively) waits for group `b`.
    fn depends_on(&self, a: usize, b: usize) -> bool {
        let mut stack = vec![a];
        let mut seen = BTreeSet::new();
        while let Some(x) = stack.pop() {
            if x == b {
                return true;
            }
            if seen.insert(x) {
                stack.extend(self.groups[x].deps.iter().copied());
            }
        }
        false
    }

    /// The entity group for (`graph`, `path`) that can wait for `deps` without a cycle; a new
    /// one if none can.
    fn entity_group(
        &mut self,
        graph: usize,
        path: &[PathElement],
        deps: &BTreeSet<usize>,
        ty: &str,
        rep: &[RequiresSelection],
    ) -> usize {
        let path = entity_path(path);
        let key = super::display::path_string(path);
        // The jump's keys and `@requires` inputs were provided under the current gate.
        let gate: BTreeSet<(String, bool)> =
            self.gate.iter().map(|(n, b)| (n.to_string(), *b)).collect();
        let found = (0..self.groups.len()).find(|&i| {
            let grp = &self.groups[i];
            grp.entity
                && grp.service == graph
                && grp.path_key == key
                && grp.rep_fits(ty, rep)
                && grp.rep_gate_fits(ty, rep, &gate)
                && !deps.iter().any(|&d| self.depends_on(d, i))
        });
        let idx = found.unwrap_or_else(|| {
            self.groups.push(Group::new(graph, true, path.to_vec()));
            self.groups.len() - 1
        });
        let group = &mut self.groups[idx];
        group.join_rep(ty, rep, &gate);
        group.deps.extend(deps.iter().copied());
        idx
    }
}

/// Where an entity fetch for objects at `path` merges: objects split per type at this level
/// share one fetch (the representation's `... on Type` fragments pick the objects), so
/// trailing type conditions are dropped.
fn entity_path(path: &[PathElement]) -> &[PathElement] {
    let mut end = path.len();
    while end > 0 && matches!(path[end - 1], PathElement::TypeCondition(_)) {
        end -= 1;
    }
    &path[..end]
}

/// A response key already used at an object (by the client or by the fetch being built), with
/// what it selects, to keep planner-added fields from colliding with it. Borrowed: the planner
/// builds these for every entity jump.
#[derive(Clone, Copy)]
struct Occupant<'s> {
    key: &'s str,
    name: &'s str,
    args: &'s str,
    /// A client leaf field always selected at the object (no directive, no type condition
    /// that may not apply): a requirement for the same field can read it under its key.
    reusable: bool,
    /// Where its own sub-selection is, for requirements nested in it.
    inner: Inner<'s>,
}

/// The sub-selection of an [`Occupant`].
#[derive(Clone, Copy)]
enum Inner<'s> {
    Client(&'s [NSel]),
    Fetch(&'s super::group::SelTree),
}

impl<'s> Occupant<'s> {
    fn children(&self, out: &mut Vec<Occupant<'s>>) {
        match self.inner {
            Inner::Client(sels) => occupants_of_client(None, sels, false, out),
            Inner::Fetch(tree) => occupants_of_tree(tree, out),
        }
    }
}

/// The response keys a client selection uses at one object of type `ty` (`None` below the top
/// level), through every fragment; `plain` says no enclosing fragment is conditional.
fn occupants_of_client<'s>(
    ty: Option<(&Supergraph, &str)>,
    sels: &'s [NSel],
    plain: bool,
    out: &mut Vec<Occupant<'s>>,
) {
    for sel in sels {
        match sel {
            NSel::Field(f) => out.push(Occupant {
                key: f.response_key().as_str(),
                name: f.name.as_str(),
                args: &f.args,
                reusable: plain && ty.is_some() && f.directives.is_empty() && f.children.is_empty(),
                inner: Inner::Client(&f.children),
            }),
            NSel::Frag(frag) => {
                let applies = match (&frag.cond, ty) {
                    (None, _) => true,
                    (Some(c), Some((sg, ty))) => sg.applies(c, ty),
                    (Some(_), None) => false,
                };
                let plain = plain && applies && frag.directives.is_empty();
                occupants_of_client(ty, &frag.children, plain, out);
            }
        }
    }
}

/// Everything the client selects at the objects of response path `path` (from the root
/// selection `root`): the sub-selections of every field with that key, through every fragment
/// whatever its condition, since the subgraph merges them all into one object.
fn client_at_path(root: &[NSel], path: &[PathElement]) -> Vec<NSel> {
    fn children_with_key(sels: &[NSel], key: &str, out: &mut Vec<NSel>) {
        for sel in sels {
            match sel {
                NSel::Field(f) if f.response_key().as_str() == key => {
                    out.extend(f.children.iter().cloned())
                }
                NSel::Field(_) => {}
                NSel::Frag(frag) => children_with_key(&frag.children, key, out),
            }
        }
    }
    let mut here = root.to_vec();
    for element in path {
        if let PathElement::Key(key) = element {
            let mut next = Vec::new();
            children_with_key(&here, key, &mut next);
            here = next;
        }
    }
    here
}

/// The response keys a fetch selection already uses at one object, through inline fragments.
fn occupants_of_tree<'s>(tree: &'s super::group::SelTree, out: &mut Vec<Occupant<'s>>) {
    use super::group::Item;
    for item in &tree.items {
        match item {
            Item::Field {
                alias,
                name,
                args,
                children,
                ..
            } => out.push(Occupant {
                key: alias.as_deref().unwrap_or(name),
                name,
                args,
                reusable: false,
                inner: Inner::Fetch(children),
            }),
            Item::Inline { children, .. } => occupants_of_tree(children, out),
        }
    }
}

/// Gives requirement fields (keys, `@requires` inputs) an alias where their name is a response
/// key used for something else at the same object, at every level: a requirement nested in a
/// field the client also selects shares that field's object, so its keys are checked too.
fn alias_requirements(sels: &[NSel], occupied: &[Occupant<'_>]) -> Vec<NSel> {
    let conflicts = |key: &str, f: &NField| occupied.iter().any(|o| o.key == key && !same_as(o, f));
    sels.iter()
        .map(|sel| match sel {
            NSel::Field(f) if conflicts(f.response_key(), f) => {
                let mut copy = (**f).clone();
                // A client field that always selects the same leaf carries the value already.
                let reuse = occupied.iter().find(|o| {
                    o.reusable && f.children.is_empty() && same_as(o, f) && !conflicts(o.key, f)
                });
                if let Some(o) = reuse {
                    copy.alias = Name::new(o.key).ok();
                    return NSel::Field(Arc::new(copy));
                }
                // The first of `_sy_<name>`, `_sy_<name>_1`, ... no one uses for something else.
                let mut alias = format!("{ALIAS_PREFIX}{}", f.name);
                let mut n = 0;
                while conflicts(&alias, f) {
                    n += 1;
                    alias = format!("{ALIAS_PREFIX}{}_{n}", f.name);
                }
                copy.alias = Name::new(&alias).ok();
                NSel::Field(Arc::new(copy))
            }
            NSel::Field(f) if !f.children.is_empty() => {
                // Same object as the occupants with this key: their sub-keys are in scope.
                let mut inner = Vec::new();
                for o in occupied
                    .iter()
                    .filter(|o| o.key == f.response_key().as_str())
                {
                    o.children(&mut inner);
                }
                if inner.is_empty() {
                    return sel.clone();
                }
                NSel::Field(with_children(f, alias_requirements(&f.children, &inner)))
            }
            NSel::Frag(frag) => {
                frag_with_children(frag, alias_requirements(&frag.children, occupied))
            }
            other => other.clone(),
        })
        .collect()
}

/// Whether an occupant selects the same thing as `f` (so `f` may share its key).
fn same_as(o: &Occupant<'_>, f: &NField) -> bool {
    o.name == f.name.as_str() && o.args == f.args
}

/// The fields of a field set at its top level, through fragments.
fn top_fields(sels: &[NSel]) -> Vec<&NField> {
    let mut out = Vec::new();
    for sel in sels {
        match sel {
            NSel::Field(f) => out.push(&**f),
            NSel::Frag(frag) => out.extend(top_fields(&frag.children)),
        }
    }
    out
}

/// Converts planned requirement selections into representation selections.
fn to_requires(sg: &Supergraph, sels: &[NSel]) -> Vec<RequiresSelection> {
    let mut out = Vec::new();
    for sel in sels {
        match sel {
            NSel::Field(f) => {
                let mut selections = Vec::new();
                if sg.is_abstract(&f.ty) {
                    selections.push(RequiresSelection::Field {
                        name: "__typename".into(),
                        response_key: "__typename".into(),
                        selections: Vec::new(),
                    });
                }
                selections.extend(to_requires(sg, &f.children));
                out.push(RequiresSelection::Field {
                    name: f.name.to_string(),
                    response_key: f.response_key().to_string(),
                    selections,
                });
            }
            NSel::Frag(frag) => out.push(RequiresSelection::InlineFragment {
                type_condition: frag.cond.as_ref().map(|c| c.to_string()),
                selections: to_requires(sg, &frag.children),
            }),
        }
    }
    out
}

/// Names subgraph operations `<Op>__<service>__<n>` when the client operation has a name.
struct Namer {
    op_name: Option<String>,
    counter: usize,
}

impl Namer {
    fn next(&mut self, service: &str) -> Option<String> {
        let op = self.op_name.as_ref()?;
        let service: String = service
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = format!("{op}__{service}__{}", self.counter);
        self.counter += 1;
        Some(name)
    }
}

fn sequence(mut nodes: Vec<PlanNode>) -> Option<PlanNode> {
    match nodes.len() {
        0 => None,
        1 => nodes.pop(),
        _ => Some(PlanNode::Sequence { nodes }),
    }
}

fn parallel(mut nodes: Vec<PlanNode>) -> Option<PlanNode> {
    match nodes.len() {
        0 => None,
        1 => nodes.pop(),
        _ => Some(PlanNode::Parallel { nodes }),
    }
}

/// Turns the groups' dependency DAG into plan nodes: nested Sequence/Parallel when every
/// group waits for at most one other (after transitive reduction), else stages.
fn build_node(
    sg: &Supergraph,
    mut groups: Vec<Group>,
    kind: OperationKind,
    root_type: &str,
    var_decls: &[(String, String)],
    namer: &mut Namer,
) -> Option<PlanNode> {
    for group in &mut groups {
        let root = if group.entity { "_Entity" } else { root_type };
        group.output_rewrites =
            super::conflict::alias_conflicts(sg, group.service, root, &mut group.sel);
    }
    let n = groups.len();
    // Transitive reduction: drop a dependency already implied by another.
    let mut reach: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    fn closure(
        groups: &[Group],
        i: usize,
        memo: &mut HashMap<usize, BTreeSet<usize>>,
    ) -> BTreeSet<usize> {
        if let Some(r) = memo.get(&i) {
            return r.clone();
        }
        let mut out = BTreeSet::new();
        for &d in &groups[i].deps {
            if d == i {
                continue;
            }
            out.insert(d);
            out.extend(closure(groups, d, memo));
        }
        memo.insert(i, out.clone());
        out
    }
    let mut memo = HashMap::new();
    for (i, r) in reach.iter_mut().enumerate() {
        *r = closure(&groups, i, &mut memo);
    }
    let reduced: Vec<BTreeSet<usize>> = (0..n)
        .map(|i| {
            groups[i]
                .deps
                .iter()
                .copied()
                .filter(|&d| d != i)
                .filter(|&d| {
                    !groups[i]
                        .deps
                        .iter()
                        .any(|&o| o != d && o != i && reach[o].contains(&d))
                })
                .collect()
        })
        .collect();
    let forest = reduced.iter().all(|d| d.len() <= 1);
    let mut fetches: Vec<Option<PlanNode>> = groups
        .iter()
        .map(|g| Some(fetch_node(sg, g, kind, var_decls, namer)))
        .collect();
    if forest {
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut roots = Vec::new();
        for (i, d) in reduced.iter().enumerate() {
            match d.iter().next() {
                Some(&p) => children[p].push(i),
                None => roots.push(i),
            }
        }
        fn tree(i: usize, children: &[Vec<usize>], fetches: &mut [Option<PlanNode>]) -> PlanNode {
            let own = fetches[i].take().expect("each group is visited once");
            let kids: Vec<PlanNode> = children[i]
                .iter()
                .map(|&c| tree(c, children, fetches))
                .collect();
            match parallel(kids) {
                None => own,
                Some(rest) => PlanNode::Sequence {
                    nodes: vec![own, rest],
                }
                .flatten_sequence(),
            }
        }
        let nodes: Vec<PlanNode> = roots
            .iter()
            .map(|&r| tree(r, &children, &mut fetches))
            .collect();
        return parallel(nodes);
    }
    // Stages: a group runs once everything it waits for ran in an earlier stage (dropping
    // dependencies implied by others does not change the longest chain to a group).
    let level = super::group::stages(&groups);
    let max = level.iter().copied().max().unwrap_or(0);
    let stages: Vec<PlanNode> = (0..=max)
        .filter_map(|l| {
            let nodes: Vec<PlanNode> = (0..n)
                .filter(|&i| level[i] == l)
                .filter_map(|i| fetches[i].take())
                .collect();
            parallel(nodes)
        })
        .collect();
    sequence(stages)
}

impl PlanNode {
    /// `Sequence [a, Sequence [b, c]]` -> `Sequence [a, b, c]`.
    fn flatten_sequence(self) -> PlanNode {
        match self {
            PlanNode::Sequence { nodes } => {
                let mut out = Vec::new();
                for node in nodes {
                    match node {
                        PlanNode::Sequence { nodes: inner } => out.extend(inner),
                        other => out.push(other),
                    }
                }
                PlanNode::Sequence { nodes: out }
            }
            other => other,
        }
    }
}

fn fetch_node(
    sg: &Supergraph,
    group: &Group,
    kind: OperationKind,
    var_decls: &[(String, String)],
    namer: &mut Namer,
) -> PlanNode {
    let service = &sg.subgraphs()[group.service].name;
    let operation_name = namer.next(service);
    let variable_usages: Vec<String> = var_decls
        .iter()
        .filter(|(name, _)| group.vars.contains(name))
        .map(|(name, _)| name.clone())
        .collect();
    let mut decls: Vec<&str> = Vec::new();
    if group.entity {
        decls.push("$representations:[_Any!]!");
    }
    decls.extend(
        var_decls
            .iter()
            .filter(|(name, _)| group.vars.contains(name))
            .map(|(_, d)| d.as_str()),
    );
    let op_kind = if group.entity {
        OperationKind::Query
    } else {
        kind
    };
    let mut operation = String::from(match op_kind {
        OperationKind::Query => "query",
        OperationKind::Mutation => "mutation",
        OperationKind::Subscription => "subscription",
    });
    if let Some(name) = &operation_name {
        operation.push(' ');
        operation.push_str(name);
    }
    if !decls.is_empty() {
        operation.push('(');
        operation.push_str(&decls.join(","));
        operation.push(')');
    }
    if group.entity {
        operation.push_str("{_entities(representations:$representations)");
        group.sel.write(&mut operation);
        operation.push('}');
    } else {
        group.sel.write(&mut operation);
    }
    let fetch = PlanNode::Fetch(Box::new(FetchNode {
        service_name: service.clone(),
        operation,
        operation_name,
        operation_kind: op_kind,
        variable_usages,
        requires: group.entity.then(|| group.reps.clone()),
        input_rewrites: group.input_rewrites.clone(),
        output_rewrites: group.output_rewrites.clone(),
        root_keys: if group.entity {
            Vec::new()
        } else {
            group.sel.root_response_keys()
        },
    }));
    let mut node = if group.entity {
        PlanNode::Flatten(FlattenNode {
            path: group.path.clone(),
            node: Box::new(fetch),
            other_paths: group.other_paths.clone(),
        })
    } else {
        fetch
    };
    // Innermost condition last, so the printed tree reads in variable order.
    for (var, value) in group.gate.iter().flatten().rev() {
        let branch = Some(Box::new(node));
        node = PlanNode::Condition(ConditionNode {
            condition: var.clone(),
            if_clause: if *value { branch.clone() } else { None },
            else_clause: if *value { None } else { branch },
        });
    }
    node
}
