//! Response names that one subgraph selection set would use for values of different types.
//!
//! A client operation may select `... on A { id } ... on B { id }` where the supergraph gives
//! both `id`s one type, while the subgraph that serves them declares `A.id: ID!` and
//! `B.id: ID`. Sent as is, the subgraph rejects the whole operation: GraphQL's
//! `FieldsInSetCanMerge` requires fields sharing a response name to have the same response
//! shape. Before a fetch is printed, such fields get a fresh alias, and the fetch carries
//! `RenameKey` rewrites that give the values back their client keys before they are merged.

use super::group::{Item, SelTree};
use super::{PathElement, ValueRewrite};
use crate::supergraph::Supergraph;

/// Prefix of the aliases given to conflicting fields.
const CONFLICT_PREFIX: &str = "_sy_";

/// One field of a merged selection set (a selection set plus the inline fragments in it).
struct Occurrence<'t> {
    /// Index path of the item from the tree's root (as `SelTree::node` takes).
    at: Vec<usize>,
    key: &'t str,
    /// The field's type in the subgraph, printed.
    ty: String,
    children: &'t SelTree,
    composite: bool,
}

/// What to change in a fetch's selection.
enum Fix {
    /// Give the item at this index path an alias.
    Alias(Vec<usize>, String),
}

/// Aliases the fields of `tree` (a fetch to `graph` whose root selection is on `root`) that
/// would conflict in the subgraph, and returns the rewrites that restore the client's keys,
/// outermost first. Returns nothing, and changes nothing, when there is no conflict.
pub(crate) fn alias_conflicts(
    sg: &Supergraph,
    graph: usize,
    root: &str,
    tree: &mut SelTree,
) -> Vec<ValueRewrite> {
    // The client's operation is valid against the supergraph, and fields the planner adds are
    // aliased where they collide, so only a field whose type in this subgraph differs from the
    // supergraph's can conflict; and only where some merged set repeats a key.
    if !sg.has_own_field_types(graph) || !repeats_a_key(tree) {
        return Vec::new();
    }
    let mut fixes = Vec::new();
    let mut rewrites = Vec::new();
    {
        let mut occurrences = Vec::new();
        collect(sg, graph, root, tree, &[], &mut occurrences);
        check_set(sg, graph, occurrences, &[], &mut fixes, &mut rewrites);
    }
    for fix in fixes {
        match fix {
            Fix::Alias(at, alias) => {
                let (last, parent) = at.split_last().expect("an item path is never empty");
                if let Item::Field { alias: a, .. } = &mut tree.node_mut(parent).items[*last] {
                    *a = Some(alias);
                }
            }
        }
    }
    rewrites
}

/// Whether some merged set of `tree` (a selection set with the inline fragments in it) uses
/// a response key other than `__typename` more than once, looking into every field's
/// sub-selection too.
fn repeats_a_key(tree: &SelTree) -> bool {
    fn keys<'t>(tree: &'t SelTree, out: &mut Vec<&'t str>) -> bool {
        for item in &tree.items {
            match item {
                Item::Field { alias, name, .. } => {
                    let key = alias.as_deref().unwrap_or(name);
                    if key == "__typename" {
                        continue;
                    }
                    if out.contains(&key) {
                        return true;
                    }
                    out.push(key);
                }
                Item::Inline { children, .. } => {
                    if keys(children, out) {
                        return true;
                    }
                }
            }
        }
        false
    }
    fn fields<'t>(tree: &'t SelTree, out: &mut Vec<&'t SelTree>) {
        for item in &tree.items {
            match item {
                Item::Field { children, .. } => out.push(children),
                Item::Inline { children, .. } => fields(children, out),
            }
        }
    }
    let mut seen = Vec::new();
    if keys(tree, &mut seen) {
        return true;
    }
    let mut below = Vec::new();
    fields(tree, &mut below);
    below.into_iter().any(repeats_a_key)
}

/// Collects the fields of the merged set `tree` (items under `at`), whose type is `owner`
/// (inside a type condition, the innermost condition's type).
fn collect<'t>(
    sg: &Supergraph,
    graph: usize,
    owner: &str,
    tree: &'t SelTree,
    at: &[usize],
    out: &mut Vec<Occurrence<'t>>,
) {
    for (i, item) in tree.items.iter().enumerate() {
        let mut here = at.to_vec();
        here.push(i);
        match item {
            Item::Field {
                alias,
                name,
                composite,
                children,
                ..
            } => {
                out.push(Occurrence {
                    at: here,
                    key: alias.as_deref().unwrap_or(name),
                    ty: field_type(sg, graph, owner, name),
                    children,
                    composite: *composite,
                });
            }
            Item::Inline { cond, children, .. } => {
                let inner = cond.as_deref().unwrap_or(owner);
                collect(sg, graph, inner, children, &here, out);
            }
        }
    }
}

/// The printed type of `owner.name` in `graph`.
fn field_type(sg: &Supergraph, graph: usize, owner: &str, name: &str) -> String {
    if name == "__typename" {
        return "String!".into();
    }
    if let Some(ty) = sg.field_type_in(graph, owner, name) {
        return ty.to_string();
    }
    sg.schema()
        .type_field(owner, name)
        .map(|def| def.ty.to_string())
        .unwrap_or_default()
}

/// The response shape of a printed type: list and non-null wrappers kept, a leaf's name kept,
/// any composite type the same (its fields are compared one level down).
fn shape(sg: &Supergraph, ty: &str) -> String {
    let named = named(ty);
    if sg.is_composite(named) {
        ty.replace(named, "{}")
    } else {
        ty.to_string()
    }
}

fn named(ty: &str) -> &str {
    ty.trim_matches(|c| c == '[' || c == ']' || c == '!')
}

/// A group of fields in one merged set that share a response key and a shape.
struct Class<'o, 't> {
    /// The client's key (what the values are renamed back to).
    key: &'t str,
    shape: String,
    /// The alias the members get in the fetch, for every class of a key but the first.
    alias: Option<String>,
    members: Vec<&'o Occurrence<'t>>,
}

/// Checks one merged set: a field whose key an earlier field of another shape uses gets a
/// fresh alias (every field of its shape with it), then the merged sub-selections of each
/// class are checked. `path` is the response path of the set's object from the fetch's root;
/// renames need no type condition, since an alias only ever appears where it was selected.
fn check_set(
    sg: &Supergraph,
    graph: usize,
    set: Vec<Occurrence<'_>>,
    path: &[PathElement],
    fixes: &mut Vec<Fix>,
    rewrites: &mut Vec<ValueRewrite>,
) {
    // Most sets have no key twice: nothing to compare, no shapes to print.
    let repeated = set
        .iter()
        .enumerate()
        .any(|(i, o)| set[..i].iter().any(|p| p.key == o.key));
    let mut used: Vec<String> = set.iter().map(|o| o.key.to_string()).collect();
    let mut classes: Vec<Class<'_, '_>> = Vec::new();
    for occ in &set {
        let shape = if repeated {
            shape(sg, &occ.ty)
        } else {
            String::new()
        };
        if let Some(class) = classes
            .iter_mut()
            .find(|c| c.key == occ.key && c.shape == shape)
        {
            class.members.push(occ);
            continue;
        }
        let alias = classes.iter().any(|c| c.key == occ.key).then(|| {
            let alias = (1..)
                .map(|n| format!("{CONFLICT_PREFIX}{}_{n}", occ.key))
                .find(|a| !used.contains(a))
                .expect("an unused alias exists");
            used.push(alias.clone());
            alias
        });
        classes.push(Class {
            key: occ.key,
            shape,
            alias,
            members: vec![occ],
        });
    }
    for class in &classes {
        if let Some(alias) = &class.alias {
            for occ in &class.members {
                fixes.push(Fix::Alias(occ.at.clone(), alias.clone()));
            }
            let mut at = path.to_vec();
            at.push(PathElement::Key(alias.clone()));
            rewrites.push(ValueRewrite::RenameKey {
                path: at,
                rename_to: class.key.to_string(),
            });
        }
        // Fields sharing a key and a composite shape merge: their sub-selections are one set.
        let mut below = Vec::new();
        for occ in class.members.iter().filter(|o| o.composite) {
            collect(sg, graph, named(&occ.ty), occ.children, &occ.at, &mut below);
        }
        if below.len() < 2 {
            continue;
        }
        // Children are renamed after their parent is: the path uses the client's key.
        let mut child_path = path.to_vec();
        child_path.push(PathElement::Key(class.key.to_string()));
        check_set(sg, graph, below, &child_path, fixes, rewrites);
    }
}
