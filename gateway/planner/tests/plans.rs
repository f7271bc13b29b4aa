//! Plan snapshots for the core shapes, on two small supergraphs (`fixtures/`).

use std::collections::HashSet;
use std::sync::Arc;

use apollo_compiler::ExecutableDocument;
use switchyard_planner::plan::{PlanNode, RequiresSelection, ValueRewrite};
use switchyard_planner::{PlanOptions, QueryPlan, QueryPlanner, Supergraph};

const DEMO: &str = include_str!("fixtures/demo.graphql");
const SHOP: &str = include_str!("fixtures/shop.graphql");

fn plan_with(sdl: &str, op: &str, labels: &[&str]) -> QueryPlan {
    let sg = Arc::new(Supergraph::parse(sdl).expect("fixture parses"));
    let doc = ExecutableDocument::parse_and_validate(sg.api_schema(), op, "op.graphql")
        .expect("operation validates");
    let options = PlanOptions {
        enabled_override_labels: labels.iter().map(|l| l.to_string()).collect::<HashSet<_>>(),
        ..PlanOptions::default()
    };
    QueryPlanner::new(sg)
        .plan(&doc, None, &options)
        .expect("operation plans")
}

fn plan(sdl: &str, op: &str) -> QueryPlan {
    plan_with(sdl, op, &[])
}

fn fetches(node: &PlanNode, out: &mut Vec<(String, String)>) {
    match node {
        PlanNode::Sequence { nodes } | PlanNode::Parallel { nodes } => {
            nodes.iter().for_each(|n| fetches(n, out))
        }
        PlanNode::Fetch(f) => out.push((f.service_name.clone(), f.operation.clone())),
        PlanNode::Flatten(f) => fetches(&f.node, out),
        PlanNode::Condition(c) => {
            c.if_clause.iter().for_each(|n| fetches(n, out));
            c.else_clause.iter().for_each(|n| fetches(n, out));
        }
    }
}

fn all_fetches(plan: &QueryPlan) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(node) = &plan.node {
        fetches(node, &mut out);
    }
    out
}

#[test]
fn root_fields_of_two_subgraphs_run_in_parallel() {
    let plan = plan(DEMO, "{ me { name } topProducts { name } }");
    assert!(matches!(plan.node, Some(PlanNode::Parallel { .. })));
    insta::assert_snapshot!(plan.to_string());
}

#[test]
fn nested_entity_jumps() {
    let plan = plan(
        DEMO,
        "query Top { topProducts { upc name reviews { body author { name } } } }",
    );
    let ops = all_fetches(&plan);
    assert_eq!(ops.len(), 3);
    assert_eq!(
        ops[0].1,
        "query Top__products__0{topProducts{upc name __typename}}"
    );
    insta::assert_snapshot!(plan.to_string());
}

#[test]
fn requires_inputs_are_fetched_first() {
    let plan = plan(DEMO, "{ topProducts { name shippingEstimate } }");
    insta::assert_snapshot!(plan.to_string());
}

#[test]
fn provided_field_needs_no_jump() {
    let plan = plan(DEMO, "{ me { reviews { author { username } } } }");
    let services: Vec<String> = all_fetches(&plan).into_iter().map(|(s, _)| s).collect();
    assert_eq!(services, ["accounts", "reviews"]);
}

#[test]
fn mutations_run_in_order() {
    let plan = plan(
        DEMO,
        r#"mutation { a: login(username: "a") { id } addReview(upc: "1", body: "x") { id product { name } } b: login(username: "b") { name } }"#,
    );
    let Some(PlanNode::Sequence { nodes }) = &plan.node else {
        panic!("mutation plans to a sequence: {plan}");
    };
    assert_eq!(nodes.len(), 3);
    insta::assert_snapshot!(plan.to_string());
}

#[test]
fn skipped_jump_is_a_condition_node() {
    let plan = plan(
        DEMO,
        "query ($x: Boolean!) { me { name reviews @include(if: $x) { body } } }",
    );
    insta::assert_snapshot!(plan.to_string());
}

/// Plans `op` on the demo supergraph with these condition values known.
fn plan_for_values(op: &str, values: &[(&str, bool)]) -> QueryPlan {
    let sg = Arc::new(Supergraph::parse(DEMO).expect("fixture parses"));
    let doc = ExecutableDocument::parse_and_validate(sg.api_schema(), op, "op.graphql")
        .expect("operation validates");
    let options = PlanOptions {
        condition_values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ..PlanOptions::default()
    };
    QueryPlanner::new(sg)
        .plan(&doc, None, &options)
        .expect("operation plans")
}

fn has_condition_node(node: &PlanNode) -> bool {
    match node {
        PlanNode::Sequence { nodes } | PlanNode::Parallel { nodes } => {
            nodes.iter().any(has_condition_node)
        }
        PlanNode::Fetch(_) => false,
        PlanNode::Flatten(f) => has_condition_node(&f.node),
        PlanNode::Condition(_) => true,
    }
}

#[test]
fn known_condition_values_are_decided_at_plan_time() {
    let op = "query ($x: Boolean!, $y: Boolean = true) { \
              me { name reviews @include(if: $x) { body product @skip(if: $y) { name } } } }";
    // Both undecided: the general plan gates the jump at run time.
    let general = plan_for_values(op, &[]);
    assert!(has_condition_node(general.node.as_ref().unwrap()));
    assert_eq!(all_fetches(&general).len(), 3);
    // `$x` false: the jump and everything under it go; no gate, no variable sent.
    let excluded = plan_for_values(op, &[("x", false)]);
    assert_eq!(all_fetches(&excluded).len(), 1);
    assert!(!has_condition_node(excluded.node.as_ref().unwrap()));
    // `$x` true, `$y` still undecided: the jump runs unconditionally, the product jump stays
    // gated on `$y`.
    let half = plan_for_values(op, &[("x", true)]);
    let fetches = all_fetches(&half);
    assert_eq!(fetches.len(), 3);
    assert!(
        fetches.iter().all(|(_, op)| !op.contains("$x")),
        "{fetches:?}"
    );
    assert!(
        fetches.iter().any(|(_, op)| op.contains("@skip(if: $y)")),
        "{fetches:?}"
    );
    // Both decided: two fetches, no condition left anywhere.
    let decided = plan_for_values(op, &[("x", true), ("y", true)]);
    let fetches = all_fetches(&decided);
    assert_eq!(fetches.len(), 2, "{fetches:?}");
    assert!(!has_condition_node(decided.node.as_ref().unwrap()));
    assert!(
        fetches
            .iter()
            .all(|(_, op)| !op.contains('@') && !op.contains("$x") && !op.contains("$y")),
        "{fetches:?}"
    );
    insta::assert_snapshot!(decided.to_string());
}

#[test]
fn condition_variables_in_order_through_fragments() {
    let sg = Supergraph::parse(DEMO).expect("fixture parses");
    // `$e` is used only where a literal already leaves the selection out: it decides nothing.
    let op =
        "query Four($a: Boolean!, $b: Boolean!, $c: Boolean = false, $d: Boolean!, $e: Boolean!) {
                me { ...F @include(if: $b) name @skip(if: $a) id @skip(if: true) @include(if: $e) }
                topProducts { ... on Product @skip(if: $c) { name @include(if: $a) } }
              }
              fragment F on User { reviews { body @skip(if: $d) } ...G }
              fragment G on User { id ... @include(if: false) { name @skip(if: $e) } }";
    let doc = ExecutableDocument::parse(sg.api_schema(), op, "op.graphql").expect("parses");
    let four = doc.operations.get(Some("Four")).expect("named operation");
    let vars = switchyard_planner::condition_variables(&four.selection_set, &doc.fragments);
    assert_eq!(vars, ["b", "d", "a", "c"]);
    assert_eq!(
        switchyard_planner::specialised_conditions(four, &doc.fragments).map(|v| v.len()),
        Some(4)
    );
    // Absent `$c` takes its default; a value that is not a boolean is left to run time.
    let given = serde_json::json!({"a": true, "b": false, "d": "yes"});
    let values =
        switchyard_planner::condition_values(four, &doc.fragments, given.as_object().unwrap());
    let values: Vec<_> = values.into_iter().collect();
    assert_eq!(
        values,
        [
            ("a".to_string(), true),
            ("b".to_string(), false),
            ("c".to_string(), false)
        ]
    );
    // One variable more than plans are specialised by: none are.
    let n = switchyard_planner::MAX_SPECIALISED_CONDITIONS + 1;
    let names: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    let declarations: Vec<String> = names.iter().map(|v| format!("${v}: Boolean!")).collect();
    let fields: Vec<String> = names
        .iter()
        .map(|v| format!("{v}: id @skip(if: ${v})"))
        .collect();
    let text = format!(
        "query Many({}) {{ me {{ {} }} }}",
        declarations.join(", "),
        fields.join(" ")
    );
    let doc = ExecutableDocument::parse(sg.api_schema(), text, "many.graphql").expect("parses");
    let many = doc.operations.get(Some("Many")).expect("named operation");
    assert_eq!(
        switchyard_planner::condition_variables(&many.selection_set, &doc.fragments).len(),
        n
    );
    assert!(switchyard_planner::specialised_conditions(many, &doc.fragments).is_none());
    let all_true: serde_json::Map<String, serde_json::Value> =
        names.iter().map(|v| (v.clone(), true.into())).collect();
    assert!(switchyard_planner::condition_values(many, &doc.fragments, &all_true).is_empty());
}

#[test]
fn literal_skip_is_applied_at_plan_time() {
    let plan = plan(DEMO, "{ me { name reviews @skip(if: true) { body } } }");
    assert_eq!(all_fetches(&plan).len(), 1);
}

#[test]
fn introspection_only_needs_no_fetch() {
    let plan = plan(DEMO, "{ __typename __schema { queryType { name } } }");
    assert!(plan.node.is_none());
    assert_eq!(plan.to_string(), "QueryPlan {\n}");
}

#[test]
fn key_alias_collision_gets_planner_alias() {
    let plan = plan(DEMO, "{ me { id: name reviews { body } } }");
    let ops = all_fetches(&plan);
    assert!(ops[0].1.contains("_sy_id:id"), "{}", ops[0].1);
    let Some(PlanNode::Sequence { nodes }) = &plan.node else {
        panic!("{plan}");
    };
    let PlanNode::Flatten(flatten) = &nodes[1] else {
        panic!("{plan}");
    };
    let PlanNode::Fetch(fetch) = &*flatten.node else {
        panic!("{plan}");
    };
    let Some(RequiresSelection::InlineFragment { selections, .. }) =
        fetch.requires.as_ref().and_then(|r| r.first())
    else {
        panic!("{plan}");
    };
    assert!(selections.contains(&RequiresSelection::Field {
        name: "id".into(),
        response_key: "_sy_id".into(),
        selections: vec![],
    }));
}

#[test]
fn abstract_types_split_per_implementation() {
    let plan = plan(
        SHOP,
        "{ products { name ... on Book { author stock { quantity } } ... on Furniture { shippingEstimate { amount } } } }",
    );
    insta::assert_snapshot!(plan.to_string());
}

#[test]
fn interface_object_jump_rewrites_typename() {
    let plan = plan(SHOP, "{ products { name averageRating } }");
    let mut rewrites = Vec::new();
    fn collect(node: &PlanNode, out: &mut Vec<ValueRewrite>) {
        match node {
            PlanNode::Sequence { nodes } | PlanNode::Parallel { nodes } => {
                nodes.iter().for_each(|n| collect(n, out))
            }
            PlanNode::Fetch(f) => out.extend(f.input_rewrites.iter().cloned()),
            PlanNode::Flatten(f) => collect(&f.node, out),
            PlanNode::Condition(_) => {}
        }
    }
    collect(plan.node.as_ref().unwrap(), &mut rewrites);
    assert_eq!(rewrites.len(), 3, "one per implementation: {rewrites:?}");
    insta::assert_snapshot!(plan.to_string());
}

#[test]
fn interface_object_root_resolves_concrete_types() {
    let plan = plan(
        SHOP,
        "{ latestReviews { product { __typename averageRating ... on Book { author } } } }",
    );
    insta::assert_snapshot!(plan.to_string());
}

#[test]
fn four_subgraph_query() {
    let plan = plan(
        SHOP,
        "query Deep { me { name reviews { rating product { name ... on Furniture { stock { quantity warehouse { name carriers { name } } } } } } orders { total { amount } } } }",
    );
    insta::assert_snapshot!(plan.to_string());
}

#[test]
fn plans_are_deterministic() {
    let op = "{ search(text: \"x\") { ... on Product { name averageRating } ... on Category { name } } }";
    let first = plan(SHOP, op).to_string();
    for _ in 0..5 {
        assert_eq!(plan(SHOP, op).to_string(), first);
    }
}

#[test]
fn requires_from_two_parallel_fetches_waits_for_both() {
    // `weight` moves to accounts, so inventory's `shippingEstimate @requires(fields: "price
    // weight")` waits for a products fetch and an accounts fetch that run side by side.
    let sdl = DEMO
        .replace(
            "type Product\n  @join__type(graph: INVENTORY, key: \"upc\")",
            "type Product\n  @join__type(graph: ACCOUNTS, key: \"upc\")\n  @join__type(graph: INVENTORY, key: \"upc\")",
        )
        .replace(
            "weight: Int @join__field(graph: INVENTORY, external: true) @join__field(graph: PRODUCTS)",
            "weight: Int @join__field(graph: ACCOUNTS) @join__field(graph: INVENTORY, external: true)",
        );
    let plan = plan(&sdl, "{ me { reviews { product { shippingEstimate } } } }");
    let Some(PlanNode::Sequence { nodes }) = &plan.node else {
        panic!("{plan}");
    };
    assert_eq!(nodes.len(), 4, "{plan}");
    assert!(
        matches!(&nodes[2], PlanNode::Parallel { nodes } if nodes.len() == 2),
        "{plan}"
    );
    insta::assert_snapshot!(plan.to_string());
}

/// The link / join boilerplate of a two-subgraph supergraph (`A` = "a", `B` = "b").
fn two_graphs(types: &str) -> String {
    let head = r#"schema
  @link(url: "https://specs.apollo.dev/link/v1.0")
  @link(url: "https://specs.apollo.dev/join/v0.3", for: EXECUTION)
{
  query: Query
}
directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
scalar join__FieldSet
scalar link__Import
enum link__Purpose { SECURITY EXECUTION }
enum join__Graph {
  A @join__graph(name: "a", url: "http://a/graphql")
  B @join__graph(name: "b", url: "http://b/graphql")
}
"#;
    format!("{head}{types}")
}

/// `library: [Media]` in `a`, where only the implementations have `related: [Product]`, and
/// `Product.price` lives in `b`.
const SIBLING_TYPES: &str = r#"
interface Media @join__type(graph: A) { id: ID! }
type Book implements Media @join__implements(graph: A, interface: "Media") @join__type(graph: A) {
  id: ID!
  related: [Product]
  sequel: Product
}
type Movie implements Media @join__implements(graph: A, interface: "Media") @join__type(graph: A) {
  id: ID!
  related: [Product]
  sequel: Product
}
type Product @join__type(graph: A, key: "upc") @join__type(graph: B, key: "upc") {
  upc: String!
  name: String @join__field(graph: A)
  price: Int @join__field(graph: B)
  stock: Int @join__field(graph: B)
}
type Query @join__type(graph: A) @join__type(graph: B) {
  library: [Media] @join__field(graph: A)
}
"#;

fn flatten_paths(node: &PlanNode, out: &mut Vec<String>) {
    match node {
        PlanNode::Sequence { nodes } | PlanNode::Parallel { nodes } => {
            nodes.iter().for_each(|n| flatten_paths(n, out))
        }
        PlanNode::Flatten(f) => out.extend(
            std::iter::once(&f.path)
                .chain(&f.other_paths)
                .map(|p| switchyard_planner::plan::path_string(p)),
        ),
        PlanNode::Condition(c) => {
            c.if_clause.iter().for_each(|n| flatten_paths(n, out));
            c.else_clause.iter().for_each(|n| flatten_paths(n, out));
        }
        PlanNode::Fetch(_) => {}
    }
}

#[test]
fn same_fetch_under_sibling_type_conditions_is_one_fetch() {
    let sdl = two_graphs(SIBLING_TYPES);
    let plan = plan(
        &sdl,
        "{ library { ... on Book { related { price } } ... on Movie { related { price } } } }",
    );
    let ops = all_fetches(&plan);
    assert_eq!(ops.len(), 2, "{plan}");
    let mut paths = Vec::new();
    flatten_paths(plan.node.as_ref().unwrap(), &mut paths);
    assert_eq!(paths, ["library.@|[Book,Movie].related.@"], "{plan}");
}

#[test]
fn different_selections_under_sibling_type_conditions_stay_apart() {
    // Merging would fetch `stock` for the books' products too, which nobody asked for.
    let sdl = two_graphs(SIBLING_TYPES);
    let plan = plan(
        &sdl,
        "{ library { ... on Book { related { price } } ... on Movie { related { stock } } } }",
    );
    let mut paths = Vec::new();
    flatten_paths(plan.node.as_ref().unwrap(), &mut paths);
    assert_eq!(
        paths,
        ["library.@|[Book].related.@", "library.@|[Movie].related.@"],
        "{plan}"
    );
}

#[test]
fn sibling_merge_then_identical_fetches_at_other_paths_share_one_request() {
    // `related` and `sequel` are different response paths: each is first merged across the
    // two types, then the two (same subgraph, selection and stage) become one request that
    // serves both paths.
    let sdl = two_graphs(SIBLING_TYPES);
    let plan = plan(
        &sdl,
        "{ library { ... on Book { related { price } sequel { price } } ... on Movie { related { price } sequel { price } } } }",
    );
    assert_eq!(all_fetches(&plan).len(), 2, "{plan}");
    let mut paths = Vec::new();
    flatten_paths(plan.node.as_ref().unwrap(), &mut paths);
    paths.sort();
    assert_eq!(
        paths,
        [
            "library.@|[Book,Movie].related.@",
            "library.@|[Book,Movie].sequel"
        ],
        "{plan}"
    );
}

/// `Product.shipping` in `b` requires `dims { size }` from `a`.
const NESTED_REQUIRES: &str = r#"
type Dims @join__type(graph: A) @join__type(graph: B) {
  size: Int
  color: Int @join__field(graph: A)
}
type Product @join__type(graph: A, key: "upc") @join__type(graph: B, key: "upc") {
  upc: String!
  name: String @join__field(graph: A)
  sku: String @join__field(graph: A)
  dims: Dims @join__field(graph: A) @join__field(graph: B, external: true)
  shipping: Int @join__field(graph: B, requires: "dims { size }")
}
type Query @join__type(graph: A) @join__type(graph: B) {
  top: [Product] @join__field(graph: A)
  one: Product @join__field(graph: A)
}
"#;

#[test]
fn requirement_nested_in_a_client_field_avoids_its_aliases() {
    let sdl = two_graphs(NESTED_REQUIRES);
    let plan = plan(&sdl, "{ top { dims { size: color } shipping } }");
    let ops = all_fetches(&plan);
    assert_eq!(
        ops[0].1, "query{top{dims{size:color _sy_size:size} __typename upc}}",
        "{plan}"
    );
    let Some(PlanNode::Sequence { nodes }) = &plan.node else {
        panic!("{plan}");
    };
    let PlanNode::Flatten(flatten) = &nodes[1] else {
        panic!("{plan}");
    };
    let PlanNode::Fetch(fetch) = &*flatten.node else {
        panic!("{plan}");
    };
    let Some(RequiresSelection::InlineFragment { selections, .. }) =
        fetch.requires.as_ref().and_then(|r| r.first())
    else {
        panic!("{plan}");
    };
    assert!(
        selections.contains(&RequiresSelection::Field {
            name: "dims".into(),
            response_key: "dims".into(),
            selections: vec![RequiresSelection::Field {
                name: "size".into(),
                response_key: "_sy_size".into(),
                selections: vec![],
            }],
        }),
        "{selections:?}"
    );
}

#[test]
fn generated_aliases_avoid_every_client_key_and_reuse_plain_client_fields() {
    let sdl = two_graphs(NESTED_REQUIRES);
    // `upc` is taken, and so are the first generated names; the client's own `key: upc` is
    // conditional, so it cannot carry the key.
    let taken = plan(
        &sdl,
        "query ($x: Boolean!) { top { upc: sku _sy_upc: name ... on Product { _sy_upc_1: sku } key: upc @include(if: $x) shipping } }",
    );
    let ops = all_fetches(&taken);
    assert!(ops[0].1.contains("_sy_upc_2:upc"), "{taken}");
    // Unconditional: the client's `key: upc` is read for the representation.
    let reused = plan(&sdl, "{ top { upc: sku key: upc shipping } }");
    let ops = all_fetches(&reused);
    assert_eq!(
        ops[0].1, "query{top{upc:sku key:upc __typename dims{size}}}",
        "{reused}"
    );
}

#[test]
fn typename_only_part_of_a_root_object_is_kept() {
    let sdl = two_graphs(NESTED_REQUIRES);
    let plan = plan(&sdl, "{ one { kind: __typename shipping } }");
    let ops = all_fetches(&plan);
    assert!(ops[0].1.contains("kind:__typename"), "{plan}");
}
