//! Prints the merged model as a supergraph SDL in Apollo's format, deterministically ordered.

use std::fmt::Write;

use crate::model::*;
use crate::subgraph::{Kind, ListSize, Meta};

const LINK_PURPOSE: &str = r#"enum link__Purpose {
  """
  `SECURITY` features provide metadata necessary to securely resolve fields.
  """
  SECURITY

  """
  `EXECUTION` features provide metadata necessary for operation execution.
  """
  EXECUTION
}"#;

const LOCATIONS_ALL: &str = "FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION";

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn description(out: &mut String, d: &Option<String>, indent: &str) {
    if let Some(d) = d {
        if d.contains("\"\"\"") || d.ends_with('"') || d.ends_with('\\') {
            let _ = writeln!(out, "{indent}{}", quote(d));
            return;
        }
        let _ = writeln!(out, "{indent}\"\"\"");
        for line in d.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "{indent}{line}");
            }
        }
        let _ = writeln!(out, "{indent}\"\"\"");
    }
}

fn meta(m: &Meta) -> String {
    let mut s = String::new();
    if let Some(r) = &m.deprecated {
        if r == "No longer supported" {
            s.push_str(" @deprecated");
        } else {
            let _ = write!(s, " @deprecated(reason: {})", quote(r));
        }
    }
    if m.inaccessible {
        s.push_str(" @inaccessible");
    }
    for t in &m.tags {
        let _ = write!(s, " @tag(name: {})", quote(t));
    }
    for d in security(m) {
        s.push(' ');
        s.push_str(&d);
    }
    if let Some(l) = &m.list_size {
        s.push(' ');
        s.push_str(&list_size(l));
    }
    if let Some(w) = m.cost {
        let _ = write!(s, " @cost(weight: {w})");
    }
    s
}

/// `@listSize(...)` with the arguments a subgraph gave, in the definition's order.
fn list_size(l: &ListSize) -> String {
    let strings = |list: &[String]| {
        let quoted: Vec<String> = list.iter().map(|s| quote(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut args = Vec::new();
    if let Some(n) = l.assumed_size {
        args.push(format!("assumedSize: {n}"));
    }
    if let Some(list) = &l.slicing_arguments {
        args.push(format!("slicingArguments: {}", strings(list)));
    }
    if let Some(list) = &l.sized_fields {
        args.push(format!("sizedFields: {}", strings(list)));
    }
    if let Some(b) = l.require_one_slicing_argument {
        args.push(format!("requireOneSlicingArgument: {b}"));
    }
    if args.is_empty() {
        "@listSize".to_string()
    } else {
        format!("@listSize({})", args.join(", "))
    }
}

fn matrix(m: &[Vec<String>]) -> String {
    let outer: Vec<String> = m
        .iter()
        .map(|inner| {
            format!(
                "[{}]",
                inner
                    .iter()
                    .map(|s| quote(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    format!("[{}]", outer.join(", "))
}

fn security(m: &Meta) -> Vec<String> {
    let mut out = Vec::new();
    if m.authenticated {
        out.push("@authenticated".to_string());
    }
    if let Some(s) = &m.scopes {
        out.push(format!("@requiresScopes(scopes: {})", matrix(s)));
    }
    if let Some(p) = &m.policies {
        out.push(format!("@policy(policies: {})", matrix(p)));
    }
    out
}

fn input(i: &MInput) -> String {
    let mut s = format!("{}: {}", i.name, i.ty);
    if let Some(d) = &i.default {
        let _ = write!(s, " = {d}");
    }
    s.push_str(&meta(&i.meta));
    s
}

fn args(out: &mut String, args: &[&MInput], indent: &str) {
    if args.is_empty() {
        return;
    }
    if args.iter().all(|a| a.description.is_none()) {
        let list: Vec<String> = args.iter().map(|a| input(a)).collect();
        let _ = write!(out, "({})", list.join(", "));
        return;
    }
    out.push_str("(\n");
    let inner = format!("{indent}  ");
    for a in args {
        description(out, &a.description, &inner);
        let _ = writeln!(out, "{inner}{}", input(a));
    }
    let _ = write!(out, "{indent})");
}

fn join_field(m: &Merged, j: &JoinField) -> String {
    let mut parts = Vec::new();
    if let Some(g) = j.graph {
        parts.push(format!("graph: {}", m.graphs[g].enum_name));
    }
    if let Some(r) = &j.requires {
        parts.push(format!("requires: {}", quote(r)));
    }
    if let Some(p) = &j.provides {
        parts.push(format!("provides: {}", quote(p)));
    }
    if let Some(t) = &j.ty {
        parts.push(format!("type: {}", quote(t)));
    }
    if j.external {
        parts.push("external: true".into());
    }
    if let Some(o) = &j.override_from {
        parts.push(format!("override: {}", quote(o)));
    }
    if j.used_overridden {
        parts.push("usedOverridden: true".into());
    }
    if let Some(l) = &j.override_label {
        parts.push(format!("overrideLabel: {}", quote(l)));
    }
    if parts.is_empty() {
        " @join__field".to_string()
    } else {
        format!(" @join__field({})", parts.join(", "))
    }
}

fn type_directives(m: &Merged, t: &MType) -> Vec<String> {
    let mut ds = Vec::new();
    for jt in &t.join_types {
        let mut s = format!("@join__type(graph: {}", m.graphs[jt.graph].enum_name);
        if let Some(k) = &jt.key {
            let _ = write!(s, ", key: {}", quote(k));
        }
        if jt.extension {
            s.push_str(", extension: true");
        }
        if !jt.resolvable {
            s.push_str(", resolvable: false");
        }
        if jt.is_interface_object {
            s.push_str(", isInterfaceObject: true");
        }
        s.push(')');
        ds.push(s);
    }
    for (g, i) in &t.join_implements {
        ds.push(format!(
            "@join__implements(graph: {}, interface: {})",
            m.graphs[*g].enum_name,
            quote(i)
        ));
    }
    for (g, mem) in &t.join_members {
        ds.push(format!(
            "@join__unionMember(graph: {}, member: {})",
            m.graphs[*g].enum_name,
            quote(mem)
        ));
    }
    if t.meta.inaccessible {
        ds.push("@inaccessible".into());
    }
    for tag in &t.meta.tags {
        ds.push(format!("@tag(name: {})", quote(tag)));
    }
    ds.extend(security(&t.meta));
    if let Some(w) = t.meta.cost {
        ds.push(format!("@cost(weight: {w})"));
    }
    if let Some(u) = &t.specified_by {
        ds.push(format!("@specifiedBy(url: {})", quote(u)));
    }
    ds
}

fn sort_key(name: &str) -> (String, String) {
    (name.to_lowercase(), name.to_string())
}

/// The join spec version the supergraph needs: v0.5 once `overrideLabel` is used, else v0.3.
pub fn join_version(m: &Merged) -> &'static str {
    if m.uses_override_label {
        "v0.5"
    } else {
        "v0.3"
    }
}

/// Renders the supergraph SDL.
pub fn print(m: &Merged) -> String {
    let mut out = String::new();
    let join = join_version(m);
    let v5 = join == "v0.5";
    print_schema(&mut out, m, join);
    let mut directives = directive_definitions(m, v5);
    directives.sort_by_key(|a| sort_key(&a.0));
    for (_, d) in &directives {
        out.push_str(d);
        out.push_str("\n\n");
    }
    let mut blocks = type_blocks(m, v5);
    blocks.sort_by_key(|a| sort_key(&a.0));
    let n = blocks.len();
    for (i, (_, b)) in blocks.into_iter().enumerate() {
        out.push_str(&b);
        out.push('\n');
        if i + 1 < n {
            out.push('\n');
        }
    }
    out
}

/// The `schema` block: the spec links in use and the root operation types.
fn print_schema(out: &mut String, m: &Merged, join: &str) {
    out.push_str("schema\n  @link(url: \"https://specs.apollo.dev/link/v1.0\")\n");
    let _ = writeln!(
        out,
        "  @link(url: \"https://specs.apollo.dev/join/{join}\", for: EXECUTION)"
    );
    if m.uses_inaccessible {
        out.push_str(
            "  @link(url: \"https://specs.apollo.dev/inaccessible/v0.2\", for: SECURITY)\n",
        );
    }
    if m.uses_tag {
        out.push_str("  @link(url: \"https://specs.apollo.dev/tag/v0.3\")\n");
    }
    if m.uses_authenticated {
        out.push_str(
            "  @link(url: \"https://specs.apollo.dev/authenticated/v0.1\", for: SECURITY)\n",
        );
    }
    if m.uses_requires_scopes {
        out.push_str(
            "  @link(url: \"https://specs.apollo.dev/requiresScopes/v0.1\", for: SECURITY)\n",
        );
    }
    if m.uses_policy {
        out.push_str("  @link(url: \"https://specs.apollo.dev/policy/v0.1\", for: SECURITY)\n");
    }
    if m.uses_cost {
        // As Apollo's composer links it: `@cost` is the spec's namesake, so only `@listSize`
        // needs importing.
        out.push_str(
            "  @link(url: \"https://specs.apollo.dev/cost/v0.1\", import: [\"@listSize\"])\n",
        );
    }
    out.push_str("{\n");
    for (op, ty) in [
        ("query", "Query"),
        ("mutation", "Mutation"),
        ("subscription", "Subscription"),
    ] {
        if m.types.contains_key(ty) {
            let _ = writeln!(out, "  {op}: {ty}");
        }
    }
    out.push_str("}\n\n");
}

/// Every directive definition the supergraph needs, as (sort name, definition).
fn directive_definitions(m: &Merged, v5: bool) -> Vec<(String, String)> {
    let mut directives: Vec<(String, String)> = Vec::new();
    if m.uses_inaccessible {
        directives.push((
            "inaccessible".into(),
            format!("directive @inaccessible on {LOCATIONS_ALL}"),
        ));
    }
    if v5 {
        directives.push(("join__directive".into(), "directive @join__directive(graphs: [join__Graph!], name: String!, args: join__DirectiveArguments) repeatable on SCHEMA | OBJECT | INTERFACE | FIELD_DEFINITION".into()));
    }
    directives.push((
        "join__enumValue".into(),
        "directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE".into(),
    ));
    directives.push((
        "join__field".into(),
        if v5 {
            "directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean, overrideLabel: String, contextArguments: [join__ContextArgument!]) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION".into()
        } else {
            "directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION".into()
        },
    ));
    directives.push((
        "join__graph".into(),
        "directive @join__graph(name: String!, url: String!) on ENUM_VALUE".into(),
    ));
    directives.push(("join__implements".into(), "directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE".into()));
    directives.push(("join__type".into(), "directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR".into()));
    directives.push((
        "join__unionMember".into(),
        "directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION"
            .into(),
    ));
    directives.push(("link".into(), "directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA".into()));
    const SECURED: &str = "FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM";
    if m.uses_authenticated {
        directives.push((
            "authenticated".into(),
            format!("directive @authenticated on {SECURED}"),
        ));
    }
    if m.uses_requires_scopes {
        directives.push((
            "requiresScopes".into(),
            format!("directive @requiresScopes(scopes: [[requiresScopes__Scope!]!]!) on {SECURED}"),
        ));
    }
    if m.uses_policy {
        directives.push((
            "policy".into(),
            format!("directive @policy(policies: [[policy__Policy!]!]!) on {SECURED}"),
        ));
    }
    if m.uses_cost {
        directives.push((
            "cost".into(),
            "directive @cost(weight: Int!) on ARGUMENT_DEFINITION | ENUM | FIELD_DEFINITION | INPUT_FIELD_DEFINITION | OBJECT | SCALAR".into(),
        ));
        directives.push((
            "listSize".into(),
            "directive @listSize(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION".into(),
        ));
    }
    if m.uses_tag {
        directives.push((
            "tag".into(),
            format!("directive @tag(name: String!) repeatable on {LOCATIONS_ALL} | SCHEMA"),
        ));
    }
    for d in &m.directives {
        let mut s = String::new();
        description(&mut s, &d.description, "");
        let _ = write!(s, "directive @{}", d.name);
        let list: Vec<&MInput> = d.args.iter().collect();
        args(&mut s, &list, "");
        if d.repeatable {
            s.push_str(" repeatable");
        }
        let _ = write!(s, " on {}", d.locations.join(" | "));
        directives.push((d.name.clone(), s));
    }
    directives
}

/// Every type definition, the join and link machinery's included, as (sort name, definition).
fn type_blocks(m: &Merged, v5: bool) -> Vec<(String, String)> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    if v5 {
        blocks.push(("join__ContextArgument".into(), "input join__ContextArgument {\n  name: String!\n  type: String!\n  context: String!\n  selection: join__FieldValue!\n}".into()));
        blocks.push((
            "join__DirectiveArguments".into(),
            "scalar join__DirectiveArguments".into(),
        ));
        blocks.push(("join__FieldValue".into(), "scalar join__FieldValue".into()));
    }
    blocks.push(("join__FieldSet".into(), "scalar join__FieldSet".into()));
    if m.uses_requires_scopes {
        blocks.push((
            "requiresScopes__Scope".into(),
            "scalar requiresScopes__Scope".into(),
        ));
    }
    if m.uses_policy {
        blocks.push(("policy__Policy".into(), "scalar policy__Policy".into()));
    }
    let mut graphs = String::from("enum join__Graph {\n");
    for g in &m.graphs {
        let _ = writeln!(
            graphs,
            "  {} @join__graph(name: {}, url: {})",
            g.enum_name,
            quote(&g.name),
            quote(&g.url)
        );
    }
    graphs.push('}');
    blocks.push(("join__Graph".into(), graphs));
    blocks.push(("link__Import".into(), "scalar link__Import".into()));
    blocks.push(("link__Purpose".into(), LINK_PURPOSE.into()));
    for t in m.types.values() {
        blocks.push((t.name.clone(), print_type(m, t)));
    }
    blocks
}

fn print_type(m: &Merged, t: &MType) -> String {
    let mut out = String::new();
    description(&mut out, &t.description, "");
    let keyword = match t.kind {
        Kind::Scalar => "scalar",
        Kind::Object => "type",
        Kind::Interface => "interface",
        Kind::Union => "union",
        Kind::Enum => "enum",
        Kind::Input => "input",
    };
    let _ = write!(out, "{keyword} {}", t.name);
    if !t.implements.is_empty() && matches!(t.kind, Kind::Object | Kind::Interface) {
        let _ = write!(out, " implements {}", t.implements.join(" & "));
    }
    let ds = type_directives(m, t);
    for d in &ds {
        let _ = write!(out, "\n  {d}");
    }
    match t.kind {
        Kind::Scalar => return out,
        Kind::Union => {
            if !t.members.is_empty() {
                if ds.is_empty() {
                    out.push(' ');
                } else {
                    out.push_str("\n ");
                }
                let _ = write!(out, " = {}", t.members.join(" | "));
            }
            return out;
        }
        _ => {}
    }
    out.push_str(if ds.is_empty() { " {\n" } else { "\n{\n" });
    match t.kind {
        Kind::Object | Kind::Interface => {
            for (i, f) in t.fields.values().enumerate() {
                if f.description.is_some() && i > 0 {
                    out.push('\n');
                }
                description(&mut out, &f.description, "  ");
                let _ = write!(out, "  {}", f.name);
                let list: Vec<&MInput> = f.args.values().collect();
                args(&mut out, &list, "  ");
                let _ = write!(out, ": {}", f.ty);
                for j in f.joins.iter().flatten() {
                    out.push_str(&join_field(m, j));
                }
                out.push_str(&meta(&f.meta));
                out.push('\n');
            }
        }
        Kind::Input => {
            for (i, f) in t.input_fields.values().enumerate() {
                if f.description.is_some() && i > 0 {
                    out.push('\n');
                }
                description(&mut out, &f.description, "  ");
                let _ = writeln!(out, "  {}", input(f));
            }
        }
        Kind::Enum => {
            for (i, v) in t.values.values().enumerate() {
                if v.description.is_some() && i > 0 {
                    out.push('\n');
                }
                description(&mut out, &v.description, "  ");
                let _ = write!(out, "  {}", v.name);
                for g in &v.graphs {
                    let _ = write!(out, " @join__enumValue(graph: {})", m.graphs[*g].enum_name);
                }
                out.push_str(&meta(&v.meta));
                out.push('\n');
            }
        }
        _ => {}
    }
    out.push('}');
    out
}
