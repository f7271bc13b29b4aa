//! Round trip: every valid case's supergraph is loaded by our planner
//! (`switchyard_planner::Supergraph::parse`) and a query over every root field is planned.
//! (Executing that plan against live subgraphs belongs to the gateway's federation suite.)

mod support;

use std::sync::Arc;

use apollo_compiler::executable::ExecutableDocument;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::Schema;
use switchyard_planner::{PlanOptions, QueryPlanner, Supergraph};

/// `{ field { __typename leaf ... } ... }` over every root field without required arguments.
fn query_for(api: &Schema) -> Option<String> {
    let root = api.schema_definition.query.as_ref()?;
    let ExtendedType::Object(q) = api.types.get(root.as_str())? else {
        return None;
    };
    let mut out = String::from("{");
    for f in q.fields.values() {
        if f.arguments.iter().any(|a| a.is_required()) {
            continue;
        }
        out.push(' ');
        out.push_str(&f.name);
        match api.types.get(f.ty.inner_named_type()) {
            Some(ExtendedType::Object(o)) => {
                out.push_str(" { __typename");
                for sf in o.fields.values() {
                    let leaf = matches!(
                        api.types.get(sf.ty.inner_named_type()),
                        Some(ExtendedType::Scalar(_) | ExtendedType::Enum(_))
                    );
                    if leaf && !sf.arguments.iter().any(|a| a.is_required()) {
                        out.push(' ');
                        out.push_str(&sf.name);
                    }
                }
                out.push_str(" }");
            }
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => {
                out.push_str(" { __typename }")
            }
            _ => {}
        }
    }
    out.push_str(" }");
    (out != "{ }").then_some(out)
}

#[test]
fn planner_loads_and_plans_every_valid_supergraph() {
    let mut failures = Vec::new();
    let mut planned = 0;
    for case in support::load_cases()
        .into_iter()
        .filter(|c| c.expect.is_empty())
    {
        let sdl = switchyard_compose::compose(&case.subgraphs)
            .unwrap()
            .supergraph_sdl;
        let sg = match Supergraph::parse(&sdl) {
            Ok(sg) => Arc::new(sg),
            Err(e) => {
                failures.push(format!(
                    "{}: planner cannot load supergraph: {e}",
                    case.name
                ));
                continue;
            }
        };
        if sg.subgraphs().len() != case.subgraphs.len() {
            failures.push(format!(
                "{}: planner sees {} subgraphs",
                case.name,
                sg.subgraphs().len()
            ));
        }
        let Some(q) = query_for(sg.api_schema()) else {
            continue;
        };
        let doc = match ExecutableDocument::parse_and_validate(sg.api_schema(), &q, "q.graphql") {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!(
                    "{}: query {q} invalid against API schema: {}",
                    case.name, e.errors
                ));
                continue;
            }
        };
        match QueryPlanner::new(sg.clone()).plan(&doc, None, &PlanOptions::default()) {
            Ok(_) => planned += 1,
            Err(e) => failures.push(format!("{}: cannot plan {q}: {e}", case.name)),
        }
    }
    eprintln!("planned {planned} valid supergraphs");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
