//! The planner's normalized selection tree: named fragments expanded, arguments and directives
//! pre-printed, so planning never goes back to the source documents.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use apollo_compiler::ast::{Type, Value};
use apollo_compiler::executable::{FragmentMap, Selection, SelectionSet};
use apollo_compiler::Name;

/// One normalized selection.
#[derive(Debug, Clone)]
pub(crate) enum NSel {
    Field(Arc<NField>),
    Frag(Arc<NFrag>),
}

/// A field selection.
#[derive(Debug, Clone)]
pub(crate) struct NField {
    pub name: Name,
    pub alias: Option<Name>,
    /// `(a: 1, b: $v)` or empty.
    pub args: String,
    /// ` @include(if: $v)` or empty; only `@skip` / `@include` are kept.
    pub directives: String,
    /// Variables used by `args` and `directives`.
    pub vars: Vec<Name>,
    /// `(variable, value)` pairs that must hold for the field to be selected.
    pub gate: Vec<(Name, bool)>,
    /// The named output type.
    pub ty: Name,
    /// How many list wrappers the output type has (each adds an `@` to response paths).
    pub list_depth: usize,
    pub children: Vec<NSel>,
}

impl NField {
    /// The key the field's value has in a response.
    pub fn response_key(&self) -> &Name {
        self.alias.as_ref().unwrap_or(&self.name)
    }
}

/// An inline fragment (named fragment spreads are turned into these).
#[derive(Debug, Clone)]
pub(crate) struct NFrag {
    pub cond: Option<Name>,
    pub directives: String,
    pub vars: Vec<Name>,
    pub gate: Vec<(Name, bool)>,
    pub children: Vec<NSel>,
}

/// Counts the list wrappers of a type.
pub(crate) fn list_depth(ty: &Type) -> usize {
    match ty {
        Type::Named(_) | Type::NonNullNamed(_) => 0,
        Type::List(inner) | Type::NonNullList(inner) => 1 + list_depth(inner),
    }
}

fn collect_vars(value: &Value, out: &mut Vec<Name>) {
    match value {
        Value::Variable(name) if !out.contains(name) => out.push(name.clone()),
        Value::List(items) => items.iter().for_each(|v| collect_vars(v, out)),
        Value::Object(fields) => fields.iter().for_each(|(_, v)| collect_vars(v, out)),
        _ => {}
    }
}

/// `@skip` / `@include` of one selection, resolved as far as literals allow.
struct Conditions {
    /// The directives left to evaluate at run time, printed (` @include(if: $v)`).
    printed: String,
    vars: Vec<Name>,
    gate: Vec<(Name, bool)>,
    /// A literal condition excludes the selection outright.
    never: bool,
}

/// Reads `@skip` / `@include` (other directives are client-only and dropped): literal
/// conditions, and those on variables whose value is `known`, are applied now; the others are
/// kept and reported as a gate.
fn conditions(
    directives: &apollo_compiler::executable::DirectiveList,
    known: &BTreeMap<String, bool>,
) -> Conditions {
    let mut out = Conditions {
        printed: String::new(),
        vars: Vec::new(),
        gate: Vec::new(),
        never: false,
    };
    for dir in directives.iter() {
        let include = match dir.name.as_str() {
            "include" => true,
            "skip" => false,
            _ => continue,
        };
        let argument = dir.specified_argument_by_name("if").map(|v| v.as_ref());
        let decided = match argument {
            Some(Value::Boolean(b)) => Some(*b),
            Some(Value::Variable(var)) => known.get(var.as_str()).copied(),
            _ => None,
        };
        match (decided, argument) {
            (Some(value), _) => out.never |= value != include,
            (None, Some(Value::Variable(var))) => {
                let _ = write!(out.printed, " @{}(if: ${var})", dir.name);
                if !out.vars.contains(var) {
                    out.vars.push(var.clone());
                }
                out.gate.push((var.clone(), include));
            }
            _ => {}
        }
    }
    out
}

/// The variables that `@skip` / `@include` conditions in `set` (and the fragments it spreads)
/// depend on, in order of first use: what a plan specialised by their values is keyed by
/// ([`crate::PlanOptions::condition_values`]). Selections left out by a literal condition
/// (`@skip(if: true)`) are not looked into.
pub fn condition_variables(set: &SelectionSet, fragments: &FragmentMap) -> Vec<Name> {
    fn walk(
        set: &SelectionSet,
        fragments: &FragmentMap,
        seen: &mut Vec<Name>,
        out: &mut Vec<Name>,
    ) {
        for sel in &set.selections {
            let directives = match sel {
                Selection::Field(field) => &field.directives,
                Selection::InlineFragment(frag) => &frag.directives,
                Selection::FragmentSpread(spread) => &spread.directives,
            };
            // A selection a literal leaves out is never planned: its variables decide nothing.
            if conditions(directives, &BTreeMap::new()).never {
                continue;
            }
            for dir in directives.iter() {
                if !matches!(dir.name.as_str(), "skip" | "include") {
                    continue;
                }
                if let Some(Value::Variable(var)) =
                    dir.specified_argument_by_name("if").map(|v| v.as_ref())
                {
                    if !out.contains(var) {
                        out.push(var.clone());
                    }
                }
            }
            match sel {
                Selection::Field(field) => walk(&field.selection_set, fragments, seen, out),
                Selection::InlineFragment(frag) => walk(&frag.selection_set, fragments, seen, out),
                Selection::FragmentSpread(spread) => {
                    // Each fragment once: a fragment spread in many places adds no new variables.
                    if seen.contains(&spread.fragment_name) {
                        continue;
                    }
                    seen.push(spread.fragment_name.clone());
                    if let Some(def) = fragments.get(&spread.fragment_name) {
                        walk(&def.selection_set, fragments, seen, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(set, fragments, &mut Vec::new(), &mut out);
    out
}

/// Operations whose conditions use more variables than this run their general plan only: the
/// number of specialised plans (each planned only when a request needs it) doubles with each
/// variable, and each operation keeps an empty slot for every one.
pub const MAX_SPECIALISED_CONDITIONS: usize = 8;

/// The variables whose values a plan of `operation` is specialised by (see
/// [`crate::PlanOptions::condition_values`]), or `None` when it runs its general plan only: no
/// conditions on variables, more than [`MAX_SPECIALISED_CONDITIONS`], or a subscription (whose
/// plan the gateway splits for streaming).
pub fn specialised_conditions(
    operation: &apollo_compiler::executable::Operation,
    fragments: &FragmentMap,
) -> Option<Vec<Name>> {
    let vars = condition_variables(&operation.selection_set, fragments);
    specialisable(operation.operation_type, &vars).then_some(vars)
}

/// Whether an operation of this type whose conditions use `vars` (from
/// [`condition_variables`]) gets specialised plans: the rule [`specialised_conditions`] applies,
/// for callers that already have the variables.
pub fn specialisable(kind: apollo_compiler::ast::OperationType, vars: &[Name]) -> bool {
    kind != apollo_compiler::ast::OperationType::Subscription
        && !vars.is_empty()
        && vars.len() <= MAX_SPECIALISED_CONDITIONS
}

/// The values `operation`'s condition variables take with these request `variables` (a
/// variable's default where it is absent), for [`crate::PlanOptions::condition_values`]: empty
/// when [`specialised_conditions`] says the operation runs its general plan; only values that
/// are booleans (anything else fails at run time, where the general plan reports it).
pub fn condition_values(
    operation: &apollo_compiler::executable::Operation,
    fragments: &FragmentMap,
    variables: &serde_json::Map<String, serde_json::Value>,
) -> BTreeMap<String, bool> {
    specialised_conditions(operation, fragments)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|var| {
            let value = match variables.get(var.as_str()) {
                Some(serde_json::Value::Bool(b)) => Some(*b),
                Some(_) => None,
                None => operation
                    .variables
                    .iter()
                    .find(|def| def.name == var)
                    .and_then(|def| def.default_value.as_deref())
                    .and_then(|default| match default {
                        Value::Boolean(b) => Some(*b),
                        _ => None,
                    }),
            };
            value.map(|b| (var.to_string(), b))
        })
        .collect()
}

/// Converts an executable selection set, expanding named fragments and deciding the conditions
/// on `known` variables.
pub(crate) fn normalize(
    set: &SelectionSet,
    fragments: &FragmentMap,
    known: &BTreeMap<String, bool>,
) -> Vec<NSel> {
    let mut out = Vec::with_capacity(set.selections.len());
    for sel in &set.selections {
        match sel {
            Selection::Field(field) => {
                let mut vars = Vec::new();
                let mut args = String::new();
                if !field.arguments.is_empty() {
                    args.push('(');
                    for (i, arg) in field.arguments.iter().enumerate() {
                        if i > 0 {
                            args.push_str(", ");
                        }
                        collect_vars(&arg.value, &mut vars);
                        let _ = write!(args, "{}: ", arg.name);
                        write_value(&mut args, &arg.value);
                    }
                    args.push(')');
                }
                let cond = conditions(&field.directives, known);
                if cond.never {
                    continue;
                }
                for v in cond.vars {
                    if !vars.contains(&v) {
                        vars.push(v);
                    }
                }
                out.push(NSel::Field(Arc::new(NField {
                    name: field.name.clone(),
                    alias: field.alias.clone(),
                    args,
                    directives: cond.printed,
                    vars,
                    gate: cond.gate,
                    ty: field.definition.ty.inner_named_type().clone(),
                    list_depth: list_depth(&field.definition.ty),
                    children: normalize(&field.selection_set, fragments, known),
                })));
            }
            Selection::InlineFragment(frag) => {
                let cond = conditions(&frag.directives, known);
                if cond.never {
                    continue;
                }
                out.push(NSel::Frag(Arc::new(NFrag {
                    cond: frag.type_condition.clone(),
                    directives: cond.printed,
                    vars: cond.vars,
                    gate: cond.gate,
                    children: normalize(&frag.selection_set, fragments, known),
                })));
            }
            Selection::FragmentSpread(spread) => {
                let Some(def) = fragments.get(&spread.fragment_name) else {
                    continue;
                };
                let cond = conditions(&spread.directives, known);
                if cond.never {
                    continue;
                }
                out.push(NSel::Frag(Arc::new(NFrag {
                    cond: Some(def.selection_set.ty.clone()),
                    directives: cond.printed,
                    vars: cond.vars,
                    gate: cond.gate,
                    children: normalize(&def.selection_set, fragments, known),
                })));
            }
        }
    }
    out
}

/// Prints a GraphQL value on one line (`[1, 2]`, `{a: "x"}`), unlike the pretty `Display`.
pub(crate) fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Enum(name) => out.push_str(name),
        Value::Variable(name) => {
            out.push('$');
            out.push_str(name);
        }
        Value::String(s) => {
            out.push_str(&serde_json::Value::String(s.clone()).to_string());
        }
        Value::Float(f) => out.push_str(f.as_str()),
        Value::Int(i) => out.push_str(i.as_str()),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (name, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(name);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}
