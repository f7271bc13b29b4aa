//! The merged supergraph model, printed by `print.rs` and checked by `satisfiability.rs`.

use apollo_compiler::ast::Type;
use indexmap::IndexMap;

use crate::subgraph::{Kind, Meta};

/// One subgraph as a `join__Graph` enum value.
#[derive(Debug, Clone)]
pub struct Graph {
    /// `join__Graph` enum value name (e.g. `PRODUCTS`).
    pub enum_name: String,
    /// Subgraph name.
    pub name: String,
    /// Routing URL.
    pub url: String,
}

/// `@join__type` arguments.
#[derive(Debug, Clone)]
pub struct JoinType {
    pub graph: usize,
    pub key: Option<String>,
    pub extension: bool,
    pub resolvable: bool,
    pub is_interface_object: bool,
}

/// `@join__field` arguments; `graph: None` marks fields copied from an `@interfaceObject`.
#[derive(Debug, Clone, Default)]
pub struct JoinField {
    pub graph: Option<usize>,
    pub requires: Option<String>,
    pub provides: Option<String>,
    pub ty: Option<String>,
    pub external: bool,
    pub override_from: Option<String>,
    pub used_overridden: bool,
    pub override_label: Option<String>,
}

/// An argument or input field in the supergraph.
#[derive(Debug, Clone)]
pub struct MInput {
    pub name: String,
    pub description: Option<String>,
    pub ty: Type,
    pub default: Option<String>,
    pub meta: Meta,
}

/// An output field in the supergraph.
#[derive(Debug, Clone)]
pub struct MField {
    pub name: String,
    pub description: Option<String>,
    pub ty: Type,
    pub args: IndexMap<String, MInput>,
    /// `None`: no `@join__field` needed (resolvable in every graph defining the type).
    pub joins: Option<Vec<JoinField>>,
    pub meta: Meta,
}

/// An enum value in the supergraph.
#[derive(Debug, Clone)]
pub struct MEnumValue {
    pub name: String,
    pub description: Option<String>,
    pub graphs: Vec<usize>,
    pub meta: Meta,
}

/// A named type in the supergraph.
#[derive(Debug, Clone)]
pub struct MType {
    pub name: String,
    pub kind: Kind,
    pub description: Option<String>,
    pub join_types: Vec<JoinType>,
    pub implements: Vec<String>,
    pub join_implements: Vec<(usize, String)>,
    pub fields: IndexMap<String, MField>,
    pub input_fields: IndexMap<String, MInput>,
    pub members: Vec<String>,
    pub join_members: Vec<(usize, String)>,
    pub values: IndexMap<String, MEnumValue>,
    pub specified_by: Option<String>,
    pub meta: Meta,
}

/// An executable directive kept in the supergraph.
#[derive(Debug, Clone)]
pub struct MDirective {
    pub name: String,
    pub description: Option<String>,
    pub args: Vec<MInput>,
    pub repeatable: bool,
    pub locations: Vec<String>,
}

/// The whole merged supergraph.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub graphs: Vec<Graph>,
    pub types: IndexMap<String, MType>,
    pub directives: Vec<MDirective>,
    pub uses_inaccessible: bool,
    pub uses_tag: bool,
    pub uses_authenticated: bool,
    pub uses_requires_scopes: bool,
    pub uses_policy: bool,
    /// Some element has `@cost` or `@listSize`.
    pub uses_cost: bool,
    pub uses_override_label: bool,
}

impl Merged {
    /// Root type name for an operation kind, if the supergraph has it.
    pub fn root(&self, name: &str) -> Option<&MType> {
        self.types.get(name)
    }
}
