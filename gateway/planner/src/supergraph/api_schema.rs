//! Supergraph -> API schema: the schema clients see and operations are validated against.
//!
//! The API schema is the supergraph minus federation machinery (every element of every spec
//! linked with `@link`: `link__*`, `join__*`, `@inaccessible`, `@tag`, ...), minus every
//! `@inaccessible` element and whatever becomes unreachable-only through it, minus type-system
//! directives. Only executable custom directives survive, restricted to executable locations,
//! because the API schema is what clients introspect and write operations against. Explicit
//! `@defer`/`@stream` definitions are dropped too: support for them is the gateway's decision.
//!
//! Where Apollo rejects a supergraph whose type is left with no accessible fields, this removes
//! the type and every field or argument of that type instead; only an empty `Query` is an error.

use std::collections::HashSet;

use apollo_compiler::ast::{DirectiveLocation, InputValueDefinition, Value};
use apollo_compiler::schema::{ComponentName, DirectiveList, ExtendedType, SchemaDefinition};
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Node, Schema};

use super::SupergraphError;

/// Identity name of the link spec in its URL (`https://specs.apollo.dev/link/v1.0`).
const LINK_SPEC: &str = "link";
/// Identity name of the inaccessible spec (`https://specs.apollo.dev/inaccessible/v0.2`).
const INACCESSIBLE_SPEC: &str = "inaccessible";

/// Type-system directives the API schema keeps: they mean something to clients.
const KEPT_TYPE_SYSTEM_DIRECTIVES: &[&str] = &["deprecated", "specifiedBy", "oneOf"];
/// Directives every GraphQL schema has; never removed.
const BUILT_IN_DIRECTIVES: &[&str] = &["skip", "include", "deprecated", "specifiedBy"];

/// Derives the client-facing API schema from a parsed Federation 2 supergraph.
///
/// Fails with [`SupergraphError::Unsupported`] when the SDL has no `@link` to the link spec, and
/// with [`SupergraphError::Invalid`] when the derived schema does not validate (for example
/// because every `Query` field is `@inaccessible`).
pub fn api_schema(supergraph: &Schema) -> Result<Valid<Schema>, SupergraphError> {
    let machinery = LinkedSpecs::collect(supergraph)?;
    let mut schema = supergraph.clone();

    // Machinery goes first so that join/link types never count as "referenced" below.
    schema
        .types
        .retain(|name, ty| ty.is_built_in() || !machinery.is_spec_type(name));
    let inaccessible = InaccessibleSet::compute(&schema, &machinery);

    schema
        .types
        .retain(|name, ty| ty.is_built_in() || !inaccessible.types.contains(name));
    for ty in schema.types.values_mut() {
        if !ty.is_built_in() {
            prune_type(ty, &machinery, &inaccessible);
        }
    }

    schema.directive_definitions.retain(|name, def| {
        if BUILT_IN_DIRECTIVES.contains(&name.as_str()) {
            return true;
        }
        if machinery.is_spec_directive(name) {
            return false;
        }
        // Whether clients may use `@defer`/`@stream` depends on the gateway, not on whether some
        // subgraph happened to define them (Apollo drops them for the same reason).
        if name == "defer" || name == "stream" {
            return false;
        }
        // `@oneOf` is a type-system directive with meaning for clients, like `@deprecated`.
        if name == "oneOf" {
            return true;
        }
        def.locations.iter().any(|loc| is_executable_location(*loc))
    });
    for (name, def) in schema.directive_definitions.iter_mut() {
        if BUILT_IN_DIRECTIVES.contains(&name.as_str()) || name == "oneOf" {
            continue;
        }
        let def = def.make_mut();
        def.locations.retain(|loc| is_executable_location(*loc));
        prune_arguments(&mut def.arguments, &machinery, &inaccessible);
    }

    prune_schema_definition(
        schema.schema_definition.make_mut(),
        &inaccessible,
        &schema.types,
    )?;

    schema.validate().map_err(|with_errors| {
        SupergraphError::Invalid(format!(
            "derived API schema does not validate: {}",
            with_errors.errors
        ))
    })
}

/// Every name that belongs to a spec linked with `@link` in this supergraph.
#[derive(Debug, Default)]
struct LinkedSpecs {
    /// `namespace__` prefixes of linked specs (`join__`, `link__`, or the `as:` rename).
    prefixes: Vec<String>,
    /// Directives named exactly like a spec namespace (`@inaccessible`, `@tag`, `@link`) and
    /// directives brought in by `import:`, under their local names.
    directives: HashSet<Name>,
    /// Types brought in by `import:`, under their local names.
    types: HashSet<Name>,
    /// Local names of the `@inaccessible` directive (usually just `inaccessible`).
    inaccessible: HashSet<Name>,
}

impl LinkedSpecs {
    /// Reads every `@link` on the schema definition, bootstrapping the link directive's own
    /// name because the link spec itself may be renamed with `as:`.
    fn collect(schema: &Schema) -> Result<Self, SupergraphError> {
        let directives = &schema.schema_definition.directives;
        let link_directive = directives
            .iter()
            .find_map(|dir| {
                let link = LinkApplication::read(dir)?;
                (link.identity == LINK_SPEC && link.namespace == dir.name.as_str())
                    .then(|| dir.name.clone())
            })
            .ok_or_else(|| {
                SupergraphError::Unsupported(
                    "no `@link(url: \"https://specs.apollo.dev/link/v1.0\")` on the schema".into(),
                )
            })?;

        let mut specs = LinkedSpecs::default();
        for dir in directives.get_all(&link_directive) {
            let link = LinkApplication::read(dir).ok_or_else(|| {
                SupergraphError::Invalid(format!("`@{link_directive}` without a string `url:`"))
            })?;
            specs.add(link)?;
        }
        Ok(specs)
    }

    fn add(&mut self, link: LinkApplication) -> Result<(), SupergraphError> {
        let namespace = name(&link.namespace)?;
        // A spec's root directive (`@inaccessible`, `@tag`, `@link`) is named after the
        // namespace unless `import:` brings it in under its own (possibly renamed) local name.
        let root_directive = format!("@{}", link.identity);
        let root_imported = link.imports.iter().any(|i| i.original == root_directive);
        if !root_imported {
            if link.identity == INACCESSIBLE_SPEC {
                self.inaccessible.insert(namespace.clone());
            }
            self.directives.insert(namespace.clone());
        }
        for import in &link.imports {
            let local = name(import.local.trim_start_matches('@'))?;
            if import.original.starts_with('@') {
                if link.identity == INACCESSIBLE_SPEC && import.original == root_directive {
                    self.inaccessible.insert(local.clone());
                }
                self.directives.insert(local);
            } else {
                self.types.insert(local);
            }
        }
        self.prefixes.push(format!("{namespace}__"));
        Ok(())
    }

    fn has_spec_prefix(&self, name: &str) -> bool {
        self.prefixes.iter().any(|prefix| name.starts_with(prefix))
    }

    fn is_spec_type(&self, name: &str) -> bool {
        self.types.contains(name) || self.has_spec_prefix(name)
    }

    fn is_spec_directive(&self, name: &str) -> bool {
        self.directives.contains(name) || self.has_spec_prefix(name)
    }

    fn is_inaccessible(&self, directives: &[impl AsRef<apollo_compiler::ast::Directive>]) -> bool {
        directives
            .iter()
            .any(|dir| self.inaccessible.contains(dir.as_ref().name.as_str()))
    }
}

/// One `@link(url:, as:, import:)` application.
#[derive(Debug)]
struct LinkApplication {
    /// Spec name from the URL: `join` for `https://specs.apollo.dev/join/v0.3`.
    identity: String,
    /// Prefix the spec's elements carry here: `as:` if given, else the identity.
    namespace: String,
    imports: Vec<LinkImport>,
}

/// One entry of `import:`, e.g. `"@tag"` or `{ name: "@tag", as: "@mytag" }`.
#[derive(Debug)]
struct LinkImport {
    original: String,
    local: String,
}

impl LinkApplication {
    /// Reads a directive as a link application; `None` if it has no string `url:` argument.
    fn read(dir: &apollo_compiler::ast::Directive) -> Option<Self> {
        let url = dir.specified_argument_by_name("url")?.as_str()?;
        let identity = spec_identity(url)?;
        let namespace = dir
            .specified_argument_by_name("as")
            .and_then(|value| value.as_str())
            .map_or_else(
                || identity.clone(),
                |alias| alias.trim_start_matches('@').to_owned(),
            );
        let imports = match dir.specified_argument_by_name("import").map(|v| &**v) {
            Some(Value::List(items)) => items.iter().filter_map(|item| read_import(item)).collect(),
            _ => Vec::new(),
        };
        Some(Self {
            identity,
            namespace,
            imports,
        })
    }
}

fn read_import(item: &Value) -> Option<LinkImport> {
    match item {
        Value::String(original) => Some(LinkImport {
            original: original.clone(),
            local: original.clone(),
        }),
        Value::Object(fields) => {
            let field = |key: &str| {
                fields
                    .iter()
                    .find(|(name, _)| name == key)
                    .and_then(|(_, value)| value.as_str())
            };
            let original = field("name")?;
            Some(LinkImport {
                original: original.to_owned(),
                local: field("as").unwrap_or(original).to_owned(),
            })
        }
        _ => None,
    }
}

/// The spec name of a link URL: the path segment before the trailing `vX.Y` version segment
/// (or the last segment if the URL carries no version).
fn spec_identity(url: &str) -> Option<String> {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (_host, path) = without_scheme.split_once('/')?;
    let path = path.split(['?', '#']).next()?;
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let last = segments.next()?;
    let is_version = last.strip_prefix('v').is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
    });
    let identity = if is_version { segments.next()? } else { last };
    (!identity.is_empty()).then(|| identity.to_owned())
}

fn name(raw: &str) -> Result<Name, SupergraphError> {
    Name::new(raw).map_err(|err| SupergraphError::Invalid(format!("bad name in @link: {err}")))
}

/// Types removed from the API schema because they are `@inaccessible`, or because every one of
/// their fields / members / values is.
#[derive(Debug, Default)]
struct InaccessibleSet {
    types: HashSet<Name>,
}

impl InaccessibleSet {
    fn compute(schema: &Schema, specs: &LinkedSpecs) -> Self {
        let mut types: HashSet<Name> = schema
            .types
            .iter()
            .filter(|(_, ty)| !ty.is_built_in() && specs.is_inaccessible(&ty.directives().0))
            .map(|(name, _)| name.clone())
            .collect();
        // Removing a type can empty another (a field of the removed type goes), so iterate to a
        // fixed point; each round removes at least one type or stops.
        loop {
            let emptied: Vec<Name> = schema
                .types
                .iter()
                .filter(|(name, ty)| !ty.is_built_in() && !types.contains(*name))
                .filter(|(_, ty)| !has_visible_member(ty, specs, &types))
                .map(|(name, _)| name.clone())
                .collect();
            if emptied.is_empty() {
                break;
            }
            types.extend(emptied);
        }
        Self { types }
    }

    fn hides_type(&self, name: &str) -> bool {
        self.types.contains(name)
    }
}

/// Whether a composite, enum or input type still has something left after removal; scalars
/// always do.
fn has_visible_member(ty: &ExtendedType, specs: &LinkedSpecs, removed: &HashSet<Name>) -> bool {
    let field_visible = |directives: &apollo_compiler::ast::DirectiveList, ty_name: &Name| {
        !specs.is_inaccessible(&directives.0) && !removed.contains(ty_name)
    };
    match ty {
        ExtendedType::Scalar(_) => true,
        ExtendedType::Object(obj) => obj
            .fields
            .values()
            .any(|f| field_visible(&f.directives, f.ty.inner_named_type())),
        ExtendedType::Interface(iface) => iface
            .fields
            .values()
            .any(|f| field_visible(&f.directives, f.ty.inner_named_type())),
        ExtendedType::Union(union) => union.members.iter().any(|m| !removed.contains(&m.name)),
        ExtendedType::Enum(enm) => enm
            .values
            .values()
            .any(|v| !specs.is_inaccessible(&v.directives.0)),
        ExtendedType::InputObject(input) => input
            .fields
            .values()
            .any(|f| field_visible(&f.directives, f.ty.inner_named_type())),
    }
}

/// Removes inaccessible members and non-client directive applications from one kept type.
fn prune_type(ty: &mut ExtendedType, specs: &LinkedSpecs, hidden: &InaccessibleSet) {
    let keep_field = |directives: &apollo_compiler::ast::DirectiveList, ty_name: &Name| {
        !specs.is_inaccessible(&directives.0) && !hidden.hides_type(ty_name)
    };
    match ty {
        ExtendedType::Scalar(scalar) => {
            retain_client_directives(&mut scalar.make_mut().directives);
        }
        ExtendedType::Object(obj) => {
            let obj = obj.make_mut();
            retain_client_directives(&mut obj.directives);
            obj.implements_interfaces
                .retain(|iface| !hidden.hides_type(&iface.name));
            obj.fields
                .retain(|_, f| keep_field(&f.directives, f.ty.inner_named_type()));
            for field in obj.fields.values_mut() {
                let field = field.make_mut();
                retain_client_ast_directives(&mut field.directives);
                prune_arguments(&mut field.arguments, specs, hidden);
            }
        }
        ExtendedType::Interface(iface) => {
            let iface = iface.make_mut();
            retain_client_directives(&mut iface.directives);
            iface
                .implements_interfaces
                .retain(|other| !hidden.hides_type(&other.name));
            iface
                .fields
                .retain(|_, f| keep_field(&f.directives, f.ty.inner_named_type()));
            for field in iface.fields.values_mut() {
                let field = field.make_mut();
                retain_client_ast_directives(&mut field.directives);
                prune_arguments(&mut field.arguments, specs, hidden);
            }
        }
        ExtendedType::Union(union) => {
            let union = union.make_mut();
            retain_client_directives(&mut union.directives);
            union.members.retain(|m| !hidden.hides_type(&m.name));
        }
        ExtendedType::Enum(enm) => {
            let enm = enm.make_mut();
            retain_client_directives(&mut enm.directives);
            enm.values
                .retain(|_, v| !specs.is_inaccessible(&v.directives.0));
            for value in enm.values.values_mut() {
                retain_client_ast_directives(&mut value.make_mut().directives);
            }
        }
        ExtendedType::InputObject(input) => {
            let input = input.make_mut();
            retain_client_directives(&mut input.directives);
            input
                .fields
                .retain(|_, f| keep_field(&f.directives, f.ty.inner_named_type()));
            for field in input.fields.values_mut() {
                retain_client_ast_directives(&mut field.make_mut().directives);
            }
        }
    }
}

/// Drops inaccessible arguments and those whose type is gone.
fn prune_arguments(
    arguments: &mut Vec<Node<InputValueDefinition>>,
    specs: &LinkedSpecs,
    hidden: &InaccessibleSet,
) {
    arguments.retain(|arg| {
        !specs.is_inaccessible(&arg.directives.0) && !hidden.hides_type(arg.ty.inner_named_type())
    });
    for arg in arguments.iter_mut() {
        retain_client_ast_directives(&mut arg.make_mut().directives);
    }
}

fn retain_client_directives(directives: &mut DirectiveList) {
    directives.retain(|dir| KEPT_TYPE_SYSTEM_DIRECTIVES.contains(&dir.name.as_str()));
}

fn retain_client_ast_directives(directives: &mut apollo_compiler::ast::DirectiveList) {
    directives.retain(|dir| KEPT_TYPE_SYSTEM_DIRECTIVES.contains(&dir.name.as_str()));
}

/// Removes `@link`s and other schema directives, and root operations whose type is gone.
fn prune_schema_definition(
    def: &mut SchemaDefinition,
    hidden: &InaccessibleSet,
    types: &apollo_compiler::collections::IndexMap<Name, ExtendedType>,
) -> Result<(), SupergraphError> {
    retain_client_directives(&mut def.directives);
    let gone = |root: &Option<ComponentName>| {
        root.as_ref()
            .is_some_and(|r| hidden.hides_type(&r.name) || !types.contains_key(&r.name))
    };
    if gone(&def.query) {
        return Err(SupergraphError::Invalid(
            "the query root type is entirely @inaccessible".into(),
        ));
    }
    if gone(&def.mutation) {
        def.mutation = None;
    }
    if gone(&def.subscription) {
        def.subscription = None;
    }
    Ok(())
}

fn is_executable_location(location: DirectiveLocation) -> bool {
    matches!(
        location,
        DirectiveLocation::Query
            | DirectiveLocation::Mutation
            | DirectiveLocation::Subscription
            | DirectiveLocation::Field
            | DirectiveLocation::FragmentDefinition
            | DirectiveLocation::FragmentSpread
            | DirectiveLocation::InlineFragment
            | DirectiveLocation::VariableDefinition
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Link/join/inaccessible/tag machinery as Apollo composition prints it for join v0.3.
    const V03_HEADER: &str = r#"
schema
  @link(url: "https://specs.apollo.dev/link/v1.0")
  @link(url: "https://specs.apollo.dev/join/v0.3", for: EXECUTION)
  @link(url: "https://specs.apollo.dev/inaccessible/v0.2", for: SECURITY)
  @link(url: "https://specs.apollo.dev/tag/v0.3")
{
  query: Query
  mutation: Mutation
}

directive @inaccessible on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION
directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
directive @tag(name: String!) repeatable on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION | SCHEMA

scalar join__FieldSet
scalar link__Import

enum join__Graph {
  ACCOUNTS @join__graph(name: "accounts", url: "http://localhost:4001")
  PRODUCTS @join__graph(name: "products", url: "http://localhost:4002")
}

enum link__Purpose {
  SECURITY
  EXECUTION
}
"#;

    fn derive(sdl: &str) -> Valid<Schema> {
        let supergraph = Schema::parse(sdl, "supergraph.graphql").expect("supergraph parses");
        let api = api_schema(&supergraph).unwrap_or_else(|err| panic!("api schema: {err}"));
        dump(sdl, &api);
        api
    }

    /// Writes a supergraph and its API schema for diffing against another implementation.
    fn dump(supergraph: &str, api: &Schema) {
        if let Some(dir) = std::env::var_os("SWITCHYARD_API_SCHEMA_DUMP_DIR") {
            let name = std::thread::current()
                .name()
                .unwrap_or("test")
                .replace("::", "_");
            let dir = std::path::Path::new(&dir);
            std::fs::write(dir.join(format!("{name}.supergraph.graphql")), supergraph)
                .expect("dump dir is writable");
            std::fs::write(dir.join(format!("{name}.api.graphql")), api.to_string())
                .expect("dump dir is writable");
        }
    }

    fn type_names(schema: &Schema) -> Vec<&str> {
        schema
            .types
            .iter()
            .filter(|(_, ty)| !ty.is_built_in())
            .map(|(name, _)| name.as_str())
            .collect()
    }

    fn directive_names(schema: &Schema) -> Vec<&str> {
        let mut names: Vec<&str> = schema
            .directive_definitions
            .keys()
            .map(|name| name.as_str())
            .filter(|name| !BUILT_IN_DIRECTIVES.contains(name))
            .collect();
        names.sort_unstable();
        names
    }

    fn field_names<'a>(schema: &'a Schema, ty: &str) -> Vec<&'a str> {
        match &schema.types[ty] {
            ExtendedType::Object(obj) => obj.fields.keys().map(|n| n.as_str()).collect(),
            ExtendedType::Interface(iface) => iface.fields.keys().map(|n| n.as_str()).collect(),
            ExtendedType::InputObject(input) => input.fields.keys().map(|n| n.as_str()).collect(),
            other => panic!("{ty} has no fields: {other:?}"),
        }
    }

    #[test]
    fn v03_strips_join_link_and_tag_machinery() {
        let sdl = format!(
            "{V03_HEADER}{}",
            r#"
directive @lowercase on FIELD
directive @defer(label: String, if: Boolean! = true) on FRAGMENT_SPREAD | INLINE_FRAGMENT
directive @cacheControl(maxAge: Int) on FIELD_DEFINITION | OBJECT
directive @mixed(reason: String) on FIELD | FIELD_DEFINITION

type Query @join__type(graph: ACCOUNTS) @join__type(graph: PRODUCTS) {
  me: User @join__field(graph: ACCOUNTS) @tag(name: "public") @cacheControl(maxAge: 5)
  topProducts(first: Int = 5 @tag(name: "arg")): [Product] @join__field(graph: PRODUCTS) @mixed(reason: "x")
  legacy: String @join__field(graph: ACCOUNTS) @deprecated(reason: "use me")
}

type Mutation @join__type(graph: ACCOUNTS) {
  login(name: String!): User @join__field(graph: ACCOUNTS)
}

type User @join__type(graph: ACCOUNTS, key: "id") @join__type(graph: PRODUCTS, key: "id", extension: true) @tag(name: "user") {
  id: ID!
  name: String @join__field(graph: ACCOUNTS)
}

type Product @join__type(graph: PRODUCTS, key: "upc") @cacheControl(maxAge: 60) {
  upc: String!
  createdAt: DateTime
}

scalar DateTime @join__type(graph: PRODUCTS) @specifiedBy(url: "https://tools.ietf.org/html/rfc3339")
"#
        );
        let api = derive(&sdl);
        assert_eq!(
            type_names(&api),
            ["Query", "Mutation", "User", "Product", "DateTime"]
        );
        // Executable custom directives survive, restricted to executable locations.
        assert_eq!(directive_names(&api), ["lowercase", "mixed"]);
        assert_eq!(
            api.directive_definitions["mixed"].locations,
            [DirectiveLocation::Field]
        );
        let printed = api.to_string();
        for gone in [
            "@join__",
            "@link",
            "@tag",
            "@cacheControl",
            "join__",
            "link__",
        ] {
            assert!(!printed.contains(gone), "{gone} left in:\n{printed}");
        }
        assert!(printed.contains("@deprecated(reason: \"use me\")"));
        assert!(printed.contains("@specifiedBy(url: \"https://tools.ietf.org/html/rfc3339\")"));
        // Type-system applications of the mixed directive go: its definition lost those locations.
        assert!(!printed.contains("@mixed(reason: \"x\")"), "{printed}");
        assert_eq!(
            api.schema_definition
                .mutation
                .as_ref()
                .map(|m| m.name.as_str()),
            Some("Mutation")
        );
        assert!(api.schema_definition.directives.is_empty());
    }

    #[test]
    fn inaccessible_removes_every_element_kind() {
        let sdl = format!(
            "{V03_HEADER}{}",
            r#"
type Query @join__type(graph: ACCOUNTS) {
  node(id: ID!): Node
  search(text: String, internalFlag: Boolean @inaccessible, filter: SecretFilter): [SearchResult]
  secret: Secret @inaccessible
  color(preferred: Color = RED): Color
  shape: Shape
  audit: AuditLog
  score(kind: InternalScalar): Int
  hiddenField: String @inaccessible
}

type Mutation @join__type(graph: ACCOUNTS) {
  resetEverything: Boolean @inaccessible
}

interface Node @join__type(graph: ACCOUNTS) {
  id: ID!
}

interface Internal @join__type(graph: ACCOUNTS) @inaccessible {
  debug: String
}

type User implements Node & Internal @join__implements(graph: ACCOUNTS, interface: "Node") @join__type(graph: ACCOUNTS) {
  id: ID!
  name: String
  debug: String @inaccessible
}

type Secret @join__type(graph: ACCOUNTS) @inaccessible {
  code: String
}

type Bot @join__type(graph: ACCOUNTS) @inaccessible {
  id: ID!
}

union SearchResult @join__type(graph: ACCOUNTS) @join__unionMember(graph: ACCOUNTS, member: "User") @join__unionMember(graph: ACCOUNTS, member: "Bot") = User | Bot

"everything in it is inaccessible, so the type goes and so does Query.audit"
type AuditLog @join__type(graph: ACCOUNTS) {
  entries: [String] @inaccessible
}

enum Color @join__type(graph: ACCOUNTS) {
  RED
  GREEN @inaccessible
  BLUE @join__enumValue(graph: ACCOUNTS)
}

enum Shape @join__type(graph: ACCOUNTS) {
  HIDDEN_A @inaccessible
  HIDDEN_B @inaccessible
}

input SecretFilter @join__type(graph: ACCOUNTS) @inaccessible {
  level: Int
}

input PublicFilter @join__type(graph: ACCOUNTS) {
  term: String
  internalOnly: Boolean @inaccessible
}

scalar InternalScalar @join__type(graph: ACCOUNTS) @inaccessible
"#
        );
        let api = derive(&sdl);
        assert_eq!(
            type_names(&api),
            [
                "Query",
                "Node",
                "User",
                "SearchResult",
                "Color",
                "PublicFilter"
            ]
        );
        assert_eq!(
            field_names(&api, "Query"),
            ["node", "search", "color", "score"],
            "fields of removed types and @inaccessible fields go"
        );
        let ExtendedType::Object(query) = &api.types["Query"] else {
            panic!("Query is an object")
        };
        assert!(
            query.fields["score"].arguments.is_empty(),
            "an argument of a removed type goes, its field stays"
        );
        let args: Vec<&str> = query.fields["search"]
            .arguments
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(args, ["text"]);
        let ExtendedType::Object(user) = &api.types["User"] else {
            panic!("User is an object")
        };
        let interfaces: Vec<&str> = user
            .implements_interfaces
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(interfaces, ["Node"]);
        assert_eq!(field_names(&api, "User"), ["id", "name"]);
        let ExtendedType::Union(union) = &api.types["SearchResult"] else {
            panic!("SearchResult is a union")
        };
        let members: Vec<&str> = union.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(members, ["User"]);
        let ExtendedType::Enum(color) = &api.types["Color"] else {
            panic!("Color is an enum")
        };
        let values: Vec<&str> = color.values.keys().map(|v| v.as_str()).collect();
        assert_eq!(values, ["RED", "BLUE"]);
        assert_eq!(field_names(&api, "PublicFilter"), ["term"]);
        // Every Mutation field is inaccessible: the root goes with its type.
        assert!(api.schema_definition.mutation.is_none());
        assert!(!api.types.contains_key("Mutation"));
        let printed = api.to_string();
        assert!(!printed.contains("inaccessible"), "{printed}");
    }

    #[test]
    fn v05_join_directive_and_other_linked_specs_are_removed() {
        let sdl = r#"
schema
  @link(url: "https://specs.apollo.dev/link/v1.0")
  @link(url: "https://specs.apollo.dev/join/v0.5", for: EXECUTION)
  @link(url: "https://specs.apollo.dev/cost/v0.1", import: ["@cost", "@listSize"])
  @link(url: "https://specs.apollo.dev/context/v0.1", for: SECURITY)
  @join__directive(graphs: [REVIEWS], name: "link", args: {url: "https://specs.apollo.dev/connect/v0.1"})
{
  query: Query
}

directive @cost(weight: Int!) on ARGUMENT_DEFINITION | ENUM | FIELD_DEFINITION | INPUT_FIELD_DEFINITION | OBJECT | SCALAR
directive @listSize(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION
directive @context(name: String!) repeatable on INTERFACE | OBJECT | UNION
directive @context__fromContext(field: context__ContextFieldValue) on ARGUMENT_DEFINITION
directive @join__directive(graphs: [join__Graph!], name: String!, args: join__DirectiveArguments) repeatable on SCHEMA | OBJECT | INTERFACE | FIELD_DEFINITION
directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean, overrideLabel: String, contextArguments: [join__ContextArgument!]) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA

scalar context__ContextFieldValue
input join__ContextArgument { name: String!, type: String!, context: String!, selection: join__FieldValue! }
scalar join__DirectiveArguments
scalar join__FieldSet
scalar join__FieldValue
scalar link__Import

enum join__Graph {
  REVIEWS @join__graph(name: "reviews", url: "http://localhost:4003")
}

enum link__Purpose { SECURITY EXECUTION }

type Query @join__type(graph: REVIEWS) {
  reviews(first: Int @cost(weight: 2)): [Review] @join__field(graph: REVIEWS) @listSize(slicingArguments: ["first"]) @join__directive(graphs: [REVIEWS], name: "connect", args: {http: {GET: "/reviews"}})
}

type Review @join__type(graph: REVIEWS, key: "id") @context(name: "review") @cost(weight: 3) {
  id: ID!
  body(format: String @context__fromContext(field: "$review { id }")): String
}
"#;
        let api = derive(sdl);
        assert_eq!(type_names(&api), ["Query", "Review"]);
        assert!(directive_names(&api).is_empty());
        let printed = api.to_string();
        for gone in ["@cost", "@listSize", "@context", "join__", "@link"] {
            assert!(!printed.contains(gone), "{gone} left in:\n{printed}");
        }
    }

    #[test]
    fn renamed_and_imported_spec_names_are_honoured() {
        let sdl = r#"
schema
  @core(url: "https://specs.apollo.dev/link/v1.0", as: "core", import: [{name: "Purpose", as: "CorePurpose"}])
  @core(url: "https://specs.apollo.dev/join/v0.3", as: "fed", for: EXECUTION)
  @core(url: "https://specs.apollo.dev/inaccessible/v0.2", import: [{name: "@inaccessible", as: "@private"}])
  @core(url: "https://specs.apollo.dev/tag/v0.3", as: "label")
{
  query: Query
}

directive @core(url: String, as: String, for: CorePurpose, import: [core__Import]) repeatable on SCHEMA
directive @fed__type(graph: fed__Graph!, key: fed__FieldSet) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @fed__field(graph: fed__Graph) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @fed__graph(name: String!, url: String!) on ENUM_VALUE
directive @private on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION
directive @label(name: String!) repeatable on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION
"a user directive that happens to be called like the default name of the renamed spec"
directive @inaccessible on FIELD

scalar fed__FieldSet
scalar core__Import
enum CorePurpose { SECURITY EXECUTION }
enum fed__Graph { A @fed__graph(name: "a", url: "http://a") }

type Query @fed__type(graph: A) {
  visible: String @fed__field(graph: A) @label(name: "public")
  hidden: String @private
  alsoVisible(arg: Int @private, other: Int): Int
}
"#;
        let api = derive(sdl);
        assert_eq!(type_names(&api), ["Query"]);
        assert_eq!(field_names(&api, "Query"), ["visible", "alsoVisible"]);
        // The unlinked user `@inaccessible` is an executable directive: it stays.
        assert_eq!(directive_names(&api), ["inaccessible"]);
        let printed = api.to_string();
        for gone in [
            "@core",
            "fed__",
            "@label",
            "@private",
            "CorePurpose",
            "core__",
        ] {
            assert!(!printed.contains(gone), "{gone} left in:\n{printed}");
        }
        assert!(
            printed.contains("alsoVisible(other: Int): Int"),
            "{printed}"
        );
    }

    #[test]
    fn missing_link_spec_is_unsupported() {
        let schema = Schema::parse("type Query { a: Int }", "plain.graphql").expect("parses");
        let err = api_schema(&schema).expect_err("no @link");
        assert!(matches!(err, SupergraphError::Unsupported(_)), "{err}");
    }

    #[test]
    fn fully_inaccessible_query_is_invalid() {
        let sdl = format!(
            "{V03_HEADER}{}",
            r#"
type Query @join__type(graph: ACCOUNTS) {
  a: Int @inaccessible
}
type Mutation @join__type(graph: ACCOUNTS) {
  b: Int
}
"#
        );
        let supergraph = Schema::parse(sdl, "supergraph.graphql").expect("parses");
        let err = api_schema(&supergraph).expect_err("empty Query");
        assert!(matches!(err, SupergraphError::Invalid(_)), "{err}");
    }

    /// Every supergraph the project ships (federation test cases, the demo) must yield a valid
    /// API schema with no federation machinery left.
    #[test]
    fn every_project_supergraph_yields_a_clean_api_schema() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut supergraphs: Vec<(String, String)> = Vec::new();
        for extra in [
            "schema/demo/supergraph.graphql",
            "gateway/tests/federation/cases/shared/shop.graphql",
        ] {
            if let Ok(sdl) = std::fs::read_to_string(root.join(extra)) {
                supergraphs.push((extra.to_owned(), sdl));
            }
        }
        let cases = root.join("gateway/tests/federation/cases");
        for entry in std::fs::read_dir(&cases).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "case") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable case");
            let mut section = "";
            let mut sdl = String::new();
            for line in text.lines() {
                if let Some(header) = line.strip_prefix("=== ") {
                    section = header.trim();
                    continue;
                }
                if section == "supergraph" {
                    sdl.push_str(line);
                    sdl.push('\n');
                }
            }
            if !sdl.is_empty() {
                supergraphs.push((path.display().to_string(), sdl));
            }
        }
        let mut failures = Vec::new();
        for (name, sdl) in &supergraphs {
            let supergraph = match Schema::parse(sdl, name) {
                Ok(schema) => schema,
                Err(err) => {
                    failures.push(format!("{name}: does not parse: {}", err.errors));
                    continue;
                }
            };
            match api_schema(&supergraph) {
                Ok(api) => {
                    let printed = api.to_string();
                    // For diffing against another implementation (e.g. Apollo's `toAPISchema`).
                    if let Some(dir) = std::env::var_os("SWITCHYARD_API_SCHEMA_DUMP_DIR") {
                        let file = name.replace(['/', '.'], "_") + ".api.graphql";
                        std::fs::write(std::path::Path::new(&dir).join(file), &printed)
                            .expect("dump dir is writable");
                    }
                    for machinery in ["join__", "link__", "@link", "@inaccessible", "@tag"] {
                        if printed.contains(machinery) {
                            failures.push(format!("{name}: {machinery} left"));
                        }
                    }
                }
                Err(err) => failures.push(format!("{name}: {err}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        eprintln!("checked {} supergraphs", supergraphs.len());
    }

    #[test]
    fn spec_identity_reads_name_before_version() {
        assert_eq!(
            spec_identity("https://specs.apollo.dev/join/v0.5").as_deref(),
            Some("join")
        );
        assert_eq!(
            spec_identity("https://specs.apollo.dev/inaccessible/v0.2/").as_deref(),
            Some("inaccessible")
        );
        assert_eq!(
            spec_identity("https://example.com/specs/myDirective/v1.0?x=1").as_deref(),
            Some("myDirective")
        );
        assert_eq!(
            spec_identity("https://example.com/unversioned").as_deref(),
            Some("unversioned")
        );
        assert_eq!(spec_identity("https://specs.apollo.dev/v1.0"), None);
    }
}
