//! Steps 2 and 4: limits on the operation a request would *execute*: field and alias counts
//! and depth with every fragment spread expanded (before validation), root fields, and a cost
//! estimate in which list fields multiply (after it).
//!
//! Counting a document as written undercounts it: a 3 KB document whose fragments each spread
//! the next one ten times under ten aliases expands to 100,000 fields. Every count here is what
//! the expansion would produce, computed in time linear in the document's size by memoizing each
//! fragment's totals (a fragment's totals do not depend on where it is spread).
//!
//! Two passes, both once per distinct operation (their results are cached with the plan):
//! - [`Shape`] on the parsed AST *before* validation, over every operation in the document, so a
//!   fragment bomb never reaches the validator (whose field-merging rules compare selections
//!   pairwise) or the planner.
//! - [`CostModel::cost`] on the validated operation that runs, weighing each field by its type:
//!   objects (and interfaces, unions) 1 per item, leaves 0, lists multiplied by a size from
//!   `@listSize` (a slicing argument's value, else `assumedSize`) or the default list size;
//!   `@cost` on a field, its type or a supplied argument replaces or adds weight, as in the
//!   IBM GraphQL cost spec that Apollo's `cost` spec follows. Introspection is weighed by the
//!   same rule: `__schema { types { fields { … } } }` is lists inside lists.

use std::collections::{HashMap, HashSet};

use apollo_compiler::ast::{self, Value as AstValue};
use apollo_compiler::executable::{Field, Operation, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::{ExecutableDocument, Name, Schema};
use serde_json::{Map, Value};

use crate::error::{
    GraphQLError, GraphQLErrors, MAX_ALIASES_EXCEEDED, MAX_COST_EXCEEDED, MAX_DEPTH_EXCEEDED,
    MAX_FIELDS_EXCEEDED, MAX_ROOT_FIELDS_EXCEEDED,
};

/// Limits on the executed operation; each has its own setting and error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationLimits {
    /// Deepest field nesting (fragments expanded).
    pub max_depth: usize,
    /// Most aliased fields, fragments expanded.
    pub max_aliases: usize,
    /// Most root fields.
    pub max_root_fields: usize,
    /// Most fields, fragments expanded (`__typename` included).
    pub max_fields: usize,
    /// Highest estimated cost (see the module docs); 0 switches the cost limit off.
    pub max_cost: u64,
}

/// An operation's size with every fragment spread expanded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Field selections, `__typename` included.
    pub fields: u64,
    /// Aliased field selections.
    pub aliases: u64,
    /// Deepest field nesting.
    pub depth: u64,
}

impl Shape {
    /// The largest of each count over every operation of `document` (the validator looks at
    /// all of them, not just the one that runs). Fragment cycles count as empty; the validator
    /// reports them.
    pub fn of_document(document: &ast::Document) -> Shape {
        let mut fragments = HashMap::new();
        for definition in &document.definitions {
            if let ast::Definition::FragmentDefinition(fragment) = definition {
                fragments
                    .entry(fragment.name.as_str())
                    .or_insert(&fragment.selection_set[..]);
            }
        }
        let mut walk = ShapeWalk {
            fragments,
            memo: HashMap::new(),
        };
        let mut worst = Shape::default();
        for definition in &document.definitions {
            if let ast::Definition::OperationDefinition(operation) = definition {
                let shape = walk.set(&operation.selection_set);
                worst.fields = worst.fields.max(shape.fields);
                worst.aliases = worst.aliases.max(shape.aliases);
                worst.depth = worst.depth.max(shape.depth);
            }
        }
        worst
    }
}

struct ShapeWalk<'d> {
    fragments: HashMap<&'d str, &'d [ast::Selection]>,
    /// `None` while a fragment is being measured: a spread of it then is a cycle.
    memo: HashMap<&'d str, Option<Shape>>,
}

impl<'d> ShapeWalk<'d> {
    fn set(&mut self, selections: &'d [ast::Selection]) -> Shape {
        let mut total = Shape::default();
        for selection in selections {
            let shape = match selection {
                ast::Selection::Field(field) => {
                    let inner = self.set(&field.selection_set);
                    Shape {
                        fields: inner.fields.saturating_add(1),
                        aliases: inner
                            .aliases
                            .saturating_add(u64::from(field.alias.is_some())),
                        depth: inner.depth + 1,
                    }
                }
                ast::Selection::InlineFragment(inline) => self.set(&inline.selection_set),
                ast::Selection::FragmentSpread(spread) => {
                    self.fragment(spread.fragment_name.as_str())
                }
            };
            total.fields = total.fields.saturating_add(shape.fields);
            total.aliases = total.aliases.saturating_add(shape.aliases);
            total.depth = total.depth.max(shape.depth);
        }
        total
    }

    fn fragment(&mut self, name: &'d str) -> Shape {
        match self.memo.get(name) {
            Some(Some(shape)) => return *shape,
            Some(None) => return Shape::default(),
            None => {}
        }
        let Some(selections) = self.fragments.get(name).copied() else {
            return Shape::default();
        };
        self.memo.insert(name, None);
        let shape = self.set(selections);
        self.memo.insert(name, Some(shape));
        shape
    }
}

impl OperationLimits {
    /// Checks the expanded shape of a parsed (not yet validated) document; each exceeded limit
    /// gives one error.
    pub fn check_shape(&self, shape: &Shape) -> Result<(), GraphQLErrors> {
        let mut errors = Vec::new();
        if shape.depth > self.max_depth as u64 {
            errors.push(
                GraphQLError::new(
                    format!(
                        "Operation is nested {} levels deep; the limit is {}.",
                        shape.depth, self.max_depth
                    ),
                    MAX_DEPTH_EXCEEDED,
                )
                .with_extension("depth", shape.depth)
                .with_extension("maxDepth", self.max_depth),
            );
        }
        if shape.fields > self.max_fields as u64 {
            errors.push(
                GraphQLError::new(
                    format!(
                        "Operation selects {} fields once its fragments are expanded; the limit \
                         is {}.",
                        shape.fields, self.max_fields
                    ),
                    MAX_FIELDS_EXCEEDED,
                )
                .with_extension("fields", shape.fields)
                .with_extension("maxFields", self.max_fields),
            );
        }
        if shape.aliases > self.max_aliases as u64 {
            errors.push(
                GraphQLError::new(
                    format!(
                        "Operation uses {} aliases once its fragments are expanded; the limit is \
                         {}.",
                        shape.aliases, self.max_aliases
                    ),
                    MAX_ALIASES_EXCEEDED,
                )
                .with_extension("aliases", shape.aliases)
                .with_extension("maxAliases", self.max_aliases),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(GraphQLErrors(errors))
        }
    }

    /// The error for an operation whose estimated cost is over the limit, if it is.
    pub fn check_cost(&self, cost: u64) -> Result<(), GraphQLErrors> {
        if self.max_cost == 0 || cost <= self.max_cost {
            return Ok(());
        }
        Err(GraphQLErrors::single(
            GraphQLError::new(
                format!(
                    "Operation's estimated cost is {cost}; the limit is {}. Lists count as their \
                     requested size (or the default list size), so ask for fewer items or fewer \
                     nested lists.",
                    self.max_cost
                ),
                MAX_COST_EXCEEDED,
            )
            .with_extension("cost", cost)
            .with_extension("maxCost", self.max_cost),
        ))
    }
}

/// `@listSize` on a field definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ListSize {
    assumed_size: Option<u64>,
    slicing_arguments: Vec<Name>,
    sized_fields: Vec<Name>,
}

/// What the supergraph says about one field's cost.
#[derive(Debug, Clone, Default)]
struct FieldCost {
    /// `@cost(weight:)` on the field.
    weight: Option<u64>,
    /// `@cost(weight:)` on its arguments, added when the argument is supplied.
    argument_weights: Vec<(Name, u64)>,
    list_size: Option<ListSize>,
}

/// Field weights and list sizes for cost estimates: the supergraph's `@cost` / `@listSize`
/// (cost spec v0.1, names resolved through its `@link`) and a default list size. Built once per
/// gateway.
#[derive(Debug, Clone)]
pub struct CostModel {
    fields: HashMap<(Name, Name), FieldCost>,
    type_weights: HashMap<Name, u64>,
    default_list_size: u64,
}

/// The result of an estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// The estimated cost.
    pub value: u64,
    /// Whether a list size came from a variable (then the estimate must be redone with each
    /// request's variables).
    pub uses_variables: bool,
}

impl CostModel {
    /// A model with no directives: every list counts as `default_list_size` items.
    pub fn new(default_list_size: u64) -> Self {
        Self {
            fields: HashMap::new(),
            type_weights: HashMap::new(),
            default_list_size,
        }
    }

    /// Reads `@cost` and `@listSize` from a supergraph schema (where the composer kept them).
    pub fn from_supergraph(schema: &Schema, default_list_size: u64) -> Self {
        let mut model = Self::new(default_list_size);
        let Some(names) = CostNames::from_schema(schema) else {
            return model;
        };
        for (type_name, ty) in &schema.types {
            if let Some(weight) = directive_weight(ty.directives().get(&names.cost).map(|c| &***c))
            {
                model.type_weights.insert(type_name.clone(), weight);
            }
            let fields = match ty {
                ExtendedType::Object(object) => &object.fields,
                ExtendedType::Interface(interface) => &interface.fields,
                _ => continue,
            };
            for (field_name, field) in fields {
                let mut cost = FieldCost {
                    weight: directive_weight(field.directives.get(&names.cost).map(|d| &**d)),
                    ..FieldCost::default()
                };
                for argument in &field.arguments {
                    if let Some(weight) =
                        directive_weight(argument.directives.get(&names.cost).map(|d| &**d))
                    {
                        cost.argument_weights.push((argument.name.clone(), weight));
                    }
                }
                if let Some(directive) = field.directives.get(&names.list_size) {
                    let names_of = |argument: &str| -> Vec<Name> {
                        match directive.specified_argument_by_name(argument).map(|v| &**v) {
                            Some(AstValue::List(items)) => items
                                .iter()
                                .filter_map(|item| item.as_str())
                                .filter_map(|s| Name::new(s).ok())
                                .collect(),
                            _ => Vec::new(),
                        }
                    };
                    cost.list_size = Some(ListSize {
                        assumed_size: directive
                            .specified_argument_by_name("assumedSize")
                            .and_then(|v| v.to_i32())
                            .map(|n| n.max(0) as u64),
                        slicing_arguments: names_of("slicingArguments"),
                        sized_fields: names_of("sizedFields"),
                    });
                }
                if cost.weight.is_some()
                    || !cost.argument_weights.is_empty()
                    || cost.list_size.is_some()
                {
                    model
                        .fields
                        .insert((type_name.clone(), field_name.clone()), cost);
                }
            }
        }
        model
    }

    /// Estimates the cost of `operation`. Without `variables` (at planning time), a slicing
    /// argument given as a variable counts as the variable's default, else as the field's
    /// assumed or the default list size, and the result says the estimate used variables.
    pub fn cost(
        &self,
        document: &ExecutableDocument,
        operation: &Operation,
        variables: Option<&Map<String, Value>>,
    ) -> Cost {
        let mut walk = CostWalk {
            model: self,
            document,
            operation,
            variables,
            memo: HashMap::new(),
            uses_variables: false,
        };
        let value = walk.set(&operation.selection_set, None);
        Cost {
            value,
            uses_variables: walk.uses_variables,
        }
    }
}

/// The local names of the cost spec's directives, from the supergraph's `@link`.
struct CostNames {
    cost: Name,
    list_size: Name,
}

impl CostNames {
    fn from_schema(schema: &Schema) -> Option<Self> {
        let link = schema.schema_definition.directives.iter().find(|d| {
            d.specified_argument_by_name("url")
                .and_then(|v| v.as_str())
                .is_some_and(|url| url.starts_with("https://specs.apollo.dev/cost/"))
        })?;
        let prefix = link
            .specified_argument_by_name("as")
            .and_then(|v| v.as_str())
            .unwrap_or("cost")
            .to_owned();
        let mut cost = prefix.clone();
        let mut list_size = format!("{prefix}__listSize");
        if let Some(AstValue::List(imports)) =
            link.specified_argument_by_name("import").map(|v| &**v)
        {
            for import in imports {
                let (name, alias) = match &**import {
                    AstValue::String(name) => (name.as_str(), name.as_str()),
                    AstValue::Object(fields) => {
                        let get = |key: &str| {
                            fields
                                .iter()
                                .find(|(k, _)| k == key)
                                .and_then(|(_, v)| v.as_str())
                        };
                        match get("name") {
                            Some(name) => (name, get("as").unwrap_or(name)),
                            None => continue,
                        }
                    }
                    _ => continue,
                };
                let alias = alias.trim_start_matches('@').to_owned();
                match name {
                    "@cost" => cost = alias,
                    "@listSize" => list_size = alias,
                    _ => {}
                }
            }
        }
        Some(Self {
            cost: Name::new(&cost).ok()?,
            list_size: Name::new(&list_size).ok()?,
        })
    }
}

fn directive_weight(directive: Option<&ast::Directive>) -> Option<u64> {
    directive?
        .specified_argument_by_name("weight")?
        .to_i32()
        .map(|w| w.max(0) as u64)
}

/// A `sizedFields` context: the child fields named here get `size` items.
type Sized<'m> = Option<(&'m [Name], u64)>;

struct CostWalk<'a> {
    model: &'a CostModel,
    document: &'a ExecutableDocument,
    operation: &'a Operation,
    variables: Option<&'a Map<String, Value>>,
    /// Fragment cost by (name, sized-fields context); the context is one of a few `@listSize`
    /// directives, so the memo stays as small as the document.
    memo: HashMap<(&'a str, usize, u64), u64>,
    uses_variables: bool,
}

impl<'a> CostWalk<'a> {
    fn set(&mut self, set: &'a SelectionSet, sized: Sized<'a>) -> u64 {
        let mut total = 0u64;
        for selection in &set.selections {
            let cost = match selection {
                Selection::Field(field) => self.field(&set.ty, field, sized),
                Selection::InlineFragment(inline) => self.set(&inline.selection_set, sized),
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    let key = (
                        name,
                        sized.map_or(0, |(names, _)| names.as_ptr() as usize),
                        sized.map_or(0, |(_, size)| size),
                    );
                    if let Some(cost) = self.memo.get(&key) {
                        *cost
                    } else {
                        // Validation rejects cycles; the placeholder only guards recursion.
                        self.memo.insert(key, 0);
                        let cost = self
                            .document
                            .fragments
                            .get(name)
                            .map_or(0, |f| self.set(&f.selection_set, sized));
                        self.memo.insert(key, cost);
                        cost
                    }
                }
            };
            total = total.saturating_add(cost);
        }
        total
    }

    fn field(&mut self, parent: &Name, field: &'a Field, sized: Sized<'a>) -> u64 {
        let model = self.model;
        let declared = model.fields.get(&(parent.clone(), field.name.clone()));
        let ty = &field.definition.ty;
        let item_type = ty.inner_named_type();
        let composite = !field.selection_set.selections.is_empty();
        let weight = declared
            .and_then(|c| c.weight)
            .or_else(|| model.type_weights.get(item_type).copied())
            .unwrap_or(u64::from(composite));
        let mut argument_weight = 0u64;
        if let Some(declared) = declared {
            for (name, w) in &declared.argument_weights {
                if field.arguments.iter().any(|a| &a.name == name) {
                    argument_weight = argument_weight.saturating_add(*w);
                }
            }
        }
        let list_size = declared.and_then(|c| c.list_size.as_ref());
        let child_sized = list_size
            .filter(|l| !l.sized_fields.is_empty())
            .map(|l| (&l.sized_fields[..], self.size(field, l)));
        let children = if composite {
            self.set(&field.selection_set, child_sized)
        } else {
            0
        };
        let per_item = weight.saturating_add(children);
        let mut levels = list_levels(ty);
        let parent_size = sized
            .filter(|(names, _)| names.contains(&field.name))
            .map(|(_, size)| size);
        let size = if let Some(size) = parent_size {
            // A sized field of a connection: its list has the parent's slice size.
            levels = levels.max(1);
            size
        } else if let Some(list_size) = list_size.filter(|l| l.sized_fields.is_empty()) {
            self.size(field, list_size)
        } else {
            model.default_list_size
        };
        let mut cost = per_item;
        for _ in 0..levels {
            cost = cost.saturating_mul(size);
        }
        cost.saturating_add(argument_weight)
    }

    /// A list's size from `@listSize`: the largest slicing argument supplied, else the
    /// assumed size, else the default.
    fn size(&mut self, field: &Field, list_size: &ListSize) -> u64 {
        let mut largest: Option<u64> = None;
        for name in &list_size.slicing_arguments {
            let Some(argument) = field.arguments.iter().find(|a| &a.name == name) else {
                continue;
            };
            if let Some(n) = self.int_value(&argument.value) {
                largest = Some(largest.map_or(n, |l| l.max(n)));
            }
        }
        largest
            .or(list_size.assumed_size)
            .unwrap_or(self.model.default_list_size)
    }

    fn int_value(&mut self, value: &AstValue) -> Option<u64> {
        match value {
            AstValue::Int(i) => Some(i.try_to_i32().map_or(u64::MAX, |n| n.max(0) as u64)),
            AstValue::Variable(name) => {
                self.uses_variables = true;
                if let Some(n) = self
                    .variables
                    .and_then(|v| v.get(name.as_str()))
                    .and_then(Value::as_f64)
                {
                    return Some(if n <= 0.0 {
                        0
                    } else {
                        n.min(u64::MAX as f64) as u64
                    });
                }
                self.operation
                    .variables
                    .iter()
                    .find(|v| &v.name == name)
                    .and_then(|v| v.default_value.as_deref())
                    .and_then(|d| d.to_i32())
                    .map(|n| n.max(0) as u64)
            }
            _ => None,
        }
    }
}

/// How many list wrappers a type has (`[[T!]]!` has two).
fn list_levels(ty: &ast::Type) -> usize {
    let mut levels = 0;
    let mut ty = ty;
    while ty.is_list() {
        levels += 1;
        ty = ty.item_type();
    }
    levels
}

/// Checks the number of root fields (fragments entered, duplicates merged) of `operation`.
pub(crate) fn check_root_fields(
    document: &ExecutableDocument,
    operation: &Operation,
    max_root_fields: usize,
) -> Result<(), GraphQLErrors> {
    let roots = root_fields(document, &operation.selection_set);
    if roots.len() > max_root_fields {
        return Err(GraphQLErrors::single(
            GraphQLError::new(
                format!(
                    "Operation selects {} root fields; the limit is {max_root_fields}.",
                    roots.len(),
                ),
                MAX_ROOT_FIELDS_EXCEEDED,
            )
            .with_extension("rootFields", roots.len())
            .with_extension("maxRootFields", max_root_fields),
        ));
    }
    Ok(())
}

/// Response keys of the root selection, fragments entered, duplicates merged.
fn root_fields<'d>(document: &'d ExecutableDocument, set: &'d SelectionSet) -> Vec<&'d str> {
    let mut names = Vec::new();
    let mut seen_fragments = HashSet::new();
    collect_root(document, set, &mut names, &mut seen_fragments);
    names
}

fn collect_root<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    names: &mut Vec<&'d str>,
    seen_fragments: &mut HashSet<&'d str>,
) {
    for selection in &set.selections {
        match selection {
            Selection::Field(field) => {
                let key = field.response_key().as_str();
                if !names.contains(&key) {
                    names.push(key);
                }
            }
            Selection::InlineFragment(inline) => {
                collect_root(document, &inline.selection_set, names, seen_fragments)
            }
            Selection::FragmentSpread(spread) => {
                if seen_fragments.insert(spread.fragment_name.as_str()) {
                    if let Some(fragment) = document.fragments.get(&spread.fragment_name) {
                        collect_root(document, &fragment.selection_set, names, seen_fragments);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apollo_compiler::validation::Valid;

    const SUPERGRAPH: &str = r#"
schema
  @link(url: "https://specs.apollo.dev/link/v1.0")
  @link(url: "https://specs.apollo.dev/cost/v0.1", import: ["@listSize"])
{ query: Query }

directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
directive @cost(weight: Int!) on ARGUMENT_DEFINITION | ENUM | FIELD_DEFINITION | INPUT_FIELD_DEFINITION | OBJECT | SCALAR
directive @listSize(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION
scalar link__Import
enum link__Purpose { SECURITY EXECUTION }

type Query {
  products(first: Int, last: Int): [Product!]! @listSize(slicingArguments: ["first", "last"])
  featured: [Product!]! @listSize(assumedSize: 3)
  everything: [Product!]!
  search(text: String @cost(weight: 5)): ProductConnection! @listSize(slicingArguments: ["first"], sizedFields: ["nodes"])
  searchFirst(first: Int): ProductConnection! @listSize(slicingArguments: ["first"], sizedFields: ["nodes"])
  matrix: [[Product]]
  me: User
}
type ProductConnection { nodes: [Product!]! total: Int }
type Product { upc: String! price: Int reviews: [Review!]! heavy: Int @cost(weight: 7) }
type Review @cost(weight: 2) { body: String author: User }
type User { name: String }
"#;

    fn schema() -> Valid<Schema> {
        Schema::parse_and_validate(SUPERGRAPH, "s.graphql").expect("valid test schema")
    }

    fn cost_of(query: &str, variables: Option<Value>) -> Cost {
        let schema = schema();
        let model = CostModel::from_supergraph(&schema, 10);
        let document = ExecutableDocument::parse_and_validate(&schema, query, "q.graphql")
            .expect("valid query");
        let operation = document.operations.get(None).expect("one operation");
        let variables = variables.map(|v| v.as_object().cloned().expect("object"));
        model.cost(&document, operation, variables.as_ref())
    }

    fn shape_of(query: &str) -> Shape {
        Shape::of_document(&ast::Document::parse(query, "q.graphql").expect("parses"))
    }

    #[test]
    fn shape_counts_fragments_as_expanded() {
        let shape = shape_of(
            "query { ...A ...A } fragment A on Query { x: me { name } y: me { n: name } }",
        );
        assert_eq!(
            shape,
            Shape {
                fields: 8,
                aliases: 6,
                depth: 2
            }
        );
    }

    #[test]
    fn a_fragment_bomb_is_measured_in_linear_time_and_saturates() {
        let levels = 30;
        let mut bomb = String::from("{ ...B0 }\n");
        for level in 0..levels {
            bomb.push_str(&format!("fragment B{level} on Query {{"));
            for alias in 0..10 {
                if level + 1 == levels {
                    bomb.push_str(&format!(" a{alias}: __typename"));
                } else {
                    bomb.push_str(&format!(" a{alias}: __typename ...B{}", level + 1));
                }
            }
            bomb.push_str(" }\n");
        }
        let shape = shape_of(&bomb);
        assert_eq!(shape.fields, u64::MAX, "10^30 fields saturate: {shape:?}");
        assert_eq!(shape.aliases, u64::MAX);
    }

    #[test]
    fn the_issue_bomb_expands_to_a_hundred_thousand_fields() {
        // Five levels of ten aliased fields, each level spreading the next: 10^5 leaves.
        let mut query = String::from("query { ...F1 }\n");
        for level in 1..=5 {
            query.push_str(&format!("fragment F{level} on Query {{"));
            for alias in 0..10 {
                if level == 5 {
                    query.push_str(&format!(" a{alias}: __typename"));
                } else {
                    query.push_str(&format!(" a{alias}: __typename ...F{}", level + 1));
                }
            }
            query.push_str(" }\n");
        }
        assert!(query.len() < 3000, "{}", query.len());
        let shape = shape_of(&query);
        assert_eq!(shape.fields, 10 + 100 + 1_000 + 10_000 + 100_000);
        assert_eq!(shape.aliases, shape.fields);
    }

    #[test]
    fn fragment_cycles_do_not_hang_the_shape_walk() {
        let shape = shape_of(
            "{ ...A } fragment A on Query { me { name } ...B } fragment B on Query { ...A }",
        );
        assert_eq!(shape.fields, 2);
    }

    #[test]
    fn every_operation_of_the_document_counts() {
        let shape = shape_of("query Small { me { name } } query Big { a: me { name } b: me { name } c: me { name } }");
        assert_eq!(shape.fields, 6);
        assert_eq!(shape.aliases, 3);
    }

    #[test]
    fn objects_cost_one_per_item_and_lists_multiply() {
        // me: 1; everything: 10 products x (1 + reviews: 10 x (2 + author 1)).
        assert_eq!(cost_of("{ me { name } }", None).value, 1);
        assert_eq!(
            cost_of(
                "{ everything { upc reviews { body author { name } } } }",
                None
            )
            .value,
            10 * (1 + 10 * (2 + 1))
        );
        // Leaves are free, @cost on a field replaces its weight.
        assert_eq!(cost_of("{ everything { upc price } }", None).value, 10);
        assert_eq!(
            cost_of("{ everything { heavy } }", None).value,
            10 * (1 + 7)
        );
        // Nested lists multiply once per level.
        assert_eq!(cost_of("{ matrix { upc } }", None).value, 100);
    }

    #[test]
    fn list_size_from_slicing_arguments_assumed_size_and_sized_fields() {
        assert_eq!(cost_of("{ products(first: 2) { upc } }", None).value, 2);
        assert_eq!(
            cost_of("{ products(first: 2, last: 40) { upc } }", None).value,
            40,
            "the largest slicing argument"
        );
        assert_eq!(
            cost_of("{ products { upc } }", None).value,
            10,
            "no slicing argument: the default"
        );
        assert_eq!(cost_of("{ featured { upc } }", None).value, 3);
        // sizedFields: the connection is one object, its `nodes` list has `first` items.
        assert_eq!(
            cost_of("{ searchFirst(first: 4) { total nodes { upc } } }", None).value,
            1 + 4
        );
        // An argument's @cost is added when the argument is given.
        assert_eq!(
            cost_of(r#"{ search(text: "x") { total } }"#, None).value,
            1 + 5
        );
    }

    #[test]
    fn variable_list_sizes_are_estimated_per_request() {
        let query = "query($n: Int = 3) { products(first: $n) { upc } }";
        let planned = cost_of(query, None);
        assert_eq!(
            planned,
            Cost {
                value: 3,
                uses_variables: true
            }
        );
        assert_eq!(
            cost_of(query, Some(serde_json::json!({"n": 500}))).value,
            500
        );
        assert_eq!(cost_of(query, Some(serde_json::json!({}))).value, 3);
        let fixed = cost_of("{ products(first: 7) { upc } }", None);
        assert!(!fixed.uses_variables);
    }

    #[test]
    fn fragments_are_costed_once_and_huge_costs_saturate() {
        let mut query = String::from("{ ...C0 }\n");
        for level in 0..40 {
            query.push_str(&format!(
                "fragment C{level} on Query {{ a: everything {{ upc }} ...C{} }}\n",
                level + 1
            ));
        }
        query.push_str("fragment C40 on Query { me { name } }\n");
        assert_eq!(cost_of(&query, None).value, 40 * 10 + 1);
        let deep =
            "{ everything { reviews { author { name } } } matrix { reviews { author { name } } } }";
        assert_eq!(
            cost_of(deep, None).value,
            10 * (1 + 10 * 3) + 100 * (1 + 10 * 3)
        );
    }

    #[test]
    fn limits_report_each_exceeded_count_with_its_code() {
        let limits = OperationLimits {
            max_depth: 3,
            max_aliases: 1,
            max_root_fields: 10,
            max_fields: 4,
            max_cost: 100,
        };
        let errors = limits
            .check_shape(&Shape {
                fields: 5,
                aliases: 2,
                depth: 4,
            })
            .unwrap_err();
        let codes: Vec<_> = errors.0.iter().filter_map(|e| e.code()).collect();
        assert_eq!(
            codes,
            [
                "MAX_DEPTH_EXCEEDED",
                "MAX_FIELDS_EXCEEDED",
                "MAX_ALIASES_EXCEEDED"
            ]
        );
        assert_eq!(errors.0[1].extensions["fields"], 5);
        assert!(limits
            .check_shape(&Shape {
                fields: 4,
                aliases: 1,
                depth: 3
            })
            .is_ok());
        let err = limits.check_cost(101).unwrap_err();
        assert_eq!(err.0[0].code(), Some("MAX_COST_EXCEEDED"));
        assert_eq!(err.0[0].extensions["maxCost"], 100);
        assert!(limits.check_cost(100).is_ok());
        let off = OperationLimits {
            max_cost: 0,
            ..limits
        };
        assert!(off.check_cost(u64::MAX).is_ok());
    }

    #[test]
    fn renamed_cost_spec_directives_are_found() {
        let sdl = SUPERGRAPH
            .replace(
                r#"@link(url: "https://specs.apollo.dev/cost/v0.1", import: ["@listSize"])"#,
                r#"@link(url: "https://specs.apollo.dev/cost/v0.1", as: "price", import: [{name: "@listSize", as: "@size"}])"#,
            )
            .replace("directive @cost(", "directive @price(")
            .replace("directive @listSize(", "directive @size(")
            .replace("@cost(weight", "@price(weight")
            .replace("@listSize(", "@size(");
        let schema = Schema::parse_and_validate(&sdl, "s.graphql").expect("valid");
        let model = CostModel::from_supergraph(&schema, 10);
        let document =
            ExecutableDocument::parse_and_validate(&schema, "{ featured { heavy } }", "q")
                .expect("valid");
        let operation = document.operations.get(None).unwrap();
        assert_eq!(model.cost(&document, operation, None).value, 3 * (1 + 7));
        // Without the link, the directives mean nothing.
        let plain = CostModel::new(10);
        assert_eq!(plain.cost(&document, operation, None).value, 10);
    }
}
