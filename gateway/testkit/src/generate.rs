//! A seeded generator of Federation 2 subgraph shapes, fixtures and operations for differential
//! testing (`switchyard-difftest` runs them through Switchyard and a reference router).
//! Each operation comes with the response the world gives for it ([`Shape::expected`]), an oracle
//! independent of every gateway.
//!
//! One seed always gives the same [`Shape`]: the subgraph SDLs (each with a Federation v2.3
//! `@link`), one fixture per subgraph in the case-file fixture format, and client operations over
//! the composed API. Every subgraph's fixture is cut from one shared "world" (every entity instance
//! has one value per field), so any correct plan returns the same data; a subgraph that must never
//! be asked for a field (the losing side of an `@override`) holds a poisoned value instead.
//!
//! Features drawn per shape: entities with one or two keys (some subgraphs know an entity by its
//! second key only), fields spread over subgraphs (including `@shareable` copies whose
//! nullability differs per subgraph, and fields named `code` in several entities whose type
//! differs per subgraph), value types shared by several subgraphs (some with a field referring to
//! an entity), interfaces (with an extra
//! shared field) and unions with different member sets per subgraph, entity fields returning
//! them, value types whose fields are spread over subgraphs, an enum with an `@inaccessible`
//! value, `@requires` (plain, with a field argument, of two fields), `@provides`, `@override`,
//! `@inaccessible`, `@interfaceObject`, lists, single entity references and nullability.
//! Also drawn, from a stream of their own (so older seeds keep the rest of their shape):
//! composite (`@key(fields: "id kind")`) and nested (`@key(fields: "id org { oid }")`) keys,
//! `@requires` of a value type's subfields (`@requires(fields: "e0f1 { v0f0 }")`), entities that
//! a subgraph only references (`@key(..., resolvable: false)`), root fields with arguments (a
//! lookup by id, sometimes an unknown one, served where the entity may be only such a
//! reference; `first:` on entity lists, past the end or null too; literal or through
//! variables), and mutations: two to four root mutation fields per operation, spread over
//! subgraphs, counters whose answers show the order they ran in (a field repeated under its own
//! name runs once, under an alias again; `@skip`/`@include` decide which selection is the
//! first) and lookups returning entities.
//! Operations use aliases, inline and named fragments, abstract selections (also interface
//! conditions inside unions), one root field twice under two response keys, and
//! `@skip`/`@include` (literal or through variables, as are some `(mode:)` arguments; also on
//! fragment spreads). Some nullable fields are field errors for one instance (the world expects
//! null there and an error at that path). [`Shape::expected_for`] answers edited operations.
//! A mutation operation declares [`SESSION_VARIABLE`]: a runner sending it more than once over
//! the same subgraphs gives it a fresh value per request.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

/// A small deterministic PRNG (SplitMix64): the generator must give the same shape for a seed on
/// every platform and across crate versions, which an external RNG crate does not promise.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for this seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
}

/// One generated shape: subgraphs, their fixtures, and operations to run against it.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The seed it was generated from.
    pub seed: u64,
    /// Subgraph name and SDL, in name order.
    pub subgraphs: Vec<(String, String)>,
    /// Fixture per subgraph name (case-file fixture format).
    pub fixtures: BTreeMap<String, Value>,
    /// Client operations over the composed API schema.
    pub operations: Vec<String>,
    /// Per operation, its variables (a JSON object, `{}` when it declares none).
    pub variables: Vec<Value>,
    /// Per operation, the response a correct gateway returns (computed from the world the
    /// fixtures were cut from, independently of any gateway).
    pub expected: Vec<Value>,
    /// Which generator features this shape uses (for reports).
    pub features: BTreeSet<&'static str>,
    /// The world the fixtures were cut from (answers edited operations, see [`Shape::expected_for`]).
    world: World,
}

impl Shape {
    /// The response a correct gateway gives for `operation` over this shape's unchanged subgraphs
    /// and fixtures, for operations made of what the generator uses (fields, aliases, `(mode:)`,
    /// inline and named fragments, `@skip`/`@include` with literal arguments); `None` otherwise.
    /// Lets a minimizer edit a generated operation and still know the right answer.
    pub fn expected_for(&self, operation: &str, variables: &Value) -> Option<Value> {
        use apollo_compiler::ast::{Definition, Document};
        let document = Document::parse(operation, "operation.graphql").ok()?;
        let mut fragments = BTreeMap::new();
        let mut operations = Vec::new();
        for definition in &document.definitions {
            match definition {
                Definition::OperationDefinition(op) => operations.push(op),
                Definition::FragmentDefinition(f) => {
                    fragments.insert(f.name.to_string(), f.clone());
                }
                _ => return None,
            }
        }
        let [op] = operations.as_slice() else {
            return None;
        };
        let selections = convert_selections(&op.selection_set, &fragments, variables, 0)?;
        match op.operation_type {
            apollo_compiler::ast::OperationType::Query => {
                Some(evaluate_roots(&self.world, &selections))
            }
            apollo_compiler::ast::OperationType::Mutation => {
                Some(evaluate_mutations(&self.world, &selections))
            }
            apollo_compiler::ast::OperationType::Subscription => None,
        }
    }
}

type Fragments = BTreeMap<String, apollo_compiler::Node<apollo_compiler::ast::FragmentDefinition>>;

/// Parsed selections as [`Sel`]s; `None` for anything the generator never produces.
fn convert_selections(
    selections: &[apollo_compiler::ast::Selection],
    fragments: &Fragments,
    variables: &Value,
    depth: usize,
) -> Option<Vec<Sel>> {
    use apollo_compiler::ast::Selection;
    if depth > 32 {
        return None;
    }
    let mut out = Vec::new();
    for selection in selections {
        match selection {
            Selection::Field(f) => {
                let mut mode = None;
                let mut args = Vec::new();
                for argument in &f.arguments {
                    if ["first", "id", "session"].contains(&argument.name.as_str()) {
                        let value = match argument.value.as_ref() {
                            // An unset variable leaves the argument out.
                            apollo_compiler::ast::Value::Variable(v) => {
                                match variables.get(v.as_str()) {
                                    Some(value) => value.clone(),
                                    None => continue,
                                }
                            }
                            apollo_compiler::ast::Value::Int(i) => json!(i.try_to_i32().ok()?),
                            apollo_compiler::ast::Value::Null => Value::Null,
                            other => json!(other.as_str()?),
                        };
                        args.push(Arg {
                            name: argument.name.to_string(),
                            value,
                            text: argument.value.to_string(),
                        });
                        continue;
                    }
                    if argument.name != "mode" {
                        return None;
                    }
                    let value = match argument.value.as_ref() {
                        apollo_compiler::ast::Value::Variable(v) => {
                            variables.get(v.as_str())?.as_str()?
                        }
                        other => other.as_str()?,
                    };
                    let value = match value {
                        "UP" => "UP",
                        "DOWN" => "DOWN",
                        _ => return None,
                    };
                    mode = Some(Mode {
                        value,
                        text: argument.value.to_string(),
                    });
                }
                let sub = if f.selection_set.is_empty() {
                    None
                } else {
                    Some(convert_selections(
                        &f.selection_set,
                        fragments,
                        variables,
                        depth + 1,
                    )?)
                };
                out.push(Sel::Field {
                    alias: f.alias.as_ref().map(|a| a.to_string()),
                    name: f.name.to_string(),
                    mode,
                    args,
                    directive: excluded_marker(&f.directives, variables)?,
                    sub,
                });
            }
            Selection::InlineFragment(f) => out.push(Sel::Inline {
                on: f.type_condition.as_ref()?.to_string(),
                directive: excluded_marker(&f.directives, variables)?,
                sub: convert_selections(&f.selection_set, fragments, variables, depth + 1)?,
            }),
            Selection::FragmentSpread(spread) => {
                let name = spread.fragment_name.to_string();
                let fragment = fragments.get(&name)?;
                out.push(Sel::Spread {
                    name,
                    on: fragment.type_condition.to_string(),
                    directive: excluded_marker(&spread.directives, variables)?,
                    sub: convert_selections(
                        &fragment.selection_set,
                        fragments,
                        variables,
                        depth + 1,
                    )?,
                });
            }
        }
    }
    Some(out)
}

/// `@skip`/`@include` (literal or variable arguments) as a [`Dir`]; `None` for other directives
/// or unknown variables.
fn excluded_marker(
    directives: &apollo_compiler::ast::DirectiveList,
    variables: &Value,
) -> Option<Dir> {
    let mut out = false;
    for d in directives.iter() {
        let value = match d.specified_argument_by_name("if")?.as_ref() {
            apollo_compiler::ast::Value::Variable(v) => variables.get(v.as_str())?.as_bool()?,
            other => other.to_bool()?,
        };
        match d.name.as_str() {
            "skip" => out |= value,
            "include" => out |= !value,
            _ => return None,
        }
    }
    Some(Dir {
        text: String::new(),
        excluded: out,
    })
}

/// Limits for [`generate`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Highest number of subgraphs (at least 2).
    pub max_subgraphs: usize,
    /// Highest number of entity types.
    pub max_entities: usize,
    /// Operations per shape.
    pub operations: usize,
    /// Deepest selection nesting in operations.
    pub max_depth: usize,
    /// Features not to generate, by the names in [`FEATURES_THAT_CAN_BE_DISABLED`] (e.g. to keep
    /// a known, still open bug out of a run).
    pub disabled: BTreeSet<String>,
}

/// Feature names [`Options::disabled`] accepts.
pub const FEATURES_THAT_CAN_BE_DISABLED: [&str; 4] = [
    INACCESSIBLE_ENUM,
    INTERFACE_CONDITION_IN_UNION,
    FIELD_ERRORS,
    VARIABLES,
];
const INACCESSIBLE_ENUM: &str = "enum with an @inaccessible value";
const INTERFACE_CONDITION_IN_UNION: &str = "interface condition in a union selection";
const FIELD_ERRORS: &str = "field errors";
const VARIABLES: &str = "variables";

impl Options {
    fn allows(&self, feature: &str) -> bool {
        !self.disabled.contains(feature)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_subgraphs: 4,
            max_entities: 3,
            operations: 6,
            max_depth: 3,
            disabled: BTreeSet::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Str,
    Int,
    Bool,
    /// Values a float parser that is a unit off reads wrong (`HARD_FLOATS`): a gateway must
    /// pass them through unchanged.
    Float,
}

/// Floats that serde_json without `float_roundtrip` read one unit off, and plain ones.
const HARD_FLOATS: [f64; 8] = [
    7.038531e-26,
    2.225_073_858_507_201e-308,
    8.988465674311579e307,
    1e-45,
    0.1,
    -3.5e300,
    123.25,
    9007199254740994.0,
];

/// Every scalar the generator gives fields.
const SCALARS: [Scalar; 4] = [Scalar::Str, Scalar::Int, Scalar::Bool, Scalar::Float];

/// A field's scalar type, drawn from [`SCALARS`]; a Float is recorded as a feature.
fn pick_scalar(rng: &mut Rng, features: &mut BTreeSet<&'static str>) -> Scalar {
    let s = SCALARS[rng.below(SCALARS.len())];
    if s == Scalar::Float {
        features.insert("float field");
    }
    s
}

impl Scalar {
    fn name(self) -> &'static str {
        match self {
            Scalar::Str => "String",
            Scalar::Int => "Int",
            Scalar::Bool => "Boolean",
            Scalar::Float => "Float",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Target {
    Scalar(Scalar),
    /// A value type (index into `World::values`).
    Value(usize),
    /// A list of references to another entity (one reference when the field is `single`).
    Entity(usize),
    /// A list of an interface (`true`) or union (`false`), by index.
    Abstract(bool, usize),
    /// The enum `K0` (values `A`, `B` and the `@inaccessible` `C`).
    Enum,
}

/// How a field is declared in one subgraph.
#[derive(Debug, Clone, PartialEq)]
enum Role {
    /// Resolved here (with `@shareable` when several subgraphs resolve it).
    Plain { non_null: bool },
    /// Moved here from `from` with `@override`.
    Override { from: usize },
    /// Resolved here, hidden from the API with `@inaccessible`.
    Inaccessible,
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    target: Target,
    /// Subgraphs that resolve it, with how each declares it.
    resolvers: Vec<(usize, Role)>,
    /// Subgraph that lost it to an `@override` (declares it, must never be asked).
    overridden_in: Option<usize>,
    /// Only for entity-list fields: whether the list itself is nullable.
    list_nullable: bool,
    /// Only for entity fields: one reference (`E` / `E!`) instead of a list.
    single: bool,
    /// An instance whose value is a field error in every resolving subgraph (nullable fields
    /// only, so a correct gateway answers null there plus an error).
    error_instance: Option<usize>,
}

#[derive(Debug, Clone)]
struct Requires {
    subgraph: usize,
    name: String,
    /// A scalar field of the same entity, resolved elsewhere.
    on: usize,
    /// `Some(arg)`: the required field takes `(mode: "<arg>")` and answers per argument.
    argument: Option<&'static str>,
    /// A second required scalar field of the same entity, resolved in another subgraph than
    /// the requiring one (`@requires(fields: "<on> <also>")`).
    also: Option<usize>,
    /// `Some(fields)`: `on` is of a value type and the requirement selects these of its scalar
    /// fields (`@requires(fields: "<on> { <f> <g> }")`).
    sub: Option<Vec<usize>>,
}

impl Requires {
    /// Whether the field at `index` is one this `@requires` selects.
    fn selects(&self, index: usize) -> bool {
        self.on == index || self.also == Some(index)
    }
}

#[derive(Debug, Clone)]
struct Entity {
    name: String,
    /// Owner subgraph: declares every key field and resolves `id`.
    owner: usize,
    second_key: bool,
    /// The fields of its first key.
    key: KeyShape,
    instances: usize,
    fields: Vec<Field>,
    requires: Vec<Requires>,
    /// Subgraphs that declare the type (owner, resolvers, requires, stubs).
    declared_in: BTreeSet<usize>,
    /// Subgraphs whose only key is `sku` (they do not declare `id`): reaching them needs the
    /// `sku` from another subgraph first.
    sku_only: BTreeSet<usize>,
}

impl Entity {
    /// Its fields resolved by exactly one subgraph, plainly (not moved there by @override, not
    /// @inaccessible), with their indexes: where @requires and @provides are drawn.
    fn plain_single_resolver_fields(&self) -> impl Iterator<Item = (usize, &Field)> {
        self.fields.iter().enumerate().filter(|(_, f)| {
            f.resolvers.len() == 1 && matches!(f.resolvers[0].1, Role::Plain { .. })
        })
    }
}

/// The fields of an entity's first key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyShape {
    /// `@key(fields: "id")`.
    Id,
    /// `@key(fields: "id kind")`: a composite key (`kind: String!`).
    Composite,
    /// `@key(fields: "id org { oid }")`: a nested key (`org: Org!`, `type Org { oid: ID! }`).
    Nested,
}

impl KeyShape {
    fn fields(self) -> &'static str {
        match self {
            KeyShape::Id => "id",
            KeyShape::Composite => "id kind",
            KeyShape::Nested => "id org { oid }",
        }
    }
}

#[derive(Debug, Clone)]
struct ValueType {
    name: String,
    /// Field name and scalar.
    fields: Vec<(String, Scalar)>,
    /// Per subgraph using the type, the fields it declares (indices into `fields`, and
    /// `fields.len()` for `reference`): together the resolvers of every field of this type cover
    /// all fields, so each is reachable.
    declared: BTreeMap<usize, BTreeSet<usize>>,
    /// A field `v<n>ref` referring to an entity (index into `World::entities`): entity jumps
    /// from inside a value type.
    reference: Option<usize>,
}

impl ValueType {
    fn reference_name(&self) -> String {
        format!("{}ref", self.name.to_lowercase())
    }
}

#[derive(Debug, Clone)]
enum RootKind {
    /// A list of an entity, optionally providing one external scalar field.
    Entities {
        entity: usize,
        provides: Option<usize>,
    },
    /// A list of an interface.
    Interface(usize),
    /// A list of a union.
    Union(usize),
    /// A list of an `@interfaceObject` view of an interface.
    InterfaceObject(usize),
    /// `(id: ID!)`: one entity by id, null for an unknown id; served by a subgraph that may
    /// know the entity only as a `resolvable: false` reference.
    ById(usize),
}

#[derive(Debug, Clone)]
struct Root {
    subgraph: usize,
    name: String,
    kind: RootKind,
    /// Also declared (same data, `@shareable`) in this subgraph.
    shared_with: Option<usize>,
    /// Takes `(first: Int)`: the first `first` items of the list (all of them without it).
    limit: bool,
}

#[derive(Debug, Clone)]
struct Abstract {
    name: String,
    /// Member entities per declaring subgraph (different sets per subgraph).
    members: BTreeMap<usize, Vec<usize>>,
    /// An interface field besides `id`, declared `@shareable` by every implementation.
    field: Option<String>,
}

#[derive(Debug, Clone)]
struct InterfaceObject {
    /// The interface (index into `World::interfaces`), with `@key(fields: "id")` in its home.
    interface: usize,
    /// Subgraph declaring `type <I> @key(fields: "id") @interfaceObject` with one extra field.
    subgraph: usize,
    field: String,
}

#[derive(Debug, Clone)]
struct World {
    subgraphs: Vec<String>,
    entities: Vec<Entity>,
    values: Vec<ValueType>,
    interfaces: Vec<Abstract>,
    unions: Vec<Abstract>,
    roots: Vec<Root>,
    interface_object: Option<InterfaceObject>,
    mutations: Vec<MutationField>,
    features: BTreeSet<&'static str>,
}

/// A root mutation field.
#[derive(Debug, Clone)]
struct MutationField {
    subgraph: usize,
    name: String,
    kind: MutationKind,
}

#[derive(Debug, Clone, Copy)]
enum MutationKind {
    /// `(session: String!): Int!`: the next value of the one counter every mutation of an
    /// operation shares (fixture `{"$count": ...}`), so the order they ran in shows.
    Counter,
    /// `(id: ID!): E`: an entity by id (null for an unknown id), its fields fetched afterwards.
    Entity(usize),
}

/// The variable through which every generated mutation names its counter session. A runner
/// sending one operation several times over the same subgraphs sets it to a fresh value per
/// request (the fixture subgraphs keep one counter per session); the world ignores its value.
pub const SESSION_VARIABLE: &str = "session";

/// Generates the shape for `seed`.
pub fn generate(seed: u64, options: &Options) -> Shape {
    let mut rng = Rng::new(seed);
    let mut world = build_world(&mut rng, options);
    // Drawn from a stream of their own, so the rest of a seed's shape stays what it was.
    let mut newer = Rng::new(seed ^ 0x6e65_7765_725f_6732);
    add_keys_requires_and_lookups(&mut world, &mut newer);
    add_mutations(&mut world, &mut newer);
    if options.allows(FIELD_ERRORS) {
        add_error_cells(&mut world, &mut rng);
    }
    let references_only = world.entities.iter().enumerate().any(|(e, ent)| {
        ent.declared_in
            .iter()
            .any(|s| !resolvable_in(&world, e, *s))
    });
    if references_only {
        world.features.insert("@key(resolvable: false) reference");
    }
    let lookup_of_reference = world
        .roots
        .iter()
        .any(|r| matches!(r.kind, RootKind::ById(e) if !resolvable_in(&world, e, r.subgraph)));
    if lookup_of_reference {
        world
            .features
            .insert("root lookup in a subgraph that only references the entity");
    }
    let subgraphs = (0..world.subgraphs.len())
        .map(|s| (world.subgraphs[s].clone(), subgraph_sdl(&world, s)))
        .collect();
    let fixtures = (0..world.subgraphs.len())
        .map(|s| (world.subgraphs[s].clone(), fixture(&world, s)))
        .collect();
    let mut operations = Vec::new();
    let mut variables = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..options.operations {
        let (op, vars, exp) = operation(&world, &mut rng, options);
        operations.push(op);
        variables.push(vars);
        expected.push(exp);
    }
    Shape {
        seed,
        subgraphs,
        fixtures,
        operations,
        variables,
        expected,
        features: world.features.clone(),
        world,
    }
}

// Entities refer to each other by index and are mutated while others are read, so index loops.
#[allow(clippy::needless_range_loop)]
fn build_world(rng: &mut Rng, options: &Options) -> World {
    // Features added after seeds were run draw from their own stream, so a seed keeps the shape
    // it had apart from them.
    let mut later = Rng::new(rng.clone().next_u64() ^ 0x0a11_ed1a_7e5e_ed00);
    let n_sub = rng.range(2, options.max_subgraphs.max(2));
    let subgraphs: Vec<String> = (0..n_sub).map(|i| format!("s{i}")).collect();
    let mut features = BTreeSet::new();
    let n_values = rng.range(0, 2);
    let mut values: Vec<ValueType> = (0..n_values)
        .map(|v| ValueType {
            name: format!("V{v}"),
            fields: (0..rng.range(1, 3))
                .map(|f| {
                    let s = pick_scalar(rng, &mut features);
                    (format!("v{v}f{f}"), s)
                })
                .collect(),
            declared: BTreeMap::new(),
            reference: None,
        })
        .collect();
    let n_ent = rng.range(1, options.max_entities.max(1));
    for vt in &mut values {
        if rng.chance(50) {
            vt.reference = Some(rng.below(n_ent));
            features.insert("value type referring to an entity");
        }
    }
    let mut entities: Vec<Entity> = (0..n_ent)
        .map(|e| {
            let owner = rng.below(n_sub);
            let second_key = rng.chance(30);
            if second_key {
                features.insert("two keys");
            }
            Entity {
                name: format!("E{e}"),
                owner,
                second_key,
                key: KeyShape::Id,
                instances: rng.range(1, 3),
                fields: Vec::new(),
                requires: Vec::new(),
                declared_in: BTreeSet::from([owner]),
                sku_only: BTreeSet::new(),
            }
        })
        .collect();
    for e in 0..n_ent {
        let n_fields = rng.range(2, 5);
        for f in 0..n_fields {
            let target = match rng.below(11) {
                0..=5 => Target::Scalar(pick_scalar(rng, &mut features)),
                10 if options.allows(INACCESSIBLE_ENUM) => Target::Enum,
                6 | 7 if !values.is_empty() => Target::Value(rng.below(values.len())),
                _ => Target::Entity(rng.below(n_ent)),
            };
            // Fields named `code` in several entities: one response name whose type differs per
            // subgraph (String! here, String there) while the API type is String everywhere.
            let common = target == Target::Scalar(Scalar::Str)
                && rng.chance(25)
                && !entities[e].fields.iter().any(|x| x.name == "code");
            let home = if rng.chance(50) {
                entities[e].owner
            } else {
                rng.below(n_sub)
            };
            let mut resolvers = vec![(
                home,
                Role::Plain {
                    non_null: rng.chance(40),
                },
            )];
            if rng.chance(25) {
                let other = rng.below(n_sub);
                if other != home {
                    resolvers.push((
                        other,
                        Role::Plain {
                            non_null: rng.chance(40),
                        },
                    ));
                    features.insert("shareable field");
                }
            }
            let mut overridden_in = None;
            if resolvers.len() == 1 && matches!(target, Target::Scalar(_)) && rng.chance(15) {
                let to = rng.below(n_sub);
                if to != home {
                    overridden_in = Some(home);
                    resolvers[0] = (to, Role::Override { from: home });
                    features.insert("@override");
                }
            }
            if target == Target::Enum {
                // Nullable everywhere: the inaccessible value becomes null without propagating.
                for (_, role) in &mut resolvers {
                    *role = Role::Plain { non_null: false };
                }
                features.insert(INACCESSIBLE_ENUM);
            }
            if resolvers.len() == 1 && overridden_in.is_none() && rng.chance(10) {
                resolvers[0].1 = Role::Inaccessible;
                features.insert("@inaccessible");
            }
            for (s, _) in &resolvers {
                entities[e].declared_in.insert(*s);
            }
            if let Some(s) = overridden_in {
                entities[e].declared_in.insert(s);
            }
            if matches!(target, Target::Value(_)) {
                features.insert("value type");
            }
            if matches!(target, Target::Entity(_)) {
                features.insert("entity list");
            }
            let list_nullable = rng.chance(50);
            let single = matches!(target, Target::Entity(_)) && later.chance(35);
            if single {
                features.insert("single entity reference");
            }
            if common {
                features.insert("same field name, differing types per subgraph");
                let all_non_null = resolvers
                    .iter()
                    .all(|(_, r)| matches!(r, Role::Plain { non_null: true }));
                if all_non_null {
                    if let Some((_, role)) = resolvers.last_mut() {
                        *role = Role::Plain { non_null: false };
                    }
                }
            }
            entities[e].fields.push(Field {
                name: if common {
                    "code".to_string()
                } else {
                    format!("e{e}f{f}")
                },
                target,
                resolvers,
                overridden_in,
                list_nullable,
                single,
                error_instance: None,
            });
        }
        // @requires on a plain scalar field resolved by exactly one subgraph.
        if rng.chance(40) {
            let candidates: Vec<usize> = entities[e]
                .plain_single_resolver_fields()
                .filter(|(_, f)| matches!(f.target, Target::Scalar(_)))
                .map(|(i, _)| i)
                .collect();
            if !candidates.is_empty() {
                let on = candidates[rng.below(candidates.len())];
                let home = entities[e].fields[on].resolvers[0].0;
                let subgraph = (home + 1 + rng.below(n_sub - 1)) % n_sub;
                let argument = if rng.chance(40) {
                    features.insert("@requires with argument");
                    Some(["UP", "DOWN"][rng.below(2)])
                } else {
                    features.insert("@requires");
                    None
                };
                let name = format!("e{e}req");
                // A second required field, resolved in another subgraph than the requiring one.
                let others: Vec<usize> = candidates
                    .iter()
                    .copied()
                    .filter(|&c| c != on && entities[e].fields[c].resolvers[0].0 != subgraph)
                    .collect();
                let also = (!others.is_empty() && later.chance(40))
                    .then(|| others[later.below(others.len())]);
                if also.is_some() {
                    features.insert("@requires of two fields");
                }
                entities[e].declared_in.insert(subgraph);
                entities[e].requires.push(Requires {
                    subgraph,
                    name,
                    on,
                    argument,
                    also,
                    sub: None,
                });
            }
        }
    }
    // Entity-list targets must be declared (at least as a stub) where the list is resolved.
    for e in 0..n_ent {
        let needs: Vec<(usize, usize)> = entities[e]
            .fields
            .iter()
            .flat_map(|f| match f.target {
                Target::Entity(t) => f.resolvers.iter().map(|(s, _)| (t, *s)).collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        for (t, s) in needs {
            entities[t].declared_in.insert(s);
        }
    }

    let mut interfaces = Vec::new();
    if rng.chance(50) {
        let mut members = BTreeMap::new();
        for s in 0..n_sub {
            let here: Vec<usize> = (0..n_ent)
                .filter(|e| entities[*e].declared_in.contains(&s) && rng.chance(70))
                .collect();
            if !here.is_empty() && (members.is_empty() || rng.chance(50)) {
                members.insert(s, here);
            }
        }
        if !members.is_empty() {
            features.insert("interface");
            if members.len() > 1 {
                features.insert("interface members differ per subgraph");
            }
            let field = rng.chance(60).then(|| "i0name".to_string());
            if field.is_some() {
                features.insert("interface field");
            }
            interfaces.push(Abstract {
                name: "I0".into(),
                members,
                field,
            });
        }
    }
    let mut unions = Vec::new();
    if rng.chance(50) {
        let mut members = BTreeMap::new();
        for s in 0..n_sub {
            let here: Vec<usize> = (0..n_ent)
                .filter(|e| entities[*e].declared_in.contains(&s) && rng.chance(70))
                .collect();
            if !here.is_empty() && (members.is_empty() || rng.chance(50)) {
                members.insert(s, here);
            }
        }
        if !members.is_empty() {
            features.insert("union");
            unions.push(Abstract {
                name: "U0".into(),
                members,
                field: None,
            });
        }
    }

    // Entity fields returning an interface or union list, resolved where that abstract type is
    // declared (by two subgraphs with different member sets, sometimes).
    for (is_interface, list) in [(true, &interfaces), (false, &unions)] {
        for (index, a) in list.iter().enumerate() {
            if !rng.chance(60) {
                continue;
            }
            let e = rng.below(n_ent);
            let declaring: Vec<usize> = a.members.keys().copied().collect();
            let first = declaring[rng.below(declaring.len())];
            let mut resolvers = vec![(
                first,
                Role::Plain {
                    non_null: rng.chance(40),
                },
            )];
            if declaring.len() > 1 && rng.chance(50) {
                let second = declaring[rng.below(declaring.len())];
                // Composition requires shared abstract fields to have common runtime types.
                let intersects = a.members[&first]
                    .iter()
                    .any(|m| a.members[&second].contains(m));
                if second != first && intersects {
                    resolvers.push((
                        second,
                        Role::Plain {
                            non_null: rng.chance(40),
                        },
                    ));
                    features.insert("shareable abstract field, members differ per subgraph");
                }
            }
            features.insert(if is_interface {
                "entity field of interface type"
            } else {
                "entity field of union type"
            });
            for (s, _) in &resolvers {
                entities[e].declared_in.insert(*s);
            }
            let name = format!("e{e}abs{}", entities[e].fields.len());
            entities[e].fields.push(Field {
                name,
                target: Target::Abstract(is_interface, index),
                resolvers,
                overridden_in: None,
                list_nullable: rng.chance(50),
                single: false,
                error_instance: None,
            });
        }
    }
    // Value types: each subgraph declares a subset of the fields; the resolvers of every field of
    // that type together declare all of them.
    for (v, vt) in values.iter_mut().enumerate() {
        let n = vt.fields.len() + usize::from(vt.reference.is_some());
        for ent in &entities {
            for f in ent.fields.iter().filter(|f| f.target == Target::Value(v)) {
                let mut covered = BTreeSet::new();
                for (s, _) in &f.resolvers {
                    let set = vt.declared.entry(*s).or_insert_with(|| {
                        let subset: BTreeSet<usize> = (0..n).filter(|_| rng.chance(60)).collect();
                        if subset.is_empty() {
                            BTreeSet::from([rng.below(n)])
                        } else {
                            subset
                        }
                    });
                    covered.extend(set.iter().copied());
                }
                let first = f.resolvers[0].0;
                for k in 0..n {
                    if !covered.contains(&k) {
                        vt.declared.entry(first).or_default().insert(k);
                    }
                }
            }
        }
        if vt.declared.values().any(|d| d.len() < n) {
            features.insert("value type fields spread over subgraphs");
        }
    }
    // A subgraph declaring a value type's entity reference declares that entity (as a stub at least).
    for vt in &values {
        if let Some(t) = vt.reference {
            for (s, declared) in &vt.declared {
                if declared.contains(&vt.fields.len()) {
                    entities[t].declared_in.insert(*s);
                }
            }
        }
    }
    // Some non-owner subgraphs know an entity with two keys by `sku` only.
    for e in 0..n_ent {
        if !entities[e].second_key {
            continue;
        }
        let candidates: Vec<usize> = entities[e]
            .declared_in
            .iter()
            .copied()
            .filter(|s| *s != entities[e].owner)
            .filter(|s| {
                !interfaces
                    .iter()
                    .any(|a| a.members.get(s).is_some_and(|m| m.contains(&e)))
            })
            .collect();
        for s in candidates {
            if rng.chance(40) {
                entities[e].sku_only.insert(s);
                features.insert("subgraph keyed by the second key only");
            }
        }
    }

    let mut roots = Vec::new();
    for e in 0..n_ent {
        let subgraph = entities[e].owner;
        let provides = if rng.chance(30) {
            // Provide a plain scalar field that lives in another subgraph.
            let candidates: Vec<usize> = entities[e]
                .plain_single_resolver_fields()
                .filter(|(_, f)| {
                    matches!(f.target, Target::Scalar(_))
                        && f.overridden_in.is_none()
                        && f.resolvers[0].0 != subgraph
                })
                .filter(|(i, _)| {
                    !entities[e]
                        .requires
                        .iter()
                        .any(|r| r.on == *i && r.argument.is_some())
                })
                .map(|(i, _)| i)
                .collect();
            (!candidates.is_empty()).then(|| candidates[rng.below(candidates.len())])
        } else {
            None
        };
        if provides.is_some() {
            features.insert("@provides");
        }
        let shared_with = if provides.is_none() && rng.chance(20) {
            let other = rng.below(n_sub);
            (other != subgraph && entities[e].declared_in.contains(&other)).then_some(other)
        } else {
            None
        };
        if shared_with.is_some() {
            features.insert("shareable root field");
        }
        roots.push(Root {
            subgraph,
            name: format!("all{}", entities[e].name),
            kind: RootKind::Entities {
                entity: e,
                provides,
            },
            shared_with,
            limit: false,
        });
    }
    for (i, a) in interfaces.iter().enumerate() {
        let s = *a.members.keys().next().expect("non-empty");
        roots.push(Root {
            subgraph: s,
            name: format!("list{}", a.name),
            kind: RootKind::Interface(i),
            shared_with: None,
            limit: false,
        });
    }
    for (i, a) in unions.iter().enumerate() {
        let s = *a.members.keys().next().expect("non-empty");
        roots.push(Root {
            subgraph: s,
            name: format!("list{}", a.name),
            kind: RootKind::Union(i),
            shared_with: None,
            limit: false,
        });
    }
    let mut interface_object = None;
    if let Some(a) = interfaces.first() {
        // Only with one declaring subgraph, whose interface carries @key(fields: "id").
        if a.members.len() == 1 && rng.chance(50) {
            let home = *a.members.keys().next().expect("non-empty");
            let members: Vec<usize> = a.members.values().flatten().copied().collect();
            let others: Vec<usize> = (0..n_sub)
                .filter(|s| {
                    *s != home
                        && members
                            .iter()
                            .all(|m| !entities[*m].declared_in.contains(s))
                })
                .collect();
            if others.is_empty() {
                return World {
                    subgraphs,
                    entities,
                    values,
                    interfaces,
                    unions,
                    roots,
                    interface_object,
                    mutations: Vec::new(),
                    features,
                };
            }
            let subgraph = others[rng.below(others.len())];
            features.insert("@interfaceObject");
            interface_object = Some(InterfaceObject {
                interface: 0,
                subgraph,
                field: "ioExtra".into(),
            });
            roots.push(Root {
                subgraph,
                name: "listIO".into(),
                kind: RootKind::InterfaceObject(0),
                shared_with: None,
                limit: false,
            });
        }
    }
    World {
        subgraphs,
        entities,
        values,
        interfaces,
        unions,
        roots,
        interface_object,
        mutations: Vec::new(),
        features,
    }
}

/// Composite and nested keys, `@requires` of a value type's subfields, root fields with
/// arguments (`first:` on entity lists, lookups by id, some where the entity is only a
/// `resolvable: false` reference).
fn add_keys_requires_and_lookups(w: &mut World, rng: &mut Rng) {
    // An `@interfaceObject`'s interface keys every implementation by `id` alone.
    let io_members: BTreeSet<usize> = w
        .interface_object
        .as_ref()
        .map(|io| {
            w.interfaces[io.interface]
                .members
                .values()
                .flatten()
                .copied()
                .collect()
        })
        .unwrap_or_default();
    let n_sub = w.subgraphs.len();
    for e in 0..w.entities.len() {
        if !io_members.contains(&e) {
            w.entities[e].key = match rng.below(100) {
                0..=24 => KeyShape::Composite,
                25..=39 => KeyShape::Nested,
                _ => KeyShape::Id,
            };
            match w.entities[e].key {
                KeyShape::Composite => w.features.insert("composite key"),
                KeyShape::Nested => w.features.insert("nested key"),
                KeyShape::Id => false,
            };
        }
        let candidates: Vec<usize> = w.entities[e]
            .plain_single_resolver_fields()
            .filter(|(_, f)| matches!(f.target, Target::Value(_)))
            .map(|(i, _)| i)
            .collect();
        if !candidates.is_empty() && rng.chance(50) {
            let on = candidates[rng.below(candidates.len())];
            let Target::Value(v) = w.entities[e].fields[on].target else {
                unreachable!("value-typed candidates only")
            };
            let home = w.entities[e].fields[on].resolvers[0].0;
            let subgraph = (home + 1 + rng.below(n_sub - 1)) % n_sub;
            let n = w.values[v].fields.len();
            let mut sub: Vec<usize> = (0..n).filter(|_| rng.chance(60)).collect();
            if sub.is_empty() {
                sub.push(rng.below(n));
            }
            if !may_declare(w, e, subgraph) {
                continue;
            }
            // The requiring subgraph declares the value type with (at least) the required fields.
            w.values[v]
                .declared
                .entry(subgraph)
                .or_default()
                .extend(sub.iter().copied());
            w.entities[e].declared_in.insert(subgraph);
            w.features.insert("@requires of a value type's subfields");
            let name = format!("e{e}vreq");
            w.entities[e].requires.push(Requires {
                subgraph,
                name,
                on,
                argument: None,
                also: None,
                sub: Some(sub),
            });
        }
    }
    for r in &mut w.roots {
        if matches!(r.kind, RootKind::Entities { .. }) && rng.chance(40) {
            r.limit = true;
            w.features.insert("root field with a first: argument");
        }
    }
    for e in 0..w.entities.len() {
        if !rng.chance(45) {
            continue;
        }
        let subgraph = rng.below(n_sub);
        if !may_declare(w, e, subgraph) {
            continue;
        }
        w.entities[e].declared_in.insert(subgraph);
        w.features.insert("root lookup by id");
        w.roots.push(Root {
            subgraph,
            name: format!("e{e}ById"),
            kind: RootKind::ById(e),
            shared_with: None,
            limit: false,
        });
    }
}

/// Root mutation fields spread over subgraphs: counters (their order observable) and lookups
/// returning entities.
fn add_mutations(w: &mut World, rng: &mut Rng) {
    if !rng.chance(40) {
        return;
    }
    for k in 0..rng.range(1, 4) {
        let subgraph = rng.below(w.subgraphs.len());
        let kind = if rng.chance(60) {
            MutationKind::Counter
        } else {
            let e = rng.below(w.entities.len());
            if !may_declare(w, e, subgraph) {
                MutationKind::Counter
            } else {
                w.entities[e].declared_in.insert(subgraph);
                MutationKind::Entity(e)
            }
        };
        let name = match kind {
            MutationKind::Counter => format!("count{k}"),
            MutationKind::Entity(e) => format!("touch{k}E{e}"),
        };
        w.mutations.push(MutationField {
            subgraph,
            name,
            kind,
        });
    }
    w.features.insert("mutations");
    let subgraphs: BTreeSet<usize> = w.mutations.iter().map(|m| m.subgraph).collect();
    if subgraphs.len() > 1 {
        w.features.insert("mutations in several subgraphs");
    }
}

/// Makes one instance of some nullable scalar fields a field error everywhere the field is
/// resolved. Fields a `@requires` or `@provides` uses are left alone: what a gateway sends for
/// an errored required field, or whether it trusts a provided one, depends on its plan.
fn add_error_cells(w: &mut World, rng: &mut Rng) {
    let roots = w.roots.clone();
    for (e, ent) in w.entities.iter_mut().enumerate() {
        for index in 0..ent.fields.len() {
            let f = &ent.fields[index];
            let nullable_everywhere = f.resolvers.iter().all(|(_, role)| match role {
                Role::Plain { non_null } => !non_null,
                Role::Override { .. } | Role::Inaccessible => true,
            });
            let required = ent.requires.iter().any(|r| r.selects(index));
            let provided = roots.iter().any(|r| {
                matches!(r.kind, RootKind::Entities { entity, provides: Some(p) } if entity == e && p == index)
            });
            if matches!(f.target, Target::Scalar(_))
                && nullable_everywhere
                && !required
                && !provided
                && rng.chance(20)
            {
                let instance = rng.below(ent.instances);
                ent.fields[index].error_instance = Some(instance);
                w.features.insert(FIELD_ERRORS);
            }
        }
    }
}

fn scalar_value(s: Scalar, entity: &str, instance: usize, field: &str) -> Value {
    let h = field
        .bytes()
        .chain(entity.bytes())
        .fold(instance as u64 * 31 + 7, |a, b| {
            a.wrapping_mul(131).wrapping_add(b as u64)
        });
    match s {
        Scalar::Str => json!(format!("{entity}-{instance}-{field}")),
        Scalar::Int => json!((h % 1000) as i64),
        Scalar::Bool => json!(h % 2 == 0),
        Scalar::Float => json!(HARD_FLOATS[(h % HARD_FLOATS.len() as u64) as usize]),
    }
}

fn id_of(e: &Entity, i: usize) -> String {
    format!("{}-{}", e.name, i)
}

/// The `kind` of a composite-keyed instance: shared by instances, so only `id` and `kind`
/// together tell one from another in the subgraphs' eyes.
fn kind_of(e: &Entity, i: usize) -> Value {
    json!(format!("{}-kind{}", e.name, i % 2))
}

/// The `org { oid }` of a nested-keyed instance.
fn org_of(e: &Entity, i: usize) -> String {
    format!("org-{}-{}", e.name, i / 2)
}

fn key_object(e: &Entity, i: usize, typename: bool) -> Value {
    let mut m = Map::new();
    if typename {
        m.insert("__typename".into(), json!(e.name));
    }
    m.insert("id".into(), json!(id_of(e, i)));
    match e.key {
        KeyShape::Id => {}
        KeyShape::Composite => {
            m.insert("kind".into(), kind_of(e, i));
        }
        KeyShape::Nested => {
            m.insert("org".into(), json!({"oid": org_of(e, i)}));
        }
    }
    if e.second_key {
        m.insert("sku".into(), json!(format!("sku-{}", id_of(e, i))));
    }
    Value::Object(m)
}

fn field_value(w: &World, e: usize, i: usize, f: &Field) -> Value {
    let ent = &w.entities[e];
    match &f.target {
        Target::Scalar(s) => scalar_value(*s, &ent.name, i, &f.name),
        Target::Value(v) => {
            let vt = &w.values[*v];
            let mut m = Map::new();
            for (name, s) in &vt.fields {
                m.insert(name.clone(), scalar_value(*s, &ent.name, i, name));
            }
            if let Some(t) = vt.reference {
                let target = &w.entities[t];
                m.insert(
                    vt.reference_name(),
                    key_object(target, i % target.instances, false),
                );
            }
            Value::Object(m)
        }
        Target::Entity(t) if f.single => {
            let target = &w.entities[*t];
            key_object(target, (i + f.name.len()) % target.instances, false)
        }
        Target::Entity(t) => {
            let target = &w.entities[*t];
            // Up to one more item than there are instances: a list can name an entity twice,
            // so equal objects meet at one path (which the gateway resolves, and may store, once).
            let n = (i + f.name.len()) % (target.instances + 2);
            Value::Array(
                (0..n)
                    .map(|k| key_object(target, (i + k) % target.instances, false))
                    .collect(),
            )
        }
        Target::Abstract(..) => Value::Array(
            abstract_items(w, f, i)
                .into_iter()
                .map(|(m, k)| key_object(&w.entities[m], k, true))
                .collect(),
        ),
        Target::Enum => {
            let h = f.name.bytes().fold(i as u64 + 3, |a, b| {
                a.wrapping_mul(31).wrapping_add(b as u64)
            });
            json!(ENUM_VALUES[(h % 3) as usize])
        }
    }
}

/// The values of enum `K0`; the last one is `@inaccessible` (a correct gateway answers null and
/// an error when a subgraph returns it).
const ENUM_VALUES: [&str; 3] = ["A", "B", "C"];

/// The items of an abstract-typed field for instance `i`: one instance of each member that every
/// resolving subgraph knows (shareable copies must return the same data).
fn abstract_items(w: &World, f: &Field, i: usize) -> Vec<(usize, usize)> {
    let Target::Abstract(is_interface, index) = f.target else {
        return Vec::new();
    };
    let a = if is_interface {
        &w.interfaces[index]
    } else {
        &w.unions[index]
    };
    let mut common: Option<BTreeSet<usize>> = None;
    for (s, _) in &f.resolvers {
        let here: BTreeSet<usize> = a.members.get(s).into_iter().flatten().copied().collect();
        common = Some(match common {
            None => here,
            Some(c) => c.intersection(&here).copied().collect(),
        });
    }
    common
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m, i % w.entities[m].instances))
        .collect()
}

/// The value of an interface's extra field for an implementing entity instance.
fn interface_field_value(e: &Entity, i: usize, field: &str) -> Value {
    json!(format!("{}-{field}", id_of(e, i)))
}

/// The value of a field that takes `(mode:)`: of the field's own type, different per mode.
fn argument_value(v: &Value, mode: &str) -> Value {
    let up = mode == "UP";
    match v {
        Value::Number(n) => json!(n.as_i64().unwrap_or(0) * 10 + if up { 1 } else { 2 }),
        Value::Bool(b) => json!(if up { *b } else { !*b }),
        other => json!(format!("{mode}:{}", other.as_str().unwrap_or_default())),
    }
}

fn requires_value(w: &World, e: usize, i: usize, r: &Requires) -> Value {
    let ent = &w.entities[e];
    let on = &ent.fields[r.on];
    let base = field_value(w, e, i, on);
    if let (Some(sub), Target::Value(v)) = (&r.sub, &on.target) {
        let parts: Vec<String> = sub
            .iter()
            .map(|k| {
                let name = &w.values[*v].fields[*k].0;
                format!("{name}={}", base.get(name).unwrap_or(&Value::Null))
            })
            .collect();
        return json!(format!("req({})", parts.join(",")));
    }
    let first = match r.argument {
        None => base,
        Some(arg) => argument_value(&base, arg),
    };
    match r.also {
        None => json!(format!("req({first})")),
        Some(also) => {
            let second = field_value(w, e, i, &ent.fields[also]);
            json!(format!("req({first},{second})"))
        }
    }
}

/// The field's name as declared: with `(mode: String!)` when some `@requires` asks for it with an argument.
fn decl_name(w: &World, e: usize, f: &Field) -> String {
    if with_arguments(f, 0, w, e).is_some() {
        format!("{}(mode: String!)", f.name)
    } else {
        f.name.clone()
    }
}

/// The nullability the resolving subgraph gives the field (external copies must match it).
fn home_non_null(f: &Field) -> bool {
    matches!(
        f.resolvers.first(),
        Some((_, Role::Plain { non_null: true }))
    )
}

/// Whether some root field `@provides` this field (then every resolver must mark it `@shareable`).
fn is_provided(w: &World, e: usize, f: &Field) -> bool {
    let index = w.entities[e].fields.iter().position(|x| x.name == f.name);
    w.roots.iter().any(|r| {
        matches!(r.kind, RootKind::Entities { entity, provides: Some(p) } if entity == e && Some(p) == index)
    })
}

fn type_ref(w: &World, f: &Field, non_null: bool) -> String {
    match &f.target {
        Target::Scalar(s) => format!("{}{}", s.name(), if non_null { "!" } else { "" }),
        Target::Value(v) => format!("{}{}", w.values[*v].name, if non_null { "!" } else { "" }),
        Target::Enum => format!("K0{}", if non_null { "!" } else { "" }),
        Target::Entity(t) if f.single => {
            format!("{}{}", w.entities[*t].name, if non_null { "!" } else { "" })
        }
        Target::Entity(t) => format!(
            "[{}{}]{}",
            w.entities[*t].name,
            if non_null { "!" } else { "" },
            if f.list_nullable { "" } else { "!" }
        ),
        Target::Abstract(is_interface, index) => format!(
            "[{}{}]{}",
            if *is_interface {
                &w.interfaces[*index].name
            } else {
                &w.unions[*index].name
            },
            if non_null { "!" } else { "" },
            if f.list_nullable { "" } else { "!" }
        ),
    }
}

fn subgraph_sdl(w: &World, s: usize) -> String {
    let mut out = String::new();
    out.push_str(
        "extend schema @link(url: \"https://specs.apollo.dev/federation/v2.3\", import: [\"@key\", \"@shareable\", \"@external\", \"@requires\", \"@provides\", \"@override\", \"@inaccessible\", \"@interfaceObject\"])\n\n",
    );
    let mut root_fields = Vec::new();
    for r in &w.roots {
        let here = r.subgraph == s || r.shared_with == Some(s);
        if !here {
            continue;
        }
        let shareable = if r.shared_with.is_some() {
            " @shareable"
        } else {
            ""
        };
        match &r.kind {
            RootKind::Entities { entity, provides } => {
                let ent = &w.entities[*entity];
                let provides = provides
                    .filter(|_| r.subgraph == s)
                    .map(|f| format!(" @provides(fields: \"{}\")", ent.fields[f].name))
                    .unwrap_or_default();
                let args = if r.limit { "(first: Int)" } else { "" };
                root_fields.push(format!(
                    "  {}{args}: [{}!]!{shareable}{provides}",
                    r.name, ent.name
                ));
            }
            RootKind::ById(e) => {
                root_fields.push(format!("  {}(id: ID!): {}", r.name, w.entities[*e].name))
            }
            RootKind::Interface(i) => {
                root_fields.push(format!("  {}: [{}]", r.name, w.interfaces[*i].name))
            }
            RootKind::Union(u) => {
                root_fields.push(format!("  {}: [{}!]!", r.name, w.unions[*u].name))
            }
            RootKind::InterfaceObject(i) => {
                root_fields.push(format!("  {}: [{}]", r.name, w.interfaces[*i].name))
            }
        }
    }
    if !root_fields.is_empty() {
        let _ = writeln!(out, "type Query {{\n{}\n}}\n", root_fields.join("\n"));
    }
    let mutation_fields: Vec<String> = w
        .mutations
        .iter()
        .filter(|m| m.subgraph == s)
        .map(|m| match m.kind {
            MutationKind::Counter => format!("  {}(session: String!): Int!", m.name),
            MutationKind::Entity(e) => {
                format!("  {}(id: ID!): {}", m.name, w.entities[e].name)
            }
        })
        .collect();
    if !mutation_fields.is_empty() {
        let _ = writeln!(
            out,
            "type Mutation {{\n{}\n}}\n",
            mutation_fields.join("\n")
        );
    }
    // The enum, where a field of it is resolved; its last value is hidden by the first such subgraph.
    let enum_subgraphs: BTreeSet<usize> = w
        .entities
        .iter()
        .flat_map(|e| e.fields.iter())
        .filter(|f| f.target == Target::Enum)
        .flat_map(|f| f.resolvers.iter().map(|(r, _)| *r))
        .collect();
    if enum_subgraphs.contains(&s) {
        let hidden = if enum_subgraphs.first() == Some(&s) {
            " @inaccessible"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "enum K0 {{\n  {}\n  {}\n  {}{hidden}\n}}\n",
            ENUM_VALUES[0], ENUM_VALUES[1], ENUM_VALUES[2]
        );
    }
    if declares_org(w, s) {
        out.push_str("type Org @shareable {\n  oid: ID!\n}\n\n");
    }
    // Value types used here.
    let mut values_here = BTreeSet::new();
    for ent in &w.entities {
        for f in &ent.fields {
            if let Target::Value(v) = f.target {
                if f.resolvers.iter().any(|(r, _)| *r == s) {
                    values_here.insert(v);
                }
            }
        }
        for r in ent
            .requires
            .iter()
            .filter(|r| r.subgraph == s && r.sub.is_some())
        {
            if let Target::Value(v) = ent.fields[r.on].target {
                values_here.insert(v);
            }
        }
    }
    for v in values_here {
        let vt = &w.values[v];
        let declared = vt.declared.get(&s).cloned().unwrap_or_default();
        let fields: Vec<String> = vt
            .fields
            .iter()
            .enumerate()
            .filter(|(k, _)| declared.contains(k))
            .map(|(k, (n, sc))| {
                // Nullability differs per subgraph on purpose (same response name, different types).
                let non_null = (s + k).is_multiple_of(2);
                format!("  {n}: {}{}", sc.name(), if non_null { "!" } else { "" })
            })
            .collect();
        let mut fields = fields;
        if let (Some(t), true) = (vt.reference, declared.contains(&vt.fields.len())) {
            fields.push(format!("  {}: {}", vt.reference_name(), w.entities[t].name));
        }
        let _ = writeln!(
            out,
            "type {} @shareable {{\n{}\n}}\n",
            vt.name,
            fields.join("\n")
        );
    }
    for (i, a) in w.interfaces.iter().enumerate() {
        let io = w
            .interface_object
            .as_ref()
            .filter(|io| io.interface == i && io.subgraph == s);
        if let Some(io) = io {
            let _ = writeln!(
                out,
                "type {} @key(fields: \"id\") @interfaceObject {{\n  id: ID!\n  {}: String\n}}\n",
                a.name, io.field
            );
        } else if a.members.contains_key(&s) {
            let key = if w
                .interface_object
                .as_ref()
                .is_some_and(|io| io.interface == i)
            {
                " @key(fields: \"id\")"
            } else {
                ""
            };
            let extra = a
                .field
                .as_ref()
                .map(|f| format!("\n  {f}: String"))
                .unwrap_or_default();
            let _ = writeln!(out, "interface {}{key} {{\n  id: ID!{extra}\n}}\n", a.name);
        }
    }
    for a in &w.unions {
        if let Some(m) = a.members.get(&s) {
            let names: Vec<&str> = m.iter().map(|e| w.entities[*e].name.as_str()).collect();
            let _ = writeln!(out, "union {} = {}\n", a.name, names.join(" | "));
        }
    }
    for (e, ent) in w.entities.iter().enumerate() {
        if !ent.declared_in.contains(&s) {
            continue;
        }
        let implements: Vec<&str> = w
            .interfaces
            .iter()
            .filter(|a| a.members.get(&s).is_some_and(|m| m.contains(&e)))
            .map(|a| a.name.as_str())
            .collect();
        let implements = if implements.is_empty() {
            String::new()
        } else {
            format!(" implements {}", implements.join(" & "))
        };
        let resolvable = resolvable_in(w, e, s);
        let sku_only = resolvable && ent.sku_only.contains(&s);
        let mut keys = String::new();
        let mut lines = Vec::new();
        if !sku_only {
            let _ = write!(keys, " @key(fields: \"{}\"", ent.key.fields());
            if !resolvable {
                keys.push_str(", resolvable: false");
            }
            keys.push(')');
            lines.push("  id: ID!".to_string());
            match ent.key {
                KeyShape::Id => {}
                KeyShape::Composite => lines.push("  kind: String!".into()),
                KeyShape::Nested => lines.push("  org: Org!".into()),
            }
        }
        if ent.second_key && (ent.owner == s || resolvable) {
            keys.push_str(" @key(fields: \"sku\")");
            lines.push("  sku: String!".into());
        }
        for a in &w.interfaces {
            if let (Some(field), true) =
                (&a.field, a.members.get(&s).is_some_and(|m| m.contains(&e)))
            {
                lines.push(format!("  {field}: String @shareable"));
            }
        }
        for f in &ent.fields {
            if let Some((_, role)) = f.resolvers.iter().find(|(r, _)| *r == s) {
                let shared = f.resolvers.len() > 1 || is_provided(w, e, f);
                let line = match role {
                    Role::Plain { non_null } => format!(
                        "  {}: {}{}",
                        decl_name(w, e, f),
                        type_ref(w, f, *non_null),
                        if shared { " @shareable" } else { "" }
                    ),
                    Role::Override { from } => format!(
                        "  {}: {} @override(from: \"{}\")",
                        f.name,
                        type_ref(w, f, false),
                        w.subgraphs[*from]
                    ),
                    Role::Inaccessible => {
                        format!("  {}: {} @inaccessible", f.name, type_ref(w, f, false))
                    }
                };
                lines.push(line);
            } else if f.overridden_in == Some(s) {
                lines.push(format!(
                    "  {}: {}",
                    decl_name(w, e, f),
                    type_ref(w, f, false)
                ));
            } else if is_external_here(w, e, f, s) {
                lines.push(format!(
                    "  {}: {} @external",
                    decl_name(w, e, f),
                    type_ref(w, f, home_non_null(f))
                ));
            }
        }
        for r in ent.requires.iter().filter(|r| r.subgraph == s) {
            let on = &ent.fields[r.on];
            if let (Some(sub), Target::Value(v)) = (&r.sub, &on.target) {
                let names: Vec<&str> = sub
                    .iter()
                    .map(|k| w.values[*v].fields[*k].0.as_str())
                    .collect();
                lines.push(format!(
                    "  {}: String @requires(fields: \"{} {{ {} }}\")",
                    r.name,
                    on.name,
                    names.join(" ")
                ));
                continue;
            }
            let also = r
                .also
                .map(|a| format!(" {}", ent.fields[a].name))
                .unwrap_or_default();
            if r.argument.is_some() {
                lines.push(format!(
                    "  {}: String @requires(fields: \"{}(mode: \\\"{}\\\"){also}\")",
                    r.name,
                    on.name,
                    r.argument.unwrap_or_default()
                ));
            } else {
                lines.push(format!(
                    "  {}: String @requires(fields: \"{}{also}\")",
                    r.name, on.name
                ));
            }
        }
        let _ = writeln!(
            out,
            "type {}{implements}{keys} {{\n{}\n}}\n",
            ent.name,
            lines.join("\n")
        );
    }
    out
}

/// Whether subgraph `s` can resolve entity `e` (else it declares it as a
/// `@key(..., resolvable: false)` reference, when it declares it at all).
/// Whether entity `e` may be declared in subgraph `s` (as a reference or with new fields):
/// not where only its `sku` key is known, and not in the subgraph that stands in for one of
/// its interfaces with `@interfaceObject` (which must define none of the implementations:
/// INTERFACE_OBJECT_USAGE_ERROR).
fn may_declare(w: &World, e: usize, s: usize) -> bool {
    let stands_in = w.interface_object.as_ref().is_some_and(|io| {
        io.subgraph == s
            && w.interfaces[io.interface]
                .members
                .values()
                .any(|m| m.contains(&e))
    });
    !w.entities[e].sku_only.contains(&s) && !stands_in
}

fn resolvable_in(w: &World, e: usize, s: usize) -> bool {
    let ent = &w.entities[e];
    ent.owner == s
        || ent
            .fields
            .iter()
            .any(|f| f.resolvers.iter().any(|(r, _)| *r == s))
        || ent.requires.iter().any(|r| r.subgraph == s)
        || w.interfaces
            .iter()
            .any(|a| a.members.get(&s).is_some_and(|m| m.contains(&e)))
        || w.unions
            .iter()
            .any(|u| u.members.get(&s).is_some_and(|m| m.contains(&e)))
        || w.roots.iter().any(|r| {
            (r.subgraph == s || r.shared_with == Some(s))
                && matches!(r.kind, RootKind::Entities { entity, .. } if entity == e)
        })
}

/// Whether subgraph `s` declares an entity with a nested key (and so the type `Org`).
fn declares_org(w: &World, s: usize) -> bool {
    w.entities.iter().enumerate().any(|(e, ent)| {
        ent.key == KeyShape::Nested
            && ent.declared_in.contains(&s)
            && !(ent.sku_only.contains(&s) && resolvable_in(w, e, s))
    })
}

/// Whether field `f` of entity `e` is declared `@external` in subgraph `s` (needed by a `@requires`
/// or a `@provides` there).
fn is_external_here(w: &World, e: usize, f: &Field, s: usize) -> bool {
    let ent = &w.entities[e];
    let index = ent.fields.iter().position(|x| x.name == f.name);
    let required = ent
        .requires
        .iter()
        .any(|r| r.subgraph == s && index.is_some_and(|i| r.selects(i)));
    let provided = w.roots.iter().any(|r| {
        r.subgraph == s
            && matches!(r.kind, RootKind::Entities { entity, provides: Some(p) } if entity == e && Some(p) == index)
    });
    (required || provided) && !f.resolvers.iter().any(|(r, _)| *r == s)
}

fn with_arguments(f: &Field, s: usize, w: &World, e: usize) -> Option<&'static str> {
    // A field required with an argument takes `mode` in every subgraph that declares it.
    let ent = &w.entities[e];
    let index = ent.fields.iter().position(|x| x.name == f.name)?;
    let _ = s;
    ent.requires
        .iter()
        .find(|r| r.on == index && r.argument.is_some())
        .and(Some("mode"))
}

fn fixture(w: &World, s: usize) -> Value {
    let mut entities = Map::new();
    for (e, ent) in w.entities.iter().enumerate() {
        if !ent.declared_in.contains(&s) {
            continue;
        }
        let mut list = Vec::new();
        for i in 0..ent.instances {
            let Value::Object(mut obj) = key_object(ent, i, false) else {
                unreachable!()
            };
            for f in &ent.fields {
                if f.resolvers.iter().any(|(r, _)| *r == s) {
                    let v = if f.error_instance == Some(i) {
                        json!({"$error": format!("error in {}.{} of {}", ent.name, f.name, id_of(ent, i))})
                    } else {
                        field_value(w, e, i, f)
                    };
                    if with_arguments(f, s, w, e).is_some() {
                        for arg in ["UP", "DOWN"] {
                            obj.insert(
                                format!("{}({{\"mode\":\"{arg}\"}})", f.name),
                                if f.error_instance == Some(i) {
                                    v.clone()
                                } else {
                                    argument_value(&v, arg)
                                },
                            );
                        }
                    } else {
                        obj.insert(f.name.clone(), v);
                    }
                } else if f.overridden_in == Some(s) {
                    obj.insert(f.name.clone(), json!("POISON: overridden field read"));
                }
            }
            for r in ent.requires.iter().filter(|r| r.subgraph == s) {
                obj.insert(r.name.clone(), requires_value(w, e, i, r));
            }
            for a in &w.interfaces {
                if let (Some(field), true) =
                    (&a.field, a.members.get(&s).is_some_and(|m| m.contains(&e)))
                {
                    obj.insert(field.clone(), interface_field_value(ent, i, field));
                }
            }
            list.push(Value::Object(obj));
        }
        entities.insert(ent.name.clone(), Value::Array(list));
    }
    if let Some(io) = &w.interface_object {
        if io.subgraph == s {
            let a = &w.interfaces[io.interface];
            let mut list = Vec::new();
            for m in a.members.values().flatten() {
                let ent = &w.entities[*m];
                for i in 0..ent.instances {
                    list.push(json!({"id": id_of(ent, i), io.field.clone(): format!("io-{}", id_of(ent, i))}));
                }
            }
            entities.insert(a.name.clone(), Value::Array(list));
        }
    }
    let mut query = Map::new();
    for r in &w.roots {
        if r.subgraph != s && r.shared_with != Some(s) {
            continue;
        }
        let value = match &r.kind {
            RootKind::Entities { entity, provides } => {
                let ent = &w.entities[*entity];
                let items: Vec<Value> = (0..ent.instances)
                    .map(|i| {
                        let Value::Object(mut obj) = key_object(ent, i, false) else {
                            unreachable!()
                        };
                        if let (Some(p), true) = (provides, r.subgraph == s) {
                            let f = &ent.fields[*p];
                            obj.insert(f.name.clone(), field_value(w, *entity, i, f));
                        }
                        Value::Object(obj)
                    })
                    .collect();
                // `first` beyond the list's length is absent here, so it reads the whole list.
                if r.limit {
                    for n in 0..ent.instances {
                        query.insert(
                            format!("{}({{\"first\":{n}}})", r.name),
                            Value::Array(items[..n].to_vec()),
                        );
                    }
                }
                Value::Array(items)
            }
            RootKind::ById(e) => {
                let ent = &w.entities[*e];
                for i in 0..ent.instances {
                    query.insert(
                        format!("{}({{\"id\":\"{}\"}})", r.name, id_of(ent, i)),
                        key_object(ent, i, false),
                    );
                }
                // Any other id reads this: null.
                Value::Null
            }
            RootKind::Interface(a) | RootKind::InterfaceObject(a) => {
                let members = w.interfaces[*a]
                    .members
                    .get(&r.subgraph)
                    .cloned()
                    .unwrap_or_default();
                let io = matches!(r.kind, RootKind::InterfaceObject(_));
                let all: Vec<usize> = if io {
                    w.interfaces[*a]
                        .members
                        .values()
                        .flatten()
                        .copied()
                        .collect()
                } else {
                    members
                };
                Value::Array(
                    all.iter()
                        .flat_map(|m| {
                            let ent = &w.entities[*m];
                            (0..ent.instances).map(move |i| {
                                if io {
                                    json!({"__typename": w.interfaces[*a].name, "id": id_of(ent, i)})
                                } else {
                                    key_object(ent, i, true)
                                }
                            })
                        })
                        .collect(),
                )
            }
            RootKind::Union(u) => {
                let members = w.unions[*u]
                    .members
                    .get(&r.subgraph)
                    .cloned()
                    .unwrap_or_default();
                Value::Array(
                    members
                        .iter()
                        .flat_map(|m| {
                            let ent = &w.entities[*m];
                            (0..ent.instances).map(move |i| key_object(ent, i, true))
                        })
                        .collect(),
                )
            }
        };
        query.insert(r.name.clone(), value);
    }
    let mut mutation = Map::new();
    for m in w.mutations.iter().filter(|m| m.subgraph == s) {
        match m.kind {
            MutationKind::Counter => {
                mutation.insert(m.name.clone(), json!({"$count": "mutations"}));
            }
            MutationKind::Entity(e) => {
                let ent = &w.entities[e];
                for i in 0..ent.instances {
                    mutation.insert(
                        format!("{}({{\"id\":\"{}\"}})", m.name, id_of(ent, i)),
                        key_object(ent, i, false),
                    );
                }
            }
        }
    }
    let mut out = Map::new();
    if !query.is_empty() {
        out.insert("Query".into(), Value::Object(query));
    }
    if !mutation.is_empty() {
        out.insert("Mutation".into(), Value::Object(mutation));
    }
    if !entities.is_empty() {
        out.insert("entities".into(), Value::Object(entities));
    }
    Value::Object(out)
}

/// One selection of a generated operation: rendered as text and evaluated against the world.
#[derive(Debug, Clone)]
enum Sel {
    /// A field, with its alias, `(mode:)` argument, directive and sub-selections.
    Field {
        alias: Option<String>,
        name: String,
        mode: Option<Mode>,
        /// Root field arguments (`first:`, `id:`).
        args: Vec<Arg>,
        directive: Dir,
        sub: Option<Vec<Sel>>,
    },
    /// `... on <on><directive> { sub }`.
    Inline {
        on: String,
        directive: Dir,
        sub: Vec<Sel>,
    },
    /// `...<name><directive>`, a named fragment on `on`.
    Spread {
        name: String,
        on: String,
        directive: Dir,
        sub: Vec<Sel>,
    },
}

/// A `@skip`/`@include` as written (literal or variable) and whether it leaves the selection out.
#[derive(Debug, Clone, Default, PartialEq)]
struct Dir {
    text: String,
    excluded: bool,
}

/// A `(mode:)` argument: its value and how it is written (literal or variable).
#[derive(Debug, Clone, PartialEq)]
struct Mode {
    value: &'static str,
    text: String,
}

/// A root field argument: its name, value (`null` when a variable holds null) and how it is
/// written (literal or variable).
#[derive(Debug, Clone, PartialEq)]
struct Arg {
    name: String,
    value: Value,
    text: String,
}

impl Sel {
    fn leaf(name: &str) -> Sel {
        Sel::Field {
            alias: None,
            name: name.to_string(),
            mode: None,
            args: Vec::new(),
            directive: Dir::default(),
            sub: None,
        }
    }
}

fn render(selections: &[Sel]) -> String {
    let parts: Vec<String> = selections
        .iter()
        .map(|s| match s {
            Sel::Field {
                alias,
                name,
                mode,
                args,
                directive,
                sub,
            } => {
                let mut out = match alias {
                    Some(a) => format!("{a}: {name}"),
                    None => name.clone(),
                };
                if let Some(mode) = mode {
                    let _ = write!(out, "(mode: {})", mode.text);
                }
                if !args.is_empty() {
                    let args: Vec<String> = args
                        .iter()
                        .map(|a| format!("{}: {}", a.name, a.text))
                        .collect();
                    let _ = write!(out, "({})", args.join(", "));
                }
                out.push_str(&directive.text);
                if let Some(sub) = sub {
                    let _ = write!(out, " {{ {} }}", render(sub));
                }
                out
            }
            Sel::Inline { on, directive, sub } => {
                format!("... on {on}{} {{ {} }}", directive.text, render(sub))
            }
            Sel::Spread {
                name, directive, ..
            } => format!("...{name}{}", directive.text),
        })
        .collect();
    parts.join(" ")
}

struct Ctx<'a> {
    w: &'a World,
    rng: &'a mut Rng,
    max_depth: usize,
    interface_conditions: bool,
    use_variables: bool,
    /// Mode of each unaliased `(mode:)` field so far in this operation.
    sticky_modes: BTreeMap<String, Mode>,
    fragments: Vec<String>,
    alias_counter: usize,
    /// Declared variables: name, type, value.
    variables: Vec<(String, &'static str, Value)>,
}

impl Ctx<'_> {
    /// A variable holding `value` (sometimes), else `None` for a literal.
    fn variable(&mut self, ty: &'static str, value: Value) -> Option<String> {
        if !self.use_variables || !self.rng.chance(35) {
            return None;
        }
        let name = format!("v{}", self.variables.len());
        self.variables.push((name.clone(), ty, value));
        Some(format!("${name}"))
    }
}

fn directive(ctx: &mut Ctx) -> Dir {
    let (name, value) = match ctx.rng.below(12) {
        0 => ("skip", true),
        1 => ("skip", false),
        2 => ("include", true),
        3 => ("include", false),
        _ => return Dir::default(),
    };
    let argument = ctx
        .variable("Boolean!", json!(value))
        .unwrap_or_else(|| value.to_string());
    Dir {
        text: format!(" @{name}(if: {argument})"),
        excluded: (name == "skip") == value,
    }
}

/// Whether a directive leaves the selection out.
fn excluded(directive: &Dir) -> bool {
    directive.excluded
}

fn mode(ctx: &mut Ctx) -> Mode {
    let value = ["UP", "DOWN"][ctx.rng.below(2)];
    let text = ctx
        .variable("String!", json!(value))
        .unwrap_or_else(|| format!("\"{value}\""));
    Mode { value, text }
}

fn alias(ctx: &mut Ctx, name: &str) -> Option<String> {
    if ctx.rng.chance(20) {
        ctx.alias_counter += 1;
        Some(format!("a{}_{name}", ctx.alias_counter))
    } else {
        None
    }
}

/// A non-empty subset of a value type's fields.
fn value_fields(ctx: &mut Ctx, v: usize, depth: usize) -> Vec<Sel> {
    let vt = &ctx.w.values[v];
    let fields = &vt.fields;
    let mut out: Vec<Sel> = fields
        .iter()
        .filter(|_| ctx.rng.chance(70))
        .map(|(n, _)| Sel::leaf(n))
        .collect();
    if let Some(t) = vt.reference {
        if depth < ctx.max_depth && ctx.rng.chance(60) {
            let sub = entity_selection(ctx, t, depth + 1);
            out.push(Sel::Field {
                alias: None,
                name: vt.reference_name(),
                mode: None,
                args: Vec::new(),
                directive: Dir::default(),
                sub: Some(sub),
            });
        }
    }
    if out.is_empty() {
        out.push(Sel::leaf(&fields[ctx.rng.below(fields.len())].0));
    }
    out
}

fn entity_selection(ctx: &mut Ctx, e: usize, depth: usize) -> Vec<Sel> {
    let w = ctx.w;
    let ent = &w.entities[e];
    let mut parts = Vec::new();
    if ctx.rng.chance(60) {
        parts.push(Sel::leaf("id"));
    }
    if ctx.rng.chance(20) {
        parts.push(Sel::leaf("__typename"));
    }
    match ent.key {
        KeyShape::Composite if ctx.rng.chance(40) => parts.push(Sel::leaf("kind")),
        KeyShape::Nested if ctx.rng.chance(40) => parts.push(Sel::Field {
            alias: alias(ctx, "org"),
            name: "org".into(),
            mode: None,
            args: Vec::new(),
            directive: Dir::default(),
            sub: Some(vec![Sel::leaf("oid")]),
        }),
        _ => {}
    }
    for (i, f) in ent.fields.iter().enumerate() {
        if f.resolvers.iter().any(|(_, r)| *r == Role::Inaccessible) {
            continue;
        }
        if !ctx.rng.chance(60) {
            continue;
        }
        let takes_mode = ent
            .requires
            .iter()
            .any(|r| r.on == i && r.argument.is_some());
        let alias = alias(ctx, &f.name);
        // One response key may not carry two different arguments: an unaliased field keeps the
        // mode it first got in this operation.
        let mode = takes_mode.then(|| match &alias {
            Some(_) => mode(ctx),
            None => match ctx.sticky_modes.get(&f.name) {
                Some(m) => m.clone(),
                None => {
                    let m = mode(ctx);
                    ctx.sticky_modes.insert(f.name.clone(), m.clone());
                    m
                }
            },
        });
        let directive = directive(ctx);
        let sub = match &f.target {
            Target::Scalar(_) | Target::Enum => None,
            Target::Value(v) => Some(value_fields(ctx, *v, depth)),
            Target::Entity(t) if depth < ctx.max_depth => {
                Some(entity_selection(ctx, *t, depth + 1))
            }
            Target::Abstract(is_interface, index) if depth < ctx.max_depth => {
                let a = if *is_interface {
                    &w.interfaces[*index]
                } else {
                    &w.unions[*index]
                };
                let all: BTreeSet<usize> = a.members.values().flatten().copied().collect();
                let all: Vec<usize> = all.into_iter().collect();
                let field = if *is_interface { a.field.clone() } else { None };
                Some(abstract_selection(
                    ctx,
                    &all,
                    *is_interface,
                    field,
                    depth + 1,
                ))
            }
            Target::Entity(_) | Target::Abstract(..) => continue,
        };
        // The same field with the other argument value under another alias (the subgraph must
        // be asked for both, each reaching the client under its own key).
        if let (Some(m), true) = (&mode, ctx.rng.chance(30)) {
            let other = if m.value == "UP" { "DOWN" } else { "UP" };
            ctx.alias_counter += 1;
            parts.push(Sel::Field {
                alias: Some(format!("a{}_{}", ctx.alias_counter, f.name)),
                name: f.name.clone(),
                mode: Some(Mode {
                    value: other,
                    text: format!("\"{other}\""),
                }),
                args: Vec::new(),
                directive: Dir::default(),
                sub: None,
            });
        }
        parts.push(Sel::Field {
            alias,
            name: f.name.clone(),
            mode,
            args: Vec::new(),
            directive,
            sub,
        });
    }
    for r in &ent.requires {
        if ctx.rng.chance(70) {
            let alias = alias(ctx, &r.name);
            let directive = directive(ctx);
            parts.push(Sel::Field {
                alias,
                name: r.name.clone(),
                mode: None,
                args: Vec::new(),
                directive,
                sub: None,
            });
        }
    }
    if parts.is_empty() {
        parts.push(Sel::leaf("id"));
    }
    // An inline fragment on the type itself: its fields merge with the ones above by response key
    // (same fields with other sub-selections, or new ones).
    if depth < ctx.max_depth && ctx.rng.chance(15) {
        let sub = entity_selection(ctx, e, depth + 1);
        let directive = directive(ctx);
        parts.push(Sel::Inline {
            on: ent.name.clone(),
            directive,
            sub,
        });
    }
    if ctx.rng.chance(15) {
        let name = format!("F{}", ctx.fragments.len());
        ctx.fragments.push(format!(
            "fragment {name} on {} {{ {} }}",
            ent.name,
            render(&parts)
        ));
        let directive = directive(ctx);
        return vec![Sel::Spread {
            name,
            on: ent.name.clone(),
            directive,
            sub: parts,
        }];
    }
    parts
}

fn abstract_selection(
    ctx: &mut Ctx,
    members: &[usize],
    with_id: bool,
    field: Option<String>,
    depth: usize,
) -> Vec<Sel> {
    let mut parts = Vec::new();
    if with_id && ctx.rng.chance(50) {
        parts.push(Sel::leaf("id"));
    }
    if let Some(field) = field {
        if ctx.rng.chance(50) {
            let alias = alias(ctx, &field);
            let directive = directive(ctx);
            parts.push(Sel::Field {
                alias,
                name: field,
                mode: None,
                args: Vec::new(),
                directive,
                sub: None,
            });
        }
    }
    if ctx.rng.chance(70) {
        parts.push(Sel::leaf("__typename"));
    }
    for m in members {
        if ctx.rng.chance(75) {
            let sub = entity_selection(ctx, *m, depth + 1);
            let directive = directive(ctx);
            parts.push(Sel::Inline {
                on: ctx.w.entities[*m].name.clone(),
                directive,
                sub,
            });
        }
    }
    // An interface condition inside a union selection: members that implement it (in any
    // subgraph) match, whatever the subgraph serving the union knows.
    if let (false, Some(i)) = (with_id, ctx.w.interfaces.first()) {
        let implementations: BTreeSet<usize> = i.members.values().flatten().copied().collect();
        if ctx.interface_conditions
            && members.iter().any(|m| implementations.contains(m))
            && ctx.rng.chance(40)
        {
            let mut sub = vec![Sel::leaf("id")];
            if let Some(field) = &i.field {
                sub.push(Sel::leaf(field));
            }
            let directive = directive(ctx);
            parts.push(Sel::Inline {
                on: i.name.clone(),
                directive,
                sub,
            });
        }
    }
    if parts.is_empty() {
        parts.push(Sel::leaf("__typename"));
    }
    parts
}

/// The arguments of one selection of root field `root`: an id for a lookup (sometimes one no
/// instance has), sometimes a `first:` (past the end, or null) for a list.
fn root_args(ctx: &mut Ctx, root: &Root) -> Vec<Arg> {
    match root.kind {
        RootKind::ById(e) => {
            let ent = &ctx.w.entities[e];
            let id = id_of(ent, ctx.rng.below(ent.instances + 1));
            let text = ctx
                .variable("ID!", json!(id))
                .unwrap_or_else(|| format!("\"{id}\""));
            vec![Arg {
                name: "id".into(),
                value: json!(id),
                text,
            }]
        }
        RootKind::Entities { entity, .. } if root.limit && ctx.rng.chance(70) => {
            let n = ctx.w.entities[entity].instances;
            let value = if ctx.rng.chance(10) {
                Value::Null
            } else {
                json!(ctx.rng.below(n + 2))
            };
            let text = ctx
                .variable("Int", value.clone())
                .unwrap_or_else(|| value.to_string());
            vec![Arg {
                name: "first".into(),
                value,
                text,
            }]
        }
        _ => Vec::new(),
    }
}

/// A selection for the root field of kind `kind`.
fn root_selection(ctx: &mut Ctx, kind: &RootKind) -> Vec<Sel> {
    let w = ctx.w;
    match kind {
        RootKind::Entities { entity, .. } | RootKind::ById(entity) => {
            entity_selection(ctx, *entity, 1)
        }
        RootKind::Interface(a) | RootKind::InterfaceObject(a) => {
            let all: BTreeSet<usize> = w.interfaces[*a]
                .members
                .values()
                .flatten()
                .copied()
                .collect();
            let all: Vec<usize> = all.into_iter().collect();
            let field = w.interfaces[*a].field.clone();
            let mut sel = abstract_selection(ctx, &all, true, field, 1);
            if let (RootKind::InterfaceObject(_), Some(io)) = (kind, &w.interface_object) {
                sel.push(Sel::leaf(&io.field));
            }
            sel
        }
        RootKind::Union(u) => {
            let all: BTreeSet<usize> = w.unions[*u].members.values().flatten().copied().collect();
            let all: Vec<usize> = all.into_iter().collect();
            abstract_selection(ctx, &all, false, None, 1)
        }
    }
}

fn operation(w: &World, rng: &mut Rng, options: &Options) -> (String, Value, Value) {
    // Draws added after seeds were run come from their own stream, so an operation stays what
    // it was for its seed apart from them.
    let mut later = Rng::new(rng.clone().next_u64() ^ 0x7e1f_0b1e_c7ed_0001);
    let mut root_conditions = Rng::new(later.clone().next_u64() ^ 0x726f_6f74_5f63_6f6e);
    if !w.mutations.is_empty() && Rng::new(later.clone().next_u64() ^ 0x6d75_7461_7465).chance(30) {
        return mutation_operation(w, rng, options);
    }
    let mut ctx = Ctx {
        w,
        rng,
        max_depth: options.max_depth,
        interface_conditions: options.allows(INTERFACE_CONDITION_IN_UNION),
        use_variables: options.allows(VARIABLES),
        sticky_modes: BTreeMap::new(),
        variables: Vec::new(),
        fragments: Vec::new(),
        alias_counter: 0,
    };
    let n = ctx.rng.range(1, 2.min(w.roots.len()).max(1));
    let mut fields = Vec::new();
    let mut used = BTreeSet::new();
    for _ in 0..n {
        let r = ctx.rng.below(w.roots.len());
        let root = &w.roots[r];
        if !used.insert(root.name.clone()) {
            continue;
        }
        let alias = alias(&mut ctx, &root.name);
        let args = root_args(&mut ctx, root);
        let sub = root_selection(&mut ctx, &root.kind);
        fields.push((r, alias, args, sub));
    }
    // The first root field again under another response key, with a selection of its own: one
    // entity type reached at two paths, whose fetches a plan may share.
    if later.chance(15) {
        let r = fields[0].0;
        let main = std::mem::replace(&mut ctx.rng, &mut later);
        let args = root_args(&mut ctx, &w.roots[r]);
        let sub = root_selection(&mut ctx, &w.roots[r].kind);
        ctx.rng = main;
        fields.push((r, Some(format!("twin_{}", w.roots[r].name)), args, sub));
    }
    let mut selections: Vec<Sel> = fields
        .iter()
        .map(|(r, alias, args, sub)| Sel::Field {
            alias: alias.clone(),
            name: w.roots[*r].name.clone(),
            mode: None,
            args: args.clone(),
            directive: Dir::default(),
            sub: Some(sub.clone()),
        })
        .collect();
    // `@skip`/`@include` at the root: on a root field, or on a fragment around it (whose
    // condition must hold for the entity fetches the field leads to as well). `directive`
    // draws a condition one time in three.
    let main = std::mem::replace(&mut ctx.rng, &mut root_conditions);
    for selection in &mut selections {
        let (on_field, around) = (ctx.rng.chance(30), ctx.rng.chance(45));
        if on_field {
            if let Sel::Field { directive: d, .. } = selection {
                *d = directive(&mut ctx);
            }
        }
        if around {
            let wrapper = directive(&mut ctx);
            let field = std::mem::replace(selection, Sel::leaf("__typename"));
            *selection = Sel::Inline {
                on: "Query".into(),
                directive: wrapper,
                sub: vec![field],
            };
        }
    }
    ctx.rng = main;
    if ctx.rng.chance(10) {
        let alias = alias(&mut ctx, "__typename");
        selections.push(Sel::Field {
            alias,
            name: "__typename".into(),
            mode: None,
            args: Vec::new(),
            directive: Dir::default(),
            sub: None,
        });
    }
    let expected = evaluate_roots(w, &selections);
    finish_operation(ctx, "query Q", &selections, expected)
}

/// The operation text (`<keyword>(<variables>) { <selections> }` and its fragments), its
/// variables and `expected`.
fn finish_operation(
    mut ctx: Ctx,
    keyword: &str,
    selections: &[Sel],
    expected: Value,
) -> (String, Value, Value) {
    // Variables drawn for selections that were dropped afterwards (too deep) are not declared.
    let mut body = render(selections);
    for f in &ctx.fragments {
        body.push_str(f);
    }
    ctx.variables.retain(|(name, _, _)| {
        let token = format!("${name}");
        body.match_indices(&token).any(|(at, _)| {
            !body[at + token.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    });
    let header = if ctx.variables.is_empty() {
        String::new()
    } else {
        let defs: Vec<String> = ctx
            .variables
            .iter()
            .map(|(name, ty, _)| format!("${name}: {ty}"))
            .collect();
        format!("({})", defs.join(", "))
    };
    let mut op = format!("{keyword}{header} {{ {} }}", render(selections));
    for f in &ctx.fragments {
        op.push('\n');
        op.push_str(f);
    }
    let variables: Map<String, Value> = ctx
        .variables
        .iter()
        .map(|(name, _, value)| (name.clone(), value.clone()))
        .collect();
    (op, Value::Object(variables), expected)
}

/// A mutation of two to four root fields (a field sometimes repeated, under its own name, which
/// runs it once, or under an alias, which runs it again) and the response the world gives.
fn mutation_operation(w: &World, rng: &mut Rng, options: &Options) -> (String, Value, Value) {
    let mut ctx = Ctx {
        w,
        rng,
        max_depth: options.max_depth,
        interface_conditions: options.allows(INTERFACE_CONDITION_IN_UNION),
        use_variables: options.allows(VARIABLES),
        sticky_modes: BTreeMap::new(),
        variables: vec![(SESSION_VARIABLE.to_string(), "String!", json!("s"))],
        fragments: Vec::new(),
        alias_counter: 0,
    };
    let mut selections = Vec::new();
    let mut used = BTreeSet::new();
    for _ in 0..ctx.rng.range(2, 4) {
        let m = &w.mutations[ctx.rng.below(w.mutations.len())];
        let repeated = !used.insert(m.name.clone());
        let (args, sub) = match m.kind {
            MutationKind::Counter => (
                vec![Arg {
                    name: "session".into(),
                    value: json!("s"),
                    text: format!("${SESSION_VARIABLE}"),
                }],
                None,
            ),
            MutationKind::Entity(e) => {
                let args = root_args(
                    &mut ctx,
                    &Root {
                        subgraph: m.subgraph,
                        name: m.name.clone(),
                        kind: RootKind::ById(e),
                        shared_with: None,
                        limit: false,
                    },
                );
                (args, Some(entity_selection(&mut ctx, e, 1)))
            }
        };
        // A repeated lookup needs an alias: its id (and selection) may differ.
        let alias = if repeated && (sub.is_some() || ctx.rng.chance(60)) {
            ctx.alias_counter += 1;
            Some(format!("a{}_{}", ctx.alias_counter, m.name))
        } else {
            None
        };
        // `@skip`/`@include` decide which selection of a repeated field is its first; a second
        // condition on the field, or one on a fragment around it, makes that hang on several
        // variables.
        let mut dir = directive(&mut ctx);
        if ctx.rng.chance(25) {
            let second = directive(&mut ctx);
            let kind = |d: &Dir| d.text.split('(').next().map(str::to_owned);
            if !second.text.is_empty() && kind(&second) != kind(&dir) {
                dir.text.push_str(&second.text);
                dir.excluded |= second.excluded;
            }
        }
        let field = Sel::Field {
            alias,
            name: m.name.clone(),
            mode: None,
            args,
            directive: dir,
            sub,
        };
        if ctx.rng.chance(20) {
            selections.push(Sel::Inline {
                on: "Mutation".into(),
                directive: directive(&mut ctx),
                sub: vec![field],
            });
        } else {
            selections.push(field);
        }
    }
    let expected = evaluate_mutations(w, &selections);
    finish_operation(ctx, "mutation M", &selections, expected)
}

/// The response for mutation root selections over the world: the fields run in order, each
/// counter field answering the counter's next value.
fn evaluate_mutations(w: &World, selections: &[Sel]) -> Value {
    let mut groups = Vec::new();
    collect_fields(selections, &|on| on == "Mutation", &mut groups);
    let mut data = Map::new();
    let mut errors = Vec::new();
    let mut counter = 0;
    for (key, group) in groups {
        let Some(Sel::Field { name, args, .. }) = group.first() else {
            continue;
        };
        let subs: Vec<&[Sel]> = sub_selections(&group);
        let value = match w.mutations.iter().find(|m| &m.name == name).map(|m| m.kind) {
            Some(MutationKind::Counter) => {
                counter += 1;
                json!(counter)
            }
            Some(MutationKind::Entity(e)) => {
                let ent = &w.entities[e];
                let id = args.iter().find(|a| a.name == "id").map(|a| &a.value);
                match (0..ent.instances).find(|i| id == Some(&json!(id_of(ent, *i)))) {
                    Some(i) => evaluate_entity(w, e, i, &subs, &mut errors, &[json!(key)]),
                    None => Value::Null,
                }
            }
            None if name == "__typename" => json!("Mutation"),
            None => Value::Null,
        };
        data.insert(key, value);
    }
    with_errors(json!({ "data": data }), errors)
}

/// The response for root selections over the world.
fn evaluate_roots(w: &World, selections: &[Sel]) -> Value {
    let mut groups = Vec::new();
    collect_fields(selections, &|on| on == "Query", &mut groups);
    let mut data = Map::new();
    let mut errors = Vec::new();
    for (key, group) in groups {
        let Some(Sel::Field { name, args, .. }) = group.first() else {
            continue;
        };
        let arg = |wanted: &str| args.iter().find(|a| a.name == wanted).map(|a| &a.value);
        if name == "__typename" {
            data.insert(key, json!("Query"));
            continue;
        }
        let Some(root) = w.roots.iter().find(|r| &r.name == name) else {
            data.insert(key, Value::Null);
            continue;
        };
        let subs: Vec<&[Sel]> = sub_selections(&group);
        let items: Vec<(usize, usize)> = match &root.kind {
            RootKind::ById(e) => {
                let ent = &w.entities[*e];
                let found = (0..ent.instances).find(|i| arg("id") == Some(&json!(id_of(ent, *i))));
                let path = vec![json!(key)];
                let value = match found {
                    Some(i) => evaluate_entity(w, *e, i, &subs, &mut errors, &path),
                    None => Value::Null,
                };
                data.insert(key, value);
                continue;
            }
            RootKind::Entities { entity, .. } => {
                let n = w.entities[*entity].instances;
                let first = arg("first")
                    .and_then(Value::as_u64)
                    .map_or(n, |f| n.min(f as usize));
                (0..first).map(|i| (*entity, i)).collect()
            }
            RootKind::Interface(a) => instances_of(w, w.interfaces[*a].members.get(&root.subgraph)),
            RootKind::InterfaceObject(a) => {
                let all: Vec<usize> = w.interfaces[*a]
                    .members
                    .values()
                    .flatten()
                    .copied()
                    .collect();
                instances_of(w, Some(&all))
            }
            RootKind::Union(u) => instances_of(w, w.unions[*u].members.get(&root.subgraph)),
        };
        let value = items
            .into_iter()
            .enumerate()
            .map(|(n, (e, i))| {
                let path = vec![json!(key), json!(n)];
                evaluate_entity(w, e, i, &subs, &mut errors, &path)
            })
            .collect();
        data.insert(key, Value::Array(value));
    }
    with_errors(json!({ "data": data }), errors)
}

/// `expected` with one error per path in `errors`.
fn with_errors(mut expected: Value, errors: Vec<Value>) -> Value {
    if !errors.is_empty() {
        // One error per null the world expects: a subgraph field error, or an @inaccessible enum
        // value, at that response path.
        expected["errors"] = Value::Array(
            errors
                .into_iter()
                .map(|path| json!({"message": "expected error", "path": path}))
                .collect(),
        );
    }
    expected
}

fn instances_of(w: &World, members: Option<&Vec<usize>>) -> Vec<(usize, usize)> {
    members
        .into_iter()
        .flatten()
        .flat_map(|m| (0..w.entities[*m].instances).map(move |i| (*m, i)))
        .collect()
}

/// The spec's CollectFields for a concrete object type: fields grouped by response key in
/// first-seen order, fragments flattened when their type condition matches, `@skip`/`@include`
/// applied.
/// The sub-selections of every field merged under one response key (fields without one skipped).
fn sub_selections<'a>(group: &[&'a Sel]) -> Vec<&'a [Sel]> {
    group
        .iter()
        .filter_map(|s| match s {
            Sel::Field { sub: Some(sub), .. } => Some(sub.as_slice()),
            _ => None,
        })
        .collect()
}

fn collect_fields<'a>(
    selections: &'a [Sel],
    applies: &dyn Fn(&str) -> bool,
    out: &mut Vec<(String, Vec<&'a Sel>)>,
) {
    for s in selections {
        match s {
            Sel::Field {
                alias,
                name,
                directive,
                ..
            } => {
                if excluded(directive) {
                    continue;
                }
                let key = alias.clone().unwrap_or_else(|| name.clone());
                match out.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, group)) => group.push(s),
                    None => out.push((key, vec![s])),
                }
            }
            Sel::Inline { on, directive, sub } => {
                if !excluded(directive) && applies(on) {
                    collect_fields(sub, applies, out);
                }
            }
            Sel::Spread {
                on, sub, directive, ..
            } => {
                if !excluded(directive) && applies(on) {
                    collect_fields(sub, applies, out);
                }
            }
        }
    }
}

/// The response object for instance `i` of entity `e` under `selections` (several selection
/// sets when one response key is selected more than once).
fn evaluate_entity(
    w: &World,
    e: usize,
    i: usize,
    selections: &[&[Sel]],
    errors: &mut Vec<Value>,
    path: &[Value],
) -> Value {
    let ent = &w.entities[e];
    let mut groups = Vec::new();
    for s in selections {
        let applies = |on: &str| {
            on == ent.name
                || w.interfaces
                    .iter()
                    .any(|a| a.name == on && a.members.values().flatten().any(|m| *m == e))
        };
        collect_fields(s, &applies, &mut groups);
    }
    let mut out = Map::new();
    for (key, group) in groups {
        let Some(Sel::Field { name, mode, .. }) = group.first() else {
            continue;
        };
        let subs: Vec<&[Sel]> = sub_selections(&group);
        let mut here = path.to_vec();
        here.push(json!(key));
        let value = if name == "id" {
            json!(id_of(ent, i))
        } else if name == "kind" && ent.key == KeyShape::Composite {
            kind_of(ent, i)
        } else if name == "org" && ent.key == KeyShape::Nested {
            let mut keys = Vec::new();
            for sub in &subs {
                collect_fields(sub, &|_| false, &mut keys);
            }
            let mut object = Map::new();
            for (k, group) in keys {
                if let Some(Sel::Field { name, .. }) = group.first() {
                    let v = match name.as_str() {
                        "oid" => json!(org_of(ent, i)),
                        "__typename" => json!("Org"),
                        _ => Value::Null,
                    };
                    object.insert(k, v);
                }
            }
            Value::Object(object)
        } else if name == "__typename" {
            json!(ent.name)
        } else if let Some(f) = ent.fields.iter().find(|f| &f.name == name) {
            let v = field_value(w, e, i, f);
            match (&f.target, mode) {
                (Target::Scalar(_), _) if f.error_instance == Some(i) => {
                    errors.push(Value::Array(here.clone()));
                    Value::Null
                }
                (Target::Scalar(_), Some(mode)) => argument_value(&v, mode.value),
                (Target::Scalar(_), None) => v,
                (Target::Enum, _) if v == json!(ENUM_VALUES[2]) => {
                    errors.push(Value::Array(here.clone()));
                    Value::Null
                }
                (Target::Enum, _) => v,
                (Target::Value(vi), _) => {
                    let vt = &w.values[*vi];
                    let mut keys = Vec::new();
                    for sub in &subs {
                        collect_fields(sub, &|_| false, &mut keys);
                    }
                    let mut object = Map::new();
                    for (k, group) in keys {
                        let Some(Sel::Field { name, .. }) = group.first() else {
                            continue;
                        };
                        let value = match vt.reference {
                            Some(t) if *name == vt.reference_name() => {
                                let target = &w.entities[t];
                                let ref_subs: Vec<&[Sel]> = sub_selections(&group);
                                let mut item = here.clone();
                                item.push(json!(k));
                                let t_i = i % target.instances;
                                evaluate_entity(w, t, t_i, &ref_subs, errors, &item)
                            }
                            _ => v.get(name.as_str()).cloned().unwrap_or(Value::Null),
                        };
                        object.insert(k, value);
                    }
                    Value::Object(object)
                }
                (Target::Entity(t), _) if f.single => {
                    let target = &w.entities[*t];
                    let t_i = (i + f.name.len()) % target.instances;
                    evaluate_entity(w, *t, t_i, &subs, errors, &here)
                }
                (Target::Entity(t), _) => {
                    let target = &w.entities[*t];
                    let n = v.as_array().map_or(0, Vec::len);
                    Value::Array(
                        (0..n)
                            .map(|k| {
                                let mut item = here.clone();
                                item.push(json!(k));
                                let t_i = (i + k) % target.instances;
                                evaluate_entity(w, *t, t_i, &subs, errors, &item)
                            })
                            .collect(),
                    )
                }
                (Target::Abstract(..), _) => Value::Array(
                    abstract_items(w, f, i)
                        .into_iter()
                        .enumerate()
                        .map(|(n, (m, k))| {
                            let mut item = here.clone();
                            item.push(json!(n));
                            evaluate_entity(w, m, k, &subs, errors, &item)
                        })
                        .collect(),
                ),
            }
        } else if w.interfaces.iter().any(|a| {
            a.field.as_ref() == Some(name) && a.members.values().flatten().any(|m| *m == e)
        }) {
            interface_field_value(ent, i, name)
        } else if let Some(r) = ent.requires.iter().find(|r| &r.name == name) {
            requires_value(w, e, i, r)
        } else if w
            .interface_object
            .as_ref()
            .is_some_and(|io| &io.field == name)
        {
            json!(format!("io-{}", id_of(ent, i)))
        } else {
            Value::Null
        };
        out.insert(key, value);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_shape() {
        let a = generate(42, &Options::default());
        let b = generate(42, &Options::default());
        assert_eq!(a.subgraphs, b.subgraphs);
        assert_eq!(a.fixtures, b.fixtures);
        assert_eq!(a.operations, b.operations);
        let c = generate(43, &Options::default());
        assert_ne!(
            (a.subgraphs, a.operations),
            (c.subgraphs, c.operations),
            "different seeds should give different shapes"
        );
    }

    #[test]
    fn expected_for_reparses_every_generated_operation() {
        let mut with_variables = 0;
        for seed in 0..60 {
            let shape = generate(seed, &Options::default());
            for ((op, variables), expected) in shape
                .operations
                .iter()
                .zip(&shape.variables)
                .zip(&shape.expected)
            {
                assert_eq!(
                    shape.expected_for(op, variables).as_ref(),
                    Some(expected),
                    "seed {seed}: {op} {variables}"
                );
                if variables.as_object().is_some_and(|v| !v.is_empty()) {
                    with_variables += 1;
                }
            }
        }
        assert!(
            with_variables > 20,
            "{with_variables} operations use variables"
        );
        let shape = generate(1, &Options::default());
        assert!(shape
            .expected_for("query Q($x: Boolean!) { a @skip(if: $x) }", &json!({}))
            .is_none());
        assert!(
            shape.expected_for("{ __typename }", &json!({}))
                == Some(json!({"data": {"__typename": "Query"}}))
        );
    }

    #[test]
    fn some_requires_select_two_fields_declared_external_where_required() {
        let mut pairs = 0;
        for seed in 0..200 {
            let shape = generate(seed, &Options::default());
            for (_, sdl) in &shape.subgraphs {
                for line in sdl.lines().filter(|l| l.contains("@requires(fields:")) {
                    let fields = line.split("fields: \"").nth(1).unwrap_or_default();
                    let fields = fields.trim_end_matches("\")");
                    let names: Vec<&str> = fields
                        .split(' ')
                        .filter(|w| !w.contains('(') && !w.contains(')'))
                        .collect();
                    if names.len() == 2 {
                        pairs += 1;
                        assert!(shape.features.contains("@requires of two fields"));
                        for name in names {
                            assert!(
                                sdl.lines().any(|l| l.trim_start().starts_with(name)
                                    && l.ends_with("@external")),
                                "seed {seed}: {name} is not external beside {line}"
                            );
                        }
                    }
                }
            }
        }
        assert!(pairs > 3, "{pairs} two-field @requires in 200 seeds");
    }

    #[test]
    fn some_entity_fields_are_single_references() {
        let mut single = 0;
        for seed in 0..100 {
            let shape = generate(seed, &Options::default());
            if !shape.features.contains("single entity reference") {
                continue;
            }
            single += 1;
            let declared = shape.subgraphs.iter().any(|(_, sdl)| {
                sdl.lines().any(|l| {
                    let t = l.trim_start();
                    t.starts_with('e') && t.contains(": E") && !t.contains('[')
                })
            });
            assert!(declared, "seed {seed}: no field typed `E<n>`");
        }
        assert!(single > 5, "{single} shapes with a single entity reference");
    }

    #[test]
    fn some_operations_put_conditions_at_the_root() {
        let (mut wrapped, mut on_field) = (0, 0);
        for seed in 0..60 {
            for op in &generate(seed, &Options::default()).operations {
                if !op.starts_with("query") {
                    continue;
                }
                wrapped += usize::from(op.contains("{ ... on Query @"));
                let first_field = op.split_once("{ ").map_or("", |(_, rest)| rest);
                let head = first_field.split('{').next().unwrap_or("");
                on_field += usize::from(!head.starts_with("...") && head.contains(" @"));
            }
        }
        assert!(
            wrapped > 10,
            "{wrapped} queries with a conditional fragment at the root"
        );
        assert!(
            on_field > 5,
            "{on_field} queries with a condition on the first root field"
        );
    }

    #[test]
    fn some_operations_select_a_root_field_twice() {
        let mut twins = 0;
        for seed in 0..60 {
            let shape = generate(seed, &Options::default());
            for (op, expected) in shape.operations.iter().zip(&shape.expected) {
                let Some(start) = op.find("twin_") else {
                    continue;
                };
                twins += 1;
                let key: String = op[start..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // A root condition (on the twin, or on a fragment around a root field) may
                // leave it out.
                let head = &op[start..op[start..].find('{').map_or(op.len(), |i| start + i)];
                let conditional = head.contains(" @") || op.contains("... on Query @");
                assert!(
                    conditional || expected["data"].get(&key).is_some(),
                    "seed {seed}: {op}"
                );
            }
        }
        assert!(twins > 10, "{twins} operations with a twin root field");
    }

    #[test]
    fn keys_requires_lookups_and_mutations_are_drawn() {
        let markers = [
            ("composite key", "@key(fields: \"id kind\""),
            ("nested key", "@key(fields: \"id org { oid }\""),
            (
                "@requires of a value type's subfields",
                "vreq: String @requires(fields: \"e",
            ),
            ("root lookup by id", "ById(id: ID!): E"),
            (
                "root lookup in a subgraph that only references the entity",
                "resolvable: false",
            ),
            ("root field with a first: argument", "(first: Int): [E"),
            ("mutations in several subgraphs", "type Mutation {"),
        ];
        let mut seen = BTreeMap::new();
        for seed in 0..200 {
            let shape = generate(seed, &Options::default());
            let sdl: String = shape.subgraphs.iter().map(|(_, s)| s.as_str()).collect();
            for (feature, marker) in markers {
                if shape.features.contains(feature) {
                    *seen.entry(feature).or_insert(0) += 1;
                    assert!(
                        sdl.contains(marker),
                        "seed {seed}: {feature} without {marker}"
                    );
                }
            }
        }
        for (feature, _) in markers {
            let n = seen.get(feature).copied().unwrap_or(0);
            assert!(n >= 5, "{feature}: {n} shapes in 200 seeds");
        }
    }

    #[test]
    fn mutation_counters_answer_in_operation_order() {
        let mut operations = 0;
        let mut repeated = 0;
        for seed in 0..200 {
            let shape = generate(seed, &Options::default());
            for (op, expected) in shape.operations.iter().zip(&shape.expected) {
                if !op.starts_with("mutation") {
                    continue;
                }
                operations += 1;
                let counts: Vec<i64> = expected["data"]
                    .as_object()
                    .into_iter()
                    .flat_map(|data| data.values())
                    .filter_map(Value::as_i64)
                    .collect();
                let in_order: Vec<i64> = (1..=counts.len() as i64).collect();
                assert_eq!(counts, in_order, "seed {seed}: {op}");
                let fields = op.matches("(session: $session)").count();
                if fields > counts.len() {
                    repeated += 1;
                }
            }
        }
        assert!(operations > 20, "{operations} mutations in 200 seeds");
        assert!(
            repeated > 2,
            "{repeated} mutations repeating a counter field"
        );
    }

    #[test]
    fn every_subgraph_links_federation_and_has_a_fixture() {
        for seed in 0..50 {
            let shape = generate(seed, &Options::default());
            assert!(shape.subgraphs.len() >= 2);
            for (name, sdl) in &shape.subgraphs {
                assert!(sdl.contains("specs.apollo.dev/federation/v2.3"), "{name}");
                assert!(shape.fixtures.contains_key(name));
            }
            assert_eq!(shape.operations.len(), Options::default().operations);
        }
    }
}
