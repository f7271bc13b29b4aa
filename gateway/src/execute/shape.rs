//! Writes the client response from the merged data by walking the client's operation: fields in
//! operation order, fragments expanded, `@skip`/`@include` applied, type conditions evaluated,
//! unrequested fields dropped, and nulls propagated per the GraphQL spec.
//!
//! Output is written straight into a byte buffer; when a null bubbles up, the buffer is cut back
//! to where the nullable parent started and `null` is written instead.

use apollo_compiler::ast::{DirectiveList, Type, Value as AstValue};
use apollo_compiler::executable::{Field, Selection, SelectionSet};
use apollo_compiler::schema::EnumType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Node, Schema};
use serde_json::{Map, Value};

use super::data::{Map as DataMap, Str, Value as Data};
use super::merge::type_matches;
use super::write_json;
use super::BoundPlan;
use crate::error::{GraphQLError, PathSegment};

/// Serializes `{"data":...,"errors":[...]}` for `operation` over the merged `data`.
pub(crate) fn write_response(
    schema: &Valid<Schema>,
    operation: &BoundPlan,
    variables: &Map<String, Value>,
    data: &Data,
    mut errors: Vec<GraphQLError>,
    capacity: usize,
) -> Vec<u8> {
    let op = operation.operation();
    // One subgraph answer can serve several response paths (an entity fetched once for objects
    // at two places); its errors are placed on every one of them, including a path whose field
    // this request's @skip/@include left out. The client asked for no such field: drop those.
    errors.retain(|error| {
        error.path.as_deref().is_none_or(|path| {
            !deselected(operation.document(), variables, &op.selection_set, path)
        })
    });
    // Two fetches can fill one field of one object (a field selected in two places that meet on
    // the same path): a failure there is one error for the client, not one per fetch.
    if errors.len() > 1 {
        let mut seen = std::collections::HashSet::new();
        errors.retain(|error| {
            error.path.is_none()
                || seen.insert((
                    error.message.clone(),
                    error.path.clone(),
                    Value::Object(error.extensions.clone()).to_string(),
                ))
        });
    }
    let empty = DataMap::new();
    let root = data.as_object().unwrap_or(&empty);
    let mut shaper = Shaper {
        schema,
        document: operation.document(),
        variables,
        errors: &mut errors,
        path: Vec::with_capacity(16),
        out: Vec::with_capacity(capacity),
        plans: Vec::new(),
        depth: 0,
        object_types: Vec::new(),
        enum_types: Vec::new(),
        written_nodes: std::collections::HashMap::default(),
        node_bytes: Vec::new(),
        irregular: 0,
    };
    shaper.out.extend_from_slice(b"{\"data\":");
    let start = shaper.out.len();
    if shaper
        .write_object(
            root,
            op.selection_set.ty.as_str(),
            Sets::Root(&op.selection_set),
        )
        .is_err()
    {
        shaper.out.truncate(start);
        shaper.out.extend_from_slice(b"null");
    }
    let mut out = shaper.out;
    if !errors.is_empty() {
        crate::error::cap_errors(&mut errors);
        out.extend_from_slice(b",\"errors\":");
        write_json(&mut out, &errors);
    }
    out.push(b'}');
    out
}

/// A null reached a non-null position; the nearest nullable ancestor becomes null.
struct Bubble;

#[derive(Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

struct Shaper<'a> {
    schema: &'a Schema,
    document: &'a ExecutableDocument,
    variables: &'a Map<String, Value>,
    errors: &'a mut Vec<GraphQLError>,
    path: Vec<Segment<'a>>,
    out: Vec<u8>,
    /// The last field plan used at each object nesting level (boxed: it is taken out and put
    /// back for every object written, and a pointer moves cheaper than the plan).
    plans: Vec<Option<Box<FieldPlan<'a>>>>,
    /// Object nesting level of the object being written.
    depth: usize,
    /// Declared type names already looked up, with whether each is an object type: a response
    /// has thousands of objects but a handful of types, and the schema lookup hashes the name.
    object_types: Vec<(&'a str, bool)>,
    /// Leaf type names already looked up, with the enum's definition when the type is one.
    enum_types: Vec<(&'a str, Option<&'a apollo_compiler::schema::EnumType>)>,
    /// Objects held by nodes (`data::NodeRef`, one object at many places), by node, as
    /// written under each field plan: the next place holding the node copies the bytes
    /// instead of walking the object again.
    written_nodes: std::collections::HashMap<u64, Vec<WrittenNode<'a>>, super::PassThroughHash>,
    /// The bytes `written_nodes` point into (a copy: a bubbling null can cut `out` back).
    node_bytes: Vec<u8>,
    /// How many nulls in non-null positions and invalid enum values were met: their errors
    /// (or their silence, when an error already covers the path) depend on the place, so an
    /// object that met one is not reused elsewhere.
    irregular: usize,
}

/// A node's object as written for one concrete type and one group of fields (up to
/// [`GROUP_FIELDS`] of them, held inline: the usual group is one field).
struct WrittenNode<'a> {
    type_name: &'a str,
    group: GroupKey<'a>,
    bytes: std::ops::Range<usize>,
}

/// How many fields of one response key a [`WrittenNode`] can be keyed by.
const GROUP_FIELDS: usize = 4;

/// A group of fields as a [`WrittenNode`] holds it.
type GroupKey<'a> = [Option<&'a Node<Field>>; GROUP_FIELDS];

impl<'a> WrittenNode<'a> {
    /// `group` as held here, or `None` when it has more fields than fit.
    fn key(group: &[&'a Node<Field>]) -> Option<GroupKey<'a>> {
        if group.len() > GROUP_FIELDS {
            return None;
        }
        let mut key = [None; GROUP_FIELDS];
        for (slot, field) in key.iter_mut().zip(group) {
            *slot = Some(*field);
        }
        Some(key)
    }

    fn is(&self, type_name: &str, group: &GroupKey<'a>) -> bool {
        self.type_name == type_name
            && self.group.iter().zip(group).all(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => std::ptr::eq(*a, *b),
                (None, None) => true,
                _ => false,
            })
    }
}

type Collected<'a> = Vec<(&'a str, &'a Node<Field>)>;

/// The selection sets that apply to an object: the operation's root set, or the sub-selections
/// of every field merged under one response key.
#[derive(Clone, Copy)]
enum Sets<'a, 'g> {
    Root(&'a SelectionSet),
    Fields(&'g [&'a Node<Field>]),
}

/// Which selection sets a [`FieldPlan`] was collected from (compared by address).
enum SetsId<'a> {
    Root(&'a SelectionSet),
    Fields(Vec<&'a Node<Field>>),
}

impl SetsId<'_> {
    fn is(&self, sets: Sets<'_, '_>) -> bool {
        match (self, sets) {
            (SetsId::Root(a), Sets::Root(b)) => std::ptr::eq(*a, b),
            (SetsId::Fields(a), Sets::Fields(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| std::ptr::eq(*x, *y))
            }
            _ => false,
        }
    }
}

/// The fields to write for objects of one concrete type under one set of selections: each
/// response key once, in operation order, with every field merged under it. A list of objects
/// has the same plan item after item, so it is collected once per nesting level, not per object.
struct FieldPlan<'a> {
    sets: SetsId<'a>,
    type_name: &'a str,
    /// Response key, the same as a data key (looked up without `memcmp`), and its fields.
    fields: Vec<(&'a str, Str, Vec<&'a Node<Field>>)>,
    /// Per field, the enum type its leaf values must belong to, if it is a leaf of enum type:
    /// looked up once per plan, not once per value written.
    enums: Vec<Option<&'a EnumType>>,
}

impl<'a> Shaper<'a> {
    fn write_object(
        &mut self,
        object: &'a DataMap,
        type_name: &'a str,
        sets: Sets<'a, '_>,
    ) -> Result<(), Bubble> {
        let depth = self.depth;
        if self.plans.len() <= depth {
            self.plans.resize_with(depth + 1, || None);
        }
        let plan = match self.plans[depth].take() {
            Some(plan)
                if (std::ptr::eq(plan.type_name, type_name) || plan.type_name == type_name)
                    && plan.sets.is(sets) =>
            {
                plan
            }
            _ => Box::new(self.field_plan(type_name, sets)),
        };
        self.depth += 1;
        let result = self.write_fields(object, &plan);
        self.depth -= 1;
        self.plans[depth] = Some(plan);
        result
    }

    fn field_plan(&mut self, type_name: &'a str, sets: Sets<'a, '_>) -> FieldPlan<'a> {
        let mut collected = Vec::new();
        let id = match sets {
            Sets::Root(set) => {
                self.collect(set, type_name, &mut collected);
                SetsId::Root(set)
            }
            Sets::Fields(group) => {
                for field in group {
                    self.collect(&field.selection_set, type_name, &mut collected);
                }
                SetsId::Fields(group.to_vec())
            }
        };
        let mut fields: Vec<(&'a str, Str, Vec<&'a Node<Field>>)> = Vec::new();
        for (key, field) in collected {
            match fields.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, _, group)) => group.push(field),
                None => fields.push((key, Str::new(key), vec![field])),
            }
        }
        let enums = fields
            .iter()
            .map(|(_, _, group)| {
                let field = group[0];
                if field.selection_set.selections.is_empty() {
                    self.enum_type(field.ty().inner_named_type().as_str())
                } else {
                    None
                }
            })
            .collect();
        FieldPlan {
            sets: id,
            type_name,
            fields,
            enums,
        }
    }

    fn write_fields(&mut self, object: &'a DataMap, plan: &FieldPlan<'a>) -> Result<(), Bubble> {
        let type_name = plan.type_name;
        self.out.push(b'{');
        let mut hint = 0;
        for (i, (key, probe, group)) in plan.fields.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            probe.write_json(&mut self.out);
            self.out.push(b':');
            let field = group[0];
            if field.name == "__typename" {
                self.write_name(type_name);
                continue;
            }
            self.path.push(Segment::Key(key));
            let value = object.get_hinted(probe, &mut hint);
            let enum_type = plan.enums[i];
            let result = self.complete(value, field.ty(), group, type_name, enum_type);
            self.path.pop();
            result?;
        }
        self.out.push(b'}');
        Ok(())
    }

    /// Response keys are GraphQL names, which never need JSON escaping.
    fn write_name(&mut self, name: &str) {
        super::json::write_quoted(&mut self.out, name.as_bytes(), false);
    }

    /// Writes `value` as the field `group` of type `ty` asks; `enum_type` is the enum its leaf
    /// values must belong to, if it is one (from the field plan).
    fn complete(
        &mut self,
        value: Option<&'a Data>,
        ty: &'a Type,
        group: &[&'a Node<Field>],
        parent_type: &str,
        enum_type: Option<&'a EnumType>,
    ) -> Result<(), Bubble> {
        let start = self.out.len();
        match self.complete_inner(value, ty, group, parent_type, enum_type) {
            Ok(()) => Ok(()),
            Err(Bubble) if ty.is_non_null() => Err(Bubble),
            Err(Bubble) => {
                self.out.truncate(start);
                self.out.extend_from_slice(b"null");
                Ok(())
            }
        }
    }

    fn complete_inner(
        &mut self,
        value: Option<&'a Data>,
        ty: &'a Type,
        group: &[&'a Node<Field>],
        parent_type: &str,
        enum_type: Option<&'a EnumType>,
    ) -> Result<(), Bubble> {
        let place = value;
        let value = match value.map(Data::resolved) {
            Some(Data::Null) | None => return self.null(ty, group[0], parent_type),
            Some(value) => value,
        };
        match ty {
            Type::List(inner) | Type::NonNullList(inner) => {
                let Data::Array(items) = value else {
                    return self.null(ty, group[0], parent_type);
                };
                self.out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.path.push(Segment::Index(i));
                    let result = self.complete(Some(item), inner, group, parent_type, enum_type);
                    self.path.pop();
                    result?;
                }
                self.out.push(b']');
                Ok(())
            }
            Type::Named(name) | Type::NonNullNamed(name) => {
                if group[0].selection_set.selections.is_empty() {
                    if let Some(enum_type) = enum_type {
                        // A value the API schema does not have (`@inaccessible`, or one only a
                        // subgraph knows) must not reach the client.
                        let known = value
                            .as_str()
                            .is_some_and(|v| enum_type.values.contains_key(v));
                        if !known {
                            return self.invalid_leaf(ty, group[0], name.as_str());
                        }
                    }
                    super::json::write_value(&mut self.out, value);
                    return Ok(());
                }
                let Data::Object(object) = value else {
                    return self.null(ty, group[0], parent_type);
                };
                match self.concrete_type(name.as_str(), object) {
                    Some(concrete) => match place {
                        Some(Data::Node(node)) => {
                            self.write_node(super::address_key(node.id()), object, concrete, group)
                        }
                        _ => self.write_object(object, concrete, Sets::Fields(group)),
                    },
                    // An object of a type the API schema hides (`@inaccessible`) cannot be
                    // shown, not even as its interface: it is null, like a missing one.
                    None => self.null(ty, group[0], parent_type),
                }
            }
        }
    }

    /// [`Shaper::write_object`] for the object of node `node`: the bytes written for it at
    /// an earlier place under the same fields when there are some (they depend only on the
    /// object and the fields unless a null or invalid value met on the way made them depend on
    /// the place too).
    fn write_node(
        &mut self,
        node: u64,
        object: &'a DataMap,
        type_name: &'a str,
        group: &[&'a Node<Field>],
    ) -> Result<(), Bubble> {
        let Some(key) = WrittenNode::key(group) else {
            return self.write_object(object, type_name, Sets::Fields(group));
        };
        let written = self
            .written_nodes
            .get(&node)
            .and_then(|written| written.iter().find(|w| w.is(type_name, &key)));
        if let Some(written) = written {
            self.out
                .extend_from_slice(&self.node_bytes[written.bytes.clone()]);
            return Ok(());
        }
        let start = self.out.len();
        let irregular = self.irregular;
        self.write_object(object, type_name, Sets::Fields(group))?;
        if self.irregular == irregular {
            let from = self.node_bytes.len();
            self.node_bytes.extend_from_slice(&self.out[start..]);
            self.written_nodes
                .entry(node)
                .or_default()
                .push(WrittenNode {
                    type_name,
                    group: key,
                    bytes: from..self.node_bytes.len(),
                });
        }
        Ok(())
    }

    /// Writes a null, or bubbles if the position is non-null (recording an error unless one
    /// already covers this path).
    fn null(&mut self, ty: &Type, field: &Field, parent_type: &str) -> Result<(), Bubble> {
        if !ty.is_non_null() {
            self.out.extend_from_slice(b"null");
            return Ok(());
        }
        self.irregular += 1;
        if !self.explained() {
            let path = self.client_path();
            self.errors.push(GraphQLError {
                message: format!(
                    "Cannot return null for non-nullable field {parent_type}.{}.",
                    field.name
                ),
                locations: Vec::new(),
                path: Some(path),
                extensions: Map::new(),
            });
        }
        Err(Bubble)
    }

    /// Whether an existing error is at, above or below the current path.
    fn explained(&self) -> bool {
        self.errors.iter().any(|error| {
            let Some(path) = &error.path else {
                return false;
            };
            path.iter().zip(&self.path).all(|(a, b)| match (a, b) {
                (PathSegment::Key(a), Segment::Key(b)) => a == b,
                (PathSegment::Index(a), Segment::Index(b)) => a == b,
                _ => false,
            })
        })
    }

    fn client_path(&self) -> Vec<PathSegment> {
        self.path
            .iter()
            .map(|s| match s {
                Segment::Key(k) => PathSegment::Key((*k).to_owned()),
                Segment::Index(i) => PathSegment::Index(*i),
            })
            .collect()
    }

    /// An enum value the client's schema does not have: null, with an error saying why.
    fn invalid_leaf(&mut self, ty: &Type, field: &Field, enum_name: &str) -> Result<(), Bubble> {
        self.irregular += 1;
        self.errors.push(GraphQLError {
            message: format!(
                "Invalid value for enum {enum_name} at field {}: the subgraph returned a value the schema does not define.",
                field.name
            ),
            locations: Vec::new(),
            path: Some(self.client_path()),
            extensions: Map::new(),
        });
        if ty.is_non_null() {
            return Err(Bubble);
        }
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    /// The enum definition of leaf type `name`, if it is an enum (looked up once per type).
    fn enum_type(&mut self, name: &'a str) -> Option<&'a EnumType> {
        if let Some((_, found)) = self.enum_types.iter().find(|(n, _)| std::ptr::eq(*n, name)) {
            return *found;
        }
        let schema: &'a Schema = self.schema;
        let found = schema.get_enum(name).map(|e| &**e);
        self.enum_types.push((name, found));
        found
    }

    /// The type to shape `object` as: the declared one when it is an object type, else the
    /// object's `__typename` (the declared type if the subgraph sent none); `None` when the
    /// `__typename` names no type of the API schema.
    fn concrete_type(&mut self, declared: &'a str, object: &'a DataMap) -> Option<&'a str> {
        let cached = self
            .object_types
            .iter()
            .find(|(name, _)| std::ptr::eq(*name, declared))
            .map(|(_, is_object)| *is_object);
        let is_object = match cached {
            Some(is_object) => is_object,
            None => {
                let is_object = self.schema.get_object(declared).is_some();
                self.object_types.push((declared, is_object));
                is_object
            }
        };
        if is_object {
            return Some(declared);
        }
        match object.get("__typename").and_then(Data::as_str) {
            // An `@interfaceObject` subgraph names the interface itself: shaped as such.
            Some(typename) => self.schema.types.contains_key(typename).then_some(typename),
            None => Some(declared),
        }
    }

    fn collect(&self, set: &'a SelectionSet, type_name: &str, out: &mut Collected<'a>) {
        for selection in &set.selections {
            match selection {
                Selection::Field(field) => {
                    if self.included(&field.directives) {
                        out.push((field.response_key().as_str(), field));
                    }
                }
                Selection::InlineFragment(inline) => {
                    let applies = inline
                        .type_condition
                        .as_ref()
                        .is_none_or(|c| type_matches(self.schema, type_name, c));
                    if applies && self.included(&inline.directives) {
                        self.collect(&inline.selection_set, type_name, out);
                    }
                }
                Selection::FragmentSpread(spread) => {
                    if !self.included(&spread.directives) {
                        continue;
                    }
                    if let Some(fragment) = self.document.fragments.get(&spread.fragment_name) {
                        if type_matches(self.schema, type_name, fragment.type_condition()) {
                            self.collect(&fragment.selection_set, type_name, out);
                        }
                    }
                }
            }
        }
    }

    fn included(&self, directives: &DirectiveList) -> bool {
        included(self.variables, directives)
    }
}

/// Whether `@skip` / `@include` in `directives` keep the selection for these variables.
fn included(variables: &Map<String, Value>, directives: &DirectiveList) -> bool {
    directives.iter().all(|d| {
        let skip = match d.name.as_str() {
            "skip" => true,
            "include" => false,
            _ => return true,
        };
        let condition = match d.specified_argument_by_name("if").map(|v| &**v) {
            Some(AstValue::Boolean(b)) => *b,
            Some(AstValue::Variable(name)) => variables
                .get(name.as_str())
                .and_then(Value::as_bool)
                .unwrap_or(false),
            _ => false,
        };
        condition != skip
    })
}

/// Whether `path` runs through a response key that the operation selects at that position only
/// under conditions these variables turn off (on the field, a fragment around it, or a field
/// above it). A key the operation does not select at all there (a planner-internal name) is not
/// judged: such an error is kept. Type conditions are not evaluated (a key selected for any type
/// counts), so this never drops an error the client asked for.
fn deselected(
    document: &ExecutableDocument,
    variables: &Map<String, Value>,
    root: &SelectionSet,
    path: &[PathSegment],
) -> bool {
    let mut kept: Vec<&SelectionSet> = vec![root];
    let mut dropped: Vec<&SelectionSet> = Vec::new();
    for segment in path {
        let PathSegment::Key(key) = segment else {
            continue;
        };
        let mut lookup = FieldsNamed {
            document,
            variables,
            key,
            found: false,
            kept: Vec::new(),
            dropped: Vec::new(),
            visited: std::collections::HashSet::new(),
        };
        for set in &kept {
            lookup.collect(set, true);
        }
        for set in &dropped {
            lookup.collect(set, false);
        }
        if lookup.kept.is_empty() {
            return lookup.found;
        }
        kept = lookup.kept;
        dropped = lookup.dropped;
    }
    false
}

/// One step of [`deselected`]: the fields answering to `key` in some selection sets, fragments
/// expanded.
struct FieldsNamed<'a, 'k> {
    document: &'a ExecutableDocument,
    variables: &'k Map<String, Value>,
    key: &'k str,
    /// Whether any field answers to `key`, kept or not.
    found: bool,
    /// The sub-selections of the fields answering to `key` that the variables keep.
    kept: Vec<&'a SelectionSet>,
    /// The sub-selections of those the variables leave out (or that sit under one).
    dropped: Vec<&'a SelectionSet>,
    /// Named fragments already expanded (with whether they were kept): a fragment spread many
    /// times adds nothing the second time.
    visited: std::collections::HashSet<(&'a str, bool)>,
}

impl<'a> FieldsNamed<'a, '_> {
    /// `kept` is false under a fragment or field the variables leave out.
    fn collect(&mut self, set: &'a SelectionSet, kept: bool) {
        for selection in &set.selections {
            match selection {
                Selection::Field(field) if field.response_key().as_str() == self.key => {
                    self.found = true;
                    if kept && included(self.variables, &field.directives) {
                        self.kept.push(&field.selection_set);
                    } else {
                        self.dropped.push(&field.selection_set);
                    }
                }
                Selection::Field(_) => {}
                Selection::InlineFragment(inline) => {
                    let kept = kept && included(self.variables, &inline.directives);
                    self.collect(&inline.selection_set, kept);
                }
                Selection::FragmentSpread(spread) => {
                    let kept = kept && included(self.variables, &spread.directives);
                    let name = spread.fragment_name.as_str();
                    if !self.visited.insert((name, kept)) {
                        continue;
                    }
                    if let Some(fragment) = self.document.fragments.get(&spread.fragment_name) {
                        self.collect(&fragment.selection_set, kept);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use switchyard_planner::QueryPlan;

    use super::*;
    use crate::execute::{Executor, ExecutorOptions};

    const SDL: &str = r#"
        type Query { shelf: Shelf! items: [Item!] maybe: Item first: Item! }
        type Shelf { id: ID! items: [Item]! label: String }
        interface Item { id: ID! }
        type Book implements Item { id: ID! title: String! pages: Int }
        type Film implements Item { id: ID! minutes: Int }
    "#;

    fn shape(query: &str, variables: Value, data: Value, errors: Vec<GraphQLError>) -> Value {
        shape_data(query, variables, Data::from(data), errors)
    }

    fn shape_data(query: &str, variables: Value, data: Data, errors: Vec<GraphQLError>) -> Value {
        let schema = Arc::new(Schema::parse_and_validate(SDL, "s.graphql").unwrap());
        let executor = Executor::new(Arc::clone(&schema), &[], ExecutorOptions::default()).unwrap();
        let document =
            apollo_compiler::ExecutableDocument::parse_and_validate(&schema, query, "q.graphql")
                .unwrap();
        let operation = document.operations.get(None).unwrap().clone();
        let op = executor.bind(Arc::new(document), operation, &QueryPlan { node: None });
        let variables = variables.as_object().cloned().unwrap_or_default();
        let out = write_response(&schema, &op, &variables, &data, errors, 64);
        serde_json::from_slice(&out).unwrap()
    }

    /// `{"shelf": {"items": [...]}}` with `node` at each place `at` names and `other` elsewhere.
    fn shelf_with(node: &Value, other: &Value, at: &[bool]) -> Data {
        let node = crate::execute::data::NodeRef::new(Data::from(node.clone()));
        let items = at
            .iter()
            .map(|&shared| match shared {
                true => node.alias(),
                false => Data::from(other.clone()),
            })
            .collect();
        let mut shelf = DataMap::new();
        shelf.insert(Str::new("items"), Data::Array(items));
        let mut root = DataMap::new();
        root.insert(Str::new("shelf"), Data::Object(shelf));
        Data::Object(root)
    }

    #[test]
    fn places_holding_one_node_are_written_as_copies_would_be() {
        let book = json!({"__typename": "Book", "id": "b1", "title": "T", "pages": 3});
        let film = json!({"__typename": "Film", "id": "f1", "minutes": 90});
        let query =
            "{ shelf { items { id ... on Book { title pages } ... on Film { minutes } } } }";
        let copies = json!({"shelf": {"items": [book, film, book, book]}});
        let expected = shape(query, json!({}), copies, vec![]);
        let shared = shelf_with(&book, &film, &[true, false, true, true]);
        assert_eq!(shape_data(query, json!({}), shared, vec![]), expected);
        assert_eq!(expected["data"]["shelf"]["items"][3]["title"], "T");
    }

    #[test]
    fn a_null_inside_a_node_is_an_error_at_every_place_holding_it() {
        // `title` is non-null: each place's item becomes null with an error at its own path,
        // which bytes reused from the first place would not carry.
        let book = json!({"__typename": "Book", "id": "b1", "title": null});
        let other = json!({"__typename": "Book", "id": "b2", "title": "Fine"});
        let query = "{ shelf { items { id ... on Book { title } } } }";
        let shared = shelf_with(&book, &other, &[true, false, true]);
        let response = shape_data(query, json!({}), shared, vec![]);
        assert_eq!(
            response["data"],
            json!({"shelf": {"items": [null, {"id": "b2", "title": "Fine"}, null]}})
        );
        let paths: Vec<&Value> = response["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["path"])
            .collect();
        assert_eq!(
            paths,
            [
                &json!(["shelf", "items", 0, "title"]),
                &json!(["shelf", "items", 2, "title"])
            ]
        );
    }

    #[test]
    fn operation_order_aliases_fragments_and_dropped_fields() {
        let data = json!({"shelf": {"label": "L", "id": "s1", "secret": 1, "items": [
            {"__typename": "Film", "id": "f", "minutes": 90, "title": "leak"},
            {"__typename": "Book", "id": "b", "title": "T", "pages": 10}
        ]}});
        let out = shape(
            r#"query { __typename shelf { id label items { __typename ...B ... on Film { minutes } id } } }
               fragment B on Book { title pages }"#,
            json!({}),
            data,
            vec![],
        );
        let text = out.to_string();
        assert_eq!(
            text,
            r#"{"data":{"__typename":"Query","shelf":{"id":"s1","label":"L","items":[{"__typename":"Film","minutes":90,"id":"f"},{"__typename":"Book","title":"T","pages":10,"id":"b"}]}}}"#
        );
    }

    #[test]
    fn skip_and_include_follow_variables() {
        let data = json!({"shelf": {"id": "s1", "label": "L", "items": []}});
        let out = shape(
            "query($a: Boolean!, $b: Boolean = true) { shelf { id @skip(if: $a) label @include(if: $b) } }",
            json!({"a": true, "b": true}),
            data,
            vec![],
        );
        assert_eq!(out, json!({"data": {"shelf": {"label": "L"}}}));
    }

    #[test]
    fn errors_under_fields_the_variables_leave_out_or_repeated_are_dropped() {
        let data = json!({"shelf": {"id": "s1", "label": null, "items": [
            {"__typename": "Book", "id": "b", "pages": null}
        ]}});
        let query = "query($a: Boolean!) { shelf { id label @skip(if: $a) items { ... on Book @include(if: $a) { pages } ...F } } } fragment F on Item { ... on Book { title: pages @skip(if: $a) } }";
        let error = |path: Vec<PathSegment>| GraphQLError::new("boom", "X").with_path(path);
        let errors = || {
            vec![
                error(vec!["shelf".into(), "label".into()]),
                error(vec![
                    "shelf".into(),
                    "items".into(),
                    0.into(),
                    "pages".into(),
                ]),
                error(vec![
                    "shelf".into(),
                    "items".into(),
                    0.into(),
                    "title".into(),
                ]),
                // A key the operation never selects (a planner-internal name) is kept.
                error(vec!["shelf".into(), "_internal".into()]),
            ]
        };
        let paths = |out: &Value| -> Vec<Value> {
            out["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["path"].clone())
                .collect()
        };
        let twice = || {
            let mut all = errors();
            all.extend(errors());
            all
        };
        let skipped = shape(query, json!({"a": true}), data.clone(), twice());
        assert_eq!(
            paths(&skipped),
            vec![
                json!(["shelf", "items", 0, "pages"]),
                json!(["shelf", "_internal"])
            ],
            "{skipped}"
        );
        let kept = shape(query, json!({"a": false}), data, twice());
        assert_eq!(
            paths(&kept),
            vec![
                json!(["shelf", "label"]),
                json!(["shelf", "items", 0, "title"]),
                json!(["shelf", "_internal"])
            ],
            "{kept}"
        );
    }

    #[test]
    fn null_in_non_null_field_bubbles_to_nullable_parent() {
        // `title: String!` is missing on the second book: that list item (nullable) becomes null.
        let data = json!({"shelf": {"id": "s", "items": [
            {"__typename": "Book", "id": "1", "title": "A"},
            {"__typename": "Book", "id": "2"}
        ]}});
        let out = shape(
            "{ shelf { id items { ... on Book { title } } } }",
            json!({}),
            data,
            vec![],
        );
        assert_eq!(
            out["data"],
            json!({"shelf": {"id": "s", "items": [{"title": "A"}, null]}})
        );
        assert_eq!(
            out["errors"],
            json!([{"message": "Cannot return null for non-nullable field Book.title.", "path": ["shelf", "items", 1, "title"]}])
        );
    }

    #[test]
    fn bubbling_through_non_null_chain_nulls_data_and_existing_errors_explain() {
        let existing =
            GraphQLError::new("boom", "SUBGRAPH_REQUEST_FAILED").with_path(vec!["shelf".into()]);
        let out = shape("{ shelf { id } }", json!({}), json!({}), vec![existing]);
        assert_eq!(out["data"], Value::Null);
        assert_eq!(out["errors"].as_array().unwrap().len(), 1, "{out}");
        assert_eq!(out["errors"][0]["message"], "boom");
    }

    #[test]
    fn non_null_list_items_bubble_to_the_list() {
        // `items: [Item!]`: a null item nulls the whole (nullable) list.
        let out = shape(
            "{ items { id } maybe { id } }",
            json!({}),
            json!({"items": [{"__typename": "Book", "id": "1"}, null], "maybe": null}),
            vec![],
        );
        assert_eq!(out["data"], json!({"items": null, "maybe": null}));
        assert_eq!(out["errors"][0]["path"], json!(["items", 1]));
    }
}
