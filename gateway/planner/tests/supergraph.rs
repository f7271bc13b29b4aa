//! Reading supergraphs: link renames, ownership, override labels, errors.

use switchyard_planner::{Supergraph, SupergraphError};

const DEMO: &str = include_str!("fixtures/demo.graphql");

#[test]
fn reads_subgraphs_in_declaration_order() {
    let sg = Supergraph::parse(DEMO).unwrap();
    let names: Vec<&str> = sg.subgraphs().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["accounts", "inventory", "products", "reviews"]);
    assert_eq!(sg.subgraphs()[2].url, "http://products/graphql");
    assert!(sg.override_labels().is_empty());
}

#[test]
fn api_schema_has_no_join_machinery() {
    let sg = Supergraph::parse(DEMO).unwrap();
    let api = sg.api_schema();
    assert!(api.types.contains_key("Product"));
    assert!(!api.types.contains_key("join__Graph"));
    assert!(!api.directive_definitions.contains_key("join__field"));
}

#[test]
fn join_link_renamed_with_as() {
    let sdl = DEMO
        .replace(
            "join/v0.3\", for: EXECUTION)",
            "join/v0.3\", as: \"fed\", for: EXECUTION)",
        )
        .replace("join__", "fed__");
    let sg = Supergraph::parse(&sdl).unwrap();
    assert_eq!(sg.subgraphs().len(), 4);
}

#[test]
fn join_directives_imported_without_prefix() {
    let sdl = DEMO
        .replace(
            "join/v0.3\", for: EXECUTION)",
            "join/v0.3\", for: EXECUTION, import: [{name: \"@field\", as: \"@owner\"}, \"@type\", \"@graph\"])",
        )
        .replace("@join__field", "@owner")
        .replace("directive @join__type", "directive @type")
        .replace("@join__type(", "@type(")
        .replace("directive @join__graph", "directive @graph")
        .replace("@join__graph(", "@graph(");
    let sg = Supergraph::parse(&sdl).unwrap();
    assert_eq!(sg.subgraphs().len(), 4);
    // The planner still sees ownership through the renamed directives.
    let doc = apollo_compiler::ExecutableDocument::parse_and_validate(
        sg.api_schema(),
        "{ me { reviews { body } } }",
        "op.graphql",
    )
    .unwrap();
    let planner = switchyard_planner::QueryPlanner::new(std::sync::Arc::new(sg));
    let plan = planner.plan(&doc, None, &Default::default()).unwrap();
    assert!(plan.to_string().contains("Fetch(service: \"reviews\")"));
}

#[test]
fn override_labels_with_percentages() {
    let sdl = DEMO
        .replace("join/v0.3", "join/v0.4")
        .replace(
            "usedOverridden: Boolean)",
            "usedOverridden: Boolean, overrideLabel: String)",
        )
        .replace(
            "inStock: Boolean @join__field(graph: INVENTORY)",
            "inStock: Boolean @join__field(graph: INVENTORY, override: \"products\", overrideLabel: \"percent(25)\") @join__field(graph: PRODUCTS, overrideLabel: \"percent(25)\")",
        )
        .replace(
            "name: String @join__field(graph: PRODUCTS)",
            "name: String @join__field(graph: PRODUCTS, override: \"inventory\", overrideLabel: \"new-names\") @join__field(graph: INVENTORY, overrideLabel: \"new-names\")",
        );
    let sg = Supergraph::parse(&sdl).unwrap();
    let labels: Vec<(String, Option<f64>)> = sg
        .override_labels()
        .iter()
        .map(|l| (l.label.clone(), l.percent))
        .collect();
    assert_eq!(
        labels,
        [
            ("new-names".to_string(), None),
            ("percent(25)".to_string(), Some(25.0))
        ]
    );
}

#[test]
fn missing_join_link_is_unsupported() {
    let err = Supergraph::parse("type Query { a: Int }").unwrap_err();
    assert!(matches!(err, SupergraphError::Unsupported(_)), "{err}");
}

#[test]
fn invalid_sdl_is_invalid() {
    let err = Supergraph::parse("type Query {").unwrap_err();
    assert!(matches!(err, SupergraphError::Invalid(_)), "{err}");
}
