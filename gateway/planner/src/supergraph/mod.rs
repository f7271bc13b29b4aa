//! Supergraph SDL (link + join specs) -> `Supergraph` model + API schema.
//!
//! The model answers the planner's questions: which subgraphs know a type and with which keys,
//! which subgraphs can resolve a field (after `@external`, `@override` and progressive-override
//! labels), and what a field `@requires` / `@provides` in a subgraph.

pub mod api_schema;
mod link;

use std::collections::{BTreeMap, HashMap, HashSet};

use apollo_compiler::ast::Value;
use apollo_compiler::executable::{FieldSet, FragmentMap};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Schema};

use crate::selection::{normalize, NSel};
use link::JoinNames;

/// Hash map with a fast hasher: lookups by type and field name are the planner's hot path, and
/// the keys come from the supergraph (trusted input), so DoS-resistant hashing buys nothing.
pub(crate) type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;

/// One subgraph named by `join__graph`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgraphInfo {
    /// Subgraph name as written in `@join__graph(name:)`.
    pub name: String,
    /// Routing URL from `@join__graph(url:)`.
    pub url: String,
}

/// A progressive-override label found in `@join__field(overrideLabel:)`.
#[derive(Debug, Clone, PartialEq)]
pub struct OverrideLabel {
    /// The label as written, e.g. `percent(25)` or `use-new-service`.
    pub label: String,
    /// For `percent(N)` labels: N, the share of requests (0–100) that should enable the label.
    pub percent: Option<f64>,
}

/// Errors reading a supergraph.
#[derive(Debug, thiserror::Error)]
pub enum SupergraphError {
    /// The SDL does not parse or validate as GraphQL.
    #[error("invalid supergraph SDL: {0}")]
    Invalid(String),
    /// The SDL is GraphQL but not a supported Federation 2 supergraph.
    #[error("unsupported supergraph: {0}")]
    Unsupported(String),
}

/// What a subgraph knows about a type.
#[derive(Debug, Clone, Default)]
pub(crate) struct TypeInGraph {
    /// `@key`s declared for this subgraph, in declaration order.
    pub keys: Vec<KeyDef>,
    /// The type is an interface in the supergraph but an `@interfaceObject` in this subgraph.
    pub interface_object: bool,
}

/// One `@key` of a type in a subgraph.
#[derive(Debug, Clone)]
pub(crate) struct KeyDef {
    pub fields: Vec<NSel>,
    /// `false` for `@key(resolvable: false)`: the subgraph cannot be entered through this key.
    pub resolvable: bool,
}

/// One `@join__field` of a field.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldInGraph {
    pub graph: usize,
    pub external: bool,
    pub requires: Option<Vec<NSel>>,
    pub provides: Option<Vec<NSel>>,
    pub override_from: Option<String>,
    pub override_label: Option<String>,
    pub used_overridden: bool,
    /// The field's type in this subgraph when it differs from the supergraph's
    /// (`@join__field(type:)`), e.g. `ID!` where the supergraph says `ID`, or an object type
    /// where the supergraph has an interface or union.
    pub ty: Option<String>,
}

/// Ownership of one field.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldMeta {
    /// Entries with a `graph:`; when there is no `@join__field` at all the field belongs to
    /// every subgraph that has the type.
    pub entries: Vec<FieldInGraph>,
    /// Whether any `@join__field` is present (including ones without `graph:`).
    pub declared: bool,
}

/// Ownership of one composite type.
#[derive(Debug, Clone, Default)]
pub(crate) struct TypeMeta {
    /// Indexed by subgraph.
    pub in_graph: Vec<Option<TypeInGraph>>,
    pub fields: FastMap<Name, FieldMeta>,
    /// For objects / interfaces: per subgraph, the interfaces it implements there.
    pub implements: Vec<Vec<Name>>,
    /// For unions: per subgraph, the members there.
    pub members: Vec<Vec<Name>>,
    /// For abstract types: per subgraph, the concrete types a field of this type may return.
    pub possible: Vec<Vec<Name>>,
}

/// How a subgraph can resolve a field.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldAvailability<'a> {
    /// Not at all.
    No,
    /// Only where a `@provides` covers it.
    External,
    /// Directly.
    Yes,
    /// Once the given fields of the parent object are in the representation.
    Requires(&'a [NSel]),
}

/// A parsed Federation 2 supergraph: which subgraph owns what, and the client-facing API schema.
#[derive(Debug)]
pub struct Supergraph {
    api_schema: Valid<Schema>,
    schema: Valid<Schema>,
    subgraphs: Vec<SubgraphInfo>,
    override_labels: Vec<OverrideLabel>,
    types: FastMap<Name, TypeMeta>,
    /// Type name -> definition order; keeps plans deterministic.
    type_order: FastMap<Name, usize>,
    /// Per subgraph: whether it declares some field with a type other than the supergraph's
    /// (`@join__field(type:)`), the only way its fetches can hold conflicting fields.
    own_field_types: Vec<bool>,
}

impl Supergraph {
    /// Parses a supergraph SDL (`@link` v1.0, `join` v0.3–v0.5).
    pub fn parse(sdl: &str) -> Result<Self, SupergraphError> {
        let schema = Schema::parse_and_validate(sdl, "supergraph.graphql")
            .map_err(|e| SupergraphError::Invalid(e.errors.to_string()))?;
        let names = JoinNames::from_schema(&schema)?;
        link::check_link_purposes(&schema)?;
        let api_schema = api_schema::api_schema(&schema)?;
        let subgraphs_by_enum = read_graphs(&schema, &names)?;
        let subgraphs: Vec<SubgraphInfo> = subgraphs_by_enum.values().cloned().collect();
        let graph_index: HashMap<&str, usize> = subgraphs_by_enum
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let mut reader = Reader {
            schema: &schema,
            names: &names,
            graph_index,
            graph_count: subgraphs.len(),
            labels: BTreeMap::new(),
        };
        let mut types = FastMap::default();
        let mut type_order = FastMap::default();
        for (i, (name, ty)) in schema.types.iter().enumerate() {
            type_order.insert(name.clone(), i);
            if let Some(meta) = reader.type_meta(name, ty)? {
                types.insert(name.clone(), meta);
            }
        }
        let override_labels = reader
            .labels
            .keys()
            .map(|label| OverrideLabel {
                label: label.clone(),
                percent: parse_percent(label),
            })
            .collect();
        let mut own_field_types = vec![false; subgraphs.len()];
        for meta in types.values() {
            for field in meta.fields.values() {
                for entry in field.entries.iter().filter(|e| e.ty.is_some()) {
                    own_field_types[entry.graph] = true;
                }
            }
        }
        let mut supergraph = Self {
            api_schema,
            schema,
            subgraphs,
            override_labels,
            types,
            type_order,
            own_field_types,
        };
        let abstract_types: Vec<Name> = supergraph
            .types
            .keys()
            .filter(|t| supergraph.is_abstract(t))
            .cloned()
            .collect();
        for ty in abstract_types {
            let possible: Vec<Vec<Name>> = (0..supergraph.subgraphs.len())
                .map(|g| supergraph.compute_possible_types(g, &ty))
                .collect();
            if let Some(meta) = supergraph.types.get_mut(&ty) {
                meta.possible = possible;
            }
        }
        Ok(supergraph)
    }

    /// The API schema clients see: no join/link machinery, no `@inaccessible` elements.
    pub fn api_schema(&self) -> &Valid<Schema> {
        &self.api_schema
    }

    /// The full supergraph schema, machinery included.
    pub fn schema(&self) -> &Valid<Schema> {
        &self.schema
    }

    /// Subgraphs in declaration order.
    pub fn subgraphs(&self) -> &[SubgraphInfo] {
        &self.subgraphs
    }

    /// Progressive-override labels used by the supergraph, sorted by label.
    pub fn override_labels(&self) -> &[OverrideLabel] {
        &self.override_labels
    }

    /// What `graph` knows about `ty`, if it knows the type at all.
    pub(crate) fn type_in_graph(&self, graph: usize, ty: &str) -> Option<&TypeInGraph> {
        self.types.get(ty)?.in_graph.get(graph)?.as_ref()
    }

    pub(crate) fn type_order(&self, ty: &str) -> usize {
        self.type_order.get(ty).copied().unwrap_or(usize::MAX)
    }

    pub(crate) fn is_abstract(&self, ty: &str) -> bool {
        matches!(
            self.schema.types.get(ty),
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_))
        )
    }

    pub(crate) fn is_composite(&self, ty: &str) -> bool {
        matches!(
            self.schema.types.get(ty),
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_) | ExtendedType::Object(_))
        )
    }

    /// Whether a fragment on `cond` applies to an object of concrete type `ty`.
    pub(crate) fn applies(&self, cond: &str, ty: &str) -> bool {
        if cond == ty {
            return true;
        }
        match self.schema.types.get(cond) {
            Some(ExtendedType::Interface(_)) => match self.schema.types.get(ty) {
                Some(ExtendedType::Object(o)) => o.implements_interfaces.contains(cond),
                Some(ExtendedType::Interface(i)) => i.implements_interfaces.contains(cond),
                _ => false,
            },
            Some(ExtendedType::Union(u)) => u.members.contains(ty),
            _ => false,
        }
    }

    /// Interfaces `ty` implements in the supergraph.
    pub(crate) fn interfaces_of(&self, ty: &str) -> Vec<Name> {
        match self.schema.types.get(ty) {
            Some(ExtendedType::Object(o)) => o
                .implements_interfaces
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            Some(ExtendedType::Interface(i)) => i
                .implements_interfaces
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Concrete types a field of abstract type `ty` may return when resolved by `graph`, in
    /// definition order.
    pub(crate) fn possible_types_in(&self, graph: usize, ty: &str) -> &[Name] {
        self.types
            .get(ty)
            .and_then(|meta| meta.possible.get(graph))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn compute_possible_types(&self, graph: usize, ty: &str) -> Vec<Name> {
        let mut out: Vec<Name> = Vec::new();
        match self.schema.types.get(ty) {
            Some(ExtendedType::Union(_)) => {
                if let Some(meta) = self.types.get(ty) {
                    out.extend(meta.members.get(graph).into_iter().flatten().cloned());
                }
            }
            Some(ExtendedType::Interface(_)) => {
                for (name, def) in &self.schema.types {
                    if !matches!(def, ExtendedType::Object(_)) {
                        continue;
                    }
                    let Some(meta) = self.types.get(name) else {
                        continue;
                    };
                    let knows = meta.in_graph.get(graph).is_some_and(|t| t.is_some());
                    let implements = meta
                        .implements
                        .get(graph)
                        .is_some_and(|list| list.iter().any(|i| i == ty));
                    if knows && implements {
                        out.push(name.clone());
                    }
                }
            }
            _ => {}
        }
        out.retain(|n| self.type_in_graph(graph, n).is_some());
        out.sort_by_key(|n| self.type_order(n));
        out
    }

    /// How `graph` can resolve `ty.field`. `enabled` are the progressive-override labels that
    /// are on for this request.
    pub(crate) fn field_availability(
        &self,
        graph: usize,
        ty: &str,
        field: &str,
        enabled: &HashSet<String>,
    ) -> FieldAvailability<'_> {
        let Some(meta) = self.types.get(ty) else {
            return FieldAvailability::No;
        };
        if meta.in_graph.get(graph).is_none_or(|t| t.is_none()) {
            return FieldAvailability::No;
        }
        let Some(fmeta) = meta.fields.get(field) else {
            return FieldAvailability::No;
        };
        if !fmeta.declared {
            return FieldAvailability::Yes;
        }
        let Some(entry) = fmeta.entries.iter().find(|e| e.graph == graph) else {
            return FieldAvailability::No;
        };
        if entry.external {
            return FieldAvailability::External;
        }
        // An overridden copy (`usedOverridden`, or the old owner while its label is on) only
        // lets the subgraph accept the field in a key; its values are never read.
        let mut active = !entry.used_overridden;
        if let Some(label) = &entry.override_label {
            // `percent(100)` is always on, whatever the request's label set says.
            let on = enabled.contains(label) || parse_percent(label).is_some_and(|p| p >= 100.0);
            active = if entry.override_from.is_some() {
                on
            } else {
                !on
            };
        }
        if !active {
            return FieldAvailability::No;
        }
        match &entry.requires {
            Some(req) => FieldAvailability::Requires(req),
            None => FieldAvailability::Yes,
        }
    }

    /// The type `ty.field` has in `graph`, printed (`[ID!]`), when the subgraph declares one
    /// that differs from the supergraph's.
    pub(crate) fn field_type_in(&self, graph: usize, ty: &str, field: &str) -> Option<&str> {
        let meta = self.types.get(ty)?.fields.get(field)?;
        meta.entries
            .iter()
            .find(|e| e.graph == graph)?
            .ty
            .as_deref()
    }

    /// Whether `graph` declares any field with a type of its own (see [`Self::field_type_in`]).
    pub(crate) fn has_own_field_types(&self, graph: usize) -> bool {
        self.own_field_types.get(graph).copied().unwrap_or(false)
    }

    /// `@provides` of `ty.field` in `graph`.
    pub(crate) fn provides(&self, graph: usize, ty: &str, field: &str) -> Option<&[NSel]> {
        let meta = self.types.get(ty)?.fields.get(field)?;
        meta.entries
            .iter()
            .find(|e| e.graph == graph)?
            .provides
            .as_deref()
    }
}

fn parse_percent(label: &str) -> Option<f64> {
    let inner = label.strip_prefix("percent(")?.strip_suffix(')')?;
    inner.trim().parse().ok()
}

fn string_arg<'a>(dir: &'a apollo_compiler::ast::Directive, name: &str) -> Option<&'a str> {
    dir.specified_argument_by_name(name)?.as_str()
}

fn bool_arg(dir: &apollo_compiler::ast::Directive, name: &str) -> Option<bool> {
    dir.specified_argument_by_name(name)?.to_bool()
}

fn enum_arg<'a>(dir: &'a apollo_compiler::ast::Directive, name: &str) -> Option<&'a str> {
    match dir.specified_argument_by_name(name)?.as_ref() {
        Value::Enum(n) => Some(n.as_str()),
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Reads `enum join__Graph` into enum value -> subgraph, in declaration order.
fn read_graphs(
    schema: &Schema,
    names: &JoinNames,
) -> Result<indexmap::IndexMap<String, SubgraphInfo>, SupergraphError> {
    let Some(ExtendedType::Enum(graph_enum)) = schema.types.get(names.graph_enum.as_str()) else {
        return Err(SupergraphError::Unsupported(format!(
            "no `{}` enum",
            names.graph_enum
        )));
    };
    let mut out = indexmap::IndexMap::new();
    for (value, def) in &graph_enum.values {
        let dir = def.directives.get(&names.graph).ok_or_else(|| {
            SupergraphError::Unsupported(format!("`{value}` has no @{}", names.graph))
        })?;
        let name = string_arg(dir, "name")
            .unwrap_or(value.as_str())
            .to_string();
        let url = string_arg(dir, "url").unwrap_or_default().to_string();
        out.insert(value.to_string(), SubgraphInfo { name, url });
    }
    Ok(out)
}

struct Reader<'a> {
    schema: &'a Valid<Schema>,
    names: &'a JoinNames,
    graph_index: HashMap<&'a str, usize>,
    graph_count: usize,
    labels: BTreeMap<String, ()>,
}

impl Reader<'_> {
    fn graph(
        &self,
        dir: &apollo_compiler::ast::Directive,
    ) -> Result<Option<usize>, SupergraphError> {
        match enum_arg(dir, "graph") {
            None => Ok(None),
            Some(g) => self
                .graph_index
                .get(g)
                .copied()
                .map(Some)
                .ok_or_else(|| SupergraphError::Invalid(format!("unknown join graph `{g}`"))),
        }
    }

    fn field_set(&self, ty: &Name, text: &str) -> Result<Vec<NSel>, SupergraphError> {
        let set =
            FieldSet::parse(self.schema, ty.clone(), text, "fieldset.graphql").map_err(|e| {
                SupergraphError::Invalid(format!("field set `{text}` on `{ty}`: {}", e.errors))
            })?;
        Ok(normalize(
            &set.selection_set,
            &FragmentMap::default(),
            &Default::default(),
        ))
    }

    fn type_meta(
        &mut self,
        name: &Name,
        ty: &ExtendedType,
    ) -> Result<Option<TypeMeta>, SupergraphError> {
        let (directives, fields, implements) = match ty {
            ExtendedType::Object(o) => (
                &o.directives,
                Some(&o.fields),
                Some(&o.implements_interfaces),
            ),
            ExtendedType::Interface(i) => (
                &i.directives,
                Some(&i.fields),
                Some(&i.implements_interfaces),
            ),
            ExtendedType::Union(u) => (&u.directives, None, None),
            _ => return Ok(None),
        };
        if ty.is_built_in() || name.starts_with("join__") || name.starts_with("link__") {
            return Ok(None);
        }
        let n = self.graph_count;
        let mut meta = TypeMeta {
            in_graph: vec![None; n],
            fields: FastMap::default(),
            implements: vec![Vec::new(); n],
            members: vec![Vec::new(); n],
            possible: Vec::new(),
        };
        let mut any_type_dir = false;
        for dir in directives.get_all(&self.names.type_) {
            any_type_dir = true;
            let Some(graph) = self.graph(dir)? else {
                continue;
            };
            let entry = meta.in_graph[graph].get_or_insert_with(TypeInGraph::default);
            if bool_arg(dir, "isInterfaceObject") == Some(true) {
                entry.interface_object = true;
            }
            if let Some(key) = string_arg(dir, "key") {
                let fields = self.field_set(name, key)?;
                let resolvable = bool_arg(dir, "resolvable").unwrap_or(true);
                meta.in_graph[graph]
                    .as_mut()
                    .expect("inserted above")
                    .keys
                    .push(KeyDef { fields, resolvable });
            }
        }
        if !any_type_dir {
            // No @join__type: the type belongs to every subgraph.
            meta.in_graph = vec![Some(TypeInGraph::default()); n];
        }

        // Implementations / union members per subgraph; without join directives, every
        // subgraph that knows both types.
        if let Some(implements) = implements {
            let mut any = false;
            for dir in directives.get_all(&self.names.implements) {
                any = true;
                if let (Some(g), Some(iface)) = (self.graph(dir)?, string_arg(dir, "interface")) {
                    if let Ok(iface) = Name::new(iface) {
                        meta.implements[g].push(iface);
                    }
                }
            }
            if !any {
                for g in 0..n {
                    if meta.in_graph[g].is_some() {
                        meta.implements[g] = implements.iter().map(|c| c.name.clone()).collect();
                    }
                }
            }
        }
        if let ExtendedType::Union(u) = ty {
            let mut any = false;
            for dir in directives.get_all(&self.names.union_member) {
                any = true;
                if let (Some(g), Some(member)) = (self.graph(dir)?, string_arg(dir, "member")) {
                    if let Ok(member) = Name::new(member) {
                        meta.members[g].push(member);
                    }
                }
            }
            if !any {
                for g in 0..n {
                    if meta.in_graph[g].is_some() {
                        meta.members[g] = u.members.iter().map(|c| c.name.clone()).collect();
                    }
                }
            }
        }

        if let Some(fields) = fields {
            for (fname, def) in fields.iter() {
                let mut fmeta = FieldMeta::default();
                for dir in def.directives.get_all(&self.names.field) {
                    fmeta.declared = true;
                    let Some(graph) = self.graph(dir)? else {
                        continue;
                    };
                    let mut entry = FieldInGraph {
                        graph,
                        external: bool_arg(dir, "external").unwrap_or(false),
                        used_overridden: bool_arg(dir, "usedOverridden").unwrap_or(false),
                        override_from: string_arg(dir, "override").map(str::to_string),
                        override_label: string_arg(dir, "overrideLabel").map(str::to_string),
                        ty: string_arg(dir, "type")
                            .filter(|t| *t != def.ty.to_string())
                            .map(str::to_string),
                        ..FieldInGraph::default()
                    };
                    if let Some(label) = &entry.override_label {
                        self.labels.insert(label.clone(), ());
                    }
                    if let Some(req) = string_arg(dir, "requires") {
                        entry.requires = Some(self.field_set(name, req)?);
                    }
                    if let Some(prov) = string_arg(dir, "provides") {
                        let target = def.ty.inner_named_type().clone();
                        entry.provides = Some(self.field_set(&target, prov)?);
                    }
                    fmeta.entries.push(entry);
                }
                meta.fields.insert(fname.clone(), fmeta);
            }
        }
        Ok(Some(meta))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_percent;

    #[test]
    fn percent_labels() {
        assert_eq!(parse_percent("percent(25)"), Some(25.0));
        assert_eq!(parse_percent("percent(0.5)"), Some(0.5));
        assert_eq!(parse_percent("use-new"), None);
    }
}
