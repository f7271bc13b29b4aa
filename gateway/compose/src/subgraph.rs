//! Subgraph SDL -> a small owned model with federation directives resolved to canonical names.
//!
//! Federation 2 subgraphs name directives through `@link(url: ".../federation/v2.x", import: [...])`
//! (with optional renames and a namespace for non-imported ones); Federation 1 subgraphs have no
//! `@link` and use the bare names. Everything downstream works with canonical names only.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use apollo_compiler::ast::{self, Definition, DirectiveList, Type, Value};
use apollo_compiler::Node;
use indexmap::IndexMap;

use crate::error::CompositionError;

/// Highest `federation/v2.x` minor version this composer understands.
pub const MAX_FEDERATION_MINOR: u32 = 11;

/// One subgraph as given to the composer: name, routing URL and SDL.
#[derive(Debug, Clone)]
pub struct SubgraphSource {
    /// Subgraph name (becomes `join__Graph` value and `@join__graph(name:)`).
    pub name: String,
    /// Routing URL written into `@join__graph(url:)`.
    pub url: String,
    /// The subgraph's SDL.
    pub sdl: String,
    /// File the SDL was read from, for error locations.
    pub file: Option<PathBuf>,
}

impl SubgraphSource {
    /// A subgraph from in-memory SDL.
    pub fn new(name: impl Into<String>, url: impl Into<String>, sdl: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            sdl: sdl.into(),
            file: None,
        }
    }
}

/// GraphQL type kinds as far as composition cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `scalar`
    Scalar,
    /// `type`
    Object,
    /// `interface`
    Interface,
    /// `union`
    Union,
    /// `enum`
    Enum,
    /// `input`
    Input,
}

impl Kind {
    /// Keyword-ish name for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Scalar => "ScalarType",
            Kind::Object => "ObjectType",
            Kind::Interface => "InterfaceType",
            Kind::Union => "UnionType",
            Kind::Enum => "EnumType",
            Kind::Input => "InputObjectType",
        }
    }
}

/// A `@key` application.
#[derive(Debug, Clone)]
pub struct Key {
    pub fields: String,
    /// Written on an `extend type` block (or the type has `@extends`).
    pub extension: bool,
    pub resolvable: bool,
    pub line: Option<usize>,
}

/// Directive metadata shared by every schema element.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub inaccessible: bool,
    pub tags: Vec<String>,
    /// `Some(reason)` when `@deprecated`.
    pub deprecated: Option<String>,
    /// `@authenticated`.
    pub authenticated: bool,
    /// `@requiresScopes(scopes:)`: alternatives (OR) of scope sets (AND).
    pub scopes: Option<Vec<Vec<String>>>,
    /// `@policy(policies:)`: alternatives (OR) of policy sets (AND).
    pub policies: Option<Vec<Vec<String>>>,
    /// `@cost(weight:)` (demand control, federation v2.9).
    pub cost: Option<i64>,
    /// `@listSize(...)` (demand control, federation v2.9).
    pub list_size: Option<ListSize>,
}

/// `@listSize` arguments; `None` where the subgraph left one out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListSize {
    pub assumed_size: Option<i64>,
    pub slicing_arguments: Option<Vec<String>>,
    pub sized_fields: Option<Vec<String>>,
    pub require_one_slicing_argument: Option<bool>,
}

impl ListSize {
    fn of(d: &ast::Directive) -> Self {
        let strings = |name: &str| {
            d.specified_argument_by_name(name)
                .and_then(|v| v.as_list())
                .map(|l| {
                    l.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
        };
        ListSize {
            assumed_size: int_arg(d, "assumedSize"),
            slicing_arguments: strings("slicingArguments"),
            sized_fields: strings("sizedFields"),
            require_one_slicing_argument: d
                .specified_argument_by_name("requireOneSlicingArgument")
                .and_then(|v| v.to_bool()),
        }
    }
}

fn int_arg(d: &ast::Directive, name: &str) -> Option<i64> {
    match d.specified_argument_by_name(name).map(|v| &**v) {
        Some(Value::Int(i)) => i.try_to_i32().ok().map(i64::from),
        _ => None,
    }
}

fn string_matrix(v: Option<&Node<Value>>) -> Vec<Vec<String>> {
    v.and_then(|v| v.as_list())
        .map(|outer| {
            outer
                .iter()
                .map(|inner| {
                    inner
                        .as_list()
                        .map(|l| {
                            l.iter()
                                .filter_map(|s| s.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An argument or input field.
#[derive(Debug, Clone)]
pub struct InputValue {
    pub name: String,
    pub description: Option<String>,
    pub ty: Type,
    pub default: Option<String>,
    pub meta: Meta,
    pub line: Option<usize>,
}

/// A field of an object or interface type.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub description: Option<String>,
    pub ty: Type,
    pub args: IndexMap<String, InputValue>,
    pub external: bool,
    pub shareable: bool,
    /// `@shareable` written on this field itself (not inherited), for misuse checks.
    pub shareable_explicit: bool,
    pub requires: Option<String>,
    pub provides: Option<String>,
    pub override_from: Option<String>,
    pub override_label: Option<String>,
    pub meta: Meta,
    pub line: Option<usize>,
}

/// An enum value.
#[derive(Debug, Clone)]
pub struct EnumValue {
    pub name: String,
    pub description: Option<String>,
    pub meta: Meta,
}

/// A named type in one subgraph.
#[derive(Debug, Clone)]
pub struct TypeDef {
    pub name: String,
    pub kind: Kind,
    pub description: Option<String>,
    pub line: Option<usize>,
    /// Marked `@extends`.
    pub extension: bool,
    pub keys: Vec<Key>,
    pub interface_object: bool,
    pub meta: Meta,
    pub implements: Vec<String>,
    pub fields: IndexMap<String, Field>,
    pub input_fields: IndexMap<String, InputValue>,
    pub members: Vec<String>,
    pub values: IndexMap<String, EnumValue>,
    pub specified_by: Option<String>,
    has_definition: bool,
}

impl TypeDef {
    /// Whether this type is an entity here (has at least one `@key`).
    pub fn is_entity(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// An executable directive definition (`directive @x on FIELD`) that may be merged.
#[derive(Debug, Clone)]
pub struct DirectiveDef {
    pub name: String,
    pub description: Option<String>,
    pub args: Vec<InputValue>,
    pub repeatable: bool,
    pub locations: Vec<String>,
}

/// A parsed subgraph.
#[derive(Debug, Clone)]
pub struct Subgraph {
    pub name: String,
    pub url: String,
    pub file: Option<PathBuf>,
    /// Uses Federation 2 (`@link` to the federation spec).
    pub fed2: bool,
    pub types: IndexMap<String, TypeDef>,
    pub directives: Vec<DirectiveDef>,
}

const FED_DIRECTIVES: &[&str] = &[
    "key",
    "requires",
    "provides",
    "external",
    "shareable",
    "extends",
    "override",
    "inaccessible",
    "tag",
    "interfaceObject",
    "composeDirective",
    "authenticated",
    "requiresScopes",
    "policy",
    "context",
    "fromContext",
    "cost",
    "listSize",
];

const BUILTIN_SCALARS: &[&str] = &["String", "Int", "Float", "Boolean", "ID"];

const EXECUTABLE_LOCATIONS: &[&str] = &[
    "QUERY",
    "MUTATION",
    "SUBSCRIPTION",
    "FIELD",
    "FRAGMENT_DEFINITION",
    "FRAGMENT_SPREAD",
    "INLINE_FRAGMENT",
    "VARIABLE_DEFINITION",
];

struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines(starts)
    }

    fn of<T>(&self, node: &Node<T>) -> Option<usize> {
        let off = node.location()?.offset();
        Some(match self.0.binary_search(&off) {
            Ok(i) => i + 1,
            Err(i) => i,
        })
    }
}

/// Resolves local directive names to canonical federation names for one subgraph.
struct Names {
    local_to_canonical: HashMap<String, &'static str>,
}

impl Names {
    fn canonical(&self, local: &str) -> Option<&'static str> {
        self.local_to_canonical.get(local).copied()
    }
}

fn is_federation_type(name: &str, fieldset_is_federation: bool) -> bool {
    matches!(
        name,
        "_Service" | "_Entity" | "_Any" | "_FieldSet" | "federation__Scope"
    ) || (name == "FieldSet" && fieldset_is_federation)
        || name.starts_with("link__")
        || name.starts_with("federation__")
        || name.starts_with("join__")
}

fn collect_field_directives<'d>(
    fields: &'d [Node<ast::FieldDefinition>],
    all: &mut Vec<&'d Node<ast::Directive>>,
) {
    for f in fields {
        all.extend(f.directives.iter());
        for a in &f.arguments {
            all.extend(a.directives.iter());
        }
    }
}

fn string_arg(d: &ast::Directive, name: &str) -> Option<String> {
    d.specified_argument_by_name(name)
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

fn description(d: &Option<Node<str>>) -> Option<String> {
    d.as_ref().map(|s| s.to_string())
}

/// Parses a subgraph SDL into the composition model; errors use Apollo codes.
///
/// Phases, each a function below: read the `@link`s (they decide what every directive name
/// means), refuse unknown directives, read root-type renames, build the types, then the checks
/// and Federation 1 upgrades that need every type.
pub fn parse(src: &SubgraphSource) -> Result<Subgraph, Vec<CompositionError>> {
    let lines = Lines::new(&src.sdl);
    let doc = parse_document(src)?;
    let mut errors = Vec::new();
    let links = read_links(src, &lines, &doc, &mut errors);
    check_directives_known(src, &lines, &doc, &links, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let renames = root_renames(&doc);
    check_root_clashes(src, &lines, &doc, &renames, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let fed2 = links.fed2;
    let mut builder = TypesBuilder {
        cx: Cx {
            src,
            lines,
            links,
            renames,
        },
        types: IndexMap::new(),
        directives: Vec::new(),
        errors,
    };
    for def in &doc.definitions {
        builder.definition(def);
    }
    let TypesBuilder {
        cx,
        mut types,
        directives,
        mut errors,
    } = builder;
    finish_types(&mut types, fed2);
    check_type_references(&cx, &types, &mut errors);
    if !fed2 {
        upgrade_fed1(&mut types);
    }
    if errors.is_empty() {
        Ok(Subgraph {
            name: src.name.clone(),
            url: src.url.clone(),
            file: src.file.clone(),
            fed2,
            types,
            directives,
        })
    } else {
        Err(errors)
    }
}

/// An error located in this subgraph (and its file, when it came from one).
fn subgraph_error(src: &SubgraphSource, code: &'static str, msg: String) -> CompositionError {
    let mut e = CompositionError::new(code, msg).in_subgraph(&src.name);
    e.file = src.file.clone();
    e
}

fn parse_document(src: &SubgraphSource) -> Result<ast::Document, Vec<CompositionError>> {
    let path = src
        .file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| format!("{}.graphql", src.name));
    ast::Document::parse(src.sdl.as_str(), &path).map_err(|with| {
        with.errors
            .iter()
            .map(|d| {
                subgraph_error(src, "INVALID_GRAPHQL", d.error.to_string())
                    .line(d.line_column_range().map(|r| r.start.line))
            })
            .collect()
    })
}

/// What the subgraph's `@link`s to the federation spec decide.
struct Links {
    /// Uses Federation 2 (a valid `@link` to the federation spec).
    fed2: bool,
    names: Names,
    /// Every local name a federation directive gets through a link, imported or namespaced.
    link_locals: HashSet<String>,
    /// `FieldSet` is the federation type (Fed 1, or imported), not one the subgraph owns.
    fieldset_is_federation: bool,
}

fn read_links(
    src: &SubgraphSource,
    lines: &Lines,
    doc: &ast::Document,
    errors: &mut Vec<CompositionError>,
) -> Links {
    let mut fed2 = false;
    let mut names = Names {
        local_to_canonical: HashMap::new(),
    };
    let mut link_locals: HashSet<String> = HashSet::new();
    // Fed 2 subgraphs own a `FieldSet` type unless they import the federation one.
    let mut fieldset_imported = false;
    for def in &doc.definitions {
        let dirs = match def {
            Definition::SchemaDefinition(s) => &s.directives,
            Definition::SchemaExtension(s) => &s.directives,
            _ => continue,
        };
        for d in dirs.iter().filter(|d| d.name == "link") {
            let Some(url) = string_arg(d, "url") else {
                continue;
            };
            let Some(pos) = url.find("/federation/v") else {
                continue;
            };
            let version = &url[pos + "/federation/v".len()..];
            let (major, minor) = version.split_once('.').unwrap_or((version, "0"));
            let ok = major == "2"
                && minor
                    .parse::<u32>()
                    .is_ok_and(|m| m <= MAX_FEDERATION_MINOR);
            if !ok {
                errors.push(
                    subgraph_error(
                        src,
                        "UNKNOWN_FEDERATION_LINK_VERSION",
                        format!("Invalid version v{version} for the federation feature in @link direction on schema"),
                    )
                    .line(lines.of(d)),
                );
                continue;
            }
            fed2 = true;
            let prefix = string_arg(d, "as").unwrap_or_else(|| "federation".into());
            let imported = link_imports(d, &mut fieldset_imported);
            for canonical in FED_DIRECTIVES {
                let local = imported
                    .get(*canonical)
                    .cloned()
                    .unwrap_or_else(|| format!("{prefix}__{canonical}"));
                link_locals.insert(local.clone());
                names.local_to_canonical.insert(local, canonical);
            }
        }
    }
    if !fed2 {
        for canonical in FED_DIRECTIVES {
            names
                .local_to_canonical
                .insert(canonical.to_string(), canonical);
        }
    }
    Links {
        fed2,
        names,
        link_locals,
        fieldset_is_federation: !fed2 || fieldset_imported,
    }
}

/// One `@link`'s `import:` list as canonical name -> local name (both without `@`).
fn link_imports(link: &ast::Directive, fieldset_imported: &mut bool) -> HashMap<String, String> {
    let mut imported: HashMap<String, String> = HashMap::new();
    let Some(list) = link
        .specified_argument_by_name("import")
        .and_then(|v| v.as_list())
    else {
        return imported;
    };
    for item in list {
        match item.as_ref() {
            Value::String(s) if s.as_str() == "FieldSet" => *fieldset_imported = true,
            Value::String(s) => {
                imported.insert(
                    s.trim_start_matches('@').into(),
                    s.trim_start_matches('@').into(),
                );
            }
            Value::Object(fields) => {
                let get = |k: &str| {
                    fields
                        .iter()
                        .find(|(n, _)| n == k)
                        .and_then(|(_, v)| v.as_str())
                        .map(|s| s.trim_start_matches('@').to_string())
                };
                if let Some(n) = get("name") {
                    let alias = get("as").unwrap_or_else(|| n.clone());
                    imported.insert(n, alias);
                }
            }
            _ => {}
        }
    }
    imported
}

/// Every applied directive must be defined, built in, or a federation directive as linked.
fn check_directives_known(
    src: &SubgraphSource,
    lines: &Lines,
    doc: &ast::Document,
    links: &Links,
    errors: &mut Vec<CompositionError>,
) {
    let defined: HashSet<&str> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::DirectiveDefinition(d) => Some(d.name.as_str()),
            _ => None,
        })
        .collect();
    for def in &doc.definitions {
        for d in applied_directives(def) {
            let n = d.name.as_str();
            let builtin = matches!(
                n,
                "deprecated"
                    | "specifiedBy"
                    | "skip"
                    | "include"
                    | "oneOf"
                    | "defer"
                    | "stream"
                    | "link"
            );
            let canonical = links.names.canonical(n);
            if let Some(feature @ ("context" | "fromContext")) = canonical {
                // Dropping it would hand the argument to clients and never fill it from the
                // context: a supergraph that composes but answers wrongly.
                errors.push(
                    subgraph_error(
                        src,
                        "UNSUPPORTED_FEATURE",
                        format!(
                            "Directive \"@{n}\" (federation @{feature}) is not supported by Switchyard's composer and gateway yet: pass the value as an ordinary argument or through @requires."
                        ),
                    )
                    .line(lines.of(d)),
                );
                continue;
            }
            if builtin || defined.contains(n) || canonical.is_some() {
                continue;
            }
            let mut msg = format!("Unknown directive \"@{n}\".");
            if links.fed2 && FED_DIRECTIVES.contains(&n) {
                msg = format!("Unknown directive \"@{n}\". If you meant the \"@{n}\" federation directive, you should use fully-qualified name \"@federation__{n}\" or add \"@{n}\" to the `import` argument of the @link to the federation specification.");
            }
            errors.push(subgraph_error(src, "INVALID_GRAPHQL", msg).line(lines.of(d)));
        }
    }
}

/// Every directive applied in one definition: on it, its fields, arguments and values.
fn applied_directives(def: &Definition) -> Vec<&Node<ast::Directive>> {
    let mut all: Vec<&Node<ast::Directive>> = Vec::new();
    match def {
        Definition::SchemaDefinition(t) => all.extend(t.directives.iter()),
        Definition::SchemaExtension(t) => all.extend(t.directives.iter()),
        Definition::ScalarTypeDefinition(t) => all.extend(t.directives.iter()),
        Definition::ScalarTypeExtension(t) => all.extend(t.directives.iter()),
        Definition::ObjectTypeDefinition(t) => {
            all.extend(t.directives.iter());
            collect_field_directives(&t.fields, &mut all);
        }
        Definition::ObjectTypeExtension(t) => {
            all.extend(t.directives.iter());
            collect_field_directives(&t.fields, &mut all);
        }
        Definition::InterfaceTypeDefinition(t) => {
            all.extend(t.directives.iter());
            collect_field_directives(&t.fields, &mut all);
        }
        Definition::InterfaceTypeExtension(t) => {
            all.extend(t.directives.iter());
            collect_field_directives(&t.fields, &mut all);
        }
        Definition::UnionTypeDefinition(t) => all.extend(t.directives.iter()),
        Definition::UnionTypeExtension(t) => all.extend(t.directives.iter()),
        Definition::EnumTypeDefinition(t) => {
            all.extend(t.directives.iter());
            all.extend(t.values.iter().flat_map(|v| v.directives.iter()));
        }
        Definition::EnumTypeExtension(t) => {
            all.extend(t.directives.iter());
            all.extend(t.values.iter().flat_map(|v| v.directives.iter()));
        }
        Definition::InputObjectTypeDefinition(t) => {
            all.extend(t.directives.iter());
            all.extend(t.fields.iter().flat_map(|v| v.directives.iter()));
        }
        Definition::InputObjectTypeExtension(t) => {
            all.extend(t.directives.iter());
            all.extend(t.fields.iter().flat_map(|v| v.directives.iter()));
        }
        _ => {}
    }
    all
}

/// Root operation types may be renamed in the subgraph; the supergraph uses the defaults.
fn root_renames(doc: &ast::Document) -> HashMap<String, String> {
    let mut renames: HashMap<String, String> = HashMap::new();
    for def in &doc.definitions {
        let ops = match def {
            Definition::SchemaDefinition(s) => &s.root_operations,
            Definition::SchemaExtension(s) => &s.root_operations,
            _ => continue,
        };
        for op in ops {
            let (kind, name) = &**op;
            let canonical = match kind {
                ast::OperationType::Query => "Query",
                ast::OperationType::Mutation => "Mutation",
                ast::OperationType::Subscription => "Subscription",
            };
            if name.as_str() != canonical {
                renames.insert(name.to_string(), canonical.to_string());
            }
        }
    }
    renames
}

/// A renamed root may not leave another type holding its default name.
fn check_root_clashes(
    src: &SubgraphSource,
    lines: &Lines,
    doc: &ast::Document,
    renames: &HashMap<String, String>,
    errors: &mut Vec<CompositionError>,
) {
    for (from, to) in renames {
        let clash_def = doc
            .definitions
            .iter()
            .find(|d| d.name().is_some_and(|n| n == to.as_str()));
        let clash = clash_def.is_some();
        let clash_line = clash_def.and_then(|d| d.location()).map(|l| {
            match lines.0.binary_search(&l.offset()) {
                Ok(i) => i + 1,
                Err(i) => i,
            }
        });
        if clash && !renames.contains_key(to) {
            let code = match to.as_str() {
                "Query" => "ROOT_QUERY_USED",
                "Mutation" => "ROOT_MUTATION_USED",
                _ => "ROOT_SUBSCRIPTION_USED",
            };
            errors.push(subgraph_error(
                src,
                code,
                format!("The schema has a type named \"{to}\" but it is not set as the {} root type (\"{from}\" is instead): this is not supported by federation. If a root type does not use its default name, there should be no other type with that default name.", to.to_lowercase()),
            ).at(to.clone()).line(clash_line));
        }
    }
}

/// What building the model needs to read any definition: line numbers, directive names, renames.
struct Cx<'a> {
    src: &'a SubgraphSource,
    lines: Lines,
    links: Links,
    renames: HashMap<String, String>,
}

impl Cx<'_> {
    fn err(&self, code: &'static str, msg: String) -> CompositionError {
        subgraph_error(self.src, code, msg)
    }

    fn canonical(&self, local: &str) -> Option<&'static str> {
        self.links.names.canonical(local)
    }

    fn rename(&self, n: &str) -> String {
        self.renames
            .get(n)
            .cloned()
            .unwrap_or_else(|| n.to_string())
    }

    fn rename_ty(&self, t: &Type) -> Type {
        let named = |n: &apollo_compiler::Name| {
            apollo_compiler::Name::new(&self.rename(n)).unwrap_or_else(|_| n.clone())
        };
        match t {
            Type::Named(n) => Type::Named(named(n)),
            Type::NonNullNamed(n) => Type::NonNullNamed(named(n)),
            Type::List(i) => Type::List(Box::new(self.rename_ty(i))),
            Type::NonNullList(i) => Type::NonNullList(Box::new(self.rename_ty(i))),
        }
    }

    fn meta_of(&self, dirs: &DirectiveList) -> Meta {
        let mut m = Meta::default();
        for d in dirs.iter() {
            match self.canonical(&d.name) {
                Some("inaccessible") => m.inaccessible = true,
                Some("authenticated") => m.authenticated = true,
                Some("requiresScopes") => {
                    m.scopes = Some(string_matrix(d.specified_argument_by_name("scopes")))
                }
                Some("policy") => {
                    m.policies = Some(string_matrix(d.specified_argument_by_name("policies")))
                }
                Some("cost") => m.cost = int_arg(d, "weight"),
                Some("listSize") => m.list_size = Some(ListSize::of(d)),
                Some("tag") => {
                    if let Some(n) = string_arg(d, "name") {
                        if !m.tags.contains(&n) {
                            m.tags.push(n);
                        }
                    }
                }
                _ if d.name == "deprecated" => {
                    m.deprecated = Some(
                        string_arg(d, "reason").unwrap_or_else(|| "No longer supported".into()),
                    );
                }
                _ => {}
            }
        }
        m
    }

    fn input_value(&self, v: &Node<ast::InputValueDefinition>) -> InputValue {
        InputValue {
            name: v.name.to_string(),
            description: description(&v.description),
            ty: self.rename_ty(&v.ty),
            default: v.default_value.as_ref().map(|d| d.to_string()),
            meta: self.meta_of(&v.directives),
            line: self.lines.of(v),
        }
    }

    /// An executable directive definition worth merging; `None` for federation, link and
    /// built-in directives and for type-system-only ones.
    fn directive_def(&self, d: &ast::DirectiveDefinition) -> Option<DirectiveDef> {
        if self.canonical(&d.name).is_some()
            || self.links.link_locals.contains(d.name.as_str())
            || d.name == "link"
            // Some servers print the spec's built-in directives into their SDL; a supergraph
            // never re-declares them.
            || matches!(
                d.name.as_str(),
                "skip" | "include" | "deprecated" | "specifiedBy" | "oneOf" | "defer" | "stream"
            )
        {
            return None;
        }
        let locations: Vec<String> = d
            .locations
            .iter()
            .map(|l| l.name().to_string())
            .filter(|l| EXECUTABLE_LOCATIONS.contains(&l.as_str()))
            .collect();
        (!locations.is_empty()).then(|| DirectiveDef {
            name: d.name.to_string(),
            description: description(&d.description),
            args: d.arguments.iter().map(|a| self.input_value(a)).collect(),
            repeatable: d.repeatable,
            locations,
        })
    }

    fn field(&self, f: &Node<ast::FieldDefinition>, block_shareable: bool) -> Field {
        let mut field = Field {
            name: f.name.to_string(),
            description: description(&f.description),
            ty: self.rename_ty(&f.ty),
            args: f
                .arguments
                .iter()
                .map(|a| (a.name.to_string(), self.input_value(a)))
                .collect(),
            external: false,
            shareable: block_shareable,
            shareable_explicit: false,
            requires: None,
            provides: None,
            override_from: None,
            override_label: None,
            meta: self.meta_of(&f.directives),
            line: self.lines.of(f),
        };
        for d in f.directives.iter() {
            match self.canonical(&d.name) {
                Some("external") => field.external = true,
                Some("shareable") => {
                    field.shareable = true;
                    field.shareable_explicit = true;
                }
                Some("requires") => field.requires = string_arg(d, "fields"),
                Some("provides") => field.provides = string_arg(d, "fields"),
                Some("override") => {
                    field.override_from = string_arg(d, "from");
                    field.override_label = string_arg(d, "label");
                }
                _ => {}
            }
        }
        field
    }
}

/// The parts of a type definition or extension that every kind has.
struct TypeHeader<'d> {
    name: &'d apollo_compiler::Name,
    kind: Kind,
    is_ext: bool,
    dirs: &'d DirectiveList,
    line: Option<usize>,
}

impl<'d> TypeHeader<'d> {
    fn of(def: &'d Definition, lines: &Lines) -> Option<Self> {
        let (name, kind, is_ext, dirs, line) = match def {
            Definition::ScalarTypeDefinition(t) => {
                (&t.name, Kind::Scalar, false, &t.directives, lines.of(t))
            }
            Definition::ScalarTypeExtension(t) => {
                (&t.name, Kind::Scalar, true, &t.directives, lines.of(t))
            }
            Definition::ObjectTypeDefinition(t) => {
                (&t.name, Kind::Object, false, &t.directives, lines.of(t))
            }
            Definition::ObjectTypeExtension(t) => {
                (&t.name, Kind::Object, true, &t.directives, lines.of(t))
            }
            Definition::InterfaceTypeDefinition(t) => {
                (&t.name, Kind::Interface, false, &t.directives, lines.of(t))
            }
            Definition::InterfaceTypeExtension(t) => {
                (&t.name, Kind::Interface, true, &t.directives, lines.of(t))
            }
            Definition::UnionTypeDefinition(t) => {
                (&t.name, Kind::Union, false, &t.directives, lines.of(t))
            }
            Definition::UnionTypeExtension(t) => {
                (&t.name, Kind::Union, true, &t.directives, lines.of(t))
            }
            Definition::EnumTypeDefinition(t) => {
                (&t.name, Kind::Enum, false, &t.directives, lines.of(t))
            }
            Definition::EnumTypeExtension(t) => {
                (&t.name, Kind::Enum, true, &t.directives, lines.of(t))
            }
            Definition::InputObjectTypeDefinition(t) => {
                (&t.name, Kind::Input, false, &t.directives, lines.of(t))
            }
            Definition::InputObjectTypeExtension(t) => {
                (&t.name, Kind::Input, true, &t.directives, lines.of(t))
            }
            _ => return None,
        };
        Some(TypeHeader {
            name,
            kind,
            is_ext,
            dirs,
            line,
        })
    }
}

fn empty_type(name: String, kind: Kind, line: Option<usize>, has_definition: bool) -> TypeDef {
    TypeDef {
        name,
        kind,
        description: None,
        line,
        extension: false,
        keys: Vec::new(),
        interface_object: false,
        meta: Meta::default(),
        implements: Vec::new(),
        fields: IndexMap::new(),
        input_fields: IndexMap::new(),
        members: Vec::new(),
        values: IndexMap::new(),
        specified_by: None,
        has_definition,
    }
}

/// The types and directive definitions built so far, one definition at a time.
struct TypesBuilder<'a> {
    cx: Cx<'a>,
    types: IndexMap<String, TypeDef>,
    directives: Vec<DirectiveDef>,
    errors: Vec<CompositionError>,
}

impl TypesBuilder<'_> {
    fn definition(&mut self, def: &Definition) {
        if let Definition::DirectiveDefinition(d) = def {
            if let Some(d) = self.cx.directive_def(d) {
                self.directives.push(d);
            }
            return;
        }
        let Some(head) = TypeHeader::of(def, &self.cx.lines) else {
            return;
        };
        if is_federation_type(head.name, self.cx.links.fieldset_is_federation)
            || (BUILTIN_SCALARS.contains(&head.name.as_str()) && head.kind == Kind::Scalar)
        {
            return;
        }
        let name = self.cx.rename(head.name);
        if !self.open_type(&name, &head) {
            return;
        }
        let cx = &self.cx;
        let entry = &mut self.types[&name];
        let block_shareable = apply_type_directives(cx, entry, &head);
        self.add_fields(&name, def, block_shareable);
        let cx = &self.cx;
        let entry = &mut self.types[&name];
        add_members_values_inputs(cx, entry, def);
    }

    /// Finds or creates the type this definition adds to; `false` (with an error) when the
    /// definition conflicts with what came before.
    fn open_type(&mut self, name: &str, head: &TypeHeader) -> bool {
        let entry = self
            .types
            .entry(name.to_string())
            .or_insert_with(|| empty_type(name.to_string(), head.kind, head.line, false));
        if entry.kind != head.kind {
            self.errors.push(
                self.cx
                    .err(
                        "INVALID_GRAPHQL",
                        format!("Type \"{name}\" is defined or extended with different kinds"),
                    )
                    .at(name.to_string())
                    .line(head.line),
            );
            return false;
        }
        if !head.is_ext {
            if entry.has_definition {
                self.errors.push(
                    self.cx
                        .err(
                            "INVALID_GRAPHQL",
                            format!("There can be only one type named \"{name}\"."),
                        )
                        .at(name.to_string())
                        .line(head.line),
                );
                return false;
            }
            entry.has_definition = true;
            entry.line = head.line;
        }
        true
    }

    fn add_fields(&mut self, name: &str, def: &Definition, block_shareable: bool) {
        let (desc, fields, implements): (
            Option<&Node<str>>,
            &[Node<ast::FieldDefinition>],
            &[apollo_compiler::Name],
        ) = match def {
            Definition::ObjectTypeDefinition(t) => {
                (t.description.as_ref(), &t.fields, &t.implements_interfaces)
            }
            Definition::ObjectTypeExtension(t) => (None, &t.fields, &t.implements_interfaces),
            Definition::InterfaceTypeDefinition(t) => {
                (t.description.as_ref(), &t.fields, &t.implements_interfaces)
            }
            Definition::InterfaceTypeExtension(t) => (None, &t.fields, &t.implements_interfaces),
            Definition::ScalarTypeDefinition(t) => (t.description.as_ref(), &[], &[]),
            Definition::UnionTypeDefinition(t) => (t.description.as_ref(), &[], &[]),
            Definition::EnumTypeDefinition(t) => (t.description.as_ref(), &[], &[]),
            Definition::InputObjectTypeDefinition(t) => (t.description.as_ref(), &[], &[]),
            _ => (None, &[], &[]),
        };
        let entry = &mut self.types[name];
        if let Some(d) = desc {
            entry.description = Some(d.to_string());
        }
        for i in implements {
            let i = self.cx.rename(i);
            if !entry.implements.contains(&i) {
                entry.implements.push(i);
            }
        }
        for f in fields {
            if name == "Query" && (f.name == "_entities" || f.name == "_service") {
                continue;
            }
            let field = self.cx.field(f, block_shareable);
            if entry.fields.contains_key(&field.name) {
                self.errors.push(
                    self.cx
                        .err(
                            "INVALID_GRAPHQL",
                            format!("Field \"{name}.{}\" can only be defined once.", field.name),
                        )
                        .at(format!("{name}.{}", field.name))
                        .line(field.line),
                );
                continue;
            }
            entry.fields.insert(field.name.clone(), field);
        }
    }
}

/// Applies a type block's own directives (keys, `@extends`, `@interfaceObject`, metadata);
/// returns whether the block is `@shareable` (which its fields inherit).
fn apply_type_directives(cx: &Cx, entry: &mut TypeDef, head: &TypeHeader) -> bool {
    let mut block_shareable = false;
    for d in head.dirs.iter() {
        match cx.canonical(&d.name) {
            Some("key") => {
                let fields = string_arg(d, "fields").unwrap_or_default();
                let resolvable = d
                    .specified_argument_by_name("resolvable")
                    .and_then(|v| v.to_bool())
                    .unwrap_or(true);
                entry.keys.push(Key {
                    fields,
                    extension: head.is_ext,
                    resolvable,
                    line: cx.lines.of(d),
                });
            }
            Some("extends") => entry.extension = true,
            Some("shareable") => block_shareable = true,
            Some("interfaceObject") => entry.interface_object = true,
            _ if d.name == "specifiedBy" => entry.specified_by = string_arg(d, "url"),
            _ => {}
        }
    }
    let m = cx.meta_of(head.dirs);
    entry.meta.inaccessible |= m.inaccessible;
    entry.meta.authenticated |= m.authenticated;
    if m.scopes.is_some() {
        entry.meta.scopes = m.scopes;
    }
    if m.policies.is_some() {
        entry.meta.policies = m.policies;
    }
    if m.cost.is_some() {
        entry.meta.cost = m.cost;
    }
    for t in m.tags {
        if !entry.meta.tags.contains(&t) {
            entry.meta.tags.push(t);
        }
    }
    block_shareable
}

fn add_members_values_inputs(cx: &Cx, entry: &mut TypeDef, def: &Definition) {
    match def {
        Definition::UnionTypeDefinition(t) => {
            entry.members.extend(t.members.iter().map(|m| cx.rename(m)))
        }
        Definition::UnionTypeExtension(t) => {
            entry.members.extend(t.members.iter().map(|m| cx.rename(m)))
        }
        _ => {}
    }
    let (values, inputs): (
        &[Node<ast::EnumValueDefinition>],
        &[Node<ast::InputValueDefinition>],
    ) = match def {
        Definition::EnumTypeDefinition(t) => (&t.values, &[]),
        Definition::EnumTypeExtension(t) => (&t.values, &[]),
        Definition::InputObjectTypeDefinition(t) => (&[], &t.fields),
        Definition::InputObjectTypeExtension(t) => (&[], &t.fields),
        _ => (&[], &[]),
    };
    for v in values {
        entry.values.insert(
            v.value.to_string(),
            EnumValue {
                name: v.value.to_string(),
                description: description(&v.description),
                meta: cx.meta_of(&v.directives),
            },
        );
    }
    for v in inputs {
        entry
            .input_fields
            .insert(v.name.to_string(), cx.input_value(v));
    }
}

/// Key extension flags settled and the query root present.
fn finish_types(types: &mut IndexMap<String, TypeDef>, fed2: bool) {
    for t in types.values_mut() {
        for k in &mut t.keys {
            // Fed 1 `extend type` is how entities were referenced, not a real extension: Apollo's
            // upgrade drops the flag and keeps only explicit `@extends`.
            k.extension = t.extension || (fed2 && k.extension);
        }
    }
    // Every subgraph serves a query root (`_entities`, `_service`), so every subgraph takes part
    // in `Query` even when it declares no query field of its own.
    if !types.contains_key("Query") {
        types.insert(
            "Query".into(),
            empty_type("Query".into(), Kind::Object, None, true),
        );
    }
}

/// Unknown type references.
fn check_type_references(
    cx: &Cx,
    types: &IndexMap<String, TypeDef>,
    errors: &mut Vec<CompositionError>,
) {
    let known = |n: &str| BUILTIN_SCALARS.contains(&n) || types.contains_key(n);
    for t in types.values() {
        let mut check = |n: &str, coord: String, line: Option<usize>| {
            if !known(n) {
                errors.push(
                    cx.err("INVALID_GRAPHQL", format!("Unknown type \"{n}\"."))
                        .at(coord)
                        .line(line),
                );
            }
        };
        for f in t.fields.values() {
            check(
                f.ty.inner_named_type(),
                format!("{}.{}", t.name, f.name),
                f.line,
            );
            for a in f.args.values() {
                check(
                    a.ty.inner_named_type(),
                    format!("{}.{}({}:)", t.name, f.name, a.name),
                    a.line,
                );
            }
        }
        for f in t.input_fields.values() {
            check(
                f.ty.inner_named_type(),
                format!("{}.{}", t.name, f.name),
                f.line,
            );
        }
        for m in &t.members {
            check(m, t.name.clone(), t.line);
        }
        for i in &t.implements {
            check(i, t.name.clone(), t.line);
        }
    }
}

/// Federation 1 semantics: key fields marked @external on extensions are really local, and
/// every field may be shared (Apollo upgrades Fed 1 subgraphs the same way).
fn upgrade_fed1(types: &mut IndexMap<String, TypeDef>) {
    for t in types.values_mut() {
        let key_fields: HashSet<String> = t
            .keys
            .iter()
            .filter_map(|k| crate::fieldset::parse(&k.fields).ok())
            .flat_map(|sels| {
                sels.into_iter().filter_map(|s| match s {
                    crate::fieldset::Selection::Field { name, .. } => Some(name),
                    _ => None,
                })
            })
            .collect();
        for f in t.fields.values_mut() {
            if f.external && key_fields.contains(&f.name) {
                f.external = false;
            }
            f.shareable = true;
        }
    }
}
