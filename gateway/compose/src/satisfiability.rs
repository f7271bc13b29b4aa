//! Satisfiability: every field reachable from a root must be resolvable by some plan, moving
//! between subgraphs only through resolvable `@key`s and honouring `@requires` / `@provides`.
//!
//! The check walks states `(type, subgraph, provided selection)` from each root. A field fails
//! when no subgraph reachable from the current one (via key jumps whose fields the reached set
//! can supply) resolves it. Because a plan may pick any resolver of a field, a nested failure is
//! reported only when it fails through every resolver.
//!
//! Where this accepts what Apollo's composer rejects, on purpose: an `@interfaceObject` field
//! on an implementation reached where the type is known by another key only (`sku` in the
//! subgraph the object comes from, the interface object keyed by `id`) is reachable by moving
//! to a subgraph that has `id` first. Apollo's search skips a key move right after one with the
//! same key fields (it assumes a direct move exists, and from an implementation type that
//! lacks the fields none does), so it rejects or accepts such a shape depending on the order
//! of the `@key` directives it tries first (difftest seeds 7320, 9379; case
//! `valid_interface_object_field_after_key_change`). Apollo's query planner plans the same
//! supergraph in either order, so it is one other gateways can read.

use std::collections::{HashMap, HashSet};

use crate::error::CompositionError;
use crate::fieldset::{self, Selection};
use crate::model::{MField, MType, Merged};
use crate::subgraph::{Kind, Subgraph, TypeDef};

#[derive(Clone, Debug)]
struct Failure {
    path: Vec<String>,
    coord: String,
    reasons: Vec<String>,
}

struct Checker<'a> {
    subs: &'a [Subgraph],
    merged: &'a Merged,
    memo: HashMap<(String, usize, String), Vec<Failure>>,
    in_progress: HashSet<(String, usize, String)>,
    parsed: HashMap<String, Option<Vec<Selection>>>,
    reach_memo: HashMap<(String, usize), Vec<usize>>,
}

fn selections_of<'s>(prov: &'s [Selection], field: &str) -> Option<&'s [Selection]> {
    prov.iter().find_map(|s| match s {
        Selection::Field {
            name, selections, ..
        } if name == field => Some(selections.as_slice()),
        _ => None,
    })
}

impl<'a> Checker<'a> {
    fn def(&self, g: usize, ty: &str) -> Option<&'a TypeDef> {
        self.subs[g].types.get(ty)
    }

    /// Whether subgraph `g` can produce the selection on `ty` itself (non-external fields).
    fn local(&self, g: usize, ty: &str, sels: &[Selection]) -> bool {
        let Some(t) = self.def(g, ty) else {
            return false;
        };
        sels.iter().all(|s| match s {
            Selection::Field {
                name, selections, ..
            } => {
                name == "__typename"
                    || t.fields.get(name).is_some_and(|f| {
                        !f.external
                            && (selections.is_empty()
                                || self.local(g, f.ty.inner_named_type(), selections))
                    })
            }
            Selection::InlineFragment {
                type_condition,
                selections,
            } => self.local(g, type_condition.as_deref().unwrap_or(ty), selections),
        })
    }

    fn parse_cached(&mut self, fields: &str) -> Option<Vec<Selection>> {
        if let Some(p) = self.parsed.get(fields) {
            return p.clone();
        }
        let p = fieldset::parse(fields).ok();
        self.parsed.insert(fields.to_string(), p.clone());
        p
    }

    /// Subgraphs reachable for `ty` starting in `start`, through resolvable keys.
    fn reach(&mut self, ty: &MType, start: usize) -> Vec<usize> {
        let memo_key = (ty.name.clone(), start);
        if let Some(r) = self.reach_memo.get(&memo_key) {
            return r.clone();
        }
        let keys: Vec<(usize, Vec<Selection>)> = ty
            .join_types
            .iter()
            .filter(|jt| jt.resolvable)
            .filter_map(|jt| Some((jt.graph, self.parse_cached(jt.key.as_deref()?)?)))
            .collect();
        let mut reached = vec![start];
        loop {
            let mut grew = false;
            for (graph, sels) in &keys {
                if reached.contains(graph) {
                    continue;
                }
                if reached.iter().any(|&r| self.local(r, &ty.name, sels)) {
                    reached.push(*graph);
                    grew = true;
                }
            }
            if !grew {
                self.reach_memo.insert(memo_key, reached);
                return self.reach_memo[&(ty.name.clone(), start)].clone();
            }
        }
    }

    fn resolvers(&self, ty: &MType, f: &MField) -> Vec<usize> {
        match &f.joins {
            None => ty
                .join_types
                .iter()
                .map(|j| j.graph)
                .fold(Vec::new(), |mut v, g| {
                    if !v.contains(&g) {
                        v.push(g);
                    }
                    v
                }),
            Some(js) => js
                .iter()
                .filter(|j| !j.external && !j.used_overridden)
                .filter_map(|j| j.graph)
                .collect(),
        }
    }

    fn why_not(&self, ty: &MType, from: usize, to: usize) -> String {
        let (sf, st) = (&self.subs[from].name, &self.subs[to].name);
        let keys: Vec<_> = ty
            .join_types
            .iter()
            .filter(|j| j.graph == to && j.key.is_some())
            .collect();
        if keys.is_empty() {
            format!("cannot move to subgraph \"{st}\" because type \"{}\" has no @key defined in subgraph \"{st}\"", ty.name)
        } else if keys.iter().all(|k| !k.resolvable) {
            format!("cannot move to subgraph \"{st}\" because its @key on \"{}\" is not resolvable (resolvable: false)", ty.name)
        } else {
            format!("cannot move to subgraph \"{st}\" using @key(fields: \"{}\") of \"{}\", the key field(s) cannot be resolved from subgraph \"{sf}\"", keys[0].key.as_deref().unwrap_or(""), ty.name)
        }
    }

    fn requires_ok(&mut self, ty: &MType, g: usize, fname: &str) -> bool {
        let Some(req) = self
            .def(g, &ty.name)
            .and_then(|t| t.fields.get(fname))
            .and_then(|f| f.requires.as_deref())
        else {
            return true;
        };
        let Ok(sels) = fieldset::parse(req) else {
            return true;
        };
        let reach = self.reach(ty, g);
        sels.iter().all(|s| match s {
            Selection::Field { name, .. } => ty.fields.get(name).is_some_and(|rf| {
                self.resolvers(ty, rf)
                    .iter()
                    .any(|r| reach.contains(r) && *r != g)
                    || self
                        .def(g, &ty.name)
                        .and_then(|t| t.fields.get(name))
                        .is_some_and(|lf| !lf.external)
            }),
            _ => true,
        })
    }

    fn visit(&mut self, ty_name: &str, g: usize, prov: Option<&[Selection]>) -> Vec<Failure> {
        let prov_key = prov.map(fieldset::print).unwrap_or_default();
        let key = (ty_name.to_string(), g, prov_key);
        if let Some(r) = self.memo.get(&key) {
            return r.clone();
        }
        if !self.in_progress.insert(key.clone()) {
            return Vec::new();
        }
        let out = self.visit_inner(ty_name, g, prov);
        self.in_progress.remove(&key);
        self.memo.insert(key, out.clone());
        out
    }

    fn visit_inner(&mut self, ty_name: &str, g: usize, prov: Option<&[Selection]>) -> Vec<Failure> {
        let merged = self.merged;
        let Some(ty) = merged.types.get(ty_name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match ty.kind {
            Kind::Union => {
                if let Some(d) = self.def(g, ty_name) {
                    for m in d.members.clone() {
                        for mut f in self.visit(&m, g, prov) {
                            f.path.insert(0, format!("... on {m}"));
                            out.push(f);
                        }
                    }
                }
                return out;
            }
            Kind::Interface
                if self
                    .def(g, ty_name)
                    .is_some_and(|d| d.kind == Kind::Interface) =>
            {
                let impls: Vec<String> = self.subs[g]
                    .types
                    .values()
                    .filter(|t| t.kind == Kind::Object && t.implements.iter().any(|i| i == ty_name))
                    .map(|t| t.name.clone())
                    .collect();
                for o in impls {
                    for mut f in self.visit(&o, g, prov) {
                        f.path.insert(0, format!("... on {o}"));
                        out.push(f);
                    }
                }
                return out;
            }
            Kind::Object | Kind::Interface => {}
            _ => return out,
        }
        let reach = self.reach(ty, g);
        for f in ty.fields.values() {
            if f.meta.inaccessible {
                continue;
            }
            let provided = prov.and_then(|p| selections_of(p, &f.name));
            let mut choices: Vec<(usize, Option<Vec<Selection>>)> = Vec::new();
            if let Some(sub_sel) = provided {
                choices.push((g, Some(sub_sel.to_vec())));
            }
            let resolvers = self.resolvers(ty, f);
            for &r in &resolvers {
                if reach.contains(&r) && self.requires_ok(ty, r, &f.name) {
                    let own = self
                        .def(r, ty_name)
                        .and_then(|t| t.fields.get(&f.name))
                        .and_then(|lf| lf.provides.as_deref())
                        .and_then(|p| fieldset::parse(p).ok());
                    choices.push((r, own));
                }
            }
            // Fields copied onto implementations from an @interfaceObject are resolved through
            // the interface: reachable if some subgraph with that interface object is reachable.
            if f.joins
                .as_ref()
                .is_some_and(|js| js.iter().all(|j| j.graph.is_none()))
            {
                for i in &ty.implements {
                    if let Some(it) = merged.types.get(i) {
                        for jt in it.join_types.iter().filter(|j| j.is_interface_object) {
                            let via_key = jt
                                .key
                                .as_deref()
                                .and_then(|k| fieldset::parse(k).ok())
                                .is_some_and(|k| reach.iter().any(|&r| self.local(r, ty_name, &k)));
                            if via_key && !choices.iter().any(|c| c.0 == jt.graph) {
                                choices.push((jt.graph, None));
                            }
                        }
                    }
                }
            }
            if choices.is_empty() {
                let mut reasons = Vec::new();
                if resolvers.is_empty() {
                    reasons.push(format!(
                        "no subgraph can resolve field \"{}.{}\"",
                        ty_name, f.name
                    ));
                }
                for &r in &resolvers {
                    if !reach.contains(&r) {
                        reasons.push(self.why_not(ty, g, r));
                    } else {
                        reasons.push(format!(
                            "cannot satisfy @requires of field \"{}.{}\" in subgraph \"{}\"",
                            ty_name, f.name, self.subs[r].name
                        ));
                    }
                }
                if self
                    .def(g, ty_name)
                    .and_then(|t| t.fields.get(&f.name))
                    .is_none()
                {
                    reasons.insert(0, format!("cannot find field \"{}.{}\"", ty_name, f.name));
                }
                out.push(Failure {
                    path: vec![f.name.clone()],
                    coord: format!("{}.{}", ty_name, f.name),
                    reasons: reasons
                        .into_iter()
                        .map(|r| format!("from subgraph \"{}\": {r}", self.subs[g].name))
                        .collect(),
                });
                continue;
            }
            let target = f.ty.inner_named_type().to_string();
            if !merged
                .types
                .get(&target)
                .is_some_and(|t| matches!(t.kind, Kind::Object | Kind::Interface | Kind::Union))
            {
                continue;
            }
            // A nested failure counts only if it fails through every way of resolving the field.
            let mut common: Option<Vec<Failure>> = None;
            for (r, p) in choices {
                let fails = self.visit(&target, r, p.as_deref());
                common = Some(match common {
                    None => fails,
                    Some(prev) => prev
                        .into_iter()
                        .filter(|a| fails.iter().any(|b| b.path == a.path))
                        .collect(),
                });
                if common.as_ref().is_some_and(|c| c.is_empty()) {
                    break;
                }
            }
            for mut fl in common.unwrap_or_default() {
                fl.path.insert(0, f.name.clone());
                out.push(fl);
            }
        }
        out
    }
}

fn render_query(op: &str, path: &[String]) -> String {
    let mut s = String::new();
    if op != "query" {
        s.push_str(op);
        s.push(' ');
    }
    s.push_str("{\n");
    for (i, p) in path.iter().enumerate() {
        s.push_str(&"  ".repeat(i + 1));
        s.push_str(p);
        if i + 1 < path.len() {
            s.push_str(" {");
        }
        s.push('\n');
    }
    for i in (0..path.len().saturating_sub(1)).rev() {
        s.push_str(&"  ".repeat(i + 1));
        s.push_str("}\n");
    }
    s.push('}');
    s
}

/// Stack for the recursive walk: type chains in large supergraphs recurse thousands deep.
const WALK_STACK_BYTES: usize = 512 * 1024 * 1024;

/// Returns one `SATISFIABILITY_ERROR` per unresolvable field coordinate (shortest path shown).
pub fn check(subs: &[Subgraph], merged: &Merged) -> Vec<CompositionError> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("satisfiability".into())
            .stack_size(WALK_STACK_BYTES)
            .spawn_scoped(scope, || check_on_this_thread(subs, merged))
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .unwrap_or_else(|_| check_on_this_thread(subs, merged))
    })
}

fn check_on_this_thread(subs: &[Subgraph], merged: &Merged) -> Vec<CompositionError> {
    let mut c = Checker {
        subs,
        merged,
        memo: HashMap::new(),
        in_progress: HashSet::new(),
        parsed: HashMap::new(),
        reach_memo: HashMap::new(),
    };
    let mut by_coord: HashMap<String, (String, Failure)> = HashMap::new();
    let mut order = Vec::new();
    for (op, root) in [
        ("query", "Query"),
        ("mutation", "Mutation"),
        ("subscription", "Subscription"),
    ] {
        let Some(rt) = merged.types.get(root) else {
            continue;
        };
        let graphs: Vec<usize> = rt.join_types.iter().map(|j| j.graph).collect();
        for f in rt.fields.values() {
            if f.meta.inaccessible {
                continue;
            }
            let target = f.ty.inner_named_type().to_string();
            if !merged
                .types
                .get(&target)
                .is_some_and(|t| matches!(t.kind, Kind::Object | Kind::Interface | Kind::Union))
            {
                continue;
            }
            let resolvers: Vec<usize> = match &f.joins {
                None => graphs.clone(),
                Some(js) => js
                    .iter()
                    .filter(|j| !j.external && !j.used_overridden)
                    .filter_map(|j| j.graph)
                    .collect(),
            };
            let mut common: Option<Vec<Failure>> = None;
            for r in resolvers {
                let prov = subs[r]
                    .types
                    .get(root)
                    .and_then(|t| t.fields.get(&f.name))
                    .and_then(|lf| lf.provides.as_deref())
                    .and_then(|p| fieldset::parse(p).ok());
                let fails = c.visit(&target, r, prov.as_deref());
                common = Some(match common {
                    None => fails,
                    Some(prev) => prev
                        .into_iter()
                        .filter(|a| fails.iter().any(|b| b.path == a.path))
                        .collect(),
                });
            }
            for mut fl in common.unwrap_or_default() {
                fl.path.insert(0, f.name.clone());
                match by_coord.get(&fl.coord) {
                    Some((_, prev)) if prev.path.len() <= fl.path.len() => {}
                    _ => {
                        if !by_coord.contains_key(&fl.coord) {
                            order.push(fl.coord.clone());
                        }
                        by_coord.insert(fl.coord.clone(), (op.to_string(), fl));
                    }
                }
            }
        }
    }
    order
        .into_iter()
        .map(|coord| {
            let (op, fl) = &by_coord[&coord];
            let msg = format!(
                "The following supergraph API query:\n{}\ncannot be satisfied by the subgraphs because:\n{}",
                render_query(op, &fl.path),
                fl.reasons.iter().map(|r| format!("- {r}.")).collect::<Vec<_>>().join("\n")
            );
            let (gi, line) = crate::merge::locate(subs, &coord);
            let mut e = CompositionError::new("SATISFIABILITY_ERROR", msg).at(coord).line(line);
            if let Some(gi) = gi {
                e = e.in_subgraph(&subs[gi].name);
                e.file = subs[gi].file.clone();
            }
            e
        })
        .collect()
}
