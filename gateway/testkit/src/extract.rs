//! Supergraph SDL -> the schema of one subgraph, read from the join directives.
//!
//! Deliberately independent of `switchyard-planner`: the federation suite checks the planner's
//! reading of the same directives, so sharing its code would hide its mistakes.

use apollo_compiler::ast::{Directive, Value as AstValue};
use apollo_compiler::schema::{ComponentName, ExtendedType};
use apollo_compiler::Schema;
use indexmap::{IndexMap, IndexSet};

use crate::fieldset::{self, Selection};
use crate::TestkitError;

/// One subgraph named by a `join__Graph` enum value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphInfo {
    /// The `join__Graph` enum value, e.g. `PRODUCTS`.
    pub enum_value: String,
    /// `@join__graph(name:)`.
    pub name: String,
    /// `@join__graph(url:)`.
    pub url: String,
}

/// The schema of one subgraph as the supergraph describes it.
#[derive(Debug, Clone)]
pub struct SubgraphModel {
    /// Subgraph name.
    pub name: String,
    /// Name of the query root type.
    pub query_type: String,
    /// Name of the mutation root type, when this subgraph has one.
    pub mutation_type: Option<String>,
    /// The subgraph's types (built-in scalars excluded).
    pub types: IndexMap<String, TypeModel>,
}

/// One type of a subgraph.
#[derive(Debug, Clone)]
pub enum TypeModel {
    /// An object type (an `@interfaceObject` interface is an object in its subgraph).
    Object(CompositeModel),
    /// An interface type.
    Interface(CompositeModel),
    /// A union and its members in this subgraph.
    Union(Vec<String>),
    /// An enum and its values in this subgraph.
    Enum(Vec<String>),
    /// A custom scalar.
    Scalar,
    /// An input object and its fields in this subgraph.
    InputObject(Vec<InputValueModel>),
}

/// Fields, keys and interfaces of an object or interface type.
#[derive(Debug, Clone, Default)]
pub struct CompositeModel {
    /// Interfaces implemented in this subgraph.
    pub implements: Vec<String>,
    /// `@key`s declared in this subgraph.
    pub keys: Vec<KeyModel>,
    /// The fields this subgraph defines.
    pub fields: IndexMap<String, FieldModel>,
    /// Whether this is an interface the subgraph sees as an object (`@interfaceObject`).
    pub interface_object: bool,
}

/// One `@key`.
#[derive(Debug, Clone)]
pub struct KeyModel {
    /// The field set as written.
    pub fields: String,
    /// The parsed field set.
    pub selections: Vec<Selection>,
    /// `false` for `resolvable: false`.
    pub resolvable: bool,
}

/// One field of an object or interface in a subgraph.
#[derive(Debug, Clone)]
pub struct FieldModel {
    /// Field name.
    pub name: String,
    /// The field's type in this subgraph, in SDL syntax (`[Product!]!`).
    pub ty: String,
    /// Arguments.
    pub arguments: Vec<InputValueModel>,
    /// `@external` in this subgraph.
    pub external: bool,
    /// `@requires(fields:)` in this subgraph, parsed.
    pub requires: Option<(String, Vec<Selection>)>,
    /// `@provides(fields:)` in this subgraph.
    pub provides: Option<String>,
}

/// An argument or input field.
#[derive(Debug, Clone)]
pub struct InputValueModel {
    /// Name.
    pub name: String,
    /// Type in SDL syntax.
    pub ty: String,
    /// Default value, if declared.
    pub default: Option<async_graphql::Value>,
}

/// A parsed supergraph, ready to extract subgraphs from.
#[derive(Debug)]
pub struct SupergraphSource {
    schema: Schema,
    join_prefix: String,
    graphs: Vec<GraphInfo>,
}

impl SupergraphSource {
    /// Parses a supergraph SDL and reads its `join__Graph` enum.
    pub fn parse(sdl: &str) -> Result<Self, TestkitError> {
        let schema = Schema::parse(sdl, "supergraph.graphql")
            .map_err(|e| TestkitError::Supergraph(e.errors.to_string()))?;
        let join_prefix = join_prefix(&schema);
        let graph_enum = format!("{join_prefix}Graph");
        let Some(ExtendedType::Enum(graph_enum)) = schema.types.get(graph_enum.as_str()) else {
            return Err(TestkitError::Supergraph(format!(
                "no `{join_prefix}Graph` enum"
            )));
        };
        let mut graphs = Vec::new();
        for (value_name, value) in &graph_enum.values {
            let directive = value
                .directives
                .get(&format!("{join_prefix}graph"))
                .ok_or_else(|| {
                    TestkitError::Supergraph(format!("`{value_name}` lacks @{join_prefix}graph"))
                })?;
            let name = string_arg(&directive.arguments, "name").unwrap_or_default();
            let url = string_arg(&directive.arguments, "url").unwrap_or_default();
            graphs.push(GraphInfo {
                enum_value: value_name.to_string(),
                name,
                url,
            });
        }
        Ok(Self {
            schema,
            join_prefix,
            graphs,
        })
    }

    /// The subgraphs, in declaration order.
    pub fn graphs(&self) -> &[GraphInfo] {
        &self.graphs
    }

    /// Extracts the schema of the subgraph named `name` (its `join__graph(name:)`).
    pub fn subgraph(&self, name: &str) -> Result<SubgraphModel, TestkitError> {
        let graph = self
            .graphs
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| TestkitError::UnknownSubgraph(name.to_string()))?;
        Extractor {
            source: self,
            graph: &graph.enum_value,
        }
        .extract(name)
    }

    fn directive(&self, short: &str) -> String {
        format!("{}{short}", self.join_prefix)
    }
}

/// `join__` unless the join spec was linked with `as:`.
fn join_prefix(schema: &Schema) -> String {
    for directive in schema.schema_definition.directives.get_all("link") {
        let url = string_arg(&directive.arguments, "url").unwrap_or_default();
        if url.contains("specs.apollo.dev/join/") {
            if let Some(alias) = string_arg(&directive.arguments, "as") {
                return format!("{alias}__");
            }
        }
    }
    "join__".to_string()
}

fn string_arg(
    arguments: &[apollo_compiler::Node<apollo_compiler::ast::Argument>],
    name: &str,
) -> Option<String> {
    arguments
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.value.as_str().map(str::to_string))
}

fn arg<'a>(
    arguments: &'a [apollo_compiler::Node<apollo_compiler::ast::Argument>],
    name: &str,
) -> Option<&'a AstValue> {
    arguments.iter().find(|a| a.name == name).map(|a| &*a.value)
}

fn bool_arg(
    arguments: &[apollo_compiler::Node<apollo_compiler::ast::Argument>],
    name: &str,
) -> Option<bool> {
    arg(arguments, name).and_then(AstValue::to_bool)
}

struct Extractor<'a> {
    source: &'a SupergraphSource,
    graph: &'a str,
}

impl Extractor<'_> {
    fn extract(&self, name: &str) -> Result<SubgraphModel, TestkitError> {
        let schema = &self.source.schema;
        let mut types = IndexMap::new();
        for (type_name, ty) in &schema.types {
            if ty.is_built_in() || self.is_spec_type(type_name) {
                continue;
            }
            if let Some(model) = self.type_model(type_name, ty)? {
                types.insert(type_name.to_string(), model);
            }
        }
        let root = |op: &Option<ComponentName>| op.as_ref().map(|n| n.name.to_string());
        let query_type = root(&schema.schema_definition.query).unwrap_or_else(|| "Query".into());
        let mutation_type =
            root(&schema.schema_definition.mutation).filter(|m| types.contains_key(m.as_str()));
        if !types.contains_key(query_type.as_str()) {
            types.insert(query_type.clone(), TypeModel::Object(Default::default()));
        }
        prune(&mut types);
        Ok(SubgraphModel {
            name: name.to_string(),
            query_type,
            mutation_type,
            types,
        })
    }

    fn is_spec_type(&self, name: &str) -> bool {
        name.starts_with(&self.source.join_prefix)
            || name.starts_with("link__")
            || name.starts_with("join__")
            || matches!(name, "_Any" | "_Entity" | "_Service")
    }

    fn is_this_graph(
        &self,
        arguments: &[apollo_compiler::Node<apollo_compiler::ast::Argument>],
    ) -> bool {
        arg(arguments, "graph")
            .and_then(AstValue::as_enum)
            .map(|n| n.as_str())
            == Some(self.graph)
    }

    /// The `@join__type`s for this graph; `None` when the type is not in this graph.
    fn join_types<'d>(&self, directives: &[&'d Directive]) -> Option<Vec<&'d Directive>> {
        let all = named(directives, &self.source.directive("type"));
        if all.is_empty() {
            // A type without any @join__type is shared by every subgraph.
            return Some(Vec::new());
        }
        let mine: Vec<_> = all
            .into_iter()
            .filter(|d| self.is_this_graph(&d.arguments))
            .collect();
        (!mine.is_empty()).then_some(mine)
    }

    fn type_model(
        &self,
        type_name: &str,
        ty: &ExtendedType,
    ) -> Result<Option<TypeModel>, TestkitError> {
        let directives: Vec<&Directive> = ty.directives().iter().map(|d| &***d).collect();
        let Some(join_types) = self.join_types(&directives) else {
            return Ok(None);
        };
        let keys = join_types
            .iter()
            .filter_map(|d| {
                let fields = string_arg(&d.arguments, "key")?;
                let resolvable = bool_arg(&d.arguments, "resolvable").unwrap_or(true);
                Some((fields, resolvable))
            })
            .map(|(fields, resolvable)| {
                Ok(KeyModel {
                    selections: fieldset::parse(&fields)?,
                    fields,
                    resolvable,
                })
            })
            .collect::<Result<Vec<_>, TestkitError>>()?;
        let interface_object = join_types
            .iter()
            .any(|d| bool_arg(&d.arguments, "isInterfaceObject") == Some(true));
        let model = match ty {
            ExtendedType::Object(object) => TypeModel::Object(CompositeModel {
                implements: self.implements(&directives, &object.implements_interfaces),
                keys,
                fields: self.fields(type_name, object.fields.values().map(|f| &***f))?,
                interface_object: false,
            }),
            ExtendedType::Interface(interface) => {
                let composite = CompositeModel {
                    implements: if interface_object {
                        Vec::new()
                    } else {
                        self.implements(&directives, &interface.implements_interfaces)
                    },
                    keys,
                    fields: self.fields(type_name, interface.fields.values().map(|f| &***f))?,
                    interface_object,
                };
                if interface_object {
                    TypeModel::Object(composite)
                } else {
                    TypeModel::Interface(composite)
                }
            }
            ExtendedType::Union(union) => {
                let members = named(&directives, &self.source.directive("unionMember"));
                let list = if members.is_empty() {
                    union.members.iter().map(|m| m.name.to_string()).collect()
                } else {
                    members
                        .iter()
                        .filter(|d| self.is_this_graph(&d.arguments))
                        .filter_map(|d| string_arg(&d.arguments, "member"))
                        .collect()
                };
                TypeModel::Union(list)
            }
            ExtendedType::Enum(enum_type) => {
                let marker = self.source.directive("enumValue");
                let any_marked = enum_type
                    .values
                    .values()
                    .any(|v| v.directives.get(&marker).is_some());
                let values = enum_type
                    .values
                    .iter()
                    .filter(|(_, v)| {
                        !any_marked
                            || v.directives
                                .get_all(&marker)
                                .any(|d| self.is_this_graph(&d.arguments))
                    })
                    .map(|(name, _)| name.to_string())
                    .collect();
                TypeModel::Enum(values)
            }
            ExtendedType::Scalar(_) => TypeModel::Scalar,
            ExtendedType::InputObject(input) => {
                let mut fields = Vec::new();
                for field in input.fields.values() {
                    let joins: Vec<_> = field
                        .directives
                        .get_all(&self.source.directive("field"))
                        .collect();
                    let included = joins.is_empty()
                        || joins.iter().any(|d| {
                            self.is_this_graph(&d.arguments) || arg(&d.arguments, "graph").is_none()
                        });
                    if included {
                        fields.push(input_value(
                            field.name.as_str(),
                            &field.ty.to_string(),
                            field.default_value.as_deref(),
                        )?);
                    }
                }
                TypeModel::InputObject(fields)
            }
        };
        Ok(Some(model))
    }

    fn implements<'c>(
        &self,
        directives: &[&Directive],
        declared: impl IntoIterator<Item = &'c ComponentName>,
    ) -> Vec<String> {
        let all = named(directives, &self.source.directive("implements"));
        if all.is_empty() {
            return declared.into_iter().map(|c| c.name.to_string()).collect();
        }
        all.iter()
            .filter(|d| self.is_this_graph(&d.arguments))
            .filter_map(|d| string_arg(&d.arguments, "interface"))
            .collect()
    }

    fn fields<'f>(
        &self,
        type_name: &str,
        fields: impl Iterator<Item = &'f apollo_compiler::ast::FieldDefinition>,
    ) -> Result<IndexMap<String, FieldModel>, TestkitError> {
        let mut out = IndexMap::new();
        for field in fields {
            let joins: Vec<_> = field
                .directives
                .get_all(&self.source.directive("field"))
                .collect();
            let join = if joins.is_empty() {
                None
            } else {
                match joins.iter().find(|d| self.is_this_graph(&d.arguments)) {
                    Some(d) => Some(&***d),
                    None => match joins.iter().find(|d| arg(&d.arguments, "graph").is_none()) {
                        Some(d) => Some(&***d),
                        None => continue,
                    },
                }
            };
            let args = join.map(|d| &d.arguments[..]).unwrap_or(&[]);
            let ty = string_arg(args, "type").unwrap_or_else(|| field.ty.to_string());
            let requires = match string_arg(args, "requires") {
                Some(fields) => {
                    let parsed = fieldset::parse(&fields).map_err(|e| {
                        TestkitError::Supergraph(format!("{type_name}.{}: {e}", field.name))
                    })?;
                    Some((fields, parsed))
                }
                None => None,
            };
            let mut arguments = field
                .arguments
                .iter()
                .map(|a| {
                    input_value(
                        a.name.as_str(),
                        &a.ty.to_string(),
                        a.default_value.as_deref(),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            // `@fromContext` arguments exist in the subgraph but not in the supergraph's field;
            // the gateway fills them, so the subgraph must accept them.
            if let Some(AstValue::List(contexts)) = arg(args, "contextArguments") {
                for context in contexts {
                    let AstValue::Object(fields) = &**context else {
                        continue;
                    };
                    let get = |key: &str| {
                        fields
                            .iter()
                            .find(|(k, _)| k == key)
                            .and_then(|(_, v)| v.as_str().map(str::to_string))
                    };
                    if let (Some(name), Some(ty)) = (get("name"), get("type")) {
                        arguments.push(InputValueModel {
                            name,
                            ty,
                            default: None,
                        });
                    }
                }
            }
            out.insert(
                field.name.to_string(),
                FieldModel {
                    name: field.name.to_string(),
                    ty,
                    arguments,
                    external: bool_arg(args, "external").unwrap_or(false),
                    requires,
                    provides: string_arg(args, "provides"),
                },
            );
        }
        Ok(out)
    }
}

fn named<'d>(directives: &[&'d Directive], name: &str) -> Vec<&'d Directive> {
    directives
        .iter()
        .copied()
        .filter(|d| d.name == name)
        .collect()
}

fn input_value(
    name: &str,
    ty: &str,
    default: Option<&AstValue>,
) -> Result<InputValueModel, TestkitError> {
    Ok(InputValueModel {
        name: name.to_string(),
        ty: ty.to_string(),
        default: default.map(ast_to_value).transpose()?,
    })
}

/// Converts a constant GraphQL value from the SDL to async-graphql's value type.
pub fn ast_to_value(value: &AstValue) -> Result<async_graphql::Value, TestkitError> {
    use async_graphql::{Name, Number, Value};
    Ok(match value {
        AstValue::Null => Value::Null,
        AstValue::Enum(name) => Value::Enum(Name::new(name.as_str())),
        AstValue::Variable(name) => {
            return Err(TestkitError::Supergraph(format!(
                "variable ${name} in a constant value"
            )))
        }
        AstValue::String(s) => Value::String(s.clone()),
        AstValue::Float(f) => {
            let f = f
                .try_to_f64()
                .map_err(|e| TestkitError::Supergraph(e.to_string()))?;
            Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        AstValue::Int(i) => match i.as_str().parse::<i64>() {
            Ok(i) => Value::Number(i.into()),
            Err(_) => i
                .try_to_f64()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        },
        AstValue::Boolean(b) => Value::Boolean(*b),
        AstValue::List(items) => Value::List(
            items
                .iter()
                .map(|i| ast_to_value(i))
                .collect::<Result<_, _>>()?,
        ),
        AstValue::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((Name::new(k.as_str()), ast_to_value(v)?)))
                .collect::<Result<_, TestkitError>>()?,
        ),
    })
}

/// The named type at the bottom of an SDL type string (`[Product!]!` -> `Product`).
pub fn named_type(ty: &str) -> &str {
    ty.trim_matches(|c: char| c == '[' || c == ']' || c == '!' || c.is_whitespace())
}

const BUILT_IN_SCALARS: [&str; 5] = ["Int", "Float", "String", "Boolean", "ID"];

/// Drops references to types the subgraph does not have, so the async-graphql schema builds
/// even when a supergraph is slightly off (the suite is about the gateway, not composition).
fn prune(types: &mut IndexMap<String, TypeModel>) {
    let known: IndexSet<String> = types
        .keys()
        .cloned()
        .chain(BUILT_IN_SCALARS.iter().map(|s| s.to_string()))
        .collect();
    let interfaces: IndexSet<String> = types
        .iter()
        .filter(|(_, t)| matches!(t, TypeModel::Interface(_)))
        .map(|(n, _)| n.clone())
        .collect();
    let objects: IndexSet<String> = types
        .iter()
        .filter(|(_, t)| matches!(t, TypeModel::Object(_)))
        .map(|(n, _)| n.clone())
        .collect();
    for ty in types.values_mut() {
        match ty {
            TypeModel::Object(c) | TypeModel::Interface(c) => {
                c.implements.retain(|i| interfaces.contains(i));
                c.fields.retain(|_, f| {
                    f.arguments.retain(|a| known.contains(named_type(&a.ty)));
                    known.contains(named_type(&f.ty))
                });
            }
            TypeModel::Union(members) => members.retain(|m| objects.contains(m)),
            TypeModel::InputObject(fields) => fields.retain(|f| known.contains(named_type(&f.ty))),
            TypeModel::Enum(_) | TypeModel::Scalar => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = r#"
schema @link(url: "https://specs.apollo.dev/link/v1.0") @link(url: "https://specs.apollo.dev/join/v0.5", for: EXECUTION) { query: Query }
directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean, overrideLabel: String, contextArguments: [join__ContextArgument!]) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
input join__ContextArgument { name: String! type: String! context: String! selection: join__FieldValue! }
scalar join__FieldSet
scalar join__FieldValue
scalar link__Import
enum link__Purpose { SECURITY EXECUTION }
enum join__Graph {
  A @join__graph(name: "a", url: "http://a")
  B @join__graph(name: "b", url: "http://b")
}
enum Size @join__type(graph: A) @join__type(graph: B) {
  S @join__enumValue(graph: A) @join__enumValue(graph: B)
  XL @join__enumValue(graph: B)
}
type Query @join__type(graph: A) @join__type(graph: B) {
  item: Item @join__field(graph: A)
}
type Item @join__type(graph: A, key: "id") @join__type(graph: B, key: "id") {
  id: ID!
  size: Size @join__field(graph: A, type: "Size!") @join__field(graph: B)
  price: Int @join__field(graph: B, contextArguments: [{context: "ctx", name: "currency", type: "String", selection: "{ currency }"}])
}
"#;

    #[test]
    fn reads_types_fields_enums_and_context_arguments_per_graph() {
        let source = SupergraphSource::parse(SDL).unwrap();
        let a = source.subgraph("a").unwrap();
        let b = source.subgraph("b").unwrap();
        let TypeModel::Enum(a_values) = &a.types["Size"] else {
            panic!("Size is an enum")
        };
        assert_eq!(a_values, &["S"]);
        let TypeModel::Object(a_item) = &a.types["Item"] else {
            panic!("Item is an object")
        };
        assert_eq!(a_item.fields["size"].ty, "Size!");
        assert!(!a_item.fields.contains_key("price"));
        assert_eq!(a_item.keys[0].fields, "id");
        let TypeModel::Object(b_item) = &b.types["Item"] else {
            panic!("Item is an object")
        };
        assert_eq!(b_item.fields["size"].ty, "Size");
        let price = &b_item.fields["price"];
        assert_eq!(price.arguments.len(), 1);
        assert_eq!(price.arguments[0].name, "currency");
        assert_eq!(price.arguments[0].ty, "String");
        assert!(matches!(
            source.subgraph("c"),
            Err(TestkitError::UnknownSubgraph(_))
        ));
    }
}
