//! `schema/demo/supergraph.graphql` is hand-composed: check it against the subgraph SDLs the way
//! composition would build it, so a change to a subgraph cannot silently leave it stale.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use apollo_compiler::ast::{Definition, Directive, DirectiveList, Document, FieldDefinition};
use switchyard_demo_subgraphs::{sdl, DemoSubgraph};

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema/demo")
}

fn parse(name: &str, source: &str) -> Document {
    Document::parse(source, name).unwrap_or_else(|e| panic!("{name} does not parse: {e}"))
}

fn supergraph() -> Document {
    let source = std::fs::read_to_string(schema_dir().join("supergraph.graphql")).unwrap();
    parse("supergraph.graphql", &source)
}

fn graph_enum(s: DemoSubgraph) -> String {
    s.name().to_ascii_uppercase()
}

fn string_arg(d: &Directive, name: &str) -> Option<String> {
    d.specified_argument_by_name(name)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

fn enum_arg(d: &Directive, name: &str) -> Option<String> {
    d.specified_argument_by_name(name)
        .and_then(|v| v.as_enum())
        .map(|n| n.to_string())
}

fn bool_arg(d: &Directive, name: &str) -> bool {
    d.specified_argument_by_name(name)
        .and_then(|v| v.to_bool())
        .unwrap_or(false)
}

/// The `@join__type` / `@join__field` / `@join__enumValue` directives for one graph.
fn for_graph<'a>(
    list: &'a DirectiveList,
    directive: &'a str,
    graph: &'a str,
) -> Vec<&'a Directive> {
    list.get_all(directive)
        .filter(|d| enum_arg(d, "graph").as_deref() == Some(graph))
        .map(|d| &**d)
        .collect()
}

/// An enum's directives and its values with theirs.
type EnumDef<'a> = (&'a DirectiveList, Vec<(String, &'a DirectiveList)>);

/// Named type definitions of a document: name -> (directives, fields or enum values).
struct Types<'a> {
    objects: BTreeMap<String, (&'a DirectiveList, Vec<&'a FieldDefinition>)>,
    enums: BTreeMap<String, EnumDef<'a>>,
}

fn types(doc: &Document) -> Types<'_> {
    let mut objects = BTreeMap::new();
    let mut enums = BTreeMap::new();
    for def in &doc.definitions {
        match def {
            Definition::ObjectTypeDefinition(t) => {
                let fields = t.fields.iter().map(|f| &**f).collect();
                objects.insert(t.name.to_string(), (&t.directives, fields));
            }
            Definition::EnumTypeDefinition(t) => {
                let values = t
                    .values
                    .iter()
                    .map(|v| (v.value.to_string(), &v.directives))
                    .collect();
                enums.insert(t.name.to_string(), (&t.directives, values));
            }
            _ => {}
        }
    }
    Types { objects, enums }
}

fn field_signature(f: &FieldDefinition) -> String {
    let args: Vec<String> = f
        .arguments
        .iter()
        .map(|a| match &a.default_value {
            Some(d) => format!("{}: {} = {}", a.name, a.ty, d),
            None => format!("{}: {}", a.name, a.ty),
        })
        .collect();
    format!("{}({}): {}", f.name, args.join(", "), f.ty)
}

#[test]
fn join_graphs_route_to_the_default_ports() {
    let doc = supergraph();
    let graphs = doc
        .definitions
        .iter()
        .find_map(|d| match d {
            Definition::EnumTypeDefinition(e) if e.name == "join__Graph" => Some(e),
            _ => None,
        })
        .expect("join__Graph");
    assert_eq!(graphs.values.len(), DemoSubgraph::ALL.len());
    for s in DemoSubgraph::ALL {
        let value = graphs
            .values
            .iter()
            .find(|v| v.value.as_str() == graph_enum(s))
            .unwrap_or_else(|| panic!("no join__Graph value for {s}"));
        let d = value.directives.get("join__graph").expect("@join__graph");
        assert_eq!(string_arg(d, "name").as_deref(), Some(s.name()));
        let url = format!("http://127.0.0.1:{}/graphql", s.default_port());
        assert_eq!(string_arg(d, "url"), Some(url.clone()));

        let yaml = std::fs::read_to_string(schema_dir().join("supergraph.yaml")).unwrap();
        assert!(
            yaml.contains(&format!(
                "  {}:\n    routing_url: {url}\n    schema:\n      file: ./{}.graphql",
                s.name(),
                s.name()
            )),
            "supergraph.yaml entry for {s}"
        );
    }
}

#[test]
fn every_subgraph_definition_is_joined_into_the_supergraph() {
    let super_doc = supergraph();
    let sup = types(&super_doc);
    for s in DemoSubgraph::ALL {
        let graph = graph_enum(s);
        let sub_doc = parse(s.name(), &sdl(s));
        let sub = types(&sub_doc);
        for (name, (directives, fields)) in &sub.objects {
            let (sup_directives, sup_fields) = sup
                .objects
                .get(name)
                .unwrap_or_else(|| panic!("supergraph lacks type {name} of {s}"));
            let joins = for_graph(sup_directives, "join__type", &graph);
            assert_eq!(joins.len(), 1, "{name}: one @join__type(graph: {graph})");
            let key = directives.get("key").and_then(|d| string_arg(d, "fields"));
            assert_eq!(string_arg(joins[0], "key"), key, "{name} key in {s}");

            let members: BTreeSet<String> = sup_directives
                .get_all("join__type")
                .filter_map(|d| enum_arg(d, "graph"))
                .collect();
            for f in fields {
                let sf = sup_fields
                    .iter()
                    .find(|sf| sf.name == f.name)
                    .unwrap_or_else(|| panic!("supergraph lacks {name}.{} of {s}", f.name));
                assert_eq!(field_signature(sf), field_signature(f), "{name}.{}", f.name);
                let external = f.directives.get("external").is_some();
                let requires = f
                    .directives
                    .get("requires")
                    .and_then(|d| string_arg(d, "fields"));
                let provides = f
                    .directives
                    .get("provides")
                    .and_then(|d| string_arg(d, "fields"));
                let jf = for_graph(&sf.directives, "join__field", &graph);
                if sf.directives.get_all("join__field").next().is_none() {
                    // No @join__field means: the same plain field in every graph of the type.
                    assert!(
                        !external && requires.is_none() && provides.is_none(),
                        "{name}.{}",
                        f.name
                    );
                    for g in &members {
                        let owner = DemoSubgraph::ALL
                            .into_iter()
                            .find(|x| &graph_enum(*x) == g)
                            .unwrap();
                        let owner_sdl = sdl(owner);
                        let owner_doc = parse(owner.name(), &owner_sdl);
                        let owner_types = types(&owner_doc);
                        if let Some((_, of)) = owner_types.objects.get(name) {
                            assert!(
                                of.iter().any(|x| x.name == f.name),
                                "{name}.{} missing in {g}",
                                f.name
                            );
                        }
                    }
                    continue;
                }
                assert_eq!(
                    jf.len(),
                    1,
                    "{name}.{}: one @join__field(graph: {graph})",
                    f.name
                );
                assert_eq!(
                    bool_arg(jf[0], "external"),
                    external,
                    "{name}.{} external",
                    f.name
                );
                assert_eq!(
                    string_arg(jf[0], "requires"),
                    requires,
                    "{name}.{} requires",
                    f.name
                );
                assert_eq!(
                    string_arg(jf[0], "provides"),
                    provides,
                    "{name}.{} provides",
                    f.name
                );
            }
            // And nothing joined to this graph that the subgraph doesn't define.
            for sf in sup_fields {
                if !for_graph(&sf.directives, "join__field", &graph).is_empty() {
                    assert!(
                        fields.iter().any(|f| f.name == sf.name),
                        "{name}.{} is joined to {graph} but {s} lacks it",
                        sf.name
                    );
                }
            }
        }
        for (name, (_, values)) in &sub.enums {
            let (sup_directives, sup_values) = &sup.enums[name];
            assert_eq!(
                for_graph(sup_directives, "join__type", &graph).len(),
                1,
                "{name}"
            );
            let names: Vec<&String> = values.iter().map(|(v, _)| v).collect();
            let sup_names: Vec<&String> = sup_values.iter().map(|(v, _)| v).collect();
            assert_eq!(names, sup_names, "{name} values");
            for (v, d) in sup_values {
                assert_eq!(
                    for_graph(d, "join__enumValue", &graph).len(),
                    1,
                    "{name}.{v}"
                );
            }
        }
        // Every type the supergraph joins to this graph exists there (Query is implicit:
        // composition gives every subgraph a root query type for `_entities`/`_service`).
        for (name, (directives, _)) in sup.objects.iter() {
            if name != "Query" && !for_graph(directives, "join__type", &graph).is_empty() {
                assert!(
                    sub.objects.contains_key(name),
                    "{name} joined to {graph} but not in {s}"
                );
            }
        }
    }
}

#[test]
fn supergraph_is_a_valid_schema() {
    let source = std::fs::read_to_string(schema_dir().join("supergraph.graphql")).unwrap();
    if let Err(e) = apollo_compiler::Schema::parse_and_validate(source, "supergraph.graphql") {
        panic!("supergraph.graphql is not a valid schema: {}", e.errors);
    }
}
