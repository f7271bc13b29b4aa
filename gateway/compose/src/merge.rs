//! Merging validated subgraphs into the supergraph model (Apollo's Federation 2 merge rules).

use std::collections::{HashMap, HashSet};

use apollo_compiler::ast::Type;
use indexmap::{IndexMap, IndexSet};

use crate::error::CompositionError;
use crate::model::*;
use crate::subgraph::{Field, InputValue, Kind, ListSize, Meta, Subgraph, TypeDef};
use crate::validate;

/// Merges output positions: nullable wherever any subgraph is nullable. `None` if the shapes differ.
pub fn merge_output(a: &Type, b: &Type) -> Option<Type> {
    merge_ty(a, b, true)
}

/// Merges input positions: non-null wherever any subgraph is non-null. `None` if the shapes differ.
pub fn merge_input(a: &Type, b: &Type) -> Option<Type> {
    merge_ty(a, b, false)
}

fn merge_ty(a: &Type, b: &Type, output: bool) -> Option<Type> {
    let nn = if output {
        a.is_non_null() && b.is_non_null()
    } else {
        a.is_non_null() || b.is_non_null()
    };
    match (a.clone().nullable(), b.clone().nullable()) {
        (Type::Named(x), Type::Named(y)) if x == y => Some(if nn {
            Type::NonNullNamed(x)
        } else {
            Type::Named(x)
        }),
        (Type::List(x), Type::List(y)) => {
            let inner = merge_ty(&x, &y, output)?;
            Some(if nn {
                Type::NonNullList(Box::new(inner))
            } else {
                Type::List(Box::new(inner))
            })
        }
        _ => None,
    }
}

fn most_common<'a>(items: impl Iterator<Item = Option<&'a String>>) -> Option<String> {
    let mut counts: IndexMap<&String, usize> = IndexMap::new();
    for s in items.flatten() {
        *counts.entry(s).or_default() += 1;
    }
    let max = counts.values().copied().max()?;
    counts
        .into_iter()
        .find(|(_, c)| *c == max)
        .map(|(s, _)| s.clone())
}

/// Combines two requirement lists (OR of ANDs) so both must hold: every pairing of alternatives,
/// minus alternatives that include another (they add nothing).
fn and_requirements(a: &[Vec<String>], b: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for x in a {
        for y in b {
            let mut set = x.clone();
            for s in y {
                if !set.contains(s) {
                    set.push(s.clone());
                }
            }
            if !out
                .iter()
                .any(|o| o.len() == set.len() && o.iter().all(|s| set.contains(s)))
            {
                out.push(set);
            }
        }
    }
    let minimal: Vec<Vec<String>> = out
        .iter()
        .filter(|s| {
            !out.iter()
                .any(|o| o.len() < s.len() && o.iter().all(|x| s.contains(x)))
        })
        .cloned()
        .collect();
    minimal
}

fn merge_meta<'a>(metas: impl Iterator<Item = &'a Meta>) -> Meta {
    let mut out = Meta::default();
    for m in metas {
        out.inaccessible |= m.inaccessible;
        out.authenticated |= m.authenticated;
        for (mine, theirs) in [
            (&mut out.scopes, &m.scopes),
            (&mut out.policies, &m.policies),
        ] {
            if let Some(t) = theirs {
                *mine = Some(match mine.take() {
                    None => t.clone(),
                    Some(prev) => and_requirements(&prev, t),
                });
            }
        }
        for t in &m.tags {
            if !out.tags.contains(t) {
                out.tags.push(t.clone());
            }
        }
        // Demand control takes the most expensive view any subgraph gives (Apollo's merge:
        // the highest weight and assumed size, every slicing argument and sized field, and a
        // slicing argument required only where every subgraph that says so requires one).
        out.cost = out.cost.max(m.cost);
        if let Some(theirs) = &m.list_size {
            let mine = out.list_size.get_or_insert_with(ListSize::default);
            mine.assumed_size = mine.assumed_size.max(theirs.assumed_size);
            for (into, from) in [
                (&mut mine.slicing_arguments, &theirs.slicing_arguments),
                (&mut mine.sized_fields, &theirs.sized_fields),
            ] {
                if let Some(from) = from {
                    let into = into.get_or_insert_with(Vec::new);
                    for name in from {
                        if !into.contains(name) {
                            into.push(name.clone());
                        }
                    }
                }
            }
            if let Some(theirs) = theirs.require_one_slicing_argument {
                let mine = &mut mine.require_one_slicing_argument;
                *mine = Some(mine.unwrap_or(true) && theirs);
            }
        }
        if out.deprecated.is_none() {
            out.deprecated = m.deprecated.clone();
        }
    }
    out
}

fn graph_enum_names(subs: &[Subgraph]) -> Vec<String> {
    let mut seen: HashSet<String> = HashSet::new();
    subs.iter()
        .map(|s| {
            let mut base: String = s
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            if base.starts_with(|c: char| c.is_ascii_digit()) || base.is_empty() {
                // Apollo's naming: a leading digit gets underscores on both sides.
                base = format!("_{base}_");
            }
            let mut name = base.clone();
            let mut i = 1;
            while !seen.insert(name.clone()) {
                name = format!("{base}_{i}");
                i += 1;
            }
            name
        })
        .collect()
}

/// Which sources of a field hand it over to another subgraph (`@override`).
#[derive(Default)]
struct Overrides {
    /// Overridden source -> the override's label (`None`: unconditional).
    overridden: HashMap<usize, Option<String>>,
    /// Overriding source -> the source it takes the field from.
    overriders: HashMap<usize, usize>,
    /// Two sources override each other (reported).
    conflict: bool,
}

struct Merger<'a> {
    subs: &'a [Subgraph],
    errors: Vec<CompositionError>,
    used: Vec<HashSet<(String, String)>>,
    keys: Vec<HashSet<(String, String)>>,
    provided: Vec<HashSet<(String, String)>>,
    input_enums: HashMap<String, String>,
    output_enums: HashMap<String, String>,
}

impl<'a> Merger<'a> {
    fn err(
        &mut self,
        code: &'static str,
        msg: String,
        gi: Option<usize>,
        coord: String,
        line: Option<usize>,
    ) {
        let mut e = CompositionError::new(code, msg).at(coord).line(line);
        if let Some(gi) = gi {
            e = e.in_subgraph(&self.subs[gi].name);
            e.file = self.subs[gi].file.clone();
        }
        self.errors.push(e);
    }

    fn name(&self, gi: usize) -> &'a str {
        &self.subs[gi].name
    }

    fn input_value(
        &mut self,
        coord: &str,
        sources: &[(usize, &InputValue)],
        is_arg: bool,
    ) -> MInput {
        let (g0, first) = sources[0];
        let mut ty = first.ty.clone();
        for (gi, v) in &sources[1..] {
            match merge_input(&ty, &v.ty) {
                Some(t) => ty = t,
                None => {
                    let code = if is_arg {
                        "FIELD_ARGUMENT_TYPE_MISMATCH"
                    } else {
                        "FIELD_TYPE_MISMATCH"
                    };
                    let what = if is_arg {
                        "Type of argument"
                    } else {
                        "Type of field"
                    };
                    let msg = format!(
                        "{what} \"{coord}\" is incompatible across subgraphs: it has type \"{}\" in subgraph \"{}\" but type \"{}\" in subgraph \"{}\"",
                        first.ty, self.name(g0), v.ty, self.name(*gi)
                    );
                    self.err(code, msg, Some(*gi), coord.to_string(), v.line);
                }
            }
        }
        let mut default: Option<(usize, &String)> = None;
        for (gi, v) in sources {
            if let Some(d) = &v.default {
                match default {
                    None => default = Some((*gi, d)),
                    Some((g, prev)) if prev != d => {
                        let code = if is_arg {
                            "FIELD_ARGUMENT_DEFAULT_MISMATCH"
                        } else {
                            "INPUT_FIELD_DEFAULT_MISMATCH"
                        };
                        let what = if is_arg { "Argument" } else { "Input field" };
                        let msg = format!(
                            "{what} \"{coord}\" has incompatible default values across subgraphs: it has default value {prev} in subgraph \"{}\" and default value {d} in subgraph \"{}\"",
                            self.name(g), self.name(*gi)
                        );
                        self.err(code, msg, Some(*gi), coord.to_string(), v.line);
                    }
                    _ => {}
                }
            }
        }
        MInput {
            name: first.name.clone(),
            description: most_common(sources.iter().map(|(_, v)| v.description.as_ref())),
            ty,
            default: default.map(|(_, d)| d.clone()),
            meta: merge_meta(sources.iter().map(|(_, v)| &v.meta)),
        }
    }

    /// Intersection of input values (arguments or input fields) across the given sources.
    fn intersect_inputs(
        &mut self,
        coord_prefix: &str,
        sources: &[(usize, &'a IndexMap<String, InputValue>)],
        is_arg: bool,
    ) -> IndexMap<String, MInput> {
        let mut names: IndexSet<&String> = IndexSet::new();
        for (_, m) in sources {
            names.extend(m.keys());
        }
        let mut out = IndexMap::new();
        for n in names {
            let coord = if is_arg {
                format!("{coord_prefix}({n}:)")
            } else {
                format!("{coord_prefix}.{n}")
            };
            let present: Vec<(usize, &InputValue)> = sources
                .iter()
                .filter_map(|(gi, m)| m.get(n).map(|v| (*gi, v)))
                .collect();
            if present.len() < sources.len() {
                let required = present
                    .iter()
                    .find(|(_, v)| v.ty.is_non_null() && v.default.is_none());
                if let Some((rg, rv)) = required {
                    let missing = sources
                        .iter()
                        .find(|(_, m)| !m.contains_key(n))
                        .map(|(gi, _)| *gi)
                        .unwrap_or(0);
                    let (code, what) = if is_arg {
                        ("REQUIRED_ARGUMENT_MISSING_IN_SOME_SUBGRAPH", "Argument")
                    } else {
                        (
                            "REQUIRED_INPUT_FIELD_MISSING_IN_SOME_SUBGRAPH",
                            "Input object field",
                        )
                    };
                    let msg = format!(
                        "{what} \"{coord}\" is required in some subgraphs but does not appear in all subgraphs: it is required in subgraph \"{}\" but does not appear in subgraph \"{}\"",
                        self.name(*rg), self.name(missing)
                    );
                    let line = rv.line;
                    self.err(code, msg, Some(*rg), coord, line);
                }
                continue;
            }
            let v = self.input_value(&coord, &present, is_arg);
            out.insert(n.clone(), v);
        }
        out
    }

    fn merge_field(
        &mut self,
        ty_name: &str,
        kind: Kind,
        type_graphs: &[usize],
        fname: &str,
        sources: &[(usize, &'a Field)],
    ) -> Option<MField> {
        let coord = format!("{ty_name}.{fname}");
        let ov = self.overrides(&coord, sources);
        let is_used = |gi: usize| self.used[gi].contains(&(ty_name.to_string(), fname.to_string()));
        let included: Vec<(usize, &Field)> = sources
            .iter()
            .copied()
            .filter(|(gi, _)| match ov.overridden.get(gi) {
                Some(None) => is_used(*gi),
                _ => true,
            })
            .collect();
        let active: Vec<(usize, &Field)> = sources
            .iter()
            .copied()
            .filter(|(gi, f)| !f.external && !ov.overridden.contains_key(gi))
            .collect();
        if kind == Kind::Object && !ov.conflict {
            self.check_sharing(ty_name, fname, &coord, sources, &ov.overridden);
        }
        let (ty, typed) = self.merge_field_type(&coord, sources)?;
        let arg_sources: Vec<(usize, &IndexMap<String, InputValue>)> =
            if active.is_empty() { &typed } else { &active }
                .iter()
                .map(|(gi, f)| (*gi, &f.args))
                .collect();
        let args = self.intersect_inputs(&coord, &arg_sources, true);
        let joins = self.field_joins(type_graphs, &included, &ty, &ov);
        Some(MField {
            name: fname.to_string(),
            description: most_common(sources.iter().map(|(_, f)| f.description.as_ref())),
            ty,
            args,
            joins,
            meta: merge_meta(sources.iter().map(|(_, f)| &f.meta)),
        })
    }

    /// Which sources hand the field over to another subgraph (`@override`).
    fn overrides(&mut self, coord: &str, sources: &[(usize, &'a Field)]) -> Overrides {
        let mut ov = Overrides::default();
        for (gi, f) in sources {
            let Some(from) = &f.override_from else {
                continue;
            };
            let Some((fg, ff)) = sources.iter().find(|(g, _)| self.name(*g) == from) else {
                continue;
            };
            if ff.override_from.is_some() {
                let msg = format!(
                    "Field \"{coord}\" on subgraph \"{}\" is also marked with directive @override in subgraph \"{}\". Only one @override directive is allowed per field.",
                    self.name(*fg), self.name(*gi)
                );
                self.err(
                    "OVERRIDE_SOURCE_HAS_OVERRIDE",
                    msg,
                    Some(*gi),
                    coord.to_string(),
                    f.line,
                );
                ov.conflict = true;
                continue;
            }
            if *fg != *gi {
                ov.overridden.insert(*fg, f.override_label.clone());
                ov.overriders.insert(*gi, *fg);
            }
        }
        ov
    }

    /// An object field resolved by several subgraphs must be shareable in each (keys and
    /// `@external` fields aside).
    fn check_sharing(
        &mut self,
        ty_name: &str,
        fname: &str,
        coord: &str,
        sources: &[(usize, &'a Field)],
        overridden: &HashMap<usize, Option<String>>,
    ) {
        let here = (ty_name.to_string(), fname.to_string());
        let resolving: Vec<(usize, &Field)> = sources
            .iter()
            .copied()
            .filter(|(gi, f)| {
                !overridden.contains_key(gi) && (!f.external || self.provided[*gi].contains(&here))
            })
            .collect();
        if resolving.len() <= 1 {
            return;
        }
        let non_shareable: Vec<usize> = resolving
            .iter()
            .filter(|(gi, f)| !f.shareable && !f.external && !self.keys[*gi].contains(&here))
            .map(|(gi, _)| *gi)
            .collect();
        let Some(&bad) = non_shareable.first() else {
            return;
        };
        let all: Vec<String> = resolving
            .iter()
            .map(|(g, _)| format!("\"{}\"", self.name(*g)))
            .collect();
        let bad_names: Vec<String> = non_shareable
            .iter()
            .map(|g| format!("\"{}\"", self.name(*g)))
            .collect();
        let msg = format!(
            "Non-shareable field \"{coord}\" is resolved from multiple subgraphs: it is resolved from subgraphs {} and defined as non-shareable in {} {}",
            join_and(&all),
            if bad_names.len() == 1 { "subgraph" } else { "subgraphs" },
            join_and(&bad_names)
        );
        let line = sources
            .iter()
            .find(|(g, _)| *g == bad)
            .and_then(|(_, f)| f.line);
        self.err(
            "INVALID_FIELD_SHARING",
            msg,
            Some(bad),
            coord.to_string(),
            line,
        );
    }

    /// The field's merged output type and the sources that declare it (not `@external`);
    /// `None` (reported) when every source is `@external`.
    fn merge_field_type(
        &mut self,
        coord: &str,
        sources: &[(usize, &'a Field)],
    ) -> Option<(Type, Vec<(usize, &'a Field)>)> {
        if sources.iter().all(|(_, f)| f.external) {
            for (gi, f) in sources {
                let msg = format!(
                    "Field \"{coord}\" is marked @external on all the subgraphs in which it is listed (subgraph \"{}\").",
                    self.name(*gi)
                );
                self.err(
                    "EXTERNAL_MISSING_ON_BASE",
                    msg,
                    Some(*gi),
                    coord.to_string(),
                    f.line,
                );
            }
            return None;
        }
        let typed: Vec<(usize, &Field)> = sources
            .iter()
            .copied()
            .filter(|(_, f)| !f.external)
            .collect();
        let (g0, f0) = typed[0];
        let mut ty = f0.ty.clone();
        let mut mismatch = false;
        for (gi, f) in &typed[1..] {
            match merge_output(&ty, &f.ty) {
                Some(t) => ty = t,
                None => {
                    mismatch = true;
                    let msg = format!(
                        "Type of field \"{coord}\" is incompatible across subgraphs: it has type \"{}\" in subgraph \"{}\" but type \"{}\" in subgraph \"{}\"",
                        f0.ty, self.name(g0), f.ty, self.name(*gi)
                    );
                    self.err(
                        "FIELD_TYPE_MISMATCH",
                        msg,
                        Some(*gi),
                        coord.to_string(),
                        f.line,
                    );
                }
            }
        }
        if mismatch {
            return Some((ty, typed));
        }
        for (gi, f) in sources.iter().filter(|(_, f)| f.external) {
            if merge_output(&ty, &f.ty).is_none() {
                let msg = format!(
                    "Type of field \"{coord}\" is incompatible across subgraphs (where marked @external): it has type \"{}\" in subgraph \"{}\" but type \"{}\" in subgraph \"{}\"",
                    ty, self.name(g0), f.ty, self.name(*gi)
                );
                self.err(
                    "EXTERNAL_TYPE_MISMATCH",
                    msg,
                    Some(*gi),
                    coord.to_string(),
                    f.line,
                );
                let msg = format!(
                    "Type of field \"{coord}\" is incompatible across subgraphs: it has type \"{}\" in subgraph \"{}\" but type \"{}\" in subgraph \"{}\"",
                    ty, self.name(g0), f.ty, self.name(*gi)
                );
                self.err(
                    "FIELD_TYPE_MISMATCH",
                    msg,
                    Some(*gi),
                    coord.to_string(),
                    f.line,
                );
            }
        }
        Some((ty, typed))
    }

    /// The field's `@join__field`s, one per included source; `None` when the field needs
    /// none (every subgraph of the type resolves it the same plain way).
    fn field_joins(
        &self,
        type_graphs: &[usize],
        included: &[(usize, &Field)],
        ty: &Type,
        ov: &Overrides,
    ) -> Option<Vec<JoinField>> {
        // Apollo records every subgraph's type once any of them differs from the merged one.
        let all_same_type = included.iter().all(|(_, f)| f.ty == *ty);
        let special = |gi: usize, f: &Field| {
            f.external
                || f.requires.is_some()
                || f.provides.is_some()
                || f.override_from
                    .as_ref()
                    .is_some_and(|_| ov.overriders.contains_key(&gi))
                || ov.overridden.contains_key(&gi)
                || f.ty != *ty
        };
        let needs_join =
            included.len() != type_graphs.len() || included.iter().any(|(gi, f)| special(*gi, f));
        needs_join.then(|| {
            included
                .iter()
                .map(|(gi, f)| {
                    let overridden = ov.overridden.get(gi);
                    JoinField {
                        graph: Some(*gi),
                        requires: f.requires.clone(),
                        provides: f.provides.clone(),
                        ty: (!all_same_type).then(|| f.ty.to_string()),
                        external: f.external,
                        override_from: ov.overriders.get(gi).map(|fg| self.name(*fg).to_string()),
                        used_overridden: matches!(overridden, Some(None)),
                        override_label: match overridden {
                            Some(Some(l)) => Some(l.clone()),
                            _ => ov.overriders.get(gi).and(f.override_label.clone()),
                        },
                    }
                })
                .collect()
        })
    }

    fn enum_usage(&mut self) {
        for s in self.subs {
            for t in s.types.values() {
                for f in t.fields.values() {
                    let n = f.ty.inner_named_type().to_string();
                    if s.types.get(&n).is_some_and(|t| t.kind == Kind::Enum) {
                        self.output_enums
                            .entry(n)
                            .or_insert_with(|| format!("{}.{}", t.name, f.name));
                    }
                    for a in f.args.values() {
                        let n = a.ty.inner_named_type().to_string();
                        if s.types.get(&n).is_some_and(|t| t.kind == Kind::Enum) {
                            self.input_enums
                                .entry(n)
                                .or_insert_with(|| format!("{}.{}({}:)", t.name, f.name, a.name));
                        }
                    }
                }
                for f in t.input_fields.values() {
                    let n = f.ty.inner_named_type().to_string();
                    if s.types.get(&n).is_some_and(|t| t.kind == Kind::Enum) {
                        self.input_enums
                            .entry(n)
                            .or_insert_with(|| format!("{}.{}", t.name, f.name));
                    }
                }
            }
        }
    }

    fn merge_type(&mut self, name: &str, defs: &[(usize, &'a TypeDef)]) -> Option<MType> {
        let kinds: IndexSet<Kind> = defs.iter().map(|(_, t)| t.kind).collect();
        let has_interface = kinds.contains(&Kind::Interface);
        let io_only = defs
            .iter()
            .all(|(_, t)| t.kind != Kind::Object || t.interface_object);
        let kind = if has_interface && kinds.len() == 2 && kinds.contains(&Kind::Object) && io_only
        {
            Kind::Interface
        } else if kinds.len() > 1 {
            let (g0, t0) = defs[0];
            let (g1, t1) = *defs
                .iter()
                .find(|(_, t)| t.kind != t0.kind)
                .unwrap_or(&defs[0]);
            let msg = format!(
                "Type \"{name}\" has mismatched kind: it is defined as {} in subgraph \"{}\" but {} in subgraph \"{}\"",
                t0.kind.describe(), self.name(g0), t1.kind.describe(), self.name(g1)
            );
            self.err(
                "TYPE_KIND_MISMATCH",
                msg,
                Some(g1),
                name.to_string(),
                t1.line,
            );
            return None;
        } else {
            defs[0].1.kind
        };
        let interface_object = defs.iter().find(|(_, t)| t.interface_object);
        if let Some(&(gi, t)) = interface_object.filter(|_| kind == Kind::Object) {
            let msg = format!(
                "Type \"{name}\" is declared with @interfaceObject in subgraph \"{}\" but no subgraph defines it as an interface: @interfaceObject stands in for an interface defined in another subgraph.",
                self.name(gi)
            );
            self.err(
                "INTERFACE_OBJECT_USAGE_ERROR",
                msg,
                Some(gi),
                name.to_string(),
                t.line,
            );
        }
        let mut m = MType {
            name: name.to_string(),
            kind,
            description: most_common(defs.iter().map(|(_, t)| t.description.as_ref())),
            join_types: Vec::new(),
            implements: Vec::new(),
            join_implements: Vec::new(),
            fields: IndexMap::new(),
            input_fields: IndexMap::new(),
            members: Vec::new(),
            join_members: Vec::new(),
            values: IndexMap::new(),
            specified_by: defs.iter().find_map(|(_, t)| t.specified_by.clone()),
            meta: merge_meta(defs.iter().map(|(_, t)| &t.meta)),
        };
        for (gi, t) in defs {
            if t.keys.is_empty() {
                m.join_types.push(JoinType {
                    graph: *gi,
                    key: None,
                    extension: false,
                    resolvable: true,
                    is_interface_object: t.interface_object,
                });
            }
            for k in &t.keys {
                m.join_types.push(JoinType {
                    graph: *gi,
                    key: Some(k.fields.clone()),
                    extension: k.extension,
                    resolvable: k.resolvable,
                    is_interface_object: t.interface_object,
                });
            }
        }
        let graphs: Vec<usize> = defs.iter().map(|(gi, _)| *gi).collect();
        match kind {
            Kind::Object | Kind::Interface => {
                for (gi, t) in defs {
                    for i in &t.implements {
                        if !m.implements.contains(i) {
                            m.implements.push(i.clone());
                        }
                        m.join_implements.push((*gi, i.clone()));
                    }
                }
                let mut fnames: IndexSet<&String> = IndexSet::new();
                for (_, t) in defs {
                    fnames.extend(t.fields.keys());
                }
                for f in fnames {
                    let sources: Vec<(usize, &Field)> = defs
                        .iter()
                        .filter_map(|(gi, t)| t.fields.get(f).map(|x| (*gi, x)))
                        .collect();
                    if let Some(mf) = self.merge_field(name, kind, &graphs, f, &sources) {
                        m.fields.insert(f.clone(), mf);
                    }
                }
            }
            Kind::Union => {
                for (gi, t) in defs {
                    for mem in &t.members {
                        if !m.members.contains(mem) {
                            m.members.push(mem.clone());
                        }
                        m.join_members.push((*gi, mem.clone()));
                    }
                }
            }
            Kind::Enum => self.merge_enum(name, defs, &mut m),
            Kind::Input => {
                let sources: Vec<(usize, &IndexMap<String, InputValue>)> =
                    defs.iter().map(|(gi, t)| (*gi, &t.input_fields)).collect();
                m.input_fields = self.intersect_inputs(name, &sources, false);
                if m.input_fields.is_empty() {
                    let msg = format!("None of the fields of input object type \"{name}\" are consistently defined in all the subgraphs defining that type. As only fields common to all subgraphs are merged, this would result in an empty type.");
                    self.err(
                        "EMPTY_MERGED_INPUT_TYPE",
                        msg,
                        Some(defs[0].0),
                        name.to_string(),
                        defs[0].1.line,
                    );
                }
            }
            Kind::Scalar => {}
        }
        Some(m)
    }

    fn merge_enum(&mut self, name: &str, defs: &[(usize, &'a TypeDef)], m: &mut MType) {
        let mut vnames: IndexSet<&String> = IndexSet::new();
        for (_, t) in defs {
            vnames.extend(t.values.keys());
        }
        let input = self.input_enums.get(name).cloned();
        let output = self.output_enums.get(name).cloned();
        for v in vnames {
            let having: Vec<usize> = defs
                .iter()
                .filter(|(_, t)| t.values.contains_key(v))
                .map(|(g, _)| *g)
                .collect();
            let everywhere = having.len() == defs.len();
            if !everywhere {
                match (&input, &output) {
                    (Some(i), Some(o)) => {
                        let missing = defs
                            .iter()
                            .find(|(_, t)| !t.values.contains_key(v))
                            .map(|(g, _)| *g)
                            .unwrap_or(0);
                        let msg = format!(
                            "Enum type \"{name}\" is used as both input type (for example, as type of \"{i}\") and output type (for example, as type of \"{o}\"), but value \"{v}\" is not defined in all the subgraphs defining \"{name}\": \"{v}\" is defined in subgraph \"{}\" but not in subgraph \"{}\"",
                            self.name(having[0]), self.name(missing)
                        );
                        let line = self.subs[having[0]].types.get(name).and_then(|t| t.line);
                        self.err(
                            "ENUM_VALUE_MISMATCH",
                            msg,
                            Some(having[0]),
                            format!("{name}.{v}"),
                            line,
                        );
                        continue;
                    }
                    (Some(_), None) => continue,
                    _ => {}
                }
            }
            let sources: Vec<&crate::subgraph::EnumValue> =
                defs.iter().filter_map(|(_, t)| t.values.get(v)).collect();
            m.values.insert(
                v.clone(),
                MEnumValue {
                    name: v.clone(),
                    description: most_common(sources.iter().map(|s| s.description.as_ref())),
                    graphs: having,
                    meta: merge_meta(sources.iter().map(|s| &s.meta)),
                },
            );
        }
        if m.values.is_empty() {
            let msg = format!("None of the values of enum type \"{name}\" are defined consistently in all the subgraphs defining that type. As only values common to all subgraphs are merged, this would result in an empty type.");
            self.err(
                "EMPTY_MERGED_ENUM_TYPE",
                msg,
                Some(defs[0].0),
                name.to_string(),
                defs[0].1.line,
            );
        }
    }
}

fn join_and(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

/// Merges parsed subgraphs (already individually validated) into the supergraph model.
pub fn merge(subs: &[Subgraph]) -> Result<Merged, Vec<CompositionError>> {
    let mut mg = Merger {
        subs,
        errors: Vec::new(),
        used: subs.iter().map(validate::used_fields).collect(),
        keys: subs.iter().map(validate::key_fields).collect(),
        provided: subs.iter().map(provided_fields).collect(),
        input_enums: HashMap::new(),
        output_enums: HashMap::new(),
    };
    mg.enum_usage();
    let enum_names = graph_enum_names(subs);
    let mut merged = Merged {
        graphs: subs
            .iter()
            .zip(enum_names)
            .map(|(s, e)| Graph {
                enum_name: e,
                name: s.name.clone(),
                url: s.url.clone(),
            })
            .collect(),
        ..Default::default()
    };
    let mut by_name: IndexMap<&String, Vec<(usize, &TypeDef)>> = IndexMap::new();
    for (gi, s) in subs.iter().enumerate() {
        for (n, t) in &s.types {
            by_name.entry(n).or_default().push((gi, t));
        }
    }
    for (name, defs) in &by_name {
        if let Some(t) = mg.merge_type(name, defs) {
            merged.types.insert(name.to_string(), t);
        }
    }
    post_merge(&mut mg, &mut merged, &by_name);
    merge_directives(subs, &mut merged);
    merged.uses_inaccessible = merged.types.values().any(|t| {
        t.meta.inaccessible
            || t.fields
                .values()
                .any(|f| f.meta.inaccessible || f.args.values().any(|a| a.meta.inaccessible))
            || t.input_fields.values().any(|f| f.meta.inaccessible)
            || t.values.values().any(|v| v.meta.inaccessible)
    });
    let metas = || {
        merged.types.values().flat_map(|t| {
            std::iter::once(&t.meta)
                .chain(t.fields.values().map(|f| &f.meta))
                .chain(t.values.values().map(|v| &v.meta))
        })
    };
    let uses_authenticated = metas().any(|m| m.authenticated);
    let uses_scopes = metas().any(|m| m.scopes.is_some());
    let uses_policy = metas().any(|m| m.policies.is_some());
    merged.uses_authenticated = uses_authenticated;
    merged.uses_requires_scopes = uses_scopes;
    merged.uses_policy = uses_policy;
    merged.uses_tag = merged.types.values().any(|t| {
        !t.meta.tags.is_empty()
            || t.fields.values().any(|f| {
                !f.meta.tags.is_empty() || f.args.values().any(|a| !a.meta.tags.is_empty())
            })
            || t.input_fields.values().any(|f| !f.meta.tags.is_empty())
            || t.values.values().any(|v| !v.meta.tags.is_empty())
    });
    merged.uses_cost = merged.types.values().any(|t| {
        let costs = |m: &Meta| m.cost.is_some() || m.list_size.is_some();
        costs(&t.meta)
            || t.fields
                .values()
                .any(|f| costs(&f.meta) || f.args.values().any(|a| costs(&a.meta)))
            || t.input_fields.values().any(|f| costs(&f.meta))
            || t.values.values().any(|v| costs(&v.meta))
    });
    merged.uses_override_label = merged.types.values().any(|t| {
        t.fields
            .values()
            .any(|f| f.joins.iter().flatten().any(|j| j.override_label.is_some()))
    });
    if mg.errors.is_empty() {
        Ok(merged)
    } else {
        Err(mg.errors)
    }
}

fn provided_fields(sub: &Subgraph) -> HashSet<(String, String)> {
    let mut out = HashSet::new();
    for t in sub.types.values() {
        for f in t.fields.values() {
            if let Some(Ok(sels)) = f.provides.as_deref().map(crate::fieldset::parse) {
                validate::collect_fields(sub, f.ty.inner_named_type(), &sels, &mut out);
            }
        }
    }
    out
}

fn post_merge(
    mg: &mut Merger<'_>,
    merged: &mut Merged,
    by_name: &IndexMap<&String, Vec<(usize, &TypeDef)>>,
) {
    check_interface_fields(mg, merged, by_name);
    check_inaccessible(mg, merged);
    let has_query = merged
        .types
        .get("Query")
        .is_some_and(|q| q.fields.values().any(|f| !f.meta.inaccessible));
    if !has_query {
        mg.err(
            "NO_QUERIES",
            "No queries found in any subgraph: a supergraph must have a query root type.".into(),
            None,
            "Query".into(),
            None,
        );
    }
}

/// Interface fields contributed by `@interfaceObject` subgraphs exist on every implementation,
/// resolved through the interface; other missing interface fields are errors. A subgraph with
/// a resolvable interface key must know every implementation.
fn check_interface_fields(
    mg: &mut Merger<'_>,
    merged: &mut Merged,
    by_name: &IndexMap<&String, Vec<(usize, &TypeDef)>>,
) {
    let interfaces: Vec<String> = merged
        .types
        .values()
        .filter(|t| t.kind == Kind::Interface)
        .map(|t| t.name.clone())
        .collect();
    for iname in &interfaces {
        let defs = &by_name[&iname];
        let io_fields: HashSet<&String> = defs
            .iter()
            .filter(|(_, t)| t.interface_object)
            .flat_map(|(_, t)| t.fields.iter().filter(|(_, f)| !f.external).map(|(n, _)| n))
            .collect();
        let iface = merged.types[iname].clone();
        let implementers: Vec<String> = merged
            .types
            .values()
            .filter(|t| t.kind == Kind::Object && t.implements.contains(iname))
            .map(|t| t.name.clone())
            .collect();
        for oname in &implementers {
            for (fname, f) in &iface.fields {
                if merged.types[oname].fields.contains_key(fname) {
                    continue;
                }
                if io_fields.contains(fname) {
                    let mut copy = f.clone();
                    copy.joins = Some(vec![JoinField::default()]);
                    merged.types[oname].fields.insert(fname.clone(), copy);
                } else {
                    let (ig, _) = defs
                        .iter()
                        .find(|(_, t)| t.fields.contains_key(fname))
                        .copied()
                        .unwrap_or(defs[0]);
                    let odefs = &by_name[&oname];
                    let (og, ot) = odefs
                        .iter()
                        .find(|(_, t)| t.implements.contains(iname))
                        .copied()
                        .unwrap_or(odefs[0]);
                    let msg = format!(
                        "Interface field \"{iname}.{fname}\" is declared in subgraph \"{}\" but type \"{oname}\", which implements \"{iname}\" only in subgraph \"{}\" does not have field \"{fname}\".",
                        mg.name(ig), mg.name(og)
                    );
                    mg.err(
                        "INTERFACE_FIELD_NO_IMPLEM",
                        msg,
                        Some(og),
                        format!("{oname}.{fname}"),
                        ot.line,
                    );
                }
            }
        }
        // A subgraph with a resolvable interface key must know every implementation.
        for (gi, t) in defs {
            if t.kind != Kind::Interface || !t.keys.iter().any(|k| k.resolvable) {
                continue;
            }
            let sub = &mg.subs[*gi];
            let missing: Vec<&String> = implementers
                .iter()
                .filter(|o| {
                    !sub.types
                        .get(*o)
                        .is_some_and(|ot| ot.implements.contains(iname))
                })
                .collect();
            if !missing.is_empty() {
                let list: Vec<String> = missing.iter().map(|m| format!("\"{m}\"")).collect();
                let msg = format!(
                    "Interface type \"{iname}\" has a resolvable key (@key(fields: \"{}\")) in subgraph \"{}\" but that subgraph is missing some of the supergraph implementation types of \"{iname}\". Subgraph \"{}\" should define {} {} (and have {} implement \"{iname}\").",
                    t.keys[0].fields, sub.name, sub.name, if list.len() == 1 { "type" } else { "types" }, join_and(&list), if list.len() == 1 { "it" } else { "them" }
                );
                let line = t.keys[0].line;
                mg.err(
                    "INTERFACE_KEY_MISSING_IMPLEMENTATION_TYPE",
                    msg,
                    Some(*gi),
                    iname.clone(),
                    line,
                );
            }
        }
        // A subgraph that stands in for the interface with @interfaceObject knows none of its
        // implementations: the type it defines there could not tell an implementation's own
        // fields from the interface's (Apollo's INTERFACE_OBJECT_USAGE_ERROR).
        for (gi, t) in defs {
            if !t.interface_object {
                continue;
            }
            let sub = &mg.subs[*gi];
            let defined: Vec<String> = implementers
                .iter()
                .filter(|o| sub.types.contains_key(*o))
                .map(|o| format!("\"{o}\""))
                .collect();
            if !defined.is_empty() {
                let msg = format!(
                    "Interface type \"{iname}\" is defined as an @interfaceObject in subgraph \"{}\" so that subgraph should not define any of the implementation types of \"{iname}\", but it defines {} {}",
                    sub.name,
                    if defined.len() == 1 { "type" } else { "types" },
                    join_and(&defined)
                );
                mg.err(
                    "INTERFACE_OBJECT_USAGE_ERROR",
                    msg,
                    Some(*gi),
                    iname.clone(),
                    t.line,
                );
            }
        }
    }
}

/// Inaccessible elements must not be visible through accessible ones.
fn check_inaccessible(mg: &mut Merger<'_>, merged: &Merged) {
    let inaccessible_type =
        |n: &str, merged: &Merged| merged.types.get(n).is_some_and(|t| t.meta.inaccessible);
    let mut errs = Vec::new();
    for t in merged.types.values() {
        if t.meta.inaccessible {
            if t.name == "Query" {
                errs.push(("QUERY_ROOT_TYPE_INACCESSIBLE", "Type \"Query\" is @inaccessible but is the query root type, which must be in the API schema.".to_string(), t.name.clone()));
            }
            continue;
        }
        let all_hidden = match t.kind {
            Kind::Object | Kind::Interface => {
                !t.fields.is_empty() && t.fields.values().all(|f| f.meta.inaccessible)
            }
            Kind::Input => {
                !t.input_fields.is_empty() && t.input_fields.values().all(|f| f.meta.inaccessible)
            }
            Kind::Enum => !t.values.is_empty() && t.values.values().all(|v| v.meta.inaccessible),
            Kind::Union => {
                !t.members.is_empty() && t.members.iter().all(|m| inaccessible_type(m, merged))
            }
            Kind::Scalar => false,
        };
        if all_hidden {
            errs.push((
                "ONLY_INACCESSIBLE_CHILDREN",
                format!(
                    "Type \"{}\" is in the API schema but all of its members are @inaccessible.",
                    t.name
                ),
                t.name.clone(),
            ));
        }
        for f in t.fields.values().filter(|f| !f.meta.inaccessible) {
            let target = f.ty.inner_named_type();
            if inaccessible_type(target, merged) {
                errs.push(("REFERENCED_INACCESSIBLE", format!("Type \"{target}\" is @inaccessible but is referenced by \"{}.{}\", which is in the API schema.", t.name, f.name), format!("{}.{}", t.name, f.name)));
            }
            for a in f.args.values() {
                if a.meta.inaccessible && a.ty.is_non_null() && a.default.is_none() {
                    errs.push((
                        "REQUIRED_INACCESSIBLE",
                        format!(
                            "Argument \"{}.{}({}:)\" is required, but is @inaccessible.",
                            t.name, f.name, a.name
                        ),
                        format!("{}.{}({}:)", t.name, f.name, a.name),
                    ));
                } else if !a.meta.inaccessible && inaccessible_type(a.ty.inner_named_type(), merged)
                {
                    errs.push(("REFERENCED_INACCESSIBLE", format!("Type \"{}\" is @inaccessible but is referenced by \"{}.{}({}:)\", which is in the API schema.", a.ty.inner_named_type(), t.name, f.name, a.name), format!("{}.{}({}:)", t.name, f.name, a.name)));
                }
            }
        }
        for f in t.input_fields.values() {
            if f.meta.inaccessible && f.ty.is_non_null() && f.default.is_none() {
                errs.push((
                    "REQUIRED_INACCESSIBLE",
                    format!(
                        "Input field \"{}.{}\" is required, but is @inaccessible.",
                        t.name, f.name
                    ),
                    format!("{}.{}", t.name, f.name),
                ));
            } else if !f.meta.inaccessible && inaccessible_type(f.ty.inner_named_type(), merged) {
                errs.push(("REFERENCED_INACCESSIBLE", format!("Type \"{}\" is @inaccessible but is referenced by \"{}.{}\", which is in the API schema.", f.ty.inner_named_type(), t.name, f.name), format!("{}.{}", t.name, f.name)));
            }
        }
    }
    for (code, msg, coord) in errs {
        let (gi, line) = locate(mg.subs, &coord);
        mg.err(code, msg, gi, coord, line);
    }
}

/// Finds the first subgraph (and line) defining a coordinate like `Type`, `Type.field` or `Type.field(arg:)`.
pub fn locate(subs: &[Subgraph], coord: &str) -> (Option<usize>, Option<usize>) {
    let base = coord.split('(').next().unwrap_or(coord);
    let (tname, fname) = match base.split_once('.') {
        Some((t, f)) => (t, Some(f)),
        None => (base, None),
    };
    for (gi, s) in subs.iter().enumerate() {
        if let Some(t) = s.types.get(tname) {
            match fname {
                None => return (Some(gi), t.line),
                Some(f) => {
                    if let Some(fd) = t.fields.get(f) {
                        return (Some(gi), fd.line);
                    }
                    if let Some(fd) = t.input_fields.get(f) {
                        return (Some(gi), fd.line);
                    }
                }
            }
        }
    }
    (None, None)
}

fn merge_directives(subs: &[Subgraph], merged: &mut Merged) {
    let Some(first) = subs.first() else { return };
    for d in &first.directives {
        let all: Vec<&crate::subgraph::DirectiveDef> = subs
            .iter()
            .filter_map(|s| s.directives.iter().find(|x| x.name == d.name))
            .collect();
        if all.len() != subs.len() {
            continue;
        }
        let locations: Vec<String> = d
            .locations
            .iter()
            .filter(|l| all.iter().all(|x| x.locations.contains(l)))
            .cloned()
            .collect();
        if locations.is_empty() {
            continue;
        }
        let args = d
            .args
            .iter()
            .filter(|a| all.iter().all(|x| x.args.iter().any(|b| b.name == a.name)))
            .map(|a| MInput {
                name: a.name.clone(),
                description: a.description.clone(),
                ty: a.ty.clone(),
                default: a.default.clone(),
                meta: Meta::default(),
            })
            .collect();
        merged.directives.push(MDirective {
            name: d.name.clone(),
            description: d.description.clone(),
            args,
            repeatable: all.iter().all(|x| x.repeatable),
            locations,
        });
    }
}
