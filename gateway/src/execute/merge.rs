//! Reading and writing the merged response data: walking plan paths, building entity
//! representations, rewriting values, deep-merging subgraph results and re-pathing errors.

use apollo_compiler::Schema;
use serde_json::{Map as JsonMap, Value as JsonValue};

use std::sync::Arc;

use super::data::{Map, Str, Value};
use super::fetch::Fetched;
use switchyard_planner::plan::{PathElement, RequiresSelection, ValueRewrite};

use super::EntityTarget;
use crate::error::{GraphQLError, Location, PathSegment};

/// Whether an object of type `typename` satisfies a type condition on `condition`.
pub(crate) fn type_matches(schema: &Schema, typename: &str, condition: &str) -> bool {
    typename == condition || schema.is_subtype(condition, typename)
}

fn typename_of(object: &Map) -> Option<&str> {
    object.get("__typename").and_then(Value::as_str)
}

/// Receives each object found at a path, with the list indexes taken to reach it (the keys
/// come from the plan path, so they need not be stored per object), and whether the walk went
/// through a [`Value::Node`] to reach it: only then can another place lead to the same object
/// (the same address).
pub(crate) type ObjectVisitor<'v> = dyn FnMut(&Map, &[u32], bool) + 'v;

/// Calls `visit` with every object found at `path` under `value`.
pub(crate) fn for_each_object(
    value: &Value,
    path: &[PathElement],
    schema: &Schema,
    indexes: &mut Vec<u32>,
    visit: &mut ObjectVisitor<'_>,
) {
    let mut walk = PathWalk::new(path);
    walk_objects(
        value,
        path,
        &walk.keys,
        &mut walk.hints,
        schema,
        indexes,
        false,
        visit,
    );
}

/// A plan path's keys as [`Str`] probes, and per key the position it was last found at
/// (see [`Map::get_at_hint`]), both parallel to the path.
struct PathWalk {
    keys: Vec<Option<Str>>,
    hints: Vec<usize>,
}

impl PathWalk {
    fn new(path: &[PathElement]) -> Self {
        let keys = path
            .iter()
            .map(|element| match element {
                PathElement::Key(key) => Some(Str::new(key)),
                _ => None,
            })
            .collect();
        Self {
            keys,
            hints: vec![0; path.len()],
        }
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one recursion's state, passed down as it was"
)]
fn walk_objects(
    value: &Value,
    path: &[PathElement],
    keys: &[Option<Str>],
    hints: &mut [usize],
    schema: &Schema,
    indexes: &mut Vec<u32>,
    through_node: bool,
    visit: &mut ObjectVisitor<'_>,
) {
    let through_node = through_node || matches!(value, Value::Node(_));
    let value = value.resolved();
    match value {
        Value::Array(items) => {
            // Lists are entered implicitly too, so paths that omit `@` still reach every item.
            let skip = usize::from(matches!(path.first(), Some(PathElement::List)));
            for (i, item) in items.iter().enumerate() {
                indexes.push(i as u32);
                walk_objects(
                    item,
                    &path[skip..],
                    &keys[skip..],
                    &mut hints[skip..],
                    schema,
                    indexes,
                    through_node,
                    visit,
                );
                indexes.pop();
            }
        }
        Value::Object(object) => match path.first() {
            None => visit(object, indexes, through_node),
            Some(PathElement::Key(_)) => {
                let (Some(Some(key)), Some((hint, hints))) =
                    (keys.first(), hints.split_first_mut())
                else {
                    return;
                };
                if let Some(child) = object.get_at_hint(key, hint) {
                    walk_objects(
                        child,
                        &path[1..],
                        &keys[1..],
                        hints,
                        schema,
                        indexes,
                        through_node,
                        visit,
                    );
                }
            }
            Some(element @ (PathElement::List | PathElement::TypeCondition(_))) => {
                let enters = match element {
                    PathElement::TypeCondition(types) => {
                        typename_of(object).is_none_or(|typename| {
                            types.iter().any(|t| type_matches(schema, typename, t))
                        })
                    }
                    _ => true,
                };
                if enters {
                    walk_objects(
                        value,
                        &path[1..],
                        &keys[1..],
                        &mut hints[1..],
                        schema,
                        indexes,
                        through_node,
                        visit,
                    );
                }
            }
        },
        _ => {}
    }
}

/// The response path of the object [`for_each_object`] reported with `indexes`.
pub(crate) fn client_path(
    value: &Value,
    path: &[PathElement],
    indexes: &[u32],
) -> Vec<PathSegment> {
    let mut out = Vec::new();
    let (mut value, mut path, mut indexes) = (value, path, indexes);
    loop {
        value = value.resolved();
        if let Value::Array(items) = value {
            if let Some(PathElement::List) = path.first() {
                path = &path[1..];
            }
            let Some((first, more)) = indexes.split_first() else {
                break;
            };
            out.push(PathSegment::Index(*first as usize));
            indexes = more;
            match items.get(*first as usize) {
                Some(item) => value = item,
                None => break,
            }
            continue;
        }
        match path.first() {
            None => break,
            Some(PathElement::Key(key)) => {
                out.push(PathSegment::Key(key.clone()));
                match value.get(key.as_str()) {
                    Some(child) => value = child,
                    None => break,
                }
            }
            Some(PathElement::List | PathElement::TypeCondition(_)) => {}
        }
        path = &path[1..];
    }
    out
}

/// An entity fetch's `requires` selection, prepared once per plan for writing representations:
/// each response key as a [`Str`] probe (a short key compares as two words, not a `memcmp`),
/// each field name as a [`Str`] (written without a `memcpy` call), and whether a selection
/// level can name one field twice (only then does writing track the names written). Writing
/// the nested demo query's ~850 representations per request through the plain selection cost
/// 16% of its instructions.
#[derive(Debug)]
pub(crate) struct RepresentationPlan {
    items: Vec<RepresentationItem>,
    /// Names one field twice among its fields and its fragments' fields (flattened).
    repeats: bool,
    /// Holds only inline fragments: an object matching none of them is not sent.
    only_fragments: bool,
    typename: Str,
}

#[derive(Debug)]
enum RepresentationItem {
    Field {
        /// The name written into the representation (quoted with [`Str::write_json`]).
        name: Str,
        key: Str,
        /// The sub-selection of an object-typed field (`None` for leaves).
        selections: Option<RepresentationPlan>,
    },
    Fragment {
        type_condition: Option<Box<str>>,
        items: Vec<RepresentationItem>,
    },
}

impl RepresentationPlan {
    /// Prepares `selections` (a fetch's `requires`).
    pub(crate) fn new(selections: &[RequiresSelection]) -> Self {
        fn items(selections: &[RequiresSelection]) -> Vec<RepresentationItem> {
            selections
                .iter()
                .map(|selection| match selection {
                    RequiresSelection::Field {
                        name,
                        response_key,
                        selections,
                    } => RepresentationItem::Field {
                        name: Str::new(name),
                        key: Str::new(response_key),
                        selections: (!selections.is_empty())
                            .then(|| RepresentationPlan::new(selections)),
                    },
                    RequiresSelection::InlineFragment {
                        type_condition,
                        selections,
                    } => RepresentationItem::Fragment {
                        type_condition: type_condition.as_deref().map(Into::into),
                        items: items(selections),
                    },
                })
                .collect()
        }
        fn names<'s>(items: &'s [RepresentationItem], out: &mut Vec<&'s str>) {
            for item in items {
                match item {
                    RepresentationItem::Field { name, .. } => out.push(name.as_str()),
                    RepresentationItem::Fragment { items, .. } => names(items, out),
                }
            }
        }
        let items = items(selections);
        let mut all = Vec::new();
        names(&items, &mut all);
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        Self {
            repeats: all.len() != count,
            only_fragments: selections
                .iter()
                .all(|s| matches!(s, RequiresSelection::InlineFragment { .. })),
            items,
            typename: Str::new("__typename"),
        }
    }
}

/// Writes the JSON representation of `object` for an entity fetch into `out`; returns false
/// (leaving `out` unspecified) when the object must not be sent: it matches none of the type
/// conditions, or a non-null key field is missing or null.
pub(crate) fn write_representation(
    object: &Map,
    plan: &RepresentationPlan,
    schema: &Schema,
    out: &mut Vec<u8>,
) -> bool {
    write_object(object, plan, schema, out, true)
}

fn write_object(
    object: &Map,
    plan: &RepresentationPlan,
    schema: &Schema,
    out: &mut Vec<u8>,
    top: bool,
) -> bool {
    out.push(b'{');
    let mut level = Level {
        plan,
        written: Written::new(),
        any: false,
        matched: false,
        top,
    };
    if !level.write(object, &plan.items, schema, out) {
        return false;
    }
    if top && plan.only_fragments && !level.matched {
        return false;
    }
    out.push(b'}');
    true
}

/// One representation object being written.
struct Level<'s> {
    plan: &'s RepresentationPlan,
    /// The names written so far, tracked only when the plan can repeat one.
    written: Written<'s>,
    /// Whether a field was written (for the commas).
    any: bool,
    matched: bool,
    top: bool,
}

impl<'s> Level<'s> {
    fn write(
        &mut self,
        object: &Map,
        items: &'s [RepresentationItem],
        schema: &Schema,
        out: &mut Vec<u8>,
    ) -> bool {
        for item in items {
            match item {
                RepresentationItem::Field {
                    name,
                    key,
                    selections,
                } => {
                    if self.plan.repeats {
                        if self.written.contains(name.as_str()) {
                            continue;
                        }
                        self.written.push(name.as_str());
                    }
                    let Some(value) = object.get_key(key) else {
                        return false;
                    };
                    if value.is_null() && self.top && !nullable_field(schema, object, name.as_str())
                    {
                        return false;
                    }
                    if self.any {
                        out.push(b',');
                    }
                    self.any = true;
                    name.write_json(out);
                    out.push(b':');
                    match selections {
                        None => super::json::write_value(out, value),
                        Some(plan) => {
                            if !write_selected_value(value, plan, schema, out) {
                                return false;
                            }
                        }
                    }
                }
                RepresentationItem::Fragment {
                    type_condition,
                    items,
                } => {
                    if fragment_applies(object, type_condition.as_deref(), self.plan, schema) {
                        self.matched = true;
                        if !self.write(object, items, schema, out) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }
}

/// Whether a representation's inline fragment on `condition` applies to `object`.
fn fragment_applies(
    object: &Map,
    condition: Option<&str>,
    plan: &RepresentationPlan,
    schema: &Schema,
) -> bool {
    let Some(condition) = condition else {
        return true;
    };
    match object.get_key(&plan.typename).and_then(Value::as_str) {
        Some(typename) => type_matches(schema, typename, condition),
        // Without a `__typename` the planner's path already fixed the type.
        None => true,
    }
}

/// Whether `object` holds exactly what its representation (written by
/// [`write_representation`], which returned true) holds: the same scalar entries, nothing
/// else (in any order: subgraphs answer `upc __typename` where representations start with
/// `__typename`). Two such objects with equal representations then hold equal values under
/// equal keys, which lets the places holding them share one ([`super::data::NodeRef`]) once
/// their order is checked too ([`Map::scalar_prefix_of`]).
pub(crate) fn is_its_representation(
    object: &Map,
    plan: &RepresentationPlan,
    schema: &Schema,
) -> bool {
    fn count(
        object: &Map,
        items: &[RepresentationItem],
        plan: &RepresentationPlan,
        schema: &Schema,
    ) -> Option<usize> {
        let mut n = 0;
        for item in items {
            match item {
                RepresentationItem::Field {
                    key,
                    selections: None,
                    ..
                } => {
                    if !object.get_key(key).is_some_and(Value::is_scalar) {
                        return None;
                    }
                    n += 1;
                }
                RepresentationItem::Field { .. } => return None,
                RepresentationItem::Fragment {
                    type_condition,
                    items,
                } => {
                    if fragment_applies(object, type_condition.as_deref(), plan, schema) {
                        n += count(object, items, plan, schema)?;
                    }
                }
            }
        }
        Some(n)
    }
    // A plan naming one field twice could count it twice.
    if plan.repeats {
        return false;
    }
    let Some(entries) = object.plain_entries() else {
        return false;
    };
    count(object, &plan.items, plan, schema) == Some(entries.len())
}

/// The field names already written into one representation object: inline for the usual
/// handful, so building a representation does not allocate.
struct Written<'s> {
    inline: [&'s str; 8],
    len: usize,
    more: Vec<&'s str>,
}

impl<'s> Written<'s> {
    fn new() -> Self {
        Self {
            inline: [""; 8],
            len: 0,
            more: Vec::new(),
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.inline[..self.len].contains(&name) || self.more.contains(&name)
    }

    fn push(&mut self, name: &'s str) {
        if self.len < self.inline.len() {
            self.inline[self.len] = name;
            self.len += 1;
        } else {
            self.more.push(name);
        }
    }
}

fn write_selected_value(
    value: &Value,
    plan: &RepresentationPlan,
    schema: &Schema,
    out: &mut Vec<u8>,
) -> bool {
    match value.resolved() {
        Value::Object(object) => write_object(object, plan, schema, out, false),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if !write_selected_value(item, plan, schema, out) {
                    return false;
                }
            }
            out.push(b']');
            true
        }
        other => {
            super::json::write_value(out, other);
            true
        }
    }
}

/// The representation of `object` for an entity fetch, or `None` when the object must not be
/// sent (it matches none of the type conditions, or a non-null key field is missing or null).
pub(crate) fn representation(
    object: &Map,
    requires: &[RequiresSelection],
    schema: &Schema,
) -> Option<Value> {
    let mut out = Map::new();
    let mut matched = false;
    select_into(object, requires, schema, &mut out, &mut matched, true)?;
    let only_fragments = requires
        .iter()
        .all(|s| matches!(s, RequiresSelection::InlineFragment { .. }));
    if only_fragments && !matched {
        return None;
    }
    Some(Value::Object(out))
}

fn select_into(
    object: &Map,
    selections: &[RequiresSelection],
    schema: &Schema,
    out: &mut Map,
    matched: &mut bool,
    top: bool,
) -> Option<()> {
    for selection in selections {
        match selection {
            RequiresSelection::Field {
                name,
                response_key,
                selections,
            } => {
                let value = object.get(response_key)?;
                if value.is_null() && top && !nullable_field(schema, object, name) {
                    return None;
                }
                let copied = if selections.is_empty() {
                    value.clone()
                } else {
                    select_value(value, selections, schema)?
                };
                out.insert(name.as_str().into(), copied);
            }
            RequiresSelection::InlineFragment {
                type_condition,
                selections,
            } => {
                let applies = match (type_condition, typename_of(object)) {
                    (None, _) => true,
                    (Some(condition), Some(typename)) => type_matches(schema, typename, condition),
                    // Without a `__typename` the planner's path already fixed the type.
                    (Some(_), None) => true,
                };
                if applies {
                    *matched = true;
                    select_into(object, selections, schema, out, matched, top)?;
                }
            }
        }
    }
    Some(())
}

fn select_value(value: &Value, selections: &[RequiresSelection], schema: &Schema) -> Option<Value> {
    match value.resolved() {
        Value::Object(object) => {
            let mut out = Map::new();
            let mut matched = false;
            select_into(object, selections, schema, &mut out, &mut matched, false)?;
            Some(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|item| select_value(item, selections, schema))
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        other => Some(other.clone()),
    }
}

/// Whether the field may legitimately be null in a representation (a nullable `@requires`
/// field); key fields are non-null, so a null there means the object was never resolved.
fn nullable_field(schema: &Schema, object: &Map, field: &str) -> bool {
    let Some(typename) = typename_of(object) else {
        return false;
    };
    schema
        .type_field(typename, field)
        .is_ok_and(|def| !def.ty.is_non_null())
}

/// Applies one rewrite to `value` in place.
pub(crate) fn apply_rewrite(value: &mut Value, rewrite: &ValueRewrite, schema: &Schema) {
    match rewrite {
        ValueRewrite::SetValue { path, value: new } => {
            rewrite_at(value, path, schema, &mut |obj, key| {
                obj.insert(key.into(), Value::from(new.clone()));
            })
        }
        ValueRewrite::RenameKey { path, rename_to } => {
            rewrite_at(value, path, schema, &mut |obj, key| {
                if let Some(v) = obj.shift_remove(key) {
                    obj.insert(rename_to.as_str().into(), v);
                }
            })
        }
    }
}

fn rewrite_at(
    value: &mut Value,
    path: &[PathElement],
    schema: &Schema,
    apply: &mut dyn FnMut(&mut Map, &str),
) {
    value.make_owned();
    match (value, path) {
        (Value::Array(items), _) => {
            let rest = match path.first() {
                Some(PathElement::List) => &path[1..],
                _ => path,
            };
            for item in items {
                rewrite_at(item, rest, schema, apply);
            }
        }
        (Value::Object(object), [PathElement::Key(key)]) => apply(object, key),
        (Value::Object(object), [PathElement::Key(key), rest @ ..]) => {
            if let Some(child) = object.get_mut(key) {
                rewrite_at(child, rest, schema, apply);
            }
        }
        (value @ Value::Object(_), [PathElement::List, rest @ ..]) => {
            rewrite_at(value, rest, schema, apply)
        }
        (Value::Object(object), [PathElement::TypeCondition(types), rest @ ..]) => {
            let matches = typename_of(object)
                .is_some_and(|typename| types.iter().any(|t| type_matches(schema, typename, t)));
            if matches {
                let mut value = Value::Object(std::mem::take(object));
                rewrite_at(&mut value, rest, schema, apply);
                if let Value::Object(back) = value {
                    *object = back;
                }
            }
        }
        _ => {}
    }
}

/// Merges `source` into `target`: objects key by key, lists item by item; anything else
/// replaces the target unless it is a null over existing data.
pub(crate) fn deep_merge(target: &mut Value, source: Value) {
    debug_assert!(!matches!(source, Value::Shared(_)));
    if matches!(source, Value::Object(_) | Value::Array(_)) {
        target.make_owned();
    }
    match (target, source) {
        (Value::Object(target), Value::Object(source)) => {
            // Entity fields are usually all new to the target: grow it once, not per push.
            target.reserve(source.entries().len());
            for (key, value) in source {
                match target.get_mut_key(&key) {
                    Some(existing) => deep_merge(existing, value),
                    None => target.push_new(key, value),
                }
            }
        }
        (Value::Array(target), Value::Array(source)) if target.len() == source.len() => {
            for (t, s) in target.iter_mut().zip(source) {
                deep_merge(t, s);
            }
        }
        (_, Value::Null) => {}
        (target, source) => *target = source,
    }
}

/// [`deep_merge`] from a borrowed source, copying only what the target lacks: an entity that
/// several objects share is merged into each without first cloning it whole.
pub(crate) fn deep_merge_ref(target: &mut Value, source: &Value) {
    merge_borrowed(target, source, &mut Value::clone);
}

/// [`deep_merge_ref`] from a response shared with other requests: what the target lacks is
/// added as references into the response ([`Value::Shared`]), not copied. Copying it into every
/// collapsed request's tree was ~25-30% of the gateway's perf samples on the nested demo query
/// at 50 connections and most of its heap; reading in place lowered the peak (ARCHITECTURE.md,
/// "Peak RSS"), and its lookups through base entries cost about what the copies did.
///
/// # Safety
/// `source` must be borrowed from `owner`'s parsed data (see [`data::share`]).
#[allow(
    unsafe_code,
    reason = "the caller vouches that the source lives inside the owner"
)]
pub(crate) unsafe fn deep_merge_shared(target: &mut Value, source: &Value, owner: &Arc<Fetched>) {
    // SAFETY: every value `merge_borrowed` hands over is `source` or a part of it, which lives
    // inside `owner` (this function's contract).
    merge_borrowed(target, source, &mut |value| unsafe {
        super::data::share(owner, value)
    });
}

/// Merges a borrowed `source` into `target`, taking what the target lacks with `take`.
fn merge_borrowed(target: &mut Value, source: &Value, take: &mut dyn FnMut(&Value) -> Value) {
    // Sources are subgraph responses, which hold no shared values: only request trees do.
    debug_assert!(!matches!(source, Value::Shared(_)));
    if matches!(source, Value::Object(_) | Value::Array(_)) {
        target.make_owned();
    }
    match (target, source) {
        (Value::Object(target), Value::Object(source)) => {
            target.reserve(source.entries().len());
            for (key, value) in source.entries() {
                match target.get_mut_key(key) {
                    Some(existing) => merge_borrowed(existing, value, take),
                    None => target.push_new(key.clone(), take(value)),
                }
            }
        }
        (Value::Array(target), Value::Array(source)) if target.len() == source.len() => {
            for (t, s) in target.iter_mut().zip(source) {
                merge_borrowed(t, s, take);
            }
        }
        (_, Value::Null) => {}
        (target, source) => *target = take(source),
    }
}

/// Finds again, in one walk, the objects [`for_each_object`] reported: `targets` holds
/// `(tag, indexes)` in the order they were reported, and `apply(tag, place)` is called for
/// each one found, without re-walking the shared part of the path from the root per object.
/// `place` holds an object: one of this tree's own, or a [`Value::Node`] (see
/// [`super::data::NodeRef::get_mut`] for writing through it).
pub(crate) fn for_each_target_mut(
    value: &mut Value,
    path: &[PathElement],
    targets: &[(usize, &[u32])],
    apply: &mut dyn FnMut(usize, &mut Value),
) {
    let mut walk = PathWalk::new(path);
    walk_targets(value, path, &walk.keys, &mut walk.hints, 0, targets, apply);
}

fn walk_targets(
    value: &mut Value,
    path: &[PathElement],
    keys: &[Option<Str>],
    hints: &mut [usize],
    depth: usize,
    targets: &[(usize, &[u32])],
    apply: &mut dyn FnMut(usize, &mut Value),
) {
    if targets.is_empty() {
        return;
    }
    // A path left with only `@` and type conditions (which the walk that found the targets
    // already applied) ends here unless a list is still to be entered. The place itself goes
    // to `apply`, which may make it a node or write through one: never a node's own object,
    // which `apply` could otherwise make a node of inside the node.
    let at_place = !path.iter().any(|e| matches!(e, PathElement::Key(_)));
    if at_place && !matches!(value.resolved(), Value::Array(_)) {
        if !matches!(value, Value::Node(_)) {
            value.make_owned();
        }
        if value.is_object() {
            for &(tag, _) in targets {
                apply(tag, value);
            }
        }
        return;
    }
    // The objects found here are written to: a shared list or object on the way becomes this
    // request's own, one level at a time (what lies off the path stays shared). A node is
    // written through: only entity merges walk here, and they suit every place holding it.
    let value = match value {
        // SAFETY: `value` was reached through `&mut` of the tree's root, which
        // `for_each_target_mut` holds alone for the walk; the walk keeps no other borrow of
        // the tree while it goes down one place (its callers' `apply` merges from responses).
        #[allow(unsafe_code, reason = "see NodeRef::get_mut")]
        Value::Node(node) => unsafe { node.get_mut() },
        value => {
            value.make_owned();
            value
        }
    };
    if let Value::Array(items) = value {
        let skip = usize::from(matches!(path.first(), Some(PathElement::List)));
        // The hint the walk into an item looks its first key up at (see `prefetch_contents`).
        let hint = match path.get(skip) {
            Some(PathElement::Key(_)) => hints.get(skip).copied().unwrap_or(0),
            _ => 0,
        };
        // Reported order is depth-first, so the targets under one item are contiguous.
        let mut i = 0;
        while i < targets.len() {
            let Some(&index) = targets[i].1.get(depth) else {
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < targets.len() && targets[j].1.get(depth) == Some(&index) {
                j += 1;
            }
            // The next item's contents, and the item after it, start loading while this
            // one is walked: the item read now was asked for one step ago.
            if let Some(&next) = targets.get(j).and_then(|t| t.1.get(depth)) {
                if let Some(item) = items.get(next as usize) {
                    super::data::prefetch_contents(item, hint);
                }
                super::data::prefetch(items.as_ptr().wrapping_add(next as usize + 1));
            }
            if let Some(item) = items.get_mut(index as usize) {
                walk_targets(
                    item,
                    &path[skip..],
                    &keys[skip..],
                    &mut hints[skip..],
                    depth + 1,
                    &targets[i..j],
                    apply,
                );
            }
            i = j;
        }
        return;
    }
    match path.first() {
        None => {}
        Some(PathElement::Key(_)) => {
            let (Some(Some(key)), Some((hint, hints)), Value::Object(object)) =
                (keys.first(), hints.split_first_mut(), value)
            else {
                return;
            };
            if let Some(child) = object.get_mut_at_hint(key, hint) {
                walk_targets(child, &path[1..], &keys[1..], hints, depth, targets, apply);
            }
        }
        Some(PathElement::List | PathElement::TypeCondition(_)) => walk_targets(
            value,
            &path[1..],
            &keys[1..],
            &mut hints[1..],
            depth,
            targets,
            apply,
        ),
    }
}

/// A subgraph error as a client error: message and `extensions` kept (plus `serviceName`),
/// subgraph locations dropped, the path kept (a root fetch's paths are already client paths).
pub(crate) fn subgraph_error(error: JsonValue, service: &str) -> GraphQLError {
    let (mut error, path) = loose_error(error, service);
    error.path = path;
    error
}

/// Errors for one `_entities` error: `_entities/i/rest` becomes `<path of each object i>/rest`.
///
/// An error the subgraph could not place on one representation — no path, a path without the
/// list index (async-graphql writes `_entities/field`), or a path outside `_entities` — is
/// placed on the objects whose entity in `returned` (the subgraph's `_entities` list) is null or
/// missing, or has no value at `rest`: what failed. When that points nowhere the error stays
/// without a path rather than being copied onto every object.
pub(crate) fn entity_errors(
    error: JsonValue,
    service: &str,
    targets: &[EntityTarget],
    paths: &[Vec<PathSegment>],
    returned: &[Value],
) -> Vec<GraphQLError> {
    let (error, path) = loose_error(error, service);
    let path = path.unwrap_or_default();
    let (index, rest) = match path.as_slice() {
        [PathSegment::Key(root), PathSegment::Index(i), rest @ ..] if root == "_entities" => {
            (Some(*i), rest)
        }
        [PathSegment::Key(root), rest @ ..] if root == "_entities" => (None, rest),
        _ => (None, &[][..]),
    };
    let placed = |representation: usize| match index {
        Some(i) => representation == i,
        None => returned
            .get(representation)
            .is_none_or(|entity| !has_value_at(entity, rest)),
    };
    let mut out: Vec<GraphQLError> = targets
        .iter()
        .zip(paths)
        .filter(|(t, _)| placed(t.representation))
        .map(|(_, path)| {
            let mut repathed = error.clone();
            let mut full = path.clone();
            full.extend_from_slice(rest);
            repathed.path = Some(full);
            repathed
        })
        .collect();
    if out.is_empty() {
        out.push(error);
    }
    out
}

/// Whether `value` is an object holding a non-null value at `path`.
fn has_value_at(value: &Value, path: &[PathSegment]) -> bool {
    let mut at = value;
    if !at.is_object() {
        return false;
    }
    for segment in path {
        let next = match (segment, at.resolved()) {
            (PathSegment::Key(key), Value::Object(object)) => object.get(key),
            (PathSegment::Index(i), Value::Array(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(value) => at = value,
            None => return false,
        }
    }
    !at.is_null()
}

/// An introspection error object as a client error (no `serviceName`: the gateway answered).
pub(crate) fn introspection_error(error: JsonValue) -> GraphQLError {
    let locations: Vec<Location> = error
        .get("locations")
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default();
    let (mut error, path) = loose_error(error, "");
    error.extensions.remove("serviceName");
    error.path = path;
    error.locations = locations;
    error
}

fn loose_error(error: JsonValue, service: &str) -> (GraphQLError, Option<Vec<PathSegment>>) {
    let JsonValue::Object(mut object) = error else {
        let mut e = GraphQLError::new(
            "subgraph returned a malformed error",
            crate::error::SUBGRAPH_REQUEST_FAILED,
        );
        e.extensions
            .insert("serviceName".into(), JsonValue::String(service.to_owned()));
        return (e, None);
    };
    let message = match object.remove("message") {
        Some(JsonValue::String(message)) => message,
        _ => "subgraph error".to_owned(),
    };
    let mut extensions = match object.remove("extensions") {
        Some(JsonValue::Object(extensions)) => extensions,
        _ => JsonMap::new(),
    };
    extensions.insert("serviceName".into(), JsonValue::String(service.to_owned()));
    let path = match object.remove("path") {
        Some(JsonValue::Array(segments)) => segments
            .into_iter()
            .map(|s| match s {
                JsonValue::String(key) => Some(PathSegment::Key(key)),
                JsonValue::Number(n) => n.as_u64().map(|i| PathSegment::Index(i as usize)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    let error = GraphQLError {
        message,
        locations: Vec::<Location>::new(),
        path: None,
        extensions,
    };
    (error, path)
}

#[cfg(test)]
mod tests {
    use super::super::data::NodeRef;
    use super::*;
    use apollo_compiler::validation::Valid;
    use serde_json::json;

    /// JSON literal as executor data.
    macro_rules! d {
        ($($json:tt)+) => {
            Value::from(json!($($json)+))
        };
    }

    fn schema() -> Valid<Schema> {
        Schema::parse_and_validate(
            r#"
            type Query { items: [Item] }
            interface Item { id: ID! }
            type Book implements Item { id: ID! title: String }
            type Film implements Item { id: ID! note: String }
            "#,
            "s.graphql",
        )
        .unwrap()
    }

    fn field(name: &str, selections: Vec<RequiresSelection>) -> RequiresSelection {
        RequiresSelection::Field {
            name: name.into(),
            response_key: name.into(),
            selections,
        }
    }

    fn on(condition: Option<&str>, selections: Vec<RequiresSelection>) -> RequiresSelection {
        RequiresSelection::InlineFragment {
            type_condition: condition.map(Into::into),
            selections,
        }
    }

    /// The prepared writer (`RepresentationPlan`) against the selection it was prepared from,
    /// read the other way (`representation`, which builds a value): the same bytes, or both
    /// refusing the object, over fragments that name a field twice, nested objects, lists,
    /// nulls, missing fields, aliased keys and strings that need escaping.
    #[test]
    fn prepared_representations_write_what_the_selection_selects() {
        let schema = schema();
        let selections = [
            vec![on(
                Some("Book"),
                vec![field("__typename", vec![]), field("id", vec![])],
            )],
            vec![
                on(
                    Some("Item"),
                    vec![field("__typename", vec![]), field("id", vec![])],
                ),
                on(
                    Some("Book"),
                    vec![field("id", vec![]), field("title", vec![])],
                ),
                on(
                    Some("Film"),
                    vec![field("note", vec![]), field("id", vec![])],
                ),
            ],
            vec![
                field("__typename", vec![]),
                field("id", vec![]),
                field("title", vec![]),
            ],
            vec![on(
                None,
                vec![
                    field("id", vec![]),
                    field("shelf", vec![field("id", vec![]), field("tags", vec![])]),
                    field(
                        "copies",
                        vec![
                            on(Some("Book"), vec![field("id", vec![])]),
                            field("id", vec![]),
                        ],
                    ),
                ],
            )],
            vec![RequiresSelection::Field {
                name: "id".into(),
                response_key: "aliasedId".into(),
                selections: vec![],
            }],
        ];
        let objects = [
            d!({"__typename": "Book", "id": "1", "title": "x"}),
            d!({"__typename": "Film", "id": "2", "note": "a \"quoted\"\nnote"}),
            d!({"__typename": "Book", "id": null, "title": "x"}),
            d!({"__typename": "Book", "title": null, "id": "3"}),
            d!({"__typename": "Film", "id": "4"}),
            d!({"id": "5", "title": "no typename", "aliasedId": "5a"}),
            d!({"__typename": "Book", "id": "6", "shelf": {"id": 7, "tags": ["a", "b"], "x": 1},
                "copies": [{"__typename": "Book", "id": "c1"}, {"__typename": "Film", "id": "c2"}, null]}),
            d!({"__typename": "Book", "id": "8", "shelf": null, "copies": []}),
            d!({"__typename": "Book", "id": "9", "shelf": [{"id": 1, "tags": null}], "copies": [[{"id": "n"}]]}),
        ];
        let mut compared = 0;
        for requires in &selections {
            let plan = RepresentationPlan::new(requires);
            for object in &objects {
                let object = object.as_object().unwrap();
                let mut bytes = Vec::new();
                let written =
                    write_representation(object, &plan, &schema, &mut bytes).then_some(bytes);
                let built = representation(object, requires, &schema).map(|value| {
                    let mut out = Vec::new();
                    super::super::json::write_value(&mut out, &value);
                    out
                });
                assert_eq!(
                    written.as_deref().map(String::from_utf8_lossy),
                    built.as_deref().map(String::from_utf8_lossy),
                    "{requires:?} on {object:?}"
                );
                compared += usize::from(written.is_some());
            }
        }
        // Most pairs must produce a representation, or the comparison says little.
        assert!(compared >= 12, "only {compared} representations written");
    }

    #[test]
    fn deep_merge_combines_objects_and_lists() {
        let mut target = d!({"a": {"x": 1}, "l": [{"id": 1}, {"id": 2}], "n": 5});
        deep_merge(
            &mut target,
            d!({"a": {"y": 2}, "l": [{"v": "a"}, {"v": "b"}], "n": null, "new": true}),
        );
        assert_eq!(
            target,
            d!({"a": {"x": 1, "y": 2}, "l": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], "n": 5, "new": true})
        );
    }

    #[test]
    fn objects_at_path_honour_lists_and_type_conditions() {
        let schema = schema();
        let data = d!({"items": [
            {"__typename": "Book", "id": "1"},
            null,
            {"__typename": "Film", "id": "2"},
            {"__typename": "Book", "id": "3"}
        ]});
        let mut seen = Vec::new();
        let path = vec![
            PathElement::Key("items".into()),
            PathElement::List,
            PathElement::TypeCondition(vec!["Book".into()]),
        ];
        for_each_object(&data, &path, &schema, &mut Vec::new(), &mut |obj, p, _| {
            seen.push((obj.get("id").cloned().unwrap_or_default(), p.to_vec()));
        });
        assert_eq!(seen, vec![(d!("1"), vec![0]), (d!("3"), vec![3])]);
        assert_eq!(
            client_path(&data, &path, &[3]),
            vec![PathSegment::from("items"), 3.into()]
        );
        let mut data = data;
        let reported: Vec<(usize, &[u32])> = vec![(7, &seen[0].1[..]), (9, &seen[1].1[..])];
        let mut applied = Vec::new();
        for_each_target_mut(&mut data, &path, &reported, &mut |tag, found| {
            applied.push(tag);
            if let Value::Object(found) = found {
                found.insert("seen".into(), Value::from(serde_json::json!(tag)));
            }
        });
        assert_eq!(applied, [7, 9]);
        assert_eq!(data["items"][0]["seen"], d!(7));
        assert_eq!(data["items"][3]["seen"], d!(9));
        assert!(data["items"][2]["seen"].is_null());
    }

    /// Equal places made one node: the walk reports them through the node at one address, and
    /// writes below them go through to every place (and to no other object).
    #[test]
    fn objects_behind_a_node_are_found_once_per_place_and_written_through() {
        let schema = schema();
        let node = NodeRef::new(d!({"__typename": "Book", "id": "1", "meta": {"k": 1}}));
        let other = d!({"__typename": "Book", "id": "2", "meta": {"k": 2}});
        let mut data = Value::Object(Map::from_entries(vec![(
            Str::new("items"),
            Value::Array(vec![node.alias(), other, node.alias()]),
        )]));
        drop(node);
        let items = vec![PathElement::Key("items".into()), PathElement::List];
        let mut seen = Vec::new();
        for_each_object(
            &data,
            &items,
            &schema,
            &mut Vec::new(),
            &mut |obj, p, through| {
                seen.push((obj as *const Map as usize, p.to_vec(), through));
            },
        );
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].0, seen[2].0);
        assert_ne!(seen[0].0, seen[1].0);
        let through: Vec<bool> = seen.iter().map(|s| s.2).collect();
        assert_eq!(through, [true, false, true]);

        // The places themselves reach `apply` as nodes.
        let targets: Vec<(usize, &[u32])> = seen.iter().map(|s| (0, &s.1[..])).collect();
        let mut nodes = 0;
        for_each_target_mut(&mut data, &items, &targets, &mut |_, place| {
            nodes += usize::from(matches!(place, Value::Node(_)));
        });
        assert_eq!(nodes, 2);
        // Also when the path ends in a type condition: the place, not the node's own object.
        let books = vec![
            PathElement::Key("items".into()),
            PathElement::List,
            PathElement::TypeCondition(vec!["Book".into()]),
        ];
        let mut nodes = 0;
        for_each_target_mut(&mut data, &books, &targets, &mut |_, place| {
            nodes += usize::from(matches!(place, Value::Node(_)));
        });
        assert_eq!(nodes, 2);

        // Below them, a write through one place is seen at every place holding the node.
        let meta = vec![
            PathElement::Key("items".into()),
            PathElement::List,
            PathElement::Key("meta".into()),
        ];
        let mut below = Vec::new();
        for_each_object(
            &data,
            &meta,
            &schema,
            &mut Vec::new(),
            &mut |_, p, through| {
                below.push((p.to_vec(), through));
            },
        );
        assert_eq!(below.iter().filter(|b| b.1).count(), 2);
        let first: Vec<(usize, &[u32])> = vec![(5, &below[0].0[..])];
        for_each_target_mut(&mut data, &meta, &first, &mut |tag, found| {
            deep_merge(found, d!({"seen": tag}));
        });
        assert_eq!(data["items"][0]["meta"]["seen"], d!(5));
        assert_eq!(data["items"][2]["meta"]["seen"], d!(5));
        assert!(data["items"][1]["meta"]["seen"].is_null());

        // Any other write gives the place a copy of its own first.
        if let Value::Object(root) = &mut data {
            if let Some(Value::Array(places)) = root.get_mut("items") {
                deep_merge(&mut places[2], d!({"title": "own"}));
            }
        }
        assert_eq!(data["items"][2]["title"], d!("own"));
        assert!(data["items"][0]["title"].is_null());
        assert_eq!(data["items"][0]["meta"]["seen"], d!(5));
    }

    #[test]
    fn an_object_is_its_representation_only_with_nothing_but_its_scalar_keys() {
        let schema = schema();
        let keys = RepresentationPlan::new(&[on(
            Some("Book"),
            vec![field("__typename", vec![]), field("id", vec![])],
        )]);
        let exact = |plan: &RepresentationPlan, object: Value| {
            let Value::Object(object) = object else {
                unreachable!()
            };
            let mut out = Vec::new();
            write_representation(&object, plan, &schema, &mut out)
                && is_its_representation(&object, plan, &schema)
        };
        assert!(exact(&keys, d!({"__typename": "Book", "id": "1"})));
        // Subgraphs write `__typename` where the operation put it.
        assert!(exact(&keys, d!({"id": "1", "__typename": "Book"})));
        assert!(!exact(
            &keys,
            d!({"__typename": "Book", "id": "1", "title": "x"})
        ));
        assert!(!exact(&keys, d!({"__typename": "Film", "id": "1"})));
        let nested = RepresentationPlan::new(&[
            field("id", vec![]),
            field("meta", vec![field("k", vec![])]),
        ]);
        assert!(!exact(&nested, d!({"id": "1", "meta": {"k": 1}})));
        let whole = RepresentationPlan::new(&[field("id", vec![]), field("meta", vec![])]);
        assert!(!exact(&whole, d!({"id": "1", "meta": {"k": 1}})));
        assert!(exact(&whole, d!({"meta": 3, "id": "1"})));
    }

    #[test]
    fn targets_in_nested_lists_are_found_in_one_walk() {
        let schema = schema();
        let data = d!({"a": [
            {"b": [{"id": 1}, {"id": 2}]},
            {"b": []},
            {"b": [{"id": 3}]},
            {"c": 1}
        ]});
        let path = vec![
            PathElement::Key("a".into()),
            PathElement::List,
            PathElement::Key("b".into()),
            PathElement::List,
        ];
        let mut reported = Vec::new();
        for_each_object(&data, &path, &schema, &mut Vec::new(), &mut |_, p, _| {
            reported.push(p.to_vec());
        });
        assert_eq!(reported, [vec![0, 0], vec![0, 1], vec![2, 0]]);
        let targets: Vec<(usize, &[u32])> = reported
            .iter()
            .enumerate()
            .map(|(i, p)| (i, &p[..]))
            .collect();
        let mut data = data;
        for_each_target_mut(&mut data, &path, &targets, &mut |tag, found| {
            deep_merge_ref(found, &d!({"tag": tag}));
        });
        assert_eq!(
            data,
            d!({"a": [
                {"b": [{"id": 1, "tag": 0}, {"id": 2, "tag": 1}]},
                {"b": []},
                {"b": [{"id": 3, "tag": 2}]},
                {"c": 1}
            ]})
        );
    }

    #[test]
    fn merging_by_reference_matches_merging_owned() {
        let source = d!({"a": {"y": 2}, "l": [{"v": "a"}, {"v": "b"}], "n": null, "new": [1]});
        let mut owned = d!({"a": {"x": 1}, "l": [{"id": 1}, {"id": 2}], "n": 5});
        let mut borrowed = owned.clone();
        deep_merge(&mut owned, source.clone());
        deep_merge_ref(&mut borrowed, &source);
        assert_eq!(owned, borrowed);
    }

    #[test]
    #[allow(
        unsafe_code,
        reason = "the merged sources are borrowed from their owners"
    )]
    fn merging_shared_responses_reads_them_in_place_and_never_writes_them() {
        let fetched = |data| {
            Arc::new(Fetched {
                response: crate::execute::json::Response {
                    data: Some(data),
                    errors: None,
                },
                bytes: 0,
                headers: Vec::new(),
                waiters: 1,
                derived: Default::default(),
            })
        };
        let root = fetched(d!({"a": [{"b": [{"id": 1}, {"id": 2}]}, {"b": []}], "s": "x"}));
        let entity =
            fetched(d!({"more": {"deep": [1, 2]}, "name": "a long name past the inline size"}));
        let mut tree = d!({});
        // SAFETY: each source is its owner's data.
        unsafe {
            deep_merge_shared(&mut tree, root.response.data.as_ref().unwrap(), &root);
        }
        assert!(matches!(tree.get("a"), Some(Value::Shared(_))));
        let path = vec![
            PathElement::Key("a".into()),
            PathElement::List,
            PathElement::Key("b".into()),
            PathElement::List,
        ];
        let targets: Vec<(usize, &[u32])> = vec![(0, &[0, 1])];
        for_each_target_mut(&mut tree, &path, &targets, &mut |_, found| unsafe {
            deep_merge_shared(found, entity.response.data.as_ref().unwrap(), &entity)
        });
        let expected = d!({"a": [
            {"b": [{"id": 1}, {"id": 2, "more": {"deep": [1, 2]}, "name": "a long name past the inline size"}]},
            {"b": []}
        ], "s": "x"});
        assert_eq!(tree, expected);
        // Off the written path the tree still refers to the shared response.
        assert!(matches!(tree["a"], Value::Array(_)));
        assert!(matches!(tree["a"][1], Value::Shared(_)));
        // The shared responses are as they were parsed.
        assert_eq!(
            root.response.data.as_ref().unwrap(),
            &d!({"a": [{"b": [{"id": 1}, {"id": 2}]}, {"b": []}], "s": "x"})
        );
        assert_eq!(Arc::strong_count(&entity), 2);
        drop(tree);
        assert_eq!(Arc::strong_count(&root), 1);
        assert_eq!(Arc::strong_count(&entity), 1);
    }

    #[test]
    fn representations_skip_unmatched_and_null_keys() {
        let schema = schema();
        let requires = vec![RequiresSelection::InlineFragment {
            type_condition: Some("Book".into()),
            selections: vec![
                RequiresSelection::Field {
                    name: "__typename".into(),
                    response_key: "__typename".into(),
                    selections: vec![],
                },
                RequiresSelection::Field {
                    name: "id".into(),
                    response_key: "id".into(),
                    selections: vec![],
                },
            ],
        }];
        let book = d!({"__typename": "Book", "id": "1", "title": "x"});
        let film = d!({"__typename": "Film", "id": "2"});
        let broken = d!({"__typename": "Book", "id": null});
        assert_eq!(
            representation(book.as_object().unwrap(), &requires, &schema),
            Some(d!({"__typename": "Book", "id": "1"}))
        );
        let mut bytes = Vec::new();
        let plan = RepresentationPlan::new(&requires);
        assert!(write_representation(
            book.as_object().unwrap(),
            &plan,
            &schema,
            &mut bytes
        ));
        assert_eq!(bytes, br#"{"__typename":"Book","id":"1"}"#);
        assert!(!write_representation(
            film.as_object().unwrap(),
            &plan,
            &schema,
            &mut bytes
        ));
        assert!(!write_representation(
            broken.as_object().unwrap(),
            &plan,
            &schema,
            &mut bytes
        ));
        assert_eq!(
            representation(film.as_object().unwrap(), &requires, &schema),
            None
        );
        assert_eq!(
            representation(broken.as_object().unwrap(), &requires, &schema),
            None
        );
    }

    #[test]
    fn rewrites_set_and_rename() {
        let schema = schema();
        let mut value = d!({"__typename": "Book", "id": "1", "nested": [{"a": 1}]});
        apply_rewrite(
            &mut value,
            &ValueRewrite::SetValue {
                path: vec![
                    PathElement::TypeCondition(vec!["Book".into()]),
                    PathElement::Key("__typename".into()),
                ],
                value: json!("Item"),
            },
            &schema,
        );
        apply_rewrite(
            &mut value,
            &ValueRewrite::RenameKey {
                path: vec![
                    PathElement::Key("nested".into()),
                    PathElement::List,
                    PathElement::Key("a".into()),
                ],
                rename_to: "b".into(),
            },
            &schema,
        );
        assert_eq!(
            value,
            d!({"__typename": "Item", "id": "1", "nested": [{"b": 1}]})
        );
    }

    #[test]
    fn entity_errors_are_repathed_to_every_object() {
        let target = |representation| EntityTarget {
            representation,
            path: 0,
            indexes: 0..0,
            shareable: false,
            through_node: false,
        };
        let targets = vec![target(0), target(1), target(0)];
        let paths = vec![
            vec![PathSegment::from("a"), 0.into()],
            vec![PathSegment::from("a"), 1.into()],
            vec![PathSegment::from("b")],
        ];
        let errors = entity_errors(
            json!({"message": "boom", "path": ["_entities", 0, "name"], "locations": [{"line": 1, "column": 2}], "extensions": {"code": "X"}}),
            "products",
            &targets,
            &paths,
            &[],
        );
        let paths: Vec<_> = errors.iter().map(|e| e.path.clone().unwrap()).collect();
        assert_eq!(
            paths,
            vec![
                vec![PathSegment::from("a"), 0.into(), "name".into()],
                vec![PathSegment::from("b"), "name".into()],
            ]
        );
        assert_eq!(errors[0].code(), Some("X"));
        assert_eq!(errors[0].extensions["serviceName"], "products");
        assert!(errors[0].locations.is_empty());
    }

    #[test]
    fn entity_errors_without_an_index_go_to_the_objects_whose_entity_failed() {
        let target = |representation| EntityTarget {
            representation,
            path: 0,
            indexes: 0..0,
            shareable: false,
            through_node: false,
        };
        let targets = vec![target(0), target(1), target(2)];
        let paths: Vec<Vec<PathSegment>> = (0..3)
            .map(|i| vec![PathSegment::from("posts"), i.into(), "author".into()])
            .collect();
        let at = |error: JsonValue, returned: &[Value]| -> Vec<Option<Vec<PathSegment>>> {
            entity_errors(error, "chat", &targets, &paths, returned)
                .into_iter()
                .map(|e| e.path)
                .collect()
        };
        let with = |i: usize, field: &str| {
            Some(vec![
                PathSegment::from("posts"),
                i.into(),
                "author".into(),
                field.into(),
            ])
        };
        let ok = Value::from(json!({"conversations": {"totalCount": 1}}));
        let nulled = Value::from(json!({"conversations": null}));
        // async-graphql's shape: the field without the list index. Representation 1's entity
        // came back null (a non-null field failed) ...
        let no_index = json!({"message": "denied", "path": ["_entities", "conversations"]});
        assert_eq!(
            at(no_index.clone(), &[ok.clone(), Value::Null, ok.clone()]),
            vec![with(1, "conversations")]
        );
        // ... or representation 2's field came back null (a nullable field failed).
        assert_eq!(
            at(no_index.clone(), &[ok.clone(), ok.clone(), nulled]),
            vec![with(2, "conversations")]
        );
        // Nothing failed that the error could be about: it stays unplaced, not copied.
        let all_ok = [ok.clone(), ok.clone(), ok.clone()];
        assert_eq!(at(no_index, &all_ok), vec![None]);
        // No path at all: the objects whose entity is missing (the list was cut short).
        assert_eq!(
            at(json!({"message": "denied"}), std::slice::from_ref(&ok)),
            vec![Some(paths[1].clone()), Some(paths[2].clone())]
        );
        // An index wins over what failed.
        let indexed = json!({"message": "x", "path": ["_entities", 0, "conversations"]});
        assert_eq!(
            at(indexed, &[ok.clone(), Value::Null, ok]),
            vec![with(0, "conversations")]
        );
    }
}
