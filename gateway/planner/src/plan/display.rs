//! `Display` for plans: a deterministic, Apollo-style tree used by snapshots and `switchyard plan`.

use std::fmt::{self, Write as _};

use apollo_compiler::ast::{Definition, Document, Selection};

use super::{FetchNode, PathElement, PlanNode, QueryPlan, RequiresSelection, ValueRewrite};

/// Prints a response path: keys joined by `.`, `@` for list items, `|[A,B]` for type conditions.
pub fn path_string(path: &[PathElement]) -> String {
    let mut out = String::new();
    for (i, el) in path.iter().enumerate() {
        match el {
            PathElement::Key(k) => {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathElement::List => {
                if i > 0 {
                    out.push('.');
                }
                out.push('@');
            }
            PathElement::TypeCondition(types) => {
                let _ = write!(out, "|[{}]", types.join(","));
            }
        }
    }
    out
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

impl fmt::Display for QueryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("QueryPlan {\n");
        if let Some(node) = &self.node {
            write_node(&mut out, node, 1);
        }
        out.push('}');
        f.write_str(&out)
    }
}

fn write_node(out: &mut String, node: &PlanNode, level: usize) {
    indent(out, level);
    match node {
        PlanNode::Sequence { nodes } | PlanNode::Parallel { nodes } => {
            let name = if matches!(node, PlanNode::Sequence { .. }) {
                "Sequence"
            } else {
                "Parallel"
            };
            let _ = writeln!(out, "{name} {{");
            for child in nodes {
                write_node(out, child, level + 1);
            }
            indent(out, level);
            out.push_str("},\n");
        }
        PlanNode::Fetch(fetch) => write_fetch(out, fetch, level),
        PlanNode::Flatten(flatten) => {
            if flatten.other_paths.is_empty() {
                let _ = writeln!(out, "Flatten(path: \"{}\") {{", path_string(&flatten.path));
            } else {
                let paths: Vec<String> = std::iter::once(&flatten.path)
                    .chain(&flatten.other_paths)
                    .map(|p| format!("\"{}\"", path_string(p)))
                    .collect();
                let _ = writeln!(out, "Flatten(paths: [{}]) {{", paths.join(", "));
            }
            write_node(out, &flatten.node, level + 1);
            indent(out, level);
            out.push_str("},\n");
        }
        PlanNode::Condition(cond) => {
            let (name, first, second) = match (&cond.if_clause, &cond.else_clause) {
                (None, Some(e)) => ("Skip", Some(e), None),
                (i, e) => ("Include", i.as_ref(), e.as_ref()),
            };
            let _ = writeln!(out, "{name}(if: ${}) {{", cond.condition);
            if let Some(n) = first {
                write_node(out, n, level + 1);
            }
            indent(out, level);
            if let Some(n) = second {
                out.push_str("} Else {\n");
                write_node(out, n, level + 1);
                indent(out, level);
            }
            out.push_str("},\n");
        }
    }
}

fn write_fetch(out: &mut String, fetch: &FetchNode, level: usize) {
    let _ = writeln!(out, "Fetch(service: \"{}\") {{", fetch.service_name);
    let mut body = Vec::new();
    if let Ok(doc) = Document::parse(fetch.operation.as_str(), "fetch.graphql") {
        for def in &doc.definitions {
            if let Definition::OperationDefinition(op) = def {
                body = op.selection_set.clone();
            }
        }
    }
    if let Some(requires) = &fetch.requires {
        indent(out, level + 1);
        out.push_str("{\n");
        write_requires(out, requires, level + 2);
        indent(out, level + 1);
        out.push_str("} =>\n");
        if let Some(Selection::Field(entities)) = body.first() {
            if entities.name == "_entities" {
                body = entities.selection_set.clone();
            }
        }
    }
    indent(out, level + 1);
    out.push_str("{\n");
    write_selections(out, &body, level + 2);
    indent(out, level + 1);
    out.push_str("}\n");
    for rewrite in &fetch.output_rewrites {
        if let ValueRewrite::RenameKey { path, rename_to } = rewrite {
            indent(out, level + 1);
            let _ = writeln!(out, "rename \"{}\" to \"{rename_to}\"", path_string(path));
        }
    }
    indent(out, level);
    out.push_str("},\n");
}

fn write_selections(out: &mut String, sels: &[Selection], level: usize) {
    for sel in sels {
        indent(out, level);
        let children = match sel {
            Selection::Field(field) => {
                if let Some(alias) = &field.alias {
                    let _ = write!(out, "{alias}: ");
                }
                out.push_str(&field.name);
                if !field.arguments.is_empty() {
                    out.push('(');
                    for (i, arg) in field.arguments.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        let _ = write!(out, "{}: ", arg.name);
                        crate::selection::write_value(out, &arg.value);
                    }
                    out.push(')');
                }
                write_directives(out, &field.directives);
                &field.selection_set
            }
            Selection::InlineFragment(frag) => {
                out.push_str("...");
                if let Some(cond) = &frag.type_condition {
                    let _ = write!(out, " on {cond}");
                }
                write_directives(out, &frag.directives);
                &frag.selection_set
            }
            Selection::FragmentSpread(spread) => {
                let _ = write!(out, "...{}", spread.fragment_name);
                out.push('\n');
                continue;
            }
        };
        if children.is_empty() {
            out.push('\n');
        } else {
            out.push_str(" {\n");
            write_selections(out, children, level + 1);
            indent(out, level);
            out.push_str("}\n");
        }
    }
}

fn write_requires(out: &mut String, sels: &[RequiresSelection], level: usize) {
    for sel in sels {
        indent(out, level);
        match sel {
            RequiresSelection::Field {
                name,
                response_key,
                selections,
            } => {
                if name != response_key {
                    let _ = write!(out, "{response_key}: ");
                }
                out.push_str(name);
                if selections.is_empty() {
                    out.push('\n');
                } else {
                    out.push_str(" {\n");
                    write_requires(out, selections, level + 1);
                    indent(out, level);
                    out.push_str("}\n");
                }
            }
            RequiresSelection::InlineFragment {
                type_condition,
                selections,
            } => {
                out.push_str("...");
                if let Some(t) = type_condition {
                    let _ = write!(out, " on {t}");
                }
                out.push_str(" {\n");
                write_requires(out, selections, level + 1);
                indent(out, level);
                out.push_str("}\n");
            }
        }
    }
}

fn write_directives(out: &mut String, directives: &apollo_compiler::ast::DirectiveList) {
    for dir in directives.iter() {
        let _ = write!(out, " @{}", dir.name);
        if !dir.arguments.is_empty() {
            out.push('(');
            for (i, arg) in dir.arguments.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}: ", arg.name);
                crate::selection::write_value(out, &arg.value);
            }
            out.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_like_apollo() {
        let path = vec![
            PathElement::Key("items".into()),
            PathElement::List,
            PathElement::TypeCondition(vec!["Book".into(), "Movie".into()]),
            PathElement::Key("author".into()),
        ];
        assert_eq!(path_string(&path), "items.@|[Book,Movie].author");
        assert_eq!(path_string(&[]), "");
    }
}
