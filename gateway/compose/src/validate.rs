//! Per-subgraph validation of federation directive usage (`@key`, `@requires`, `@provides`,
//! `@external`, `@override`, `@shareable`, `@interfaceObject`).

use std::collections::HashSet;

use crate::error::CompositionError;
use crate::fieldset::{self, Selection};
use crate::subgraph::{Kind, Subgraph};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Key,
    Requires,
    Provides,
}

impl Use {
    fn directive(self) -> &'static str {
        match self {
            Use::Key => "@key",
            Use::Requires => "@requires",
            Use::Provides => "@provides",
        }
    }
}

fn code(u: Use, suffix: &str) -> &'static str {
    match (u, suffix) {
        (Use::Key, "INVALID_FIELDS") => "KEY_INVALID_FIELDS",
        (Use::Requires, "INVALID_FIELDS") => "REQUIRES_INVALID_FIELDS",
        (Use::Provides, "INVALID_FIELDS") => "PROVIDES_INVALID_FIELDS",
        (Use::Key, "FIELDS_HAS_ARGS") => "KEY_FIELDS_HAS_ARGS",
        (Use::Requires, "FIELDS_HAS_ARGS") => "REQUIRES_FIELDS_HAS_ARGS",
        (Use::Provides, "FIELDS_HAS_ARGS") => "PROVIDES_FIELDS_HAS_ARGS",
        (Use::Key, "DIRECTIVE_IN_FIELDS_ARG") => "KEY_DIRECTIVE_IN_FIELDS_ARG",
        (Use::Requires, "DIRECTIVE_IN_FIELDS_ARG") => "REQUIRES_DIRECTIVE_IN_FIELDS_ARG",
        (Use::Provides, "DIRECTIVE_IN_FIELDS_ARG") => "PROVIDES_DIRECTIVE_IN_FIELDS_ARG",
        (Use::Key, "FIELDS_SELECT_INVALID_TYPE") => "KEY_FIELDS_SELECT_INVALID_TYPE",
        (Use::Requires, "FIELDS_MISSING_EXTERNAL") => "REQUIRES_FIELDS_MISSING_EXTERNAL",
        (Use::Provides, "FIELDS_MISSING_EXTERNAL") => "PROVIDES_FIELDS_MISSING_EXTERNAL",
        _ => "INVALID_GRAPHQL",
    }
}

/// Fields referenced by a field set, as `(type, field)` pairs, resolved against the subgraph.
pub fn collect_fields(
    sub: &Subgraph,
    ty: &str,
    sels: &[Selection],
    out: &mut HashSet<(String, String)>,
) {
    for s in sels {
        match s {
            Selection::Field {
                name, selections, ..
            } => {
                out.insert((ty.to_string(), name.clone()));
                if let Some(f) = sub.types.get(ty).and_then(|t| t.fields.get(name)) {
                    collect_fields(sub, f.ty.inner_named_type(), selections, out);
                }
            }
            Selection::InlineFragment {
                type_condition,
                selections,
            } => {
                collect_fields(
                    sub,
                    type_condition.as_deref().unwrap_or(ty),
                    selections,
                    out,
                );
            }
        }
    }
}

/// Every `(type, field)` a subgraph references from `@key`, `@requires` or `@provides`.
pub fn used_fields(sub: &Subgraph) -> HashSet<(String, String)> {
    let mut out = HashSet::new();
    for t in sub.types.values() {
        for k in &t.keys {
            if let Ok(sels) = fieldset::parse(&k.fields) {
                collect_fields(sub, &t.name, &sels, &mut out);
            }
        }
        for f in t.fields.values().filter(|_| t.kind == Kind::Object) {
            if let Some(Ok(sels)) = f.requires.as_deref().map(fieldset::parse) {
                collect_fields(sub, &t.name, &sels, &mut out);
            }
            if let Some(Ok(sels)) = f.provides.as_deref().map(fieldset::parse) {
                collect_fields(sub, f.ty.inner_named_type(), &sels, &mut out);
            }
        }
    }
    out
}

/// Key fields per type (including nested ones): these are implicitly shareable in Federation 2.
pub fn key_fields(sub: &Subgraph) -> HashSet<(String, String)> {
    let mut out = HashSet::new();
    for t in sub.types.values() {
        for k in &t.keys {
            if let Ok(sels) = fieldset::parse(&k.fields) {
                collect_fields(sub, &t.name, &sels, &mut out);
            }
        }
    }
    out
}

struct Ctx<'a> {
    sub: &'a Subgraph,
    errors: &'a mut Vec<CompositionError>,
    coord: String,
    line: Option<usize>,
    usage: Use,
    raw: &'a str,
}

impl Ctx<'_> {
    fn fail(&mut self, suffix: &str, msg: String) {
        let u = self.usage;
        let mut e = CompositionError::new(
            code(u, suffix),
            format!(
                "On {} {}(fields: \"{}\"): {msg}",
                self.coord,
                u.directive(),
                self.raw
            ),
        )
        .in_subgraph(&self.sub.name)
        .at(self.coord.clone())
        .line(self.line);
        e.file = self.sub.file.clone();
        self.errors.push(e);
    }

    fn check(&mut self, ty: &str, sels: &[Selection], top: bool) {
        self.check_under(ty, sels, top, false);
    }

    /// `external_parent`: a field on the path to `sels` is `@external` (what it selects comes
    /// from elsewhere with it).
    fn check_under(&mut self, ty: &str, sels: &[Selection], top: bool, external_parent: bool) {
        let sub = self.sub;
        let Some(t) = sub.types.get(ty) else {
            self.fail("INVALID_FIELDS", format!("unknown type \"{ty}\""));
            return;
        };
        for s in sels {
            match s {
                Selection::InlineFragment {
                    type_condition,
                    selections,
                } => {
                    let cond = type_condition.as_deref().unwrap_or(ty);
                    if self.usage == Use::Key {
                        self.fail(
                            "INVALID_FIELDS",
                            "inline fragments are not allowed in a key".into(),
                        );
                        continue;
                    }
                    self.check_under(cond, selections, false, external_parent);
                }
                Selection::Field {
                    name,
                    selections,
                    has_args,
                    directives,
                } => {
                    if name == "__typename" {
                        continue;
                    }
                    let Some(f) = t.fields.get(name) else {
                        self.fail(
                            "INVALID_FIELDS",
                            format!(
                                "Cannot query field \"{name}\" on type \"{ty}\"{}.",
                                if t.kind == Kind::Object || t.kind == Kind::Interface {
                                    ""
                                } else {
                                    " (not an object type)"
                                }
                            ),
                        );
                        continue;
                    };
                    for d in directives {
                        if sub.directives.iter().any(|x| &x.name == d) {
                            self.fail("DIRECTIVE_IN_FIELDS_ARG", format!("cannot have directive applications in the field set (field \"{ty}.{name}\")"));
                        } else {
                            self.fail("INVALID_FIELDS", format!("Unknown directive \"@{d}\""));
                        }
                    }
                    // Apollo's composer accepts arguments in @requires field sets (the
                    // required value is fetched with them); @key and @provides reject them.
                    if *has_args && self.usage != Use::Requires {
                        self.fail(
                            "FIELDS_HAS_ARGS",
                            format!(
                                "field \"{ty}.{name}\" cannot be included because it has arguments"
                            ),
                        );
                    } else if self.usage == Use::Key && !f.args.is_empty() {
                        self.fail("FIELDS_HAS_ARGS", format!("field \"{ty}.{name}\" cannot be included because it has arguments (fields with argument are not allowed in @key)"));
                    }
                    let inner = f.ty.inner_named_type().as_str();
                    let inner_kind = sub.types.get(inner).map(|t| t.kind).unwrap_or(Kind::Scalar);
                    if self.usage == Use::Key && matches!(inner_kind, Kind::Interface | Kind::Union)
                    {
                        let kind = if inner_kind == Kind::Interface {
                            "an Interface"
                        } else {
                            "a Union"
                        };
                        self.fail(
                            "FIELDS_SELECT_INVALID_TYPE",
                            format!(
                                "field \"{ty}.{name}\" is {kind} type which is not allowed in @key"
                            ),
                        );
                        continue;
                    }
                    let composite =
                        matches!(inner_kind, Kind::Object | Kind::Interface | Kind::Union);
                    if composite && selections.is_empty() {
                        self.fail("INVALID_FIELDS", format!("Field \"{name}\" of type \"{}\" must have a selection of subfields.", f.ty));
                        continue;
                    }
                    if !composite && !selections.is_empty() {
                        self.fail("INVALID_FIELDS", format!("Field \"{name}\" must not have a selection since type \"{}\" has no subfields.", f.ty));
                        continue;
                    }
                    // Requires/provides may only name fields this subgraph does not resolve itself;
                    // nested fields inside a value type are not required to be external. As in
                    // Apollo's composer, only leaves are checked, and none under an external
                    // field: `@provides(fields: "account { member { name } }")` passes through
                    // fields the subgraph resolves to the external fields it provides.
                    if sub.fed2
                        && matches!(self.usage, Use::Requires | Use::Provides)
                        && !f.external
                        && selections.is_empty()
                        && !external_parent
                        && (top || t.is_entity())
                    {
                        self.fail("FIELDS_MISSING_EXTERNAL", format!("field \"{ty}.{name}\" should not be part of a {} since it is already provided by this subgraph (it is not marked @external)", self.usage.directive()));
                    }
                    if !selections.is_empty() {
                        self.check_under(inner, selections, false, external_parent || f.external);
                    }
                }
            }
        }
    }
}

fn located(
    sub: &Subgraph,
    code: &'static str,
    msg: String,
    coord: String,
    line: Option<usize>,
) -> CompositionError {
    let mut e = CompositionError::new(code, msg)
        .in_subgraph(&sub.name)
        .at(coord)
        .line(line);
    e.file = sub.file.clone();
    e
}

/// Checks one subgraph's federation directive usage; returns every problem found.
pub fn validate(sub: &Subgraph, subgraph_names: &[String]) -> Vec<CompositionError> {
    let mut errors = Vec::new();
    let used = used_fields(sub);
    let label_ok = |l: &str| {
        if let Some(p) = l.strip_prefix("percent(").and_then(|r| r.strip_suffix(')')) {
            return p.parse::<f64>().is_ok_and(|v| (0.0..=100.0).contains(&v));
        }
        let mut cs = l.chars();
        cs.next().is_some_and(|c| c.is_ascii_alphabetic())
            && cs.all(|c| c.is_ascii_alphanumeric() || "_-:./".contains(c))
    };
    for t in sub.types.values() {
        for k in &t.keys {
            let coord = t.name.clone();
            match fieldset::parse(&k.fields) {
                Err(e) => errors.push(located(
                    sub,
                    "KEY_INVALID_FIELDS",
                    format!(
                        "On type \"{}\", for @key(fields: \"{}\"): {e}",
                        t.name, k.fields
                    ),
                    coord,
                    k.line,
                )),
                Ok(sels) => {
                    let mut ctx = Ctx {
                        sub,
                        errors: &mut errors,
                        coord,
                        line: k.line,
                        usage: Use::Key,
                        raw: &k.fields,
                    };
                    ctx.check(&t.name, &sels, true);
                }
            }
        }
        if t.interface_object && t.keys.is_empty() {
            errors.push(located(sub, "INTERFACE_OBJECT_USAGE_ERROR", format!("The @interfaceObject directive can only be applied to entity types but type \"{}\" has no @key in this subgraph.", t.name), t.name.clone(), t.line));
        }
        if t.kind == Kind::Interface && t.is_entity() {
            // An interface entity must be resolvable as each of its implementations here.
            for impl_t in sub
                .types
                .values()
                .filter(|o| o.implements.contains(&t.name) && o.kind == Kind::Object)
            {
                for k in &t.keys {
                    if !impl_t
                        .keys
                        .iter()
                        .any(|ik| normalize(&ik.fields) == normalize(&k.fields))
                    {
                        errors.push(located(sub, "INTERFACE_KEY_NOT_ON_IMPLEMENTATION", format!("Key @key(fields: \"{}\") on interface type \"{}\" is missing on implementation type \"{}\".", k.fields, t.name, impl_t.name), impl_t.name.clone(), impl_t.line));
                    }
                }
            }
        }
        for f in t.fields.values() {
            let coord = format!("{}.{}", t.name, f.name);
            if t.kind == Kind::Interface {
                if f.external {
                    errors.push(located(sub, "EXTERNAL_ON_INTERFACE", format!("Interface type field \"{coord}\" is marked @external but @external is not allowed on interface fields."), coord.clone(), f.line));
                }
                if f.requires.is_some() {
                    errors.push(located(sub, "REQUIRES_UNSUPPORTED_ON_INTERFACE", format!("Cannot use @requires on field \"{coord}\" of parent type \"{}\": @requires is not yet supported within interfaces", t.name), coord.clone(), f.line));
                }
                if f.provides.is_some() {
                    errors.push(located(sub, "PROVIDES_UNSUPPORTED_ON_INTERFACE", format!("Cannot use @provides on field \"{coord}\" of parent type \"{}\": @provides is not yet supported within interfaces", t.name), coord.clone(), f.line));
                }
                if f.override_from.is_some() {
                    errors.push(located(sub, "OVERRIDE_ON_INTERFACE", format!("@override cannot be used on field \"{coord}\" on subgraph \"{}\" since \"{}\" is an interface.", sub.name, t.name), coord.clone(), f.line));
                }
                if f.shareable_explicit && sub.fed2 {
                    errors.push(located(sub, "INVALID_SHAREABLE_USAGE", format!("Invalid use of @shareable on field \"{coord}\": only object type fields can be marked with @shareable"), coord.clone(), f.line));
                }
                continue;
            }
            if let Some(req) = &f.requires {
                match fieldset::parse(req) {
                    Err(e) => errors.push(located(
                        sub,
                        "REQUIRES_INVALID_FIELDS",
                        format!("On field \"{coord}\", for @requires(fields: \"{req}\"): {e}"),
                        coord.clone(),
                        f.line,
                    )),
                    Ok(sels) => {
                        let mut ctx = Ctx {
                            sub,
                            errors: &mut errors,
                            coord: coord.clone(),
                            line: f.line,
                            usage: Use::Requires,
                            raw: req,
                        };
                        ctx.check(&t.name, &sels, true);
                    }
                }
            }
            if let Some(prov) = &f.provides {
                let target = f.ty.inner_named_type().as_str();
                match sub.types.get(target).map(|t| t.kind) {
                    Some(Kind::Object | Kind::Interface | Kind::Union) => match fieldset::parse(prov) {
                        Err(e) => errors.push(located(sub, "PROVIDES_INVALID_FIELDS", format!("On field \"{coord}\", for @provides(fields: \"{prov}\"): {e}"), coord.clone(), f.line)),
                        Ok(sels) => {
                            let mut ctx = Ctx { sub, errors: &mut errors, coord: coord.clone(), line: f.line, usage: Use::Provides, raw: prov };
                            ctx.check(target, &sels, true);
                        }
                    },
                    _ => errors.push(located(sub, "PROVIDES_ON_NON_OBJECT_FIELD", format!("Invalid @provides directive on field \"{coord}\": field has type \"{}\" which is not a Composite Type", f.ty), coord.clone(), f.line)),
                }
            }
            if f.external
                && sub.fed2
                && !used.contains(&(t.name.clone(), f.name.clone()))
                && !implements_interface_field(sub, t, &f.name)
            {
                errors.push(located(sub, "EXTERNAL_UNUSED", format!("Field \"{coord}\" is marked @external but is not used in any federation directive (@key, @provides, @requires) or to satisfy an interface; the field declaration has no use and should be removed (or the field should not be @external)."), coord.clone(), f.line));
            }
            if let Some(from) = &f.override_from {
                if from == &sub.name {
                    errors.push(located(sub, "OVERRIDE_FROM_SELF_ERROR", format!("Source and destination subgraphs \"{from}\" are the same for overridden field \"{coord}\""), coord.clone(), f.line));
                }
                if f.external || f.requires.is_some() || f.provides.is_some() {
                    let other = if f.external {
                        "@external"
                    } else if f.requires.is_some() {
                        "@requires"
                    } else {
                        "@provides"
                    };
                    errors.push(located(sub, "OVERRIDE_COLLISION_WITH_ANOTHER_DIRECTIVE", format!("@override cannot be used on field \"{coord}\" on subgraph \"{}\" since \"{coord}\" on \"{}\" is marked with directive \"{other}\"", sub.name, sub.name), coord.clone(), f.line));
                }
                if let Some(label) = &f.override_label {
                    if !label_ok(label) {
                        errors.push(located(sub, "OVERRIDE_LABEL_INVALID", format!("Invalid @override label \"{label}\" on field \"{coord}\" on subgraph \"{}\": labels must start with a letter and after that may contain alphanumerics, underscores, minuses, colons, periods, or slashes. Alternatively, labels may be of the form \"percent(x)\" where x is a float between 0-100 inclusive.", sub.name), coord.clone(), f.line));
                    }
                }
                let _ = subgraph_names;
            }
        }
    }
    errors
}

fn implements_interface_field(sub: &Subgraph, t: &crate::subgraph::TypeDef, field: &str) -> bool {
    t.implements.iter().any(|i| {
        sub.types
            .get(i)
            .is_some_and(|it| it.fields.contains_key(field))
    })
}

/// Field set text with whitespace normalized, for comparing keys.
pub fn normalize(fields: &str) -> String {
    fieldset::parse(fields)
        .map(|s| fieldset::print(&s))
        .unwrap_or_else(|_| fields.split_whitespace().collect::<Vec<_>>().join(" "))
}
