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
pub fn parse(src: &SubgraphSource) -> Result<Subgraph, Vec<CompositionError>> {
    let lines = Lines::new(&src.sdl);
    let path = src
        .file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| format!("{}.graphql", src.name));
    let err = |code: &'static str, msg: String| {
        let mut e = CompositionError::new(code, msg).in_subgraph(&src.name);
        e.file = src.file.clone();
        e
    };
    let doc = match ast::Document::parse(src.sdl.as_str(), &path) {
        Ok(doc) => doc,
        Err(with) => {
            return Err(with
                .errors
                .iter()
                .map(|d| {
                    err("INVALID_GRAPHQL", d.error.to_string())
                        .line(d.line_column_range().map(|r| r.start.line))
                })
                .collect());
        }
    };
    let mut errors = Vec::new();

    // Links first: they decide what every directive name means.
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
                    err(
                        "UNKNOWN_FEDERATION_LINK_VERSION",
                        format!("Invalid version v{version} for the federation feature in @link direction on schema"),
                    )
                    .line(lines.of(d)),
                );
                continue;
            }
            fed2 = true;
            let prefix = string_arg(d, "as").unwrap_or_else(|| "federation".into());
            let mut imported: HashMap<String, String> = HashMap::new();
            if let Some(list) = d
                .specified_argument_by_name("import")
                .and_then(|v| v.as_list())
            {
                for item in list {
                    match item.as_ref() {
                        Value::String(s) if s.as_str() == "FieldSet" => fieldset_imported = true,
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
            }
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
    let fieldset_is_federation = !fed2 || fieldset_imported;
    if !fed2 {
        for canonical in FED_DIRECTIVES {
            names
                .local_to_canonical
                .insert(canonical.to_string(), canonical);
        }
    }

    // Every applied directive must be defined, built in, or a federation directive as linked.
    let defined: HashSet<&str> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::DirectiveDefinition(d) => Some(d.name.as_str()),
            _ => None,
        })
        .collect();
    let mut unknown_directive = |d: &Node<ast::Directive>| {
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
        if builtin || defined.contains(n) || names.canonical(n).is_some() {
            return;
        }
        let mut msg = format!("Unknown directive \"@{n}\".");
        if fed2 && FED_DIRECTIVES.contains(&n) {
            msg = format!("Unknown directive \"@{n}\". If you meant the \"@{n}\" federation directive, you should use fully-qualified name \"@federation__{n}\" or add \"@{n}\" to the `import` argument of the @link to the federation specification.");
        }
        errors.push(err("INVALID_GRAPHQL", msg).line(lines.of(d)));
    };
    for def in &doc.definitions {
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
        for d in all {
            unknown_directive(d);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    // Root operation types may be renamed in the subgraph; the supergraph uses the defaults.
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
    for (from, to) in &renames {
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
            errors.push(err(
                code,
                format!("The schema has a type named \"{to}\" but it is not set as the {} root type (\"{from}\" is instead): this is not supported by federation. If a root type does not use its default name, there should be no other type with that default name.", to.to_lowercase()),
            ).at(to.clone()).line(clash_line));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let rename = |n: &str| renames.get(n).cloned().unwrap_or_else(|| n.to_string());
    let rename_ty = |t: &Type| -> Type {
        fn go(t: &Type, f: &dyn Fn(&str) -> String) -> Type {
            match t {
                Type::Named(n) => {
                    Type::Named(apollo_compiler::Name::new(&f(n)).unwrap_or_else(|_| n.clone()))
                }
                Type::NonNullNamed(n) => Type::NonNullNamed(
                    apollo_compiler::Name::new(&f(n)).unwrap_or_else(|_| n.clone()),
                ),
                Type::List(i) => Type::List(Box::new(go(i, f))),
                Type::NonNullList(i) => Type::NonNullList(Box::new(go(i, f))),
            }
        }
        go(t, &rename)
    };

    let meta_of = |dirs: &DirectiveList| -> Meta {
        let mut m = Meta::default();
        for d in dirs.iter() {
            match names.canonical(&d.name) {
                Some("inaccessible") => m.inaccessible = true,
                Some("authenticated") => m.authenticated = true,
                Some("requiresScopes") => {
                    m.scopes = Some(string_matrix(d.specified_argument_by_name("scopes")))
                }
                Some("policy") => {
                    m.policies = Some(string_matrix(d.specified_argument_by_name("policies")))
                }
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
    };
    let input_value = |v: &Node<ast::InputValueDefinition>| InputValue {
        name: v.name.to_string(),
        description: description(&v.description),
        ty: rename_ty(&v.ty),
        default: v.default_value.as_ref().map(|d| d.to_string()),
        meta: meta_of(&v.directives),
        line: lines.of(v),
    };

    let mut types: IndexMap<String, TypeDef> = IndexMap::new();
    let mut directives = Vec::new();
    for def in &doc.definitions {
        if let Definition::DirectiveDefinition(d) = def {
            if names.canonical(&d.name).is_some()
                || link_locals.contains(d.name.as_str())
                || d.name == "link"
                // Some servers print the spec's built-in directives into their SDL; a supergraph
                // never re-declares them.
                || matches!(
                    d.name.as_str(),
                    "skip" | "include" | "deprecated" | "specifiedBy" | "oneOf" | "defer" | "stream"
                )
            {
                continue;
            }
            let locations: Vec<String> = d
                .locations
                .iter()
                .map(|l| l.name().to_string())
                .filter(|l| EXECUTABLE_LOCATIONS.contains(&l.as_str()))
                .collect();
            if !locations.is_empty() {
                directives.push(DirectiveDef {
                    name: d.name.to_string(),
                    description: description(&d.description),
                    args: d.arguments.iter().map(input_value).collect(),
                    repeatable: d.repeatable,
                    locations,
                });
            }
            continue;
        }
        let (raw_name, kind, is_ext, dirs, line) = match def {
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
            _ => continue,
        };
        if is_federation_type(raw_name, fieldset_is_federation)
            || (BUILTIN_SCALARS.contains(&raw_name.as_str()) && kind == Kind::Scalar)
        {
            continue;
        }
        let name = rename(raw_name);
        let entry = types.entry(name.clone()).or_insert_with(|| TypeDef {
            name: name.clone(),
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
            has_definition: false,
        });
        if entry.kind != kind {
            errors.push(
                err(
                    "INVALID_GRAPHQL",
                    format!("Type \"{name}\" is defined or extended with different kinds"),
                )
                .at(name.clone())
                .line(line),
            );
            continue;
        }
        if !is_ext {
            if entry.has_definition {
                errors.push(
                    err(
                        "INVALID_GRAPHQL",
                        format!("There can be only one type named \"{name}\"."),
                    )
                    .at(name.clone())
                    .line(line),
                );
                continue;
            }
            entry.has_definition = true;
            entry.line = line;
        }
        let mut block_shareable = false;
        for d in dirs.iter() {
            match names.canonical(&d.name) {
                Some("key") => {
                    let fields = string_arg(d, "fields").unwrap_or_default();
                    let resolvable = d
                        .specified_argument_by_name("resolvable")
                        .and_then(|v| v.to_bool())
                        .unwrap_or(true);
                    entry.keys.push(Key {
                        fields,
                        extension: is_ext,
                        resolvable,
                        line: lines.of(d),
                    });
                }
                Some("extends") => entry.extension = true,
                Some("shareable") => block_shareable = true,
                Some("interfaceObject") => entry.interface_object = true,
                _ if d.name == "specifiedBy" => entry.specified_by = string_arg(d, "url"),
                _ => {}
            }
        }
        let m = meta_of(dirs);
        entry.meta.inaccessible |= m.inaccessible;
        entry.meta.authenticated |= m.authenticated;
        if m.scopes.is_some() {
            entry.meta.scopes = m.scopes;
        }
        if m.policies.is_some() {
            entry.meta.policies = m.policies;
        }
        for t in m.tags {
            if !entry.meta.tags.contains(&t) {
                entry.meta.tags.push(t);
            }
        }
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
        if let Some(d) = desc {
            entry.description = Some(d.to_string());
        }
        for i in implements {
            let i = rename(i);
            if !entry.implements.contains(&i) {
                entry.implements.push(i);
            }
        }
        for f in fields {
            if name == "Query" && (f.name == "_entities" || f.name == "_service") {
                continue;
            }
            let mut field = Field {
                name: f.name.to_string(),
                description: description(&f.description),
                ty: rename_ty(&f.ty),
                args: f
                    .arguments
                    .iter()
                    .map(|a| (a.name.to_string(), input_value(a)))
                    .collect(),
                external: false,
                shareable: block_shareable,
                shareable_explicit: false,
                requires: None,
                provides: None,
                override_from: None,
                override_label: None,
                meta: meta_of(&f.directives),
                line: lines.of(f),
            };
            for d in f.directives.iter() {
                match names.canonical(&d.name) {
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
            if entry.fields.contains_key(&field.name) {
                errors.push(
                    err(
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
        match def {
            Definition::UnionTypeDefinition(t) => {
                entry.members.extend(t.members.iter().map(|m| rename(m)))
            }
            Definition::UnionTypeExtension(t) => {
                entry.members.extend(t.members.iter().map(|m| rename(m)))
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
                    meta: meta_of(&v.directives),
                },
            );
        }
        for v in inputs {
            entry
                .input_fields
                .insert(v.name.to_string(), input_value(v));
        }
    }
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
            TypeDef {
                name: "Query".into(),
                kind: Kind::Object,
                description: None,
                line: None,
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
                has_definition: true,
            },
        );
    }

    // Unknown type references.
    let known = |n: &str| BUILTIN_SCALARS.contains(&n) || types.contains_key(n);
    for t in types.values() {
        let mut check = |n: &str, coord: String, line: Option<usize>| {
            if !known(n) {
                errors.push(
                    err("INVALID_GRAPHQL", format!("Unknown type \"{n}\"."))
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

    // Federation 1 semantics: key fields marked @external on extensions are really local, and
    // every field may be shared (Apollo upgrades Fed 1 subgraphs the same way).
    if !fed2 {
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
