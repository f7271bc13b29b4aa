//! Greedy minimization of a disagreeing scenario: drop operation selections, subgraphs, types,
//! fields, directives and entity instances one at a time, keeping each removal after which the
//! gateways still disagree the same way ([`Outcome`] unchanged).

use std::collections::BTreeSet;
use std::time::Instant;

use apollo_compiler::ast::{Definition, Document, Selection};
use serde_json::Value;

use switchyard_testkit::generate::Shape;

use crate::compare::Outcome;
use crate::scenario::{ask, operation_is_valid, Runner, Scenario};
use crate::targets::Target;

/// Minimizes `scenario`, whose outcome is `target`, until `deadline`.
///
/// With `world` (the shape the scenario came from) the reference is the world's answer instead
/// of Hive Router's. The operation is minimized first; the world's answer for that operation is
/// then the expected answer while the schema shrinks, which holds for edits that leave the data
/// of what is still selected alone (subgraphs, definitions, fields, directives — not entity
/// instances or union/interface members, which change what lists hold).
pub async fn minimize(
    runner: &mut Runner,
    scenario: &Scenario,
    target: Outcome,
    deadline: Instant,
    world: Option<&Shape>,
) -> Scenario {
    let mut best = minimize_operation(runner, scenario.clone(), target, deadline, world).await;
    let fixed_expected = match world {
        Some(shape) => match shape.expected_for(&best.operation, &best.variables) {
            Some(expected) => Some(expected),
            None => return best,
        },
        None => None,
    };
    let mut improved = true;
    while improved && Instant::now() < deadline {
        improved = false;
        let mut index = 0;
        loop {
            if Instant::now() >= deadline {
                return best;
            }
            let edits = schema_edits(&best);
            let Some(edit) = edits.get(index) else { break };
            let keeps_data = !matches!(edit, SchemaEdit::Instance(_) | SchemaEdit::Member(..));
            let candidate = if fixed_expected.is_some() && !keeps_data {
                None
            } else {
                apply_schema_edit(&best, edit)
            };
            let Some(candidate) = candidate else {
                index += 1;
                continue;
            };
            let same = match (runner.evaluate(&candidate).await, &fixed_expected) {
                (Some((_, answers)), Some(expected)) => {
                    Outcome::of(&answers.ours, expected) == target
                }
                (Some((_, answers)), None) => answers.outcome == Some(target),
                (None, _) => false,
            };
            if same {
                best = candidate;
                improved = true;
            } else {
                index += 1;
            }
        }
    }
    if world.is_some() {
        // A smaller operation's world answer is not known for the edited schema.
        return best;
    }
    minimize_operation(runner, best, target, deadline, None).await
}

/// Operation-only minimization: one session, no restarts.
async fn minimize_operation(
    runner: &mut Runner,
    mut best: Scenario,
    target: Outcome,
    deadline: Instant,
    world: Option<&Shape>,
) -> Scenario {
    let Ok(composition) = runner.compose(&best.subgraphs).await else {
        return best;
    };
    let Ok(supergraph) = composition.ours.clone() else {
        return best;
    };
    let Ok(mut session) = runner.session(&composition, &best.fixtures).await else {
        return best;
    };
    let mut index = 0;
    loop {
        if Instant::now() >= deadline {
            return best;
        }
        let candidates = operation_edits(&best.operation);
        let Some(candidate) = candidates.get(index) else {
            return best;
        };
        let variables = defined_variables(candidate, &best.variables);
        let same = operation_is_valid(&supergraph, candidate)
            && match world {
                Some(shape) => match shape.expected_for(candidate, &variables) {
                    Some(expected) => {
                        let ours = session.run(Target::Ours, candidate, &variables).await;
                        ours.is_some_and(|o| Outcome::of(&o, &expected) == target)
                    }
                    None => false,
                },
                None => ask(&mut session, candidate, &variables).await.outcome == Some(target),
            };
        if same {
            best.operation = candidate.clone();
            best.variables = variables;
        } else {
            index += 1;
        }
    }
}

/// `variables` restricted to the ones `operation` declares (minimizing drops the others).
pub fn defined_variables(operation: &str, variables: &Value) -> Value {
    let Ok(document) = Document::parse(operation, "operation.graphql") else {
        return variables.clone();
    };
    let declared: BTreeSet<String> = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::OperationDefinition(op) => Some(op),
            _ => None,
        })
        .flat_map(|op| op.variables.iter().map(|v| v.name.to_string()))
        .collect();
    match variables {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| declared.contains(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every operation one edit smaller: a selection removed, an alias removed, a selection's
/// directives removed. Unused fragments and variables are dropped; order is outermost first.
pub fn operation_edits(operation: &str) -> Vec<String> {
    let Ok(document) = Document::parse(operation, "operation.graphql") else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for (d, definition) in document.definitions.iter().enumerate() {
        if let Some(selections) = selections_of(definition) {
            collect_paths(selections, &mut vec![d], &mut paths);
        }
    }
    paths.sort_by_key(Vec::len);
    let mut out = Vec::new();
    for edit in [Edit::Remove, Edit::Unalias, Edit::Undirect] {
        for path in &paths {
            let mut doc = document.clone();
            if apply_selection_edit(&mut doc, path, edit) {
                drop_unused_fragments(&mut doc);
                let text = doc.to_string();
                if text != operation && !out.contains(&text) {
                    out.push(text);
                }
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Edit {
    Remove,
    Unalias,
    Undirect,
}

fn selections_of(definition: &Definition) -> Option<&Vec<Selection>> {
    match definition {
        Definition::OperationDefinition(op) => Some(&op.selection_set),
        Definition::FragmentDefinition(f) => Some(&f.selection_set),
        _ => None,
    }
}

fn children(selection: &Selection) -> Option<&Vec<Selection>> {
    match selection {
        Selection::Field(f) => Some(&f.selection_set),
        Selection::InlineFragment(f) => Some(&f.selection_set),
        Selection::FragmentSpread(_) => None,
    }
}

fn collect_paths(selections: &[Selection], prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    for (i, selection) in selections.iter().enumerate() {
        prefix.push(i);
        out.push(prefix.clone());
        if let Some(inner) = children(selection) {
            collect_paths(inner, prefix, out);
        }
        prefix.pop();
    }
}

fn apply_selection_edit(document: &mut Document, path: &[usize], edit: Edit) -> bool {
    let Some((&d, rest)) = path.split_first() else {
        return false;
    };
    let Some(definition) = document.definitions.get_mut(d) else {
        return false;
    };
    let selections = match definition {
        Definition::OperationDefinition(op) => &mut op.make_mut().selection_set,
        Definition::FragmentDefinition(f) => &mut f.make_mut().selection_set,
        _ => return false,
    };
    edit_in(selections, rest, edit)
}

fn edit_in(selections: &mut Vec<Selection>, path: &[usize], edit: Edit) -> bool {
    let Some((&i, rest)) = path.split_first() else {
        return false;
    };
    if i >= selections.len() {
        return false;
    }
    if !rest.is_empty() {
        let inner = match &mut selections[i] {
            Selection::Field(f) => &mut f.make_mut().selection_set,
            Selection::InlineFragment(f) => &mut f.make_mut().selection_set,
            Selection::FragmentSpread(_) => return false,
        };
        return edit_in(inner, rest, edit);
    }
    match edit {
        Edit::Remove => {
            selections.remove(i);
            true
        }
        Edit::Unalias => match &mut selections[i] {
            Selection::Field(f) if f.alias.is_some() => {
                f.make_mut().alias = None;
                true
            }
            _ => false,
        },
        Edit::Undirect => {
            let directives = match &mut selections[i] {
                Selection::Field(f) => &mut f.make_mut().directives,
                Selection::InlineFragment(f) => &mut f.make_mut().directives,
                Selection::FragmentSpread(f) => &mut f.make_mut().directives,
            };
            if directives.is_empty() {
                false
            } else {
                directives.clear();
                true
            }
        }
    }
}

fn drop_unused_fragments(document: &mut Document) {
    drop_unused_fragment_definitions(document);
    // Variables are used only in arguments and directives of selections.
    let text = document.to_string();
    for definition in &mut document.definitions {
        if let Definition::OperationDefinition(op) = definition {
            // Every declaration is itself one occurrence.
            let counts: Vec<usize> = op
                .variables
                .iter()
                .map(|v| {
                    let name = format!("${}", v.name);
                    text.match_indices(&name)
                        .filter(|(at, _)| !is_name_char(text[at + name.len()..].chars().next()))
                        .count()
                })
                .collect();
            let op = op.make_mut();
            let mut index = 0;
            op.variables.retain(|_| {
                let keep = counts[index] > 1;
                index += 1;
                keep
            });
        }
    }
}

fn is_name_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn drop_unused_fragment_definitions(document: &mut Document) {
    loop {
        let mut used = BTreeSet::new();
        for definition in &document.definitions {
            if let Some(selections) = selections_of(definition) {
                spreads(selections, &mut used);
            }
        }
        let before = document.definitions.len();
        document.definitions.retain(|d| match d {
            Definition::FragmentDefinition(f) => used.contains(f.name.as_str()),
            _ => true,
        });
        if document.definitions.len() == before {
            return;
        }
    }
}

fn spreads(selections: &[Selection], out: &mut BTreeSet<String>) {
    for selection in selections {
        if let Selection::FragmentSpread(s) = selection {
            out.insert(s.fragment_name.to_string());
        }
        if let Some(inner) = children(selection) {
            spreads(inner, out);
        }
    }
}

/// One schema-side simplification.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaEdit {
    /// Drop a whole subgraph (and its fixture).
    Subgraph(usize),
    /// Drop one definition of a subgraph.
    Definition(usize, usize),
    /// Drop one field of an object or interface definition.
    Field(usize, usize, usize),
    /// Drop one directive application on a field.
    FieldDirective(usize, usize, usize, usize),
    /// Drop one directive application on a type.
    TypeDirective(usize, usize, usize),
    /// Drop one `implements` entry or union member.
    Member(usize, usize, usize),
    /// Drop every fixture object with this `id`, everywhere.
    Instance(String),
}

/// Every schema-side edit of `scenario`, biggest first.
pub fn schema_edits(scenario: &Scenario) -> Vec<SchemaEdit> {
    let mut subgraphs = Vec::new();
    let mut definitions = Vec::new();
    let mut fields = Vec::new();
    let mut directives = Vec::new();
    for (s, (_, sdl)) in scenario.subgraphs.iter().enumerate() {
        subgraphs.push(SchemaEdit::Subgraph(s));
        let Ok(document) = Document::parse(sdl.as_str(), "subgraph.graphql") else {
            continue;
        };
        for (d, definition) in document.definitions.iter().enumerate() {
            let (field_defs, type_directives, members) = match definition {
                Definition::ObjectTypeDefinition(t) => (
                    Some(&t.fields),
                    t.directives.len(),
                    t.implements_interfaces.len(),
                ),
                Definition::InterfaceTypeDefinition(t) => (
                    Some(&t.fields),
                    t.directives.len(),
                    t.implements_interfaces.len(),
                ),
                Definition::UnionTypeDefinition(t) => (None, t.directives.len(), t.members.len()),
                Definition::SchemaExtension(_) | Definition::SchemaDefinition(_) => continue,
                _ => (None, 0, 0),
            };
            definitions.push(SchemaEdit::Definition(s, d));
            for k in 0..members {
                directives.push(SchemaEdit::Member(s, d, k));
            }
            for k in 0..type_directives {
                directives.push(SchemaEdit::TypeDirective(s, d, k));
            }
            for (f, field) in field_defs.into_iter().flatten().enumerate() {
                fields.push(SchemaEdit::Field(s, d, f));
                for k in 0..field.directives.len() {
                    directives.push(SchemaEdit::FieldDirective(s, d, f, k));
                }
            }
        }
    }
    let mut ids = BTreeSet::new();
    for fixture in scenario.fixtures.values() {
        collect_ids(fixture, &mut ids);
    }
    let instances = ids.into_iter().map(SchemaEdit::Instance);
    subgraphs
        .into_iter()
        .chain(definitions)
        .chain(instances)
        .chain(fields)
        .chain(directives)
        .collect()
}

fn collect_ids(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_ids(v, out)),
        Value::Object(map) => {
            if let Some(Value::String(id)) = map.get("id") {
                out.insert(id.clone());
            }
            map.values().for_each(|v| collect_ids(v, out));
        }
        _ => {}
    }
}

fn drop_instance(value: &mut Value, id: &str) {
    match value {
        Value::Array(items) => {
            items.retain(|item| item.get("id").and_then(Value::as_str) != Some(id));
            items.iter_mut().for_each(|v| drop_instance(v, id));
        }
        Value::Object(map) => map.values_mut().for_each(|v| drop_instance(v, id)),
        _ => {}
    }
}

/// Applies `edit`; `None` when it does not apply.
pub fn apply_schema_edit(scenario: &Scenario, edit: &SchemaEdit) -> Option<Scenario> {
    let mut next = scenario.clone();
    match edit {
        SchemaEdit::Subgraph(s) => {
            if next.subgraphs.len() <= 1 {
                return None;
            }
            let (name, _) = next.subgraphs.remove(*s);
            next.fixtures.remove(&name);
        }
        SchemaEdit::Instance(id) => {
            for fixture in next.fixtures.values_mut() {
                drop_instance(fixture, id);
            }
        }
        SchemaEdit::Definition(s, d)
        | SchemaEdit::Field(s, d, _)
        | SchemaEdit::FieldDirective(s, d, _, _)
        | SchemaEdit::TypeDirective(s, d, _)
        | SchemaEdit::Member(s, d, _) => {
            let (_, sdl) = next.subgraphs.get_mut(*s)?;
            let mut document = Document::parse(sdl.as_str(), "subgraph.graphql").ok()?;
            if !edit_definition(&mut document, *d, edit) {
                return None;
            }
            *sdl = document.to_string();
        }
    }
    prune_fixtures(&mut next);
    (next != *scenario).then_some(next)
}

fn edit_definition(document: &mut Document, d: usize, edit: &SchemaEdit) -> bool {
    if d >= document.definitions.len() {
        return false;
    }
    if matches!(edit, SchemaEdit::Definition(..)) {
        document.definitions.remove(d);
        return true;
    }
    match (&mut document.definitions[d], edit) {
        (Definition::ObjectTypeDefinition(t), SchemaEdit::Field(_, _, f)) => {
            remove_at(&mut t.make_mut().fields, *f)
        }
        (Definition::InterfaceTypeDefinition(t), SchemaEdit::Field(_, _, f)) => {
            remove_at(&mut t.make_mut().fields, *f)
        }
        (Definition::ObjectTypeDefinition(t), SchemaEdit::FieldDirective(_, _, f, k)) => {
            match t.make_mut().fields.get_mut(*f) {
                Some(field) => remove_at(&mut field.make_mut().directives.0, *k),
                None => false,
            }
        }
        (Definition::InterfaceTypeDefinition(t), SchemaEdit::FieldDirective(_, _, f, k)) => {
            match t.make_mut().fields.get_mut(*f) {
                Some(field) => remove_at(&mut field.make_mut().directives.0, *k),
                None => false,
            }
        }
        (Definition::ObjectTypeDefinition(t), SchemaEdit::TypeDirective(_, _, k)) => {
            remove_at(&mut t.make_mut().directives.0, *k)
        }
        (Definition::InterfaceTypeDefinition(t), SchemaEdit::TypeDirective(_, _, k)) => {
            remove_at(&mut t.make_mut().directives.0, *k)
        }
        (Definition::UnionTypeDefinition(t), SchemaEdit::TypeDirective(_, _, k)) => {
            remove_at(&mut t.make_mut().directives.0, *k)
        }
        (Definition::ObjectTypeDefinition(t), SchemaEdit::Member(_, _, k)) => {
            remove_at(&mut t.make_mut().implements_interfaces, *k)
        }
        (Definition::InterfaceTypeDefinition(t), SchemaEdit::Member(_, _, k)) => {
            remove_at(&mut t.make_mut().implements_interfaces, *k)
        }
        (Definition::UnionTypeDefinition(t), SchemaEdit::Member(_, _, k)) => {
            remove_at(&mut t.make_mut().members, *k)
        }
        _ => false,
    }
}

fn remove_at<T>(items: &mut Vec<T>, index: usize) -> bool {
    if index < items.len() {
        items.remove(index);
        true
    } else {
        false
    }
}

/// Drops fixture parts the testkit would reject once their subgraph or type is gone: fixtures of
/// removed subgraphs, `Query`/`Mutation` without that root type, `entities` of unknown types.
pub fn prune_fixtures(scenario: &mut Scenario) {
    let names: BTreeSet<&str> = scenario.subgraphs.iter().map(|(n, _)| n.as_str()).collect();
    scenario
        .fixtures
        .retain(|name, _| names.contains(name.as_str()));
    for (name, sdl) in &scenario.subgraphs {
        let Some(fixture) = scenario
            .fixtures
            .get_mut(name)
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let Ok(document) = Document::parse(sdl.as_str(), "subgraph.graphql") else {
            continue;
        };
        // Type name -> its field names in this subgraph.
        let mut types: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        for d in &document.definitions {
            let (name, fields) = match d {
                Definition::ObjectTypeDefinition(t) => (&t.name, &t.fields),
                Definition::InterfaceTypeDefinition(t) => (&t.name, &t.fields),
                Definition::ObjectTypeExtension(t) => (&t.name, &t.fields),
                Definition::InterfaceTypeExtension(t) => (&t.name, &t.fields),
                _ => continue,
            };
            types
                .entry(name.to_string())
                .or_default()
                .extend(fields.iter().map(|f| f.name.to_string()));
        }
        fixture.retain(|key, _| key == "entities" || types.contains_key(key));
        for (root, value) in fixture.iter_mut() {
            if let (Some(fields), Some(map)) = (types.get(root), value.as_object_mut()) {
                map.retain(|k, _| fields.contains(k.split('(').next().unwrap_or(k)));
            }
        }
        if let Some(entities) = fixture.get_mut("entities").and_then(Value::as_object_mut) {
            entities.retain(|t, _| types.contains_key(t));
            // Values of fields the type no longer has here are never read: drop them.
            for (t, list) in entities.iter_mut() {
                let fields = &types[t];
                for entry in list.as_array_mut().into_iter().flatten() {
                    if let Some(entry) = entry.as_object_mut() {
                        entry.retain(|k, _| {
                            let field = k.split('(').next().unwrap_or(k);
                            k == "__typename" || fields.contains(field)
                        });
                    }
                }
            }
        }
        if fixture
            .get("entities")
            .and_then(Value::as_object)
            .is_some_and(|e| e.is_empty())
        {
            fixture.remove("entities");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operation_edits_remove_alias_and_directives_and_unused_fragments() {
        let edits =
            operation_edits("query Q { a { x: b @skip(if: false) ...F } }\nfragment F on A { c }");
        let flat: Vec<String> = edits
            .iter()
            .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert!(
            flat.iter()
                .any(|e| e == "query Q { a { x: b @skip(if: false) } }"),
            "{flat:#?}"
        );
        assert!(
            flat.iter()
                .any(|e| e.starts_with("query Q { a { b @skip(if: false) ...F } }")),
            "{flat:#?}"
        );
        assert!(
            flat.iter()
                .any(|e| e.starts_with("query Q { a { x: b ...F } }")),
            "{flat:#?}"
        );
        assert!(
            flat.iter().any(|e| e.starts_with("query Q { a { ...F } }")),
            "{flat:#?}"
        );
    }

    #[test]
    fn unused_variables_are_dropped_with_their_selection() {
        let edits = operation_edits(
            "query Q($a: Boolean!, $b: Boolean!) { x @skip(if: $a) y @include(if: $b) }",
        );
        let flat: Vec<String> = edits
            .iter()
            .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert!(
            flat.contains(&"query Q($b: Boolean!) { y @include(if: $b) }".to_string()),
            "{flat:#?}"
        );
        assert!(
            flat.contains(&"query Q($a: Boolean!) { x @skip(if: $a) }".to_string()),
            "{flat:#?}"
        );
        assert!(
            flat.contains(&"query Q($b: Boolean!) { x y @include(if: $b) }".to_string()),
            "{flat:#?}"
        );
        assert_eq!(
            defined_variables(
                "query Q($b: Boolean!) { y @include(if: $b) }",
                &json!({"a": true, "b": false})
            ),
            json!({"b": false})
        );
    }

    #[test]
    fn schema_edits_keep_fixtures_loadable() {
        let scenario = Scenario {
            seed: 0,
            op_index: 0,
            subgraphs: vec![
                ("a".into(), "type Query { all: [T!]! }\ntype T @key(fields: \"id\") { id: ID! x: Int }".into()),
                ("b".into(), "type T @key(fields: \"id\") { id: ID! y: Int }".into()),
            ],
            fixtures: [
                ("a".to_string(), json!({"Query": {"all": [{"id": "1"}, {"id": "2"}]}, "entities": {"T": [{"id": "1", "x": 1}, {"id": "2", "x": 2}]}})),
                ("b".to_string(), json!({"entities": {"T": [{"id": "1", "y": 1}]}})),
            ]
            .into_iter()
            .collect(),
            operation: "{ all { id } }".into(),
            variables: json!({}),
        };
        let edits = schema_edits(&scenario);
        assert!(edits.contains(&SchemaEdit::Subgraph(1)));
        assert!(edits.contains(&SchemaEdit::Instance("2".into())));
        let without_b = apply_schema_edit(&scenario, &SchemaEdit::Subgraph(1)).unwrap();
        assert!(!without_b.fixtures.contains_key("b"));
        let without_query = apply_schema_edit(&scenario, &SchemaEdit::Definition(0, 0)).unwrap();
        assert!(
            without_query.fixtures["a"].get("Query").is_none(),
            "{:?}",
            without_query.fixtures
        );
        let without_2 = apply_schema_edit(&scenario, &SchemaEdit::Instance("2".into())).unwrap();
        assert_eq!(
            without_2.fixtures["a"]["Query"]["all"],
            json!([{"id": "1"}])
        );
        assert_eq!(
            without_2.fixtures["a"]["entities"]["T"],
            json!([{"id": "1", "x": 1}])
        );
        let without_y = apply_schema_edit(&scenario, &SchemaEdit::Field(1, 0, 1)).unwrap();
        assert!(!without_y.subgraphs[1].1.contains("y: Int"));
    }
}
