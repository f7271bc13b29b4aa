//! Fetch groups under construction: one subgraph request each, with the selection being built,
//! the representation it needs and the groups it must wait for.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{PathElement, RequiresSelection, ValueRewrite};
use crate::selection::NField;

/// Where an item sits in a `SelTree`: child indices from the root. Items are only appended, so
/// a location stays valid while the tree grows.
pub(crate) type Loc = Vec<usize>;

/// A subgraph selection set being built.
#[derive(Debug, Clone, Default)]
pub(crate) struct SelTree {
    pub items: Vec<Item>,
}

/// A field as a fetch selects it: response alias (dropped when it is the name), name, and
/// arguments and directives as printed.
#[derive(Clone, Copy)]
pub(crate) struct FieldText<'s> {
    pub alias: Option<&'s str>,
    pub name: &'s str,
    pub args: &'s str,
    pub directives: &'s str,
}

impl<'s> FieldText<'s> {
    /// `name` alone: no alias, arguments or directives.
    pub fn bare(name: &'s str) -> Self {
        Self {
            alias: None,
            name,
            args: "",
            directives: "",
        }
    }

    /// The field as the client selected it.
    pub fn of(f: &'s NField) -> Self {
        Self {
            alias: f.alias.as_deref(),
            name: &f.name,
            args: &f.args,
            directives: &f.directives,
        }
    }
}

/// One selection in a `SelTree`.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Field {
        alias: Option<String>,
        name: String,
        args: String,
        directives: String,
        composite: bool,
        children: SelTree,
    },
    Inline {
        cond: Option<String>,
        directives: String,
        children: SelTree,
    },
}

impl Item {
    fn children_mut(&mut self) -> &mut SelTree {
        match self {
            Item::Field { children, .. } | Item::Inline { children, .. } => children,
        }
    }
}

impl SelTree {
    pub(crate) fn node_mut(&mut self, loc: &[usize]) -> &mut SelTree {
        let mut cur = self;
        for &i in loc {
            cur = cur.items[i].children_mut();
        }
        cur
    }

    /// The selection set at `loc`.
    pub fn node(&self, loc: &[usize]) -> &SelTree {
        let mut cur = self;
        for &i in loc {
            cur = match &cur.items[i] {
                Item::Field { children, .. } | Item::Inline { children, .. } => children,
            };
        }
        cur
    }

    /// Adds (or finds) a field at `loc`; returns the field's location.
    pub fn add_field(&mut self, loc: &[usize], field: FieldText<'_>, composite: bool) -> Loc {
        let FieldText {
            alias,
            name,
            args,
            directives,
        } = field;
        let node = self.node_mut(loc);
        let alias = alias.filter(|a| *a != name);
        let found = node.items.iter().position(|item| {
            matches!(item, Item::Field { alias: a, name: n, args: ar, directives: d, .. }
                if a.as_deref() == alias && n == name && ar == args && d == directives)
        });
        let idx = found.unwrap_or_else(|| {
            node.items.push(Item::Field {
                alias: alias.map(str::to_string),
                name: name.to_string(),
                args: args.to_string(),
                directives: directives.to_string(),
                composite,
                children: SelTree::default(),
            });
            node.items.len() - 1
        });
        let mut out = loc.to_vec();
        out.push(idx);
        out
    }

    /// Adds (or finds) a plain `__typename` at `loc`; returns its location.
    pub fn add_typename(&mut self, loc: &[usize]) -> Loc {
        self.add_field(loc, FieldText::bare("__typename"), false)
    }

    /// Adds (or finds) an inline fragment at `loc`; returns its location.
    pub fn add_inline(&mut self, loc: &[usize], cond: Option<&str>, directives: &str) -> Loc {
        let node = self.node_mut(loc);
        let found = node.items.iter().position(|item| {
            matches!(item, Item::Inline { cond: c, directives: d, .. }
                if c.as_deref() == cond && d == directives)
        });
        let idx = found.unwrap_or_else(|| {
            node.items.push(Item::Inline {
                cond: cond.map(str::to_string),
                directives: directives.to_string(),
                children: SelTree::default(),
            });
            node.items.len() - 1
        });
        let mut out = loc.to_vec();
        out.push(idx);
        out
    }

    /// Writes a composite field's selection set. One that `@skip`/`@include` can empty at run
    /// time also selects `__typename`: async-graphql (and so every service here) answers an
    /// object whose every field was skipped with `null` instead of `{}`, and a non-null position
    /// would then null its parents.
    fn write_object(&self, out: &mut String) {
        if self.items.is_empty() || !self.may_be_empty() {
            return self.write(out);
        }
        out.push_str("{__typename ");
        let start = out.len();
        self.write(out);
        // Drop the inner set's own opening brace: `{__typename ` already opened it.
        out.remove(start);
    }

    /// Whether every selection here can be left out at run time by a condition directive.
    fn may_be_empty(&self) -> bool {
        self.items.iter().all(|item| match item {
            Item::Field { directives, .. } => is_conditional(directives),
            Item::Inline {
                directives,
                children,
                ..
            } => is_conditional(directives) || children.may_be_empty(),
        })
    }

    /// Response keys of the top-level fields, inline fragments entered, `__typename` left out,
    /// each once, in selection order (a root fetch's [`super::FetchNode::root_keys`]).
    pub fn root_response_keys(&self) -> Vec<String> {
        fn collect(tree: &SelTree, keys: &mut Vec<String>) {
            for item in &tree.items {
                match item {
                    Item::Field { alias, name, .. } => {
                        let key = alias.as_deref().unwrap_or(name);
                        if key != "__typename" && !keys.iter().any(|k| k == key) {
                            keys.push(key.to_owned());
                        }
                    }
                    Item::Inline { children, .. } => collect(children, keys),
                }
            }
        }
        let mut keys = Vec::new();
        collect(self, &mut keys);
        keys
    }

    /// Writes the selection set compactly, braces included. An empty set (a composite field
    /// whose every sub-selection went elsewhere) becomes `{__typename}` to stay valid.
    pub fn write(&self, out: &mut String) {
        out.push('{');
        if self.items.is_empty() {
            out.push_str("__typename");
        }
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            match item {
                Item::Field {
                    alias,
                    name,
                    args,
                    directives,
                    composite,
                    children,
                } => {
                    if let Some(alias) = alias {
                        let _ = write!(out, "{alias}:");
                    }
                    out.push_str(name);
                    out.push_str(args);
                    out.push_str(directives);
                    if *composite {
                        children.write_object(out);
                    }
                }
                Item::Inline {
                    cond,
                    directives,
                    children,
                } => {
                    out.push_str("...");
                    if let Some(cond) = cond {
                        let _ = write!(out, "on {cond}");
                    }
                    out.push_str(directives);
                    children.write(out);
                }
            }
        }
        out.push('}');
    }
}

/// Whether printed directives hold a `@skip` or `@include` (a literal or a variable condition).
fn is_conditional(directives: &str) -> bool {
    directives.contains("@skip(") || directives.contains("@include(")
}

/// The fetches being planned, each shared copy-on-write: a snapshot (to roll a candidate
/// back) copies pointers, and a group is copied only when a candidate first changes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Groups(Vec<std::rc::Rc<Group>>);

impl Groups {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn push(&mut self, group: Group) {
        self.0.push(std::rc::Rc::new(group));
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = &Group> {
        self.0.iter().map(|g| &**g)
    }

    /// The groups, owned (copied where a snapshot still shares them).
    pub fn into_vec(self) -> Vec<Group> {
        self.0
            .into_iter()
            .map(|g| std::rc::Rc::try_unwrap(g).unwrap_or_else(|shared| (*shared).clone()))
            .collect()
    }
}

impl std::ops::Index<usize> for Groups {
    type Output = Group;
    fn index(&self, i: usize) -> &Group {
        &self.0[i]
    }
}

impl std::ops::IndexMut<usize> for Groups {
    fn index_mut(&mut self, i: usize) -> &mut Group {
        std::rc::Rc::make_mut(&mut self.0[i])
    }
}

/// A fetch being planned.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub service: usize,
    /// `false` for a root fetch.
    pub entity: bool,
    /// Merge path of an entity fetch.
    pub path: Vec<PathElement>,
    /// `path` printed; groups are merged by (service, path key).
    pub path_key: String,
    /// Further merge paths this fetch serves (`merge_across_paths`), with the same selection.
    pub other_paths: Vec<Vec<PathElement>>,
    pub sel: SelTree,
    /// Representation selection: one `InlineFragment` per entity type.
    pub reps: Vec<RequiresSelection>,
    pub input_rewrites: Vec<ValueRewrite>,
    /// Renames that restore client keys after conflicting fields were aliased
    /// (`conflict::alias_conflicts`).
    pub output_rewrites: Vec<ValueRewrite>,
    /// Groups that must have run (and merged) before this one.
    pub deps: BTreeSet<usize>,
    /// Client variables the selection uses.
    pub vars: BTreeSet<String>,
    /// Conditions every piece of content of this group is under: when one fails, the whole
    /// fetch is skipped (a `Condition` node). `None` until content is added.
    pub gate: Option<BTreeSet<(String, bool)>>,
    /// Per entity type, conditions under which every field of its representation has been
    /// fetched, each one enough on its own: a jump provides its keys and `@requires` inputs
    /// under its own gate. An object whose representation lacks a field is not sent, so
    /// content may join only under a gate that implies one of these (see [`Group::join_rep`]).
    pub rep_gates: BTreeMap<String, Vec<BTreeSet<(String, bool)>>>,
}

impl Group {
    pub fn new(service: usize, entity: bool, path: Vec<PathElement>) -> Self {
        let path_key = super::display::path_string(&path);
        Self {
            service,
            entity,
            path,
            path_key,
            other_paths: Vec::new(),
            sel: SelTree::default(),
            reps: Vec::new(),
            input_rewrites: Vec::new(),
            output_rewrites: Vec::new(),
            deps: BTreeSet::new(),
            vars: BTreeSet::new(),
            gate: None,
            rep_gates: BTreeMap::new(),
        }
    }

    /// Records content added under `gate`; the group's gate is what all content shares.
    pub fn contribute(&mut self, gate: &[(apollo_compiler::Name, bool)]) {
        let new: BTreeSet<(String, bool)> = gate.iter().map(|(n, b)| (n.to_string(), *b)).collect();
        self.gate = Some(match self.gate.take() {
            None => new,
            Some(old) => old.intersection(&new).cloned().collect(),
        });
    }

    /// Whether `selections` can join this group's representation for `ty`: a field name the
    /// representation already carries must come from the same response key (the same value).
    pub fn rep_fits(&self, ty: &str, selections: &[RequiresSelection]) -> bool {
        let existing = self.reps.iter().find_map(|r| match r {
            RequiresSelection::InlineFragment {
                type_condition: Some(t),
                selections,
            } if t == ty => Some(selections),
            _ => None,
        });
        existing.is_none_or(|existing| requires_fit(existing, selections))
    }

    /// Whether a jump planned under `gate` can join this group with representation
    /// `selections` for `ty`: the representation's fields must all be fetched whenever the
    /// jump's content runs (it provided them all itself, or the gate implies one under which
    /// they were), and what it adds must be fetched whenever the group's other content runs.
    pub fn rep_gate_fits(
        &self,
        ty: &str,
        selections: &[RequiresSelection],
        gate: &BTreeSet<(String, bool)>,
    ) -> bool {
        let existing = self.rep_for(ty);
        let covered = !adds_to(selections, existing)
            || self
                .rep_gates
                .get(ty)
                .is_some_and(|gates| gates.iter().any(|r| r.is_subset(gate)));
        covered
            && (!adds_to(existing, selections)
                || self.gate.as_ref().is_none_or(|own| gate.is_subset(own)))
    }

    /// Records that a jump under `gate` provided `selections` for `ty` (before
    /// [`Group::add_rep`] merges them): updates the conditions the representation is complete
    /// under.
    pub fn join_rep(
        &mut self,
        ty: &str,
        selections: &[RequiresSelection],
        gate: &BTreeSet<(String, bool)>,
    ) {
        let existing = self.rep_for(ty);
        let adds = adds_to(existing, selections);
        let covers = !adds_to(selections, existing);
        let gates = self.rep_gates.entry(ty.to_string()).or_default();
        if covers {
            // The jump provided everything the representation needs: its gate is enough.
            gates.retain(|r| !adds && !gate.is_subset(r));
            gates.push(gate.clone());
        } else if adds {
            // The new fields are there only under the jump's gate as well.
            for r in gates {
                r.extend(gate.iter().cloned());
            }
        }
    }

    fn rep_for(&self, ty: &str) -> &[RequiresSelection] {
        self.reps
            .iter()
            .find_map(|r| match r {
                RequiresSelection::InlineFragment {
                    type_condition: Some(t),
                    selections,
                } if t == ty => Some(selections.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    /// Merges `selections` into the representation for objects of type `ty`.
    pub fn add_rep(&mut self, ty: &str, selections: Vec<RequiresSelection>) {
        let pos = self.reps.iter().position(|r| {
            matches!(r, RequiresSelection::InlineFragment { type_condition: Some(t), .. } if t == ty)
        });
        let idx = pos.unwrap_or_else(|| {
            self.reps.push(RequiresSelection::InlineFragment {
                type_condition: Some(ty.to_string()),
                selections: Vec::new(),
            });
            self.reps.len() - 1
        });
        if let RequiresSelection::InlineFragment {
            selections: into, ..
        } = &mut self.reps[idx]
        {
            merge_requires(into, selections);
        }
    }
}

/// Merges entity fetches that differ only by the types their paths pass through
/// (`a.@|[Book].b.@` and `a.@|[Movie].b.@`): same subgraph, same selection, same gate and
/// neither waiting for the other. The merged fetch's path lists both types at that step
/// (`a.@|[Book,Movie].b.@`), so it visits exactly the objects the two fetches visited.
pub(crate) fn merge_sibling_groups(groups: &mut Vec<Group>) {
    let mut i = 0;
    while i < groups.len() {
        let mut j = i + 1;
        while j < groups.len() {
            if siblings(&groups[i], &groups[j])
                && !waits_for(groups, i, j)
                && !waits_for(groups, j, i)
            {
                let other = remove_into(groups, i, j);
                absorb(&mut groups[i], other);
            } else {
                j += 1;
            }
        }
        i += 1;
    }
}

/// Merges entity fetches at different paths into one request: same subgraph, same selection,
/// representations, rewrites and gate, at the same stage (so neither waits longer than it did).
/// Only identical selections merge, so no object gets fields it did not ask for; the fetch
/// keeps its first path and lists the others in `other_paths`.
pub(crate) fn merge_across_paths(groups: &mut Vec<Group>) {
    let mut printed: Vec<String> = groups
        .iter()
        .map(|g| {
            let mut out = String::new();
            g.sel.write(&mut out);
            out
        })
        .collect();
    let mut level = stages(groups);
    let mut i = 0;
    while i < groups.len() {
        let mut j = i + 1;
        while j < groups.len() {
            let (a, b) = (&groups[i], &groups[j]);
            let alike = a.entity
                && b.entity
                && a.service == b.service
                && a.gate == b.gate
                && level[i] == level[j]
                && printed[i] == printed[j]
                && same_requires(&a.reps, &b.reps)
                && a.input_rewrites == b.input_rewrites
                && a.output_rewrites == b.output_rewrites
                && !waits_for(groups, i, j)
                && !waits_for(groups, j, i);
            if alike {
                let other = remove_into(groups, i, j);
                printed.remove(j);
                level.remove(j);
                let into = &mut groups[i];
                for path in std::iter::once(other.path).chain(other.other_paths) {
                    if path != into.path && !into.other_paths.contains(&path) {
                        into.other_paths.push(path);
                    }
                }
                into.deps.extend(other.deps);
                into.deps.remove(&i);
                into.vars.extend(other.vars);
            } else {
                j += 1;
            }
        }
        i += 1;
    }
}

/// Each group's stage: 0 for groups that wait for none, else one more than the latest stage
/// they wait for.
pub(crate) fn stages(groups: &[Group]) -> Vec<usize> {
    fn stage(groups: &[Group], i: usize, memo: &mut [Option<usize>]) -> usize {
        if let Some(s) = memo[i] {
            return s;
        }
        // Marks the group as being visited: a cycle (never planned) cannot recurse forever.
        memo[i] = Some(0);
        let s = groups[i]
            .deps
            .iter()
            .filter(|&&d| d != i)
            .map(|&d| stage(groups, d, memo) + 1)
            .max()
            .unwrap_or(0);
        memo[i] = Some(s);
        s
    }
    let mut memo = vec![None; groups.len()];
    (0..groups.len())
        .map(|i| stage(groups, i, &mut memo))
        .collect()
}

/// Whether merging `new` into `existing` adds a field to it.
fn adds_to(existing: &[RequiresSelection], new: &[RequiresSelection]) -> bool {
    let mut merged = existing.to_vec();
    merge_requires(&mut merged, new.to_vec());
    !same_requires(&merged, existing)
}

/// Whether two representation selections are the same, in any order.
fn same_requires(a: &[RequiresSelection], b: &[RequiresSelection]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// Removes group `j`, pointing whoever waited for it at `i` (`i < j`), and returns it with
/// its own dependencies renumbered too (the caller folds them into `i`).
fn remove_into(groups: &mut Vec<Group>, i: usize, j: usize) -> Group {
    let mut other = groups.remove(j);
    let renumber = |deps: &BTreeSet<usize>| -> BTreeSet<usize> {
        deps.iter()
            .map(|&d| match d.cmp(&j) {
                std::cmp::Ordering::Equal => i,
                std::cmp::Ordering::Greater => d - 1,
                std::cmp::Ordering::Less => d,
            })
            .collect()
    };
    for group in groups.iter_mut() {
        group.deps = renumber(&group.deps);
    }
    other.deps = renumber(&other.deps);
    groups[i].deps.remove(&i);
    other
}

/// Whether two groups are entity fetches that [`merge_sibling_groups`] may merge.
fn siblings(a: &Group, b: &Group) -> bool {
    if !a.entity || !b.entity || a.service != b.service || a.path_key == b.path_key {
        return false;
    }
    if a.path.len() != b.path.len() || a.gate != b.gate {
        return false;
    }
    let same_shape = a.path.iter().zip(&b.path).all(|pair| match pair {
        (PathElement::Key(x), PathElement::Key(y)) => x == y,
        (PathElement::List, PathElement::List) => true,
        (PathElement::TypeCondition(_), PathElement::TypeCondition(_)) => true,
        _ => false,
    });
    if !same_shape {
        return false;
    }
    let (mut x, mut y) = (String::new(), String::new());
    a.sel.write(&mut x);
    b.sel.write(&mut y);
    x == y
}

/// Whether group `a` (transitively) waits for group `b`.
fn waits_for(groups: &[Group], a: usize, b: usize) -> bool {
    let mut stack = vec![a];
    let mut seen = BTreeSet::new();
    while let Some(x) = stack.pop() {
        if x == b {
            return true;
        }
        if seen.insert(x) {
            stack.extend(groups[x].deps.iter().copied().filter(|&d| d != x));
        }
    }
    false
}

/// Folds `other` (a sibling of `into`) into `into`.
fn absorb(into: &mut Group, other: Group) {
    for (mine, theirs) in into.path.iter_mut().zip(other.path) {
        if let (PathElement::TypeCondition(types), PathElement::TypeCondition(more)) =
            (mine, theirs)
        {
            for t in more {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
        }
    }
    into.path_key = super::display::path_string(&into.path);
    for rep in other.reps {
        if let RequiresSelection::InlineFragment {
            type_condition: Some(ty),
            selections,
        } = rep
        {
            into.add_rep(&ty, selections);
        } else {
            merge_requires(&mut into.reps, vec![rep]);
        }
    }
    for rewrite in other.input_rewrites {
        if !into.input_rewrites.contains(&rewrite) {
            into.input_rewrites.push(rewrite);
        }
    }
    into.deps.extend(other.deps);
    into.vars.extend(other.vars);
}

/// Whether two representation selections agree on every field name they share.
fn requires_fit(a: &[RequiresSelection], b: &[RequiresSelection]) -> bool {
    b.iter().all(|sel| match sel {
        RequiresSelection::Field {
            name,
            response_key,
            selections,
        } => a.iter().all(|other| match other {
            RequiresSelection::Field {
                name: n,
                response_key: k,
                selections: sub,
            } if n == name => k == response_key && requires_fit(sub, selections),
            _ => true,
        }),
        RequiresSelection::InlineFragment {
            type_condition,
            selections,
        } => a.iter().all(|other| match other {
            RequiresSelection::InlineFragment {
                type_condition: t,
                selections: sub,
            } if t == type_condition => requires_fit(sub, selections),
            _ => true,
        }),
    })
}

/// Merges requirement selections, de-duplicating by (name, response key) / type condition.
pub(crate) fn merge_requires(into: &mut Vec<RequiresSelection>, from: Vec<RequiresSelection>) {
    for sel in from {
        match sel {
            RequiresSelection::Field {
                name,
                response_key,
                selections,
            } => {
                let existing = into.iter_mut().find_map(|s| match s {
                    RequiresSelection::Field {
                        name: n,
                        response_key: k,
                        selections: sub,
                    } if *n == name && *k == response_key => Some(sub),
                    _ => None,
                });
                match existing {
                    Some(sub) => merge_requires(sub, selections),
                    None => into.push(RequiresSelection::Field {
                        name,
                        response_key,
                        selections,
                    }),
                }
            }
            RequiresSelection::InlineFragment {
                type_condition,
                selections,
            } => {
                let existing = into.iter_mut().find_map(|s| match s {
                    RequiresSelection::InlineFragment {
                        type_condition: t,
                        selections: sub,
                    } if *t == type_condition => Some(sub),
                    _ => None,
                });
                match existing {
                    Some(sub) => merge_requires(sub, selections),
                    None => into.push(RequiresSelection::InlineFragment {
                        type_condition,
                        selections,
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(name: &str) -> RequiresSelection {
        RequiresSelection::Field {
            name: name.into(),
            response_key: name.into(),
            selections: Vec::new(),
        }
    }

    fn gate(conds: &[(&str, bool)]) -> BTreeSet<(String, bool)> {
        conds.iter().map(|(n, b)| (n.to_string(), *b)).collect()
    }

    /// Adds a jump's representation the way the planner does once it picked the group.
    fn join(group: &mut Group, ty: &str, rep: &[RequiresSelection], g: &BTreeSet<(String, bool)>) {
        group.join_rep(ty, rep, g);
        group.add_rep(ty, rep.to_vec());
        let conds: Vec<(apollo_compiler::Name, bool)> = g
            .iter()
            .map(|(n, b)| (apollo_compiler::Name::new(n).unwrap(), *b))
            .collect();
        group.contribute(&conds);
    }

    #[test]
    fn representation_inputs_fetched_under_a_condition_are_not_shared_without_it() {
        let key = [leaf("__typename"), leaf("sku")];
        let with_input = [leaf("__typename"), leaf("sku"), leaf("weight")];
        let skipped = gate(&[("skip", false)]);
        let always = gate(&[]);

        // A @requires input fetched only when $skip is false: unconditional content cannot
        // use that representation, content under the same condition can.
        let mut group = Group::new(1, true, vec![PathElement::Key("a".into())]);
        join(&mut group, "P", &with_input, &skipped);
        assert!(!group.rep_gate_fits("P", &key, &always));
        assert!(group.rep_gate_fits("P", &key, &skipped));
        // A jump that provides every input itself may join whatever its condition...
        assert!(group.rep_gate_fits("P", &with_input, &skipped));
        // ...but not add inputs the group's other content would then lack.
        let mut plain = Group::new(1, true, vec![PathElement::Key("a".into())]);
        join(&mut plain, "P", &key, &always);
        assert!(!plain.rep_gate_fits("P", &with_input, &skipped));
        assert!(plain.rep_gate_fits("P", &with_input, &always));

        // Once an unconditional jump provided the whole representation, it is complete always;
        // another type's representation is tracked on its own.
        join(&mut group, "P", &with_input, &always);
        assert!(group.rep_gate_fits("P", &key, &always));
        assert!(group.rep_gate_fits("Q", &key, &always));
        let mut other = Group::new(1, true, vec![PathElement::Key("a".into())]);
        join(&mut other, "P", &with_input, &skipped);
        join(&mut other, "Q", &with_input, &skipped);
        assert!(!other.rep_gate_fits("P", &key, &always));
    }

    #[test]
    fn same_selection_is_merged_and_empty_sets_stay_valid() {
        let mut tree = SelTree::default();
        let a = tree.add_field(&[], FieldText::bare("me"), true);
        let b = tree.add_field(&[], FieldText::bare("me"), true);
        assert_eq!(a, b);
        tree.add_field(&a, FieldText::bare("id"), false);
        tree.add_field(
            &a,
            FieldText {
                alias: Some("id"),
                name: "id",
                args: "",
                directives: "",
            },
            false,
        );
        let other = tree.add_field(
            &[],
            FieldText {
                alias: Some("you"),
                name: "user",
                args: "(id: 1)",
                directives: "",
            },
            true,
        );
        assert_ne!(a, other);
        let frag = tree.add_inline(&[], None, " @include(if: $x)");
        tree.add_field(&frag, FieldText::bare("__typename"), false);
        let mut out = String::new();
        tree.write(&mut out);
        assert_eq!(
            out,
            "{me{id} you:user(id: 1){__typename} ... @include(if: $x){__typename}}"
        );
    }

    #[test]
    fn representation_fragments_merge_per_type() {
        let mut group = Group::new(0, true, vec![PathElement::Key("me".into())]);
        let field = |name: &str| RequiresSelection::Field {
            name: name.into(),
            response_key: name.into(),
            selections: vec![],
        };
        group.add_rep("User", vec![field("__typename"), field("id")]);
        group.add_rep("User", vec![field("id"), field("name")]);
        group.add_rep("Admin", vec![field("id")]);
        assert_eq!(group.reps.len(), 2);
        let RequiresSelection::InlineFragment { selections, .. } = &group.reps[0] else {
            panic!("fragment expected");
        };
        assert_eq!(selections.len(), 3);
    }

    #[test]
    fn sibling_fetches_merge_and_dependants_follow() {
        let key = |k: &str| PathElement::Key(k.into());
        let on = |t: &str| PathElement::TypeCondition(vec![t.into()]);
        let entity = |path: Vec<PathElement>, field: &str, dep: usize| {
            let mut g = Group::new(1, true, path);
            g.sel.add_field(&[], FieldText::bare(field), false);
            g.deps.insert(dep);
            g.contribute(&[]);
            g
        };
        let mut root = Group::new(0, false, vec![]);
        root.contribute(&[]);
        let mut groups = vec![
            root,
            entity(vec![key("a"), on("A"), key("b")], "x", 0),
            entity(vec![key("a"), on("B"), key("b")], "x", 0),
            entity(vec![key("a"), on("B"), key("b"), key("c")], "y", 2),
            // Same shape, other selection: stays apart.
            entity(vec![key("a"), on("C"), key("b")], "z", 0),
        ];
        merge_sibling_groups(&mut groups);
        assert_eq!(groups.len(), 4);
        assert_eq!(groups[1].path_key, "a|[A,B].b");
        assert_eq!(groups[2].path_key, "a|[B].b.c");
        assert_eq!(groups[2].deps, BTreeSet::from([1]));
        assert_eq!(groups[3].path_key, "a|[C].b");
    }

    #[test]
    fn a_fetch_waiting_for_its_sibling_is_not_merged_into_it() {
        let on = |t: &str| PathElement::TypeCondition(vec![t.into()]);
        let mut groups: Vec<Group> = ["A", "B"]
            .iter()
            .map(|t| {
                let mut g = Group::new(1, true, vec![PathElement::Key("a".into()), on(t)]);
                g.path.push(PathElement::Key("b".into()));
                g.path_key = crate::plan::display::path_string(&g.path);
                g.sel.add_field(&[], FieldText::bare("x"), false);
                g.contribute(&[]);
                g
            })
            .collect();
        groups[1].deps.insert(0);
        merge_sibling_groups(&mut groups);
        assert_eq!(groups.len(), 2);
    }
}
