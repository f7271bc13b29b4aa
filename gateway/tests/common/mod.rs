//! Shared fixtures for the gateway's HTTP tests: four real async-graphql federation subgraphs
//! (products, reviews, accounts, inventory) on loopback ports, the matching API schema, and
//! hand-built query plans (so these tests do not depend on the planner).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::{EmptySubscription, Object, Schema as AgSchema, SimpleObject, ID};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use switchyard_gateway::planner::plan::{
    ConditionNode, FetchNode, FlattenNode, OperationKind, PathElement, PlanNode, QueryPlan,
    RequiresSelection,
};
use switchyard_gateway::planner::{PlanError, PlanOptions};
use switchyard_gateway::{Gateway, GatewayConfig};

/// The client-facing schema of the four test subgraphs.
pub const API_SCHEMA: &str = r#"
type Query {
  topProducts(first: Int = 5): [Product]
  me: User
}
type Mutation {
  addReview(upc: String!, body: String!): Review
}
type Product {
  upc: String!
  name: String
  price: Int
  inStock: Boolean!
  reviews: [Review]
}
type Review {
  id: ID!
  body: String
  author: User
}
type User {
  id: ID!
  name: String
  username: String!
}
"#;

/// What one subgraph saw: request bodies and the headers that came with them.
#[derive(Clone, Default)]
pub struct Recorder {
    pub requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl Recorder {
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
    pub fn bodies(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }
}

#[derive(Clone)]
struct SubgraphState<Q: Clone, M: Clone> {
    schema: AgSchema<Q, M, EmptySubscription>,
    recorder: Recorder,
    delay: Duration,
}

async fn handle<Q, M>(
    State(state): State<SubgraphState<Q, M>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response
where
    Q: async_graphql::ObjectType + Clone + 'static,
    M: async_graphql::ObjectType + Clone + 'static,
{
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state
        .recorder
        .requests
        .lock()
        .unwrap()
        .push((headers, json));
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let response = state.schema.execute(request).await;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&response).unwrap(),
    )
        .into_response()
}

async fn serve_router(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

async fn serve_schema<Q, M>(
    schema: AgSchema<Q, M, EmptySubscription>,
    delay: Duration,
) -> (String, Recorder)
where
    Q: async_graphql::ObjectType + Clone + 'static,
    M: async_graphql::ObjectType + Clone + 'static,
{
    let recorder = Recorder::default();
    let state = SubgraphState {
        schema,
        recorder: recorder.clone(),
        delay,
    };
    let router = Router::new()
        .route("/graphql", post(handle::<Q, M>))
        .with_state(state);
    let addr = serve_router(router).await;
    (format!("http://{addr}/graphql"), recorder)
}

/// A server that answers every request with non-JSON text.
pub async fn serve_garbage() -> String {
    let router = Router::new().route(
        "/graphql",
        post(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "text/html")],
                "<html>oops</html>",
            )
        }),
    );
    format!("http://{}/graphql", serve_router(router).await)
}

/// A URL nothing listens on.
pub async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/graphql")
}

// ---- products ----

#[derive(Clone, SimpleObject)]
#[graphql(name = "Product")]
struct Product {
    upc: String,
    name: Option<String>,
    price: Option<i32>,
}

/// Products 1-3 are hand-written; 4.. are generated (for benchmarks wanting bigger responses).
fn product(upc: usize) -> Product {
    let fixed: &[(&str, i32)] = &[("Table", 899), ("Couch", 1299), ("Chair", 54)];
    let (name, price) = match fixed.get(upc.wrapping_sub(1)) {
        Some((name, price)) => ((*name).to_owned(), *price),
        None => (format!("Product number {upc}"), upc as i32 * 7),
    };
    Product {
        upc: upc.to_string(),
        name: Some(name),
        price: Some(price),
    }
}

#[derive(Clone)]
struct ProductsQuery {
    count: usize,
}

#[Object]
impl ProductsQuery {
    async fn top_products(&self, #[graphql(default = 5)] first: i32) -> Vec<Product> {
        (1..=self.count.min(first.max(0) as usize))
            .map(product)
            .collect()
    }
    #[graphql(entity)]
    async fn find_product(&self, upc: String) -> Option<Product> {
        let n: usize = upc.parse().ok()?;
        (1..=self.count).contains(&n).then(|| product(n))
    }
}

// ---- reviews ----

#[derive(Clone)]
struct ReviewRow {
    id: String,
    upc: String,
    author: String,
    body: String,
}

fn review(id: &str, upc: &str, author: &str, body: &str) -> ReviewRow {
    ReviewRow {
        id: id.into(),
        upc: upc.into(),
        author: author.into(),
        body: body.into(),
    }
}

/// Reviews of products 1-3 are hand-written; generated products get three each, by users
/// u3..u22 (authors repeat, so entity batches have duplicates to collapse).
fn reviews_of(upc: &str) -> Vec<ReviewRow> {
    match upc {
        "1" => vec![
            review("r1", "1", "u1", "Love it!"),
            review("r2", "1", "u2", "Too expensive."),
        ],
        "2" => vec![review("r3", "2", "u1", "Could be better.")],
        "3" => vec![review("r4", "3", "u1", "Prefer something else.")],
        other => {
            let n: usize = other.parse().unwrap_or(0);
            (0..3)
                .map(|k| ReviewRow {
                    id: format!("r{n}-{k}"),
                    upc: other.to_owned(),
                    author: format!("u{}", 3 + (n * 3 + k) % 20),
                    body: format!("Review {k} of product {n}: solid, would buy again."),
                })
                .collect()
        }
    }
}

#[derive(Clone)]
struct Review(ReviewRow);

#[Object]
impl Review {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn author(&self) -> ReviewUser {
        ReviewUser {
            id: self.0.author.clone(),
        }
    }
}

struct ReviewProduct {
    upc: String,
}

#[Object(name = "Product")]
impl ReviewProduct {
    async fn upc(&self) -> &str {
        &self.upc
    }
    async fn reviews(&self) -> Vec<Review> {
        reviews_of(&self.upc).into_iter().map(Review).collect()
    }
}

struct ReviewUser {
    id: String,
}

#[Object(name = "User")]
impl ReviewUser {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
}

#[derive(Clone)]
struct ReviewsQuery;

#[Object]
impl ReviewsQuery {
    async fn review(&self, id: ID) -> Option<Review> {
        ["1", "2", "3"]
            .iter()
            .flat_map(|upc| reviews_of(upc))
            .find(|r| r.id == id.0)
            .map(Review)
    }
    #[graphql(entity)]
    async fn find_product(&self, upc: String) -> ReviewProduct {
        ReviewProduct { upc }
    }
}

#[derive(Clone)]
struct ReviewsMutation;

#[Object]
impl ReviewsMutation {
    async fn add_review(&self, upc: String, body: String) -> Review {
        Review(review("r9", &upc, "u2", &body))
    }
}

// ---- accounts ----

#[derive(Clone)]
struct User {
    id: String,
    name: String,
}

/// u1 and u2 are hand-written; u3.. are generated.
fn user(id: &str) -> Option<User> {
    let name = match id {
        "u1" => "Ada".to_owned(),
        "u2" => "Alan".to_owned(),
        other => format!("User {}", other.strip_prefix('u')?.parse::<usize>().ok()?),
    };
    Some(User {
        id: id.to_owned(),
        name,
    })
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn name(&self) -> &str {
        &self.name
    }
    /// Fails for u2, so tests see a subgraph field error re-pathed through `_entities`.
    async fn username(&self) -> async_graphql::Result<String> {
        if self.id == "u2" {
            Err(async_graphql::Error::new("username is private"))
        } else {
            Ok(format!("@{}", self.name.to_lowercase()))
        }
    }
}

#[derive(Clone)]
struct AccountsQuery;

#[Object]
impl AccountsQuery {
    async fn me(&self) -> Option<User> {
        user("u1")
    }
    #[graphql(entity)]
    async fn find_user(&self, id: ID) -> Option<User> {
        user(&id.0)
    }
}

// ---- inventory ----

struct InventoryProduct {
    upc: String,
}

#[Object(name = "Product")]
impl InventoryProduct {
    async fn upc(&self) -> &str {
        &self.upc
    }
    /// Nullable here but `Boolean!` in the API schema: product 2's null must bubble.
    async fn in_stock(&self) -> Option<bool> {
        match self.upc.as_str() {
            "1" => Some(true),
            "2" => None,
            "3" => Some(false),
            other => Some(other.len() % 2 == 0),
        }
    }
}

#[derive(Clone)]
struct InventoryQuery;

#[Object]
impl InventoryQuery {
    async fn stock_version(&self) -> i32 {
        1
    }
    #[graphql(entity)]
    async fn find_product(&self, upc: String) -> InventoryProduct {
        InventoryProduct { upc }
    }
}

/// The four running subgraphs.
pub struct Subgraphs {
    pub urls: HashMap<&'static str, String>,
    pub products: Recorder,
    pub reviews: Recorder,
    pub accounts: Recorder,
    pub inventory: Recorder,
}

impl Subgraphs {
    /// Starts all four with 3 products; `products_delay` slows the products subgraph.
    pub async fn start(products_delay: Duration) -> Self {
        Self::start_with(products_delay, 3).await
    }

    /// Starts all four with `products` products (4.. are generated).
    pub async fn start_with(products_delay: Duration, products: usize) -> Self {
        let products = AgSchema::build(
            ProductsQuery { count: products },
            async_graphql::EmptyMutation,
            EmptySubscription,
        )
        .enable_federation()
        .finish();
        let reviews = AgSchema::build(ReviewsQuery, ReviewsMutation, EmptySubscription)
            .enable_federation()
            .finish();
        let accounts = AgSchema::build(
            AccountsQuery,
            async_graphql::EmptyMutation,
            EmptySubscription,
        )
        .enable_federation()
        .finish();
        let inventory = AgSchema::build(
            InventoryQuery,
            async_graphql::EmptyMutation,
            EmptySubscription,
        )
        .enable_federation()
        .finish();
        let (p_url, p_rec) = serve_schema(products, products_delay).await;
        let (r_url, r_rec) = serve_schema(reviews, Duration::ZERO).await;
        let (a_url, a_rec) = serve_schema(accounts, Duration::ZERO).await;
        let (i_url, i_rec) = serve_schema(inventory, Duration::ZERO).await;
        let urls = HashMap::from([
            ("products", p_url),
            ("reviews", r_url),
            ("accounts", a_url),
            ("inventory", i_url),
        ]);
        Self {
            urls,
            products: p_rec,
            reviews: r_rec,
            accounts: a_rec,
            inventory: i_rec,
        }
    }

    pub fn list(&self) -> Vec<(String, String)> {
        ["products", "reviews", "accounts", "inventory"]
            .iter()
            .map(|n| ((*n).to_owned(), self.urls[n].clone()))
            .collect()
    }
}

// ---- plans ----

fn field(name: &str) -> RequiresSelection {
    RequiresSelection::Field {
        name: name.into(),
        response_key: name.into(),
        selections: vec![],
    }
}

fn key_requires(type_name: &str, key: &str) -> Vec<RequiresSelection> {
    vec![RequiresSelection::InlineFragment {
        type_condition: Some(type_name.into()),
        selections: vec![field("__typename"), field(key)],
    }]
}

pub fn fetch(service: &str, operation: &str, variables: &[&str]) -> PlanNode {
    let kind = if operation.trim_start().starts_with("mutation") {
        OperationKind::Mutation
    } else {
        OperationKind::Query
    };
    PlanNode::Fetch(Box::new(FetchNode {
        service_name: service.into(),
        operation: operation.into(),
        operation_name: None,
        operation_kind: kind,
        variable_usages: variables.iter().map(|v| (*v).to_owned()).collect(),
        requires: None,
        input_rewrites: vec![],
        output_rewrites: vec![],
        root_keys: root_keys(operation),
    }))
}

/// The top-level response keys of a hand-written root fetch (what the planner records).
fn root_keys(operation: &str) -> Vec<String> {
    use apollo_compiler::ast::{Definition, Document, Selection};
    let document = Document::parse(operation, "fetch.graphql").expect("fetch operations parse");
    let mut keys = Vec::new();
    for definition in &document.definitions {
        if let Definition::OperationDefinition(op) = definition {
            for selection in &op.selection_set {
                if let Selection::Field(field) = selection {
                    let key = field.response_name().as_str();
                    if key != "__typename" && !keys.iter().any(|k| k == key) {
                        keys.push(key.to_owned());
                    }
                }
            }
        }
    }
    keys
}

pub fn entity_fetch(
    service: &str,
    path: &[&str],
    type_name: &str,
    key: &str,
    selection: &str,
) -> PlanNode {
    let operation = format!(
        "query($representations:[_Any!]!){{_entities(representations:$representations){{...on {type_name}{{{selection}}}}}}}"
    );
    PlanNode::Flatten(FlattenNode {
        path: path
            .iter()
            .map(|p| {
                if *p == "@" {
                    PathElement::List
                } else {
                    PathElement::Key((*p).into())
                }
            })
            .collect(),
        node: Box::new(PlanNode::Fetch(Box::new(FetchNode {
            service_name: service.into(),
            operation,
            operation_name: None,
            operation_kind: OperationKind::Query,
            variable_usages: vec![],
            requires: Some(key_requires(type_name, key)),
            input_rewrites: vec![],
            output_rewrites: vec![],
            root_keys: vec![],
        }))),
        other_paths: vec![],
    })
}

/// How the client selected `topProducts`: its response key, arguments and the variables
/// those use (declared as in the client operation).
pub struct TopProducts {
    pub key: String,
    pub arguments: String,
    pub declarations: String,
    pub variables: Vec<String>,
    /// `reviews` is selected: fetch them from the reviews subgraph.
    pub reviews: bool,
    /// `inStock` is selected: fetch it from inventory.
    pub in_stock: bool,
    /// What to fetch from accounts for review authors (empty: no accounts fetch).
    pub author_fields: String,
}

impl Default for TopProducts {
    fn default() -> Self {
        Self {
            key: "topProducts".into(),
            arguments: "(first:$first)".into(),
            declarations: "($first:Int)".into(),
            variables: vec!["first".into()],
            reviews: true,
            in_stock: true,
            author_fields: "name username".into(),
        }
    }
}

impl TopProducts {
    fn from_operation(operation: &apollo_compiler::executable::Operation) -> Self {
        let Some(field) = operation
            .selection_set
            .fields()
            .find(|f| f.name == "topProducts")
        else {
            return Self::default();
        };
        let mut variables = Vec::new();
        let mut arguments = String::new();
        for arg in &field.arguments {
            if let apollo_compiler::ast::Value::Variable(v) = &*arg.value {
                variables.push(v.to_string());
            }
            arguments.push_str(&format!("{}:{},", arg.name, arg.value));
        }
        let arguments = if arguments.is_empty() {
            String::new()
        } else {
            format!("({})", arguments.trim_end_matches(','))
        };
        let declarations: Vec<String> = operation
            .variables
            .iter()
            .filter(|v| variables.contains(&v.name.to_string()))
            .map(|v| format!("${}:{}", v.name, v.ty))
            .collect();
        let declarations = if declarations.is_empty() {
            String::new()
        } else {
            format!("({})", declarations.join(","))
        };
        let selected = |set: &apollo_compiler::executable::SelectionSet, name: &str| {
            set.fields().find(|f| f.name == name).cloned()
        };
        let reviews = selected(&field.selection_set, "reviews");
        let author = reviews
            .as_ref()
            .and_then(|r| selected(&r.selection_set, "author"));
        let author_fields: Vec<&str> = ["name", "username"]
            .into_iter()
            .filter(|n| {
                author
                    .as_ref()
                    .is_some_and(|a| selected(&a.selection_set, n).is_some())
            })
            .collect();
        Self {
            key: field.response_key().to_string(),
            arguments,
            declarations,
            variables,
            reviews: reviews.is_some(),
            in_stock: selected(&field.selection_set, "inStock").is_some(),
            author_fields: author_fields.join(" "),
        }
    }

    fn root_fetch(&self) -> PlanNode {
        let vars: Vec<&str> = self.variables.iter().map(String::as_str).collect();
        fetch(
            "products",
            &format!(
                "query{}{{{}:topProducts{}{{__typename upc name price}}}}",
                self.declarations, self.key, self.arguments
            ),
            &vars,
        )
    }
}

/// `{ topProducts { upc name price inStock reviews { id body author { id name username } } } }`
/// over all four subgraphs: 1 root fetch, 2 parallel entity fetches, then 1 more.
pub fn top_products_plan(top: &TopProducts) -> QueryPlan {
    let key = top.key.as_str();
    let mut parallel = Vec::new();
    if top.reviews {
        parallel.push(entity_fetch(
            "reviews",
            &[key, "@"],
            "Product",
            "upc",
            "reviews{id body author{__typename id}}",
        ));
    }
    if top.in_stock {
        parallel.push(entity_fetch(
            "inventory",
            &[key, "@"],
            "Product",
            "upc",
            "inStock",
        ));
    }
    let mut nodes = vec![top.root_fetch()];
    match parallel.len() {
        0 => {}
        1 => nodes.extend(parallel),
        _ => nodes.push(PlanNode::Parallel { nodes: parallel }),
    }
    if top.reviews && !top.author_fields.is_empty() {
        nodes.push(entity_fetch(
            "accounts",
            &[key, "@", "reviews", "@", "author"],
            "User",
            "id",
            &top.author_fields,
        ));
    }
    QueryPlan {
        node: Some(PlanNode::Sequence { nodes }),
    }
}

/// A planner stub: builds a hand-written plan shape from the operation's root fields.
pub fn stub_planner() -> impl Fn(
    &apollo_compiler::validation::Valid<apollo_compiler::ExecutableDocument>,
    Option<&str>,
    &PlanOptions,
) -> Result<QueryPlan, PlanError>
       + Send
       + Sync {
    |document, operation_name, _options| {
        let operation = document
            .operations
            .get(operation_name)
            .map_err(|_| PlanError::UnknownOperation("no such operation".into()))?;
        let roots: Vec<&str> = operation
            .selection_set
            .fields()
            .map(|f| f.name.as_str())
            .collect();
        if roots.contains(&"addReview") {
            return Ok(QueryPlan {
                node: Some(fetch(
                    "reviews",
                    "mutation($upc:String!,$body:String!){addReview(upc:$upc,body:$body){id body}}",
                    &["upc", "body"],
                )),
            });
        }
        let top = TopProducts::from_operation(operation);
        let mut me = fetch("accounts", "{me{id name}}", &[]);
        if operation.variables.iter().any(|v| v.name == "withMe") {
            me = PlanNode::Condition(ConditionNode {
                condition: "withMe".into(),
                if_clause: Some(Box::new(me)),
                else_clause: None,
            });
        }
        let node = match (roots.contains(&"topProducts"), roots.contains(&"me")) {
            (true, true) => Some(PlanNode::Parallel {
                nodes: vec![top.root_fetch(), me],
            }),
            (false, true) => Some(me),
            (true, false) => top_products_plan(&top).node,
            (false, false) => None,
        };
        Ok(QueryPlan { node })
    }
}

/// A gateway over `subgraphs` with the stub planner, served on a loopback port.
pub async fn start_gateway(
    subgraphs: Vec<(String, String)>,
    config: GatewayConfig,
) -> (Gateway, String) {
    let schema = apollo_compiler::Schema::parse_and_validate(API_SCHEMA, "api.graphql")
        .expect("valid API schema");
    let gateway = Gateway::from_parts(schema, subgraphs, Arc::new(stub_planner()), config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = gateway.clone();
    tokio::spawn(async move {
        switchyard_gateway::serve(listener, served, std::future::pending())
            .await
            .unwrap();
    });
    (gateway, format!("http://{addr}"))
}
