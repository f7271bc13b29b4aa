//! Round trip: every valid case's supergraph is loaded by our planner
//! (`switchyard_planner::Supergraph::parse`) and a query over every root field is planned; then
//! the supergraph is served by our gateway over real fixture subgraphs (`switchyard-testkit`)
//! and a query selecting every root field, and through them fields that force entity jumps, is
//! executed. Fixtures and the expected response are both derived from one canonical value per
//! type, so any value the gateway drops, misplaces or invents shows up as a difference.
//! `ROUNDTRIP_VERBOSE=1` prints each case's query, response and subgraph traffic.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

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

/// How the planner words its refusal of a supergraph that links a SECURITY or EXECUTION spec it
/// does not carry out.
const REFUSED: &str = "which Switchyard does not carry out";

#[test]
fn planner_loads_and_plans_every_valid_supergraph() {
    let mut failures = Vec::new();
    let mut refused = Vec::new();
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
            Err(e) if e.to_string().contains(REFUSED) => {
                refused.push(case.name.clone());
                continue;
            }
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
    // The composer writes @authenticated, @requiresScopes and @policy into the supergraph (with
    // their SECURITY links) for routers that enforce them; the gateway does not, so it must
    // refuse such a supergraph rather than serve those fields to everyone.
    assert_eq!(refused, ["valid_security_directives"]);
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Execution round trip: composed supergraph -> gateway -> real fixture subgraphs.
// ---------------------------------------------------------------------------------------------

mod exec {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::time::Duration;

    use apollo_compiler::ast::Value as AstValue;
    use apollo_compiler::schema::ExtendedType;
    use apollo_compiler::Schema;
    use serde_json::{json, Map, Value};
    use switchyard_gateway::{GatewayConfig, SubgraphOverrides};
    use switchyard_testkit::extract::TypeModel;
    use switchyard_testkit::SubgraphModel;
    use switchyard_testkit::{match_response, post_json, start_subgraphs, SupergraphSource};

    /// Valid cases that cannot run end to end, with the reason (kept deliberately short).
    pub const SKIPPED: &[(&str, &str)] = &[];

    /// How deep the generated query nests object selections below the root fields; the cases
    /// are shallow, and a bound keeps recursive types finite.
    const MAX_DEPTH: usize = 4;

    /// One selection of the generated operation; the same tree renders the query and computes
    /// the expected response, so both always agree on shape and order.
    #[derive(Debug)]
    enum Sel {
        Typename,
        Field {
            name: String,
            args: String,
            sub: Option<Vec<Sel>>,
        },
        On {
            ty: String,
            sub: Vec<Sel>,
        },
    }

    /// A `(parent type, field)` pair the operation selects.
    type Coord = (String, String);

    /// State of the selection walk; `select` also gets the subgraphs that can have produced
    /// the current object (`None` at the root or below a `@provides`).
    struct Walk {
        path: Vec<String>,
        coords: Vec<Coord>,
        /// Subgraphs that must answer an `_entities` request: the only owner of a field whose
        /// parent object came from other subgraphs.
        jumps: BTreeSet<String>,
    }

    /// Everything derived from one composed supergraph.
    #[derive(Clone)]
    pub struct Plan {
        /// The query over every root query field.
        pub query: String,
        /// The fixture of every subgraph, by name.
        pub fixtures: BTreeMap<String, Value>,
        /// The response the query must produce, computed from the canonical values.
        pub expected: Value,
        /// A mutation over every root mutation field and its expected response, when the
        /// supergraph has a mutation root.
        pub mutation: Option<(String, Value)>,
        /// Subgraphs that alone resolve some selected field: each must receive a request.
        pub must_hit: BTreeSet<String>,
        /// Subgraphs the operation forces an entity jump to: each must receive `_entities`.
        pub must_jump: BTreeSet<String>,
        /// Subgraphs that own none of the selected fields: fetching from them is waste.
        pub idle: BTreeSet<String>,
        /// Progressive-override labels the gateway treats as enabled.
        pub override_labels: Vec<String>,
    }

    struct Ctx<'a> {
        /// The full supergraph (inaccessible parts included): fixture values cover every field.
        sup: &'a Schema,
        /// The API schema the client query is written against.
        api: &'a Schema,
        models: &'a [SubgraphModel],
        /// `join__Graph` enum value -> subgraph name.
        graph_names: HashMap<String, String>,
    }

    impl Ctx<'_> {
        /// Object types that are possible for `name` in the supergraph.
        fn possible(&self, name: &str) -> Vec<String> {
            possible_in(self.sup, name)
        }

        /// The concrete types an abstract value of `parent.field` takes: those every subgraph
        /// serving the field can return, so the value is the same whichever one serves it.
        fn concretes(&self, parent: &str, field: &str, abstract_ty: &str) -> Vec<String> {
            let candidates = self.possible(abstract_ty);
            let owners = self.owners(parent, field);
            let fits = |c: &String| {
                self.models
                    .iter()
                    .filter(|m| owners.is_empty() || owners.contains(&m.name))
                    .all(|m| match m.types.get(abstract_ty) {
                        Some(TypeModel::Union(members)) => members.contains(c),
                        Some(TypeModel::Interface(_)) => match m.types.get(c.as_str()) {
                            Some(TypeModel::Object(o)) => {
                                o.implements.iter().any(|i| i == abstract_ty)
                            }
                            _ => false,
                        },
                        _ => true,
                    })
            };
            let fitting: Vec<String> = candidates.iter().filter(|c| fits(c)).cloned().collect();
            if fitting.is_empty() {
                candidates.into_iter().take(1).collect()
            } else {
                fitting
            }
        }

        /// The one value of every object type, shared by all subgraphs' fixtures.
        fn canonical(&self, ty: &str, stack: &mut Vec<String>) -> Value {
            let Some(ExtendedType::Object(o)) = self.sup.types.get(ty) else {
                return Value::Null;
            };
            stack.push(ty.to_string());
            let mut out = Map::new();
            out.insert("__typename".into(), json!(ty));
            for (fname, f) in &o.fields {
                out.insert(fname.to_string(), self.value_of(ty, fname, &f.ty, stack));
            }
            stack.pop();
            Value::Object(out)
        }

        fn value_of(
            &self,
            parent: &str,
            field: &str,
            ty: &apollo_compiler::ast::Type,
            stack: &mut Vec<String>,
        ) -> Value {
            let named = ty.inner_named_type().as_str();
            let is_abstract = matches!(
                self.sup.types.get(named),
                Some(ExtendedType::Interface(_) | ExtendedType::Union(_))
            );
            if ty.is_list() {
                let item = ty.item_type();
                if is_abstract && !item.is_list() {
                    // One item per concrete type, so every type condition gets exercised.
                    let items = self
                        .concretes(parent, field, named)
                        .into_iter()
                        .filter(|c| !stack.contains(c))
                        .collect::<Vec<_>>()
                        .into_iter()
                        .map(|c| self.canonical(&c, stack))
                        .collect();
                    return Value::Array(items);
                }
                return json!([self.value_of(parent, field, item, stack)]);
            }
            match self.sup.types.get(named) {
                Some(ExtendedType::Scalar(_)) => scalar_value(parent, field, named),
                Some(ExtendedType::Enum(e)) => {
                    let from_api = match self.api.types.get(named) {
                        Some(ExtendedType::Enum(a)) => a.values.keys().next().cloned(),
                        _ => None,
                    };
                    json!(from_api
                        .or_else(|| e.values.keys().next().cloned())
                        .map(|v| v.to_string()))
                }
                Some(ExtendedType::Object(_)) if !stack.iter().any(|s| s == named) => {
                    self.canonical(named, stack)
                }
                Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => {
                    match self.concretes(parent, field, named).first() {
                        Some(c) if !stack.contains(c) => self.canonical(c, stack),
                        _ => Value::Null,
                    }
                }
                _ => Value::Null,
            }
        }

        /// The subgraph's view of a value: an `@interfaceObject` subgraph knows the concrete
        /// types only by their interface's name.
        fn localize(&self, model: &SubgraphModel, value: &Value) -> Value {
            match value {
                Value::Array(items) => {
                    Value::Array(items.iter().map(|v| self.localize(model, v)).collect())
                }
                Value::Object(obj) => {
                    let mut out: Map<String, Value> = obj
                        .iter()
                        .map(|(k, v)| (k.clone(), self.localize(model, v)))
                        .collect();
                    if let Some(Value::String(tn)) = obj.get("__typename") {
                        if !model.types.contains_key(tn.as_str()) {
                            if let Some(i) = self.interface_object_for(model, tn) {
                                out.insert("__typename".into(), json!(i));
                            }
                        }
                    }
                    Value::Object(out)
                }
                other => other.clone(),
            }
        }

        fn interface_object_for(&self, model: &SubgraphModel, concrete: &str) -> Option<String> {
            let Some(ExtendedType::Object(o)) = self.sup.types.get(concrete) else {
                return None;
            };
            o.implements_interfaces
                .iter()
                .find(|i| {
                    matches!(model.types.get(i.as_str()),
                        Some(TypeModel::Object(c)) if c.interface_object)
                })
                .map(|i| i.to_string())
        }

        /// The fixture of one subgraph: every root field it defines and every entity it keys.
        fn fixture(&self, model: &SubgraphModel) -> Value {
            let def = &self.sup.schema_definition;
            let sup_query = def.query.as_ref().map_or("Query", |q| q.as_str());
            let root = self.root_values(model, &model.query_type, sup_query);
            let mut entities = Map::new();
            for (tname, t) in &model.types {
                let (TypeModel::Object(c) | TypeModel::Interface(c)) = t else {
                    continue;
                };
                if c.keys.is_empty() || tname == &model.query_type {
                    continue;
                }
                let entries: Vec<Value> = self
                    .possible(tname)
                    .iter()
                    .filter(|concrete| {
                        c.interface_object
                            || matches!(
                                model.types.get(concrete.as_str()),
                                Some(TypeModel::Object(_))
                            )
                    })
                    .map(|concrete| {
                        let mut v = self.canonical(concrete, &mut vec![]);
                        if c.interface_object {
                            v["__typename"] = json!(tname);
                        }
                        v
                    })
                    .collect();
                entities.insert(tname.clone(), Value::Array(entries));
            }
            let mut fixture = Map::new();
            fixture.insert(model.query_type.clone(), Value::Object(root));
            if let (Some(local), Some(sup)) = (&model.mutation_type, &def.mutation) {
                let values = self.root_values(model, local, sup.as_str());
                fixture.insert(local.clone(), Value::Object(values));
            }
            fixture.insert("entities".into(), Value::Object(entities));
            Value::Object(fixture)
        }

        /// The values of the root fields `model` defines on its root type `local` (`sup` in the
        /// supergraph).
        fn root_values(&self, model: &SubgraphModel, local: &str, sup: &str) -> Map<String, Value> {
            let mut root = Map::new();
            if let (Some(TypeModel::Object(q)), Some(ExtendedType::Object(sq))) =
                (model.types.get(local), self.sup.types.get(sup))
            {
                for fname in q.fields.keys() {
                    if let Some(f) = sq.fields.get(fname.as_str()) {
                        let v = self.value_of(sup, fname, &f.ty, &mut vec![]);
                        root.insert(fname.clone(), self.localize(model, &v));
                    }
                }
            }
            root
        }

        /// Selections for an object type: `__typename`, then every field, nesting into
        /// composite fields until `MAX_DEPTH` or a type already on the path.
        fn select(&self, ty: &str, from: Option<&BTreeSet<String>>, walk: &mut Walk) -> Vec<Sel> {
            let mut out = vec![Sel::Typename];
            let Some(ExtendedType::Object(o)) = self.api.types.get(ty) else {
                return out;
            };
            let depth = walk.path.len();
            walk.path.push(ty.to_string());
            for (fname, f) in &o.fields {
                let named = f.ty.inner_named_type().as_str();
                let args = self.args(&f.arguments);
                let owners = self.owners(ty, fname);
                if let Some(from) = from {
                    if owners.len() == 1 && owners.is_disjoint(from) {
                        walk.jumps.extend(owners.iter().cloned());
                    }
                }
                let next = (!self.provides(ty, fname)).then_some(&owners);
                let sub = match self.api.types.get(named) {
                    Some(ExtendedType::Scalar(_) | ExtendedType::Enum(_)) => None,
                    Some(ExtendedType::Object(_)) => {
                        if depth >= MAX_DEPTH || walk.path.iter().any(|p| p == named) {
                            continue;
                        }
                        Some(self.select(named, next, walk))
                    }
                    Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => {
                        if depth >= MAX_DEPTH {
                            continue;
                        }
                        let mut sub = vec![Sel::Typename];
                        for c in possible_in(self.api, named) {
                            if !walk.path.contains(&c) {
                                let inner = self.select(&c, next, walk);
                                sub.push(Sel::On { ty: c, sub: inner });
                            }
                        }
                        Some(sub)
                    }
                    _ => continue,
                };
                walk.coords.push((ty.to_string(), fname.to_string()));
                out.push(Sel::Field {
                    name: fname.to_string(),
                    args,
                    sub,
                });
            }
            walk.path.pop();
            out
        }

        /// Whether `parent.field` carries `@provides` in some subgraph: the objects below it may
        /// then come whole from that subgraph, so no jump is forced there.
        fn provides(&self, parent: &str, field: &str) -> bool {
            let Some(ExtendedType::Object(o)) = self.sup.types.get(parent) else {
                return false;
            };
            o.fields.get(field).is_some_and(|f| {
                f.directives
                    .get_all("join__field")
                    .any(|d| d.specified_argument_by_name("provides").is_some())
            })
        }

        fn args(
            &self,
            args: &[apollo_compiler::Node<apollo_compiler::ast::InputValueDefinition>],
        ) -> String {
            if args.is_empty() {
                return String::new();
            }
            let parts: Vec<String> = args
                .iter()
                .map(|a| format!("{}: {}", a.name, self.literal(&a.ty, 0)))
                .collect();
            format!("({})", parts.join(", "))
        }

        /// A valid GraphQL literal of `ty` in the API schema.
        fn literal(&self, ty: &apollo_compiler::ast::Type, depth: usize) -> String {
            if ty.is_list() {
                return format!("[{}]", self.literal(ty.item_type(), depth));
            }
            let named = ty.inner_named_type().as_str();
            match (named, self.api.types.get(named)) {
                ("Int", _) => "1".into(),
                ("Float", _) => "1.5".into(),
                ("Boolean", _) => "true".into(),
                (_, Some(ExtendedType::Enum(e))) => e
                    .values
                    .keys()
                    .next()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "null".into()),
                (_, Some(ExtendedType::InputObject(io))) if depth < MAX_DEPTH => {
                    let parts: Vec<String> = io
                        .fields
                        .iter()
                        .map(|(n, f)| format!("{n}: {}", self.literal(&f.ty, depth + 1)))
                        .collect();
                    format!("{{{}}}", parts.join(", "))
                }
                _ => "\"1\"".into(),
            }
        }

        /// Subgraphs that can resolve `parent.field` (non-external `join__field`s, or every
        /// subgraph of the type when the field has none).
        fn owners(&self, parent: &str, field: &str) -> BTreeSet<String> {
            let Some(ExtendedType::Object(o)) = self.sup.types.get(parent) else {
                return BTreeSet::new();
            };
            let graph_of = |d: &apollo_compiler::ast::Directive| -> Option<String> {
                match d.specified_argument_by_name("graph").map(|v| v.as_ref()) {
                    Some(AstValue::Enum(e)) => self.graph_names.get(e.as_str()).cloned(),
                    _ => None,
                }
            };
            let Some(f) = o.fields.get(field) else {
                return BTreeSet::new();
            };
            let joins: Vec<_> = f.directives.get_all("join__field").collect();
            if joins
                .iter()
                .any(|d| d.specified_argument_by_name("graph").is_none())
            {
                // A graph-less `@join__field` on an implementation: the field comes from an
                // `@interfaceObject`, so its owners are the interface field's.
                return o
                    .implements_interfaces
                    .iter()
                    .flat_map(|i| self.interface_owners(i, field))
                    .collect();
            }
            if joins.is_empty() {
                return o
                    .directives
                    .get_all("join__type")
                    .filter_map(|d| graph_of(d))
                    .collect();
            }
            joins
                .into_iter()
                .filter(|d| {
                    // An external or overridden-but-kept-for-its-key field is not served there.
                    !["external", "usedOverridden"].iter().any(|arg| {
                        matches!(
                            d.specified_argument_by_name(arg).map(|v| v.as_ref()),
                            Some(AstValue::Boolean(true))
                        )
                    })
                })
                .filter_map(|d| graph_of(d))
                .collect()
        }
    }

    impl Ctx<'_> {
        fn interface_owners(&self, interface: &str, field: &str) -> BTreeSet<String> {
            let Some(ExtendedType::Interface(i)) = self.sup.types.get(interface) else {
                return BTreeSet::new();
            };
            let Some(f) = i.fields.get(field) else {
                return BTreeSet::new();
            };
            f.directives
                .get_all("join__field")
                .filter_map(
                    |d| match d.specified_argument_by_name("graph").map(|v| v.as_ref()) {
                        Some(AstValue::Enum(e)) => self.graph_names.get(e.as_str()).cloned(),
                        _ => None,
                    },
                )
                .collect()
        }
    }

    /// Object types that are possible for `name` in `schema`, in declaration order.
    fn possible_in(schema: &Schema, name: &str) -> Vec<String> {
        match schema.types.get(name) {
            Some(ExtendedType::Object(_)) => vec![name.to_string()],
            Some(ExtendedType::Union(u)) => u.members.iter().map(|m| m.to_string()).collect(),
            Some(ExtendedType::Interface(_)) => schema
                .types
                .iter()
                .filter_map(|(n, t)| match t {
                    ExtendedType::Object(o)
                        if o.implements_interfaces.iter().any(|i| i.as_str() == name) =>
                    {
                        Some(n.to_string())
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn scalar_value(parent: &str, field: &str, scalar: &str) -> Value {
        let tag = format!("{parent}.{field}");
        match scalar {
            "Int" => json!(tag.bytes().map(u64::from).sum::<u64>() % 997),
            "Float" => json!(2.5),
            "Boolean" => json!(true),
            _ => json!(tag),
        }
    }

    fn render(sels: &[Sel], out: &mut String) {
        out.push_str(" {");
        for s in sels {
            match s {
                Sel::Typename => out.push_str(" __typename"),
                Sel::Field { name, args, sub } => {
                    out.push(' ');
                    out.push_str(name);
                    out.push_str(args);
                    if let Some(sub) = sub {
                        render(sub, out);
                    }
                }
                Sel::On { ty, sub } => {
                    out.push_str(" ... on ");
                    out.push_str(ty);
                    render(sub, out);
                }
            }
        }
        out.push_str(" }");
    }

    /// The response the operation must produce over the canonical values.
    fn expect(value: &Value, sels: &[Sel]) -> Value {
        match value {
            Value::Array(items) => Value::Array(items.iter().map(|v| expect(v, sels)).collect()),
            Value::Object(obj) => {
                let mut out = Map::new();
                collect(obj, sels, &mut out);
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    fn collect(obj: &Map<String, Value>, sels: &[Sel], out: &mut Map<String, Value>) {
        for s in sels {
            match s {
                Sel::Typename => {
                    out.insert(
                        "__typename".into(),
                        obj.get("__typename").cloned().unwrap_or(Value::Null),
                    );
                }
                Sel::Field { name, sub, .. } => {
                    let v = obj.get(name).cloned().unwrap_or(Value::Null);
                    let v = match sub {
                        Some(sub) => expect(&v, sub),
                        None => v,
                    };
                    out.insert(name.clone(), v);
                }
                Sel::On { ty, sub } => {
                    if obj.get("__typename").and_then(Value::as_str) == Some(ty.as_str()) {
                        collect(obj, sub, out);
                    }
                }
            }
        }
    }

    /// Builds the operation, fixtures and expectations for one composed supergraph.
    pub fn plan(sdl: &str, api: &Schema) -> Result<Plan, String> {
        let sup = Schema::parse(sdl, "supergraph.graphql").map_err(|e| e.errors.to_string())?;
        let source = SupergraphSource::parse(sdl).map_err(|e| e.to_string())?;
        let models = source
            .graphs()
            .iter()
            .map(|g| source.subgraph(&g.name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let ctx = Ctx {
            sup: &sup,
            api,
            models: &models,
            graph_names: source
                .graphs()
                .iter()
                .map(|g| (g.enum_value.clone(), g.name.clone()))
                .collect(),
        };
        let root = api
            .schema_definition
            .query
            .as_ref()
            .ok_or("no query root")?
            .to_string();
        let mut walk = Walk {
            path: Vec::new(),
            coords: Vec::new(),
            jumps: BTreeSet::new(),
        };
        let sels = ctx.select(&root, None, &mut walk);
        let mutation = api.schema_definition.mutation.as_ref().map(|m| {
            let sels = ctx.select(m.as_str(), None, &mut walk);
            let mut text = String::from("mutation");
            render(&sels, &mut text);
            let world = ctx.canonical(m.as_str(), &mut vec![]);
            (text, json!({ "data": expect(&world, &sels) }))
        });
        let coords = walk.coords;
        let mut query = String::new();
        render(&sels, &mut query);
        let world = ctx.canonical(&root, &mut vec![]);
        let expected = json!({ "data": expect(&world, &sels) });
        let fixtures = models
            .iter()
            .map(|m| (m.name.clone(), ctx.fixture(m)))
            .collect();
        let used: BTreeSet<String> = coords.iter().flat_map(|(p, f)| ctx.owners(p, f)).collect();
        let idle = models
            .iter()
            .map(|m| m.name.clone())
            .filter(|m| !used.contains(m))
            .collect();
        let must_hit = coords
            .iter()
            .filter_map(|(p, f)| {
                let owners = ctx.owners(p, f);
                (owners.len() == 1).then(|| owners.into_iter().next().unwrap_or_default())
            })
            .collect();
        Ok(Plan {
            query: query.trim().to_string(),
            fixtures,
            expected,
            mutation,
            must_hit,
            must_jump: walk.jumps,
            idle,
            override_labels: Vec::new(),
        })
    }

    /// Starts the subgraphs and a gateway, runs the operation and checks the outcome.
    pub async fn run(sdl: &str, plan: &Plan) -> Result<(), String> {
        let subgraphs = start_subgraphs(sdl, &plan.fixtures, &[])
            .await
            .map_err(|e| format!("starting subgraphs: {e}"))?;
        let config = GatewayConfig {
            subgraphs: SubgraphOverrides::from_urls(&subgraphs.urls),
            subgraph_timeout: Duration::from_secs(5),
            override_labels: plan.override_labels.clone(),
            ..GatewayConfig::default()
        };
        let gateway = switchyard_gateway::Gateway::from_supergraph_sdl(sdl, config)
            .map_err(|e| format!("building the gateway: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("binding the gateway: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(switchyard_gateway::serve(listener, gateway, async {
            let _ = stopped.await;
        }));
        let url = format!("http://{addr}/graphql");
        let mut operations = vec![(plan.query.clone(), plan.expected.clone())];
        operations.extend(plan.mutation.clone());
        let mut problems = Vec::new();
        let mut bodies = Vec::new();
        for (operation, expected) in &operations {
            let response = post_json(&url, &json!({ "query": operation }), &BTreeMap::new())
                .await
                .map_err(|e| format!("request to the gateway: {e}"));
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            if response.body.get("data").is_none_or(Value::is_null) {
                problems.push(format!("{operation}: `data` is null"));
            }
            if let Err(diff) = match_response(expected, &response.body) {
                problems.push(format!(
                    "{operation}: response (HTTP {}):\n{diff}",
                    response.status
                ));
            }
            bodies.push(response.body);
        }
        let _ = stop.send(());
        let _ = server.await;
        for name in &plan.must_hit {
            if subgraphs.request_count(name) == 0 {
                problems.push(format!("subgraph `{name}` received no request"));
            }
        }
        for name in &plan.idle {
            if subgraphs.request_count(name) > 0 {
                problems.push(format!(
                    "subgraph `{name}` owns no selected field but was called"
                ));
            }
        }
        for name in &plan.must_jump {
            let jumped = subgraphs.handles.get(name).is_some_and(|h| {
                h.requests().iter().any(|r| {
                    r.body
                        .get("query")
                        .and_then(Value::as_str)
                        .is_some_and(|q| q.contains("_entities"))
                })
            });
            if !jumped {
                problems.push(format!("subgraph `{name}` received no `_entities` request"));
            }
        }
        if std::env::var_os("ROUNDTRIP_VERBOSE").is_some() {
            eprintln!(
                "query: {}\nmutation: {:?}\nresponses: {:?}\nmust hit: {:?}, must jump to: {:?}, idle: {:?}\n{}",
                plan.query,
                plan.mutation.as_ref().map(|m| &m.0),
                bodies,
                plan.must_hit,
                plan.must_jump,
                plan.idle,
                subgraphs.describe_requests()
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            problems.push(subgraphs.describe_requests());
            Err(problems.join("\n"))
        }
    }
}

#[test]
fn every_valid_supergraph_executes_against_real_subgraphs() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut failures = Vec::new();
    let mut executed = 0;
    let mut jumps = 0;
    for case in support::load_cases()
        .into_iter()
        .filter(|c| c.expect.is_empty())
    {
        if exec::SKIPPED.iter().any(|(n, _)| *n == case.name) {
            continue;
        }
        if std::env::var_os("ROUNDTRIP_VERBOSE").is_some() {
            eprintln!("=== {}", case.name);
        }
        let sdl = switchyard_compose::compose(&case.subgraphs)
            .unwrap()
            .supergraph_sdl;
        let sg = match Supergraph::parse(&sdl) {
            Ok(sg) => sg,
            // Checked by `planner_loads_and_plans_every_valid_supergraph`.
            Err(e) if e.to_string().contains(REFUSED) => continue,
            Err(e) => {
                failures.push(format!("{}: planner cannot load: {e}", case.name));
                continue;
            }
        };
        let plan = match exec::plan(&sdl, sg.api_schema()) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{}: cannot derive the test: {e}", case.name));
                continue;
            }
        };
        let outcome = runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), exec::run(&sdl, &plan))
                .await
                .unwrap_or_else(|_| Err("timed out".into()))
        });
        match outcome {
            Ok(()) => {
                executed += 1;
                if !plan.must_jump.is_empty() {
                    jumps += 1;
                }
            }
            Err(e) => failures.push(format!("{}: {}\n  query: {}", case.name, e, plan.query)),
        }
    }
    eprintln!("executed {executed} valid supergraphs ({jumps} with entity jumps)");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The execution check is not vacuous: a subgraph answering with a value other than the one the
/// expectation was computed from, or an entity jump that never happens, fails the run.
#[test]
fn execution_check_detects_wrong_values_and_missing_jumps() {
    let case = support::load_cases()
        .into_iter()
        .find(|c| c.name == "valid_entity_chain")
        .expect("valid_entity_chain case");
    let sdl = switchyard_compose::compose(&case.subgraphs)
        .unwrap()
        .supergraph_sdl;
    let sg = Supergraph::parse(&sdl).unwrap();
    let plan = exec::plan(&sdl, sg.api_schema()).unwrap();
    assert_eq!(
        plan.must_jump
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["c"],
        "T.deep lives only in c, reached from a's root field"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(exec::run(&sdl, &plan)).unwrap();

    let mut tampered = plan.clone();
    tampered.fixtures.get_mut("c").unwrap()["entities"]["T"][0]["deep"] = serde_json::json!(-1);
    let err = runtime.block_on(exec::run(&sdl, &tampered)).unwrap_err();
    assert!(err.contains("`data` differs"), "{err}");

    let mut no_jump = exec::Plan {
        query: "{ t { id } }".into(),
        fixtures: plan.fixtures.clone(),
        expected: serde_json::json!({ "data": { "t": { "id": "T.id" } } }),
        must_hit: Default::default(),
        ..plan.clone()
    };
    let err = runtime.block_on(exec::run(&sdl, &no_jump)).unwrap_err();
    assert!(err.contains("`c` received no `_entities` request"), "{err}");
    no_jump.must_jump.clear();
    runtime.block_on(exec::run(&sdl, &no_jump)).unwrap();
}

/// Progressive override: with its label enabled the overriding subgraph serves the field (an
/// entity jump to it); without it the original owner does and the overriding one stays idle.
#[test]
fn override_label_switches_the_serving_subgraph() {
    let case = support::load_cases()
        .into_iter()
        .find(|c| c.name == "valid_override_label")
        .expect("valid_override_label case");
    let sdl = switchyard_compose::compose(&case.subgraphs)
        .unwrap()
        .supergraph_sdl;
    let sg = Supergraph::parse(&sdl).unwrap();
    let plan = exec::plan(&sdl, sg.api_schema()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let off = exec::Plan {
        idle: ["b".to_string()].into(),
        ..plan.clone()
    };
    runtime.block_on(exec::run(&sdl, &off)).unwrap();
    let on = exec::Plan {
        override_labels: vec!["percent(25)".into()],
        must_jump: ["b".to_string()].into(),
        ..plan
    };
    runtime.block_on(exec::run(&sdl, &on)).unwrap();
}
