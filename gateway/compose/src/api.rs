//! The client-facing API schema of a supergraph (join/link machinery and `@inaccessible`
//! elements removed) and a classified diff between two of them.

use std::collections::{BTreeMap, BTreeSet};

use apollo_compiler::ast::Type;
use apollo_compiler::schema::{DirectiveList, ExtendedType};
use apollo_compiler::Schema;
use serde::Serialize;

/// An argument or input field as seen by clients.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiInput {
    /// Its type.
    pub ty: Type,
    /// Default value, printed.
    pub default: Option<String>,
}

/// An output field as seen by clients.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiField {
    /// Its type.
    pub ty: Type,
    /// Arguments by name.
    pub args: BTreeMap<String, ApiInput>,
    /// Deprecation reason, when deprecated.
    pub deprecated: Option<String>,
}

/// A named type as seen by clients.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiType {
    /// `OBJECT`, `INTERFACE`, `UNION`, `ENUM`, `INPUT_OBJECT` or `SCALAR`.
    pub kind: &'static str,
    /// Object/interface fields.
    pub fields: BTreeMap<String, ApiField>,
    /// Input object fields.
    pub input_fields: BTreeMap<String, ApiInput>,
    /// Enum values.
    pub values: BTreeSet<String>,
    /// Union members.
    pub members: BTreeSet<String>,
    /// Implemented interfaces.
    pub implements: BTreeSet<String>,
}

/// The API schema reduced to what a client can observe.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiSchema {
    /// Types by name (built-ins and join/link types excluded).
    pub types: BTreeMap<String, ApiType>,
    /// Executable directives by name.
    pub directives: BTreeSet<String>,
}

fn hidden(d: &DirectiveList) -> bool {
    d.iter().any(|d| d.name == "inaccessible")
}

fn hidden_ast(d: &apollo_compiler::ast::DirectiveList) -> bool {
    d.iter().any(|d| d.name == "inaccessible")
}

fn deprecated(d: &apollo_compiler::ast::DirectiveList) -> Option<String> {
    d.get("deprecated").map(|d| {
        d.specified_argument_by_name("reason")
            .and_then(|v| v.as_str())
            .unwrap_or("No longer supported")
            .to_string()
    })
}

fn machinery(name: &str) -> bool {
    name.starts_with("join__") || name.starts_with("link__") || name.starts_with("__")
}

/// Builds the API schema of a supergraph (or of a plain schema) SDL.
pub fn api_schema(sdl: &str) -> Result<ApiSchema, String> {
    let schema = Schema::builder()
        .adopt_orphan_extensions()
        .parse(sdl, "schema.graphql")
        .build()
        .map_err(|e| e.errors.to_string())?;
    let mut out = ApiSchema::default();
    let inaccessible: BTreeSet<String> = schema
        .types
        .iter()
        .filter(|(_, t)| hidden(t.directives()))
        .map(|(n, _)| n.to_string())
        .collect();
    let visible = |n: &str| !inaccessible.contains(n);
    for (name, t) in &schema.types {
        if t.is_built_in() || machinery(name) || !visible(name) {
            continue;
        }
        let mut at = ApiType::default();
        let fields = match t {
            ExtendedType::Scalar(_) => {
                at.kind = "SCALAR";
                None
            }
            ExtendedType::Object(o) => {
                at.kind = "OBJECT";
                at.implements = o
                    .implements_interfaces
                    .iter()
                    .map(|i| i.to_string())
                    .filter(|i| visible(i))
                    .collect();
                Some(&o.fields)
            }
            ExtendedType::Interface(o) => {
                at.kind = "INTERFACE";
                at.implements = o
                    .implements_interfaces
                    .iter()
                    .map(|i| i.to_string())
                    .filter(|i| visible(i))
                    .collect();
                Some(&o.fields)
            }
            ExtendedType::Union(u) => {
                at.kind = "UNION";
                at.members = u
                    .members
                    .iter()
                    .map(|m| m.to_string())
                    .filter(|m| visible(m))
                    .collect();
                None
            }
            ExtendedType::Enum(e) => {
                at.kind = "ENUM";
                at.values = e
                    .values
                    .values()
                    .filter(|v| !hidden_ast(&v.directives))
                    .map(|v| v.value.to_string())
                    .collect();
                None
            }
            ExtendedType::InputObject(i) => {
                at.kind = "INPUT_OBJECT";
                at.input_fields = i
                    .fields
                    .values()
                    .filter(|f| !hidden_ast(&f.directives))
                    .map(|f| {
                        (
                            f.name.to_string(),
                            ApiInput {
                                ty: (*f.ty).clone(),
                                default: f.default_value.as_ref().map(|d| d.to_string()),
                            },
                        )
                    })
                    .collect();
                None
            }
        };
        for f in fields.into_iter().flat_map(|m| m.values()) {
            if hidden_ast(&f.directives) {
                continue;
            }
            let args = f
                .arguments
                .iter()
                .filter(|a| !hidden_ast(&a.directives))
                .map(|a| {
                    (
                        a.name.to_string(),
                        ApiInput {
                            ty: (*a.ty).clone(),
                            default: a.default_value.as_ref().map(|d| d.to_string()),
                        },
                    )
                })
                .collect();
            at.fields.insert(
                f.name.to_string(),
                ApiField {
                    ty: f.ty.clone(),
                    args,
                    deprecated: deprecated(&f.directives),
                },
            );
        }
        out.types.insert(name.to_string(), at);
    }
    for (name, d) in &schema.directive_definitions {
        let builtin = matches!(
            name.as_str(),
            "skip" | "include" | "deprecated" | "specifiedBy" | "oneOf" | "defer" | "stream"
        );
        let spec =
            matches!(name.as_str(), "link" | "inaccessible" | "tag") || name.starts_with("join__");
        if !builtin
            && !spec
            && d.locations.iter().any(|l| {
                matches!(
                    l.name(),
                    "QUERY"
                        | "MUTATION"
                        | "SUBSCRIPTION"
                        | "FIELD"
                        | "FRAGMENT_DEFINITION"
                        | "FRAGMENT_SPREAD"
                        | "INLINE_FRAGMENT"
                        | "VARIABLE_DEFINITION"
                )
            })
        {
            out.directives.insert(name.to_string());
        }
    }
    Ok(out)
}

/// How much a change can hurt existing clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Existing operations may fail.
    Breaking,
    /// Existing operations keep validating but may behave differently.
    Dangerous,
    /// Purely additive or informational.
    Safe,
}

/// One schema change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Classification.
    pub severity: Severity,
    /// Machine-readable kind, e.g. `FIELD_REMOVED`.
    pub code: &'static str,
    /// Schema coordinate.
    pub coordinate: String,
    /// Human readable description.
    pub message: String,
}

/// `new` can replace `old` in an output position without breaking clients.
fn output_compatible(old: &Type, new: &Type) -> bool {
    match (old, new) {
        (Type::NonNullNamed(_) | Type::NonNullList(_), n) if !n.is_non_null() => false,
        (o, n) if n.is_non_null() && !o.is_non_null() => {
            output_compatible(o, &n.clone().nullable())
        }
        (o, n) => match (o.clone().nullable(), n.clone().nullable()) {
            (Type::Named(a), Type::Named(b)) => a == b,
            (Type::List(a), Type::List(b)) => output_compatible(&a, &b),
            _ => false,
        },
    }
}

/// `new` can replace `old` in an input position without breaking clients.
fn input_compatible(old: &Type, new: &Type) -> bool {
    output_compatible(new, old)
}

fn change(
    out: &mut Vec<Change>,
    severity: Severity,
    code: &'static str,
    coordinate: String,
    message: String,
) {
    out.push(Change {
        severity,
        code,
        coordinate,
        message,
    });
}

fn diff_inputs(
    out: &mut Vec<Change>,
    owner: &str,
    old: &BTreeMap<String, ApiInput>,
    new: &BTreeMap<String, ApiInput>,
    is_arg: bool,
) {
    let coord = |n: &str| {
        if is_arg {
            format!("{owner}({n}:)")
        } else {
            format!("{owner}.{n}")
        }
    };
    let what = if is_arg { "Argument" } else { "Input field" };
    for (n, o) in old {
        match new.get(n) {
            None => change(
                out,
                Severity::Breaking,
                if is_arg {
                    "ARG_REMOVED"
                } else {
                    "INPUT_FIELD_REMOVED"
                },
                coord(n),
                format!("{what} `{}` was removed", coord(n)),
            ),
            Some(nw) => {
                if nw.ty != o.ty {
                    let sev = if input_compatible(&o.ty, &nw.ty) {
                        Severity::Safe
                    } else {
                        Severity::Breaking
                    };
                    change(
                        out,
                        sev,
                        if is_arg {
                            "ARG_TYPE_CHANGED"
                        } else {
                            "INPUT_FIELD_TYPE_CHANGED"
                        },
                        coord(n),
                        format!(
                            "{what} `{}` changed type from `{}` to `{}`",
                            coord(n),
                            o.ty,
                            nw.ty
                        ),
                    );
                }
                if nw.default != o.default {
                    change(
                        out,
                        Severity::Dangerous,
                        if is_arg {
                            "ARG_DEFAULT_CHANGED"
                        } else {
                            "INPUT_FIELD_DEFAULT_CHANGED"
                        },
                        coord(n),
                        format!(
                            "{what} `{}` default changed from `{}` to `{}`",
                            coord(n),
                            o.default.as_deref().unwrap_or("none"),
                            nw.default.as_deref().unwrap_or("none")
                        ),
                    );
                }
            }
        }
    }
    for (n, nw) in new {
        if !old.contains_key(n) {
            let required = nw.ty.is_non_null() && nw.default.is_none();
            let (sev, code) = match (required, is_arg) {
                (true, true) => (Severity::Breaking, "REQUIRED_ARG_ADDED"),
                (false, true) => (Severity::Dangerous, "OPTIONAL_ARG_ADDED"),
                (true, false) => (Severity::Breaking, "REQUIRED_INPUT_FIELD_ADDED"),
                (false, false) => (Severity::Dangerous, "OPTIONAL_INPUT_FIELD_ADDED"),
            };
            change(
                out,
                sev,
                code,
                coord(n),
                format!(
                    "{} {what} `{}` of type `{}` was added",
                    if required { "Required" } else { "Optional" },
                    coord(n),
                    nw.ty
                ),
            );
        }
    }
}

/// Classifies every change from `old` to `new`, sorted breaking first then by coordinate.
pub fn diff(old: &ApiSchema, new: &ApiSchema) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, o) in &old.types {
        let Some(n) = new.types.get(name) else {
            change(
                &mut out,
                Severity::Breaking,
                "TYPE_REMOVED",
                name.clone(),
                format!("Type `{name}` was removed"),
            );
            continue;
        };
        if o.kind != n.kind {
            change(
                &mut out,
                Severity::Breaking,
                "TYPE_CHANGED_KIND",
                name.clone(),
                format!("`{name}` changed from {} to {}", o.kind, n.kind),
            );
            continue;
        }
        diff_type(&mut out, name, o, n);
    }
    for name in new.types.keys().filter(|n| !old.types.contains_key(*n)) {
        change(
            &mut out,
            Severity::Safe,
            "TYPE_ADDED",
            name.clone(),
            format!("Type `{name}` was added"),
        );
    }
    for d in old.directives.difference(&new.directives) {
        change(
            &mut out,
            Severity::Breaking,
            "DIRECTIVE_REMOVED",
            format!("@{d}"),
            format!("Directive `@{d}` was removed"),
        );
    }
    for d in new.directives.difference(&old.directives) {
        change(
            &mut out,
            Severity::Safe,
            "DIRECTIVE_ADDED",
            format!("@{d}"),
            format!("Directive `@{d}` was added"),
        );
    }
    out.sort_by(|a, b| {
        (a.severity, &a.coordinate, a.code).cmp(&(b.severity, &b.coordinate, b.code))
    });
    out
}

/// The changes within one type present (with the same kind) in both schemas.
fn diff_type(out: &mut Vec<Change>, name: &str, o: &ApiType, n: &ApiType) {
    diff_fields(out, name, o, n);
    diff_inputs(out, name, &o.input_fields, &n.input_fields, false);
    for v in o.values.difference(&n.values) {
        change(
            out,
            Severity::Breaking,
            "ENUM_VALUE_REMOVED",
            format!("{name}.{v}"),
            format!("Enum value `{name}.{v}` was removed"),
        );
    }
    for v in n.values.difference(&o.values) {
        change(out, Severity::Dangerous, "ENUM_VALUE_ADDED", format!("{name}.{v}"), format!("Enum value `{name}.{v}` was added: clients switching over `{name}` may not handle it"));
    }
    for m in o.members.difference(&n.members) {
        change(
            out,
            Severity::Breaking,
            "UNION_MEMBER_REMOVED",
            name.to_string(),
            format!("`{m}` was removed from union `{name}`"),
        );
    }
    for m in n.members.difference(&o.members) {
        change(
            out,
            Severity::Dangerous,
            "UNION_MEMBER_ADDED",
            name.to_string(),
            format!("`{m}` was added to union `{name}`"),
        );
    }
    for i in o.implements.difference(&n.implements) {
        change(
            out,
            Severity::Breaking,
            "INTERFACE_REMOVED",
            name.to_string(),
            format!("`{name}` no longer implements `{i}`"),
        );
    }
    for i in n.implements.difference(&o.implements) {
        change(
            out,
            Severity::Dangerous,
            "INTERFACE_ADDED",
            name.to_string(),
            format!("`{name}` now implements `{i}`"),
        );
    }
}

/// Fields removed, added, retyped or (un)deprecated, and their arguments' changes.
fn diff_fields(out: &mut Vec<Change>, name: &str, o: &ApiType, n: &ApiType) {
    for (fname, of) in &o.fields {
        let coord = format!("{name}.{fname}");
        let Some(nf) = n.fields.get(fname) else {
            change(
                out,
                Severity::Breaking,
                "FIELD_REMOVED",
                coord.clone(),
                format!(
                    "Field `{coord}` was removed{}",
                    if of.deprecated.is_some() {
                        " (it was deprecated)"
                    } else {
                        ""
                    }
                ),
            );
            continue;
        };
        if nf.ty != of.ty {
            let sev = if output_compatible(&of.ty, &nf.ty) {
                Severity::Safe
            } else {
                Severity::Breaking
            };
            change(
                out,
                sev,
                "FIELD_TYPE_CHANGED",
                coord.clone(),
                format!(
                    "Field `{coord}` changed type from `{}` to `{}`",
                    of.ty, nf.ty
                ),
            );
        }
        match (&of.deprecated, &nf.deprecated) {
            (None, Some(r)) => change(
                out,
                Severity::Safe,
                "FIELD_DEPRECATED",
                coord.clone(),
                format!("Field `{coord}` was deprecated ({r})"),
            ),
            (Some(_), None) => change(
                out,
                Severity::Safe,
                "FIELD_DEPRECATION_REMOVED",
                coord.clone(),
                format!("Field `{coord}` is no longer deprecated"),
            ),
            _ => {}
        }
        diff_inputs(out, &coord, &of.args, &nf.args, true);
    }
    for fname in n.fields.keys().filter(|f| !o.fields.contains_key(*f)) {
        let coord = format!("{name}.{fname}");
        change(
            out,
            Severity::Safe,
            "FIELD_ADDED",
            coord.clone(),
            format!("Field `{coord}` was added"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(old: &str, new: &str) -> Vec<(Severity, &'static str, String)> {
        diff(&api_schema(old).unwrap(), &api_schema(new).unwrap())
            .into_iter()
            .map(|c| (c.severity, c.code, c.coordinate))
            .collect()
    }

    #[test]
    fn strips_machinery_and_inaccessible() {
        let api = api_schema(
            "directive @inaccessible on FIELD_DEFINITION | OBJECT\nscalar join__FieldSet\ntype Query { a: Int b: Int @inaccessible h: Hidden }\ntype Hidden @inaccessible { x: Int }",
        )
        .unwrap();
        assert_eq!(api.types.keys().collect::<Vec<_>>(), vec!["Query"]);
        assert_eq!(
            api.types["Query"].fields.keys().collect::<Vec<_>>(),
            vec!["a", "h"]
        );
    }

    #[test]
    fn classifies_field_changes() {
        let got = codes(
            "type Query { a: Int b: String c: String! d: Int e: [Int] }",
            "type Query { a: Int! b: Int c: String e: [Int!] f: Int }",
        );
        assert!(got.contains(&(Severity::Safe, "FIELD_TYPE_CHANGED", "Query.a".into())));
        assert!(got.contains(&(Severity::Breaking, "FIELD_TYPE_CHANGED", "Query.b".into())));
        assert!(got.contains(&(Severity::Breaking, "FIELD_TYPE_CHANGED", "Query.c".into())));
        assert!(got.contains(&(Severity::Breaking, "FIELD_REMOVED", "Query.d".into())));
        assert!(got.contains(&(Severity::Safe, "FIELD_TYPE_CHANGED", "Query.e".into())));
        assert!(got.contains(&(Severity::Safe, "FIELD_ADDED", "Query.f".into())));
        assert_eq!(got[0].0, Severity::Breaking, "breaking changes sort first");
    }

    #[test]
    fn classifies_argument_and_input_changes() {
        let got = codes(
            "type Query { f(a: Int!, b: Int, c: Int = 1, gone: Int): Int }\ninput I { x: Int! y: Int }",
            "type Query { f(a: Int, b: Int!, c: Int = 2, req: Int!, opt: Int): Int }\ninput I { x: Int y: Int z: Int! w: Int }",
        );
        for want in [
            (Severity::Safe, "ARG_TYPE_CHANGED", "Query.f(a:)"),
            (Severity::Breaking, "ARG_TYPE_CHANGED", "Query.f(b:)"),
            (Severity::Dangerous, "ARG_DEFAULT_CHANGED", "Query.f(c:)"),
            (Severity::Breaking, "ARG_REMOVED", "Query.f(gone:)"),
            (Severity::Breaking, "REQUIRED_ARG_ADDED", "Query.f(req:)"),
            (Severity::Dangerous, "OPTIONAL_ARG_ADDED", "Query.f(opt:)"),
            (Severity::Safe, "INPUT_FIELD_TYPE_CHANGED", "I.x"),
            (Severity::Breaking, "REQUIRED_INPUT_FIELD_ADDED", "I.z"),
            (Severity::Dangerous, "OPTIONAL_INPUT_FIELD_ADDED", "I.w"),
        ] {
            assert!(
                got.contains(&(want.0, want.1, want.2.to_string())),
                "missing {want:?} in {got:?}"
            );
        }
    }

    #[test]
    fn classifies_enum_union_interface_and_type_changes() {
        let got = codes(
            "type Query { e: E u: U }\nenum E { A B }\nunion U = X | Y\ntype X implements N { id: ID }\ntype Y { id: ID }\ninterface N { id: ID }\ntype Gone { a: Int }\nscalar K",
            "type Query { e: E u: U }\nenum E { A C }\nunion U = X | Z\ntype X { id: ID }\ntype Y { id: ID }\ntype Z { id: ID }\ninterface N { id: ID }\ninput K { a: Int }",
        );
        for want in [
            (Severity::Breaking, "ENUM_VALUE_REMOVED", "E.B"),
            (Severity::Dangerous, "ENUM_VALUE_ADDED", "E.C"),
            (Severity::Breaking, "UNION_MEMBER_REMOVED", "U"),
            (Severity::Dangerous, "UNION_MEMBER_ADDED", "U"),
            (Severity::Breaking, "INTERFACE_REMOVED", "X"),
            (Severity::Breaking, "TYPE_REMOVED", "Gone"),
            (Severity::Breaking, "TYPE_CHANGED_KIND", "K"),
            (Severity::Safe, "TYPE_ADDED", "Z"),
        ] {
            assert!(
                got.contains(&(want.0, want.1, want.2.to_string())),
                "missing {want:?} in {got:?}"
            );
        }
    }
}
