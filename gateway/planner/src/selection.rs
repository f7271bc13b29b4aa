//! The planner's normalized selection tree: named fragments expanded, arguments and directives
//! pre-printed, so planning never goes back to the source documents.

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
/// conditions are applied now, variable ones are kept and reported as a gate.
fn conditions(directives: &apollo_compiler::executable::DirectiveList) -> Conditions {
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
        match dir.specified_argument_by_name("if").map(|v| v.as_ref()) {
            Some(Value::Boolean(b)) if *b != include => out.never = true,
            Some(Value::Variable(var)) => {
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

/// Converts an executable selection set, expanding named fragments.
pub(crate) fn normalize(set: &SelectionSet, fragments: &FragmentMap) -> Vec<NSel> {
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
                let cond = conditions(&field.directives);
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
                    children: normalize(&field.selection_set, fragments),
                })));
            }
            Selection::InlineFragment(frag) => {
                let cond = conditions(&frag.directives);
                if cond.never {
                    continue;
                }
                out.push(NSel::Frag(Arc::new(NFrag {
                    cond: frag.type_condition.clone(),
                    directives: cond.printed,
                    vars: cond.vars,
                    gate: cond.gate,
                    children: normalize(&frag.selection_set, fragments),
                })));
            }
            Selection::FragmentSpread(spread) => {
                let Some(def) = fragments.get(&spread.fragment_name) else {
                    continue;
                };
                let cond = conditions(&spread.directives);
                if cond.never {
                    continue;
                }
                out.push(NSel::Frag(Arc::new(NFrag {
                    cond: Some(def.selection_set.ty.clone()),
                    directives: cond.printed,
                    vars: cond.vars,
                    gate: cond.gate,
                    children: normalize(&def.selection_set, fragments),
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
