//! Entity fetches to one subgraph that become ready together, sent as one request.
//!
//! Two branches of a plan often reach the same subgraph at the same stage with different
//! selections (`a.@.reviews` and `b.product` both needing `Product` fields from one subgraph):
//! one `_entities` request with the union of the selections would change the answer (a field
//! only one branch asked for can null an entity the other branch needs), so the plan keeps two
//! fetches. Their requests can still travel together: one document whose root selects each
//! fetch's `_entities` under its own alias (`_e0`, `_e1`, ...) with its own representation
//! variable, which the subgraph resolves exactly as the separate requests. Hive Router does the
//! same; on generated shapes it sent fewer requests than Switchyard wherever this applied
//! (difftest seeds 180000..180071).
//!
//! The executor batches whatever entity fetches to one subgraph are ready in the same step of a
//! run (the siblings of a `Parallel`, and fetches in different branches unblocked by the same
//! response), so which fetches travel together follows from the plan and the data, not from
//! timing: one step is what one completed response (or the start) unblocks. The combined document
//! is built once per set of fetches and kept with the bound plan ([`Batches`]).

use std::sync::{Arc, Mutex, PoisonError};

use apollo_compiler::ast::{
    Argument, Definition, Document, Field, OperationDefinition, Selection, Type, Value,
    VariableDefinition,
};
use apollo_compiler::{Name, Node};

use super::data::{Map as DataMap, Str, Value as Data};
use super::fetch::Fetched;

/// Most entity fetches sent in one request: each adds a root field and an alias to what the
/// subgraph must accept.
pub(crate) const MAX_BATCH: usize = 16;

/// The combined request of one batch, fixed when the plan is bound.
#[derive(Debug)]
pub(crate) struct BatchSpec {
    /// `{"query":"...","operationName":"...","variables":` for the combined document.
    pub(crate) body_prefix: Vec<u8>,
    /// Per member, in order: the variable its representations go in.
    pub(crate) representation_variables: Vec<String>,
    /// Client variables any member uses, each once.
    pub(crate) variable_usages: Vec<String>,
}

/// Most member sets a bound plan keeps the combined document of. Which fetches are ready
/// together depends on the data (an entity fetch with no object finishes without a request) and
/// on `@skip`/`@include`, so one plan can meet several sets; past this many, a set's document is
/// built for each request instead of kept.
const MAX_KEPT: usize = 32;

/// The combined requests of the batches one bound plan has sent, by member set (the members'
/// plan orders, ascending); `None` for a set whose operations cannot be combined.
#[derive(Debug, Default)]
pub(crate) struct Batches {
    kept: Mutex<Vec<Kept>>,
}

/// A member set (plan orders) and its combined request.
type Kept = (Box<[u32]>, Option<Arc<BatchSpec>>);

impl Batches {
    /// The combined request for `members`: per fetch, in plan order, its plan order, its
    /// operation and the client variables it uses.
    pub(crate) fn spec(&self, members: &[(u32, &str, &[String])]) -> Option<Arc<BatchSpec>> {
        let key: Vec<u32> = members.iter().map(|m| m.0).collect();
        // A panic elsewhere while the lock was held cannot leave the list half-written: entries
        // are pushed whole.
        let lookup = |kept: &[Kept]| {
            kept.iter()
                .find(|(k, _)| **k == key[..])
                .map(|(_, s)| s.clone())
        };
        if let Some(found) = lookup(&self.kept.lock().unwrap_or_else(PoisonError::into_inner)) {
            return found;
        }
        let operations: Vec<&str> = members.iter().map(|m| m.1).collect();
        let spec = combine(&operations).map(|(operation, name, representation_variables)| {
            let mut variable_usages: Vec<String> = Vec::new();
            for name in members.iter().flat_map(|m| m.2) {
                if !variable_usages.contains(name) {
                    variable_usages.push(name.clone());
                }
            }
            Arc::new(BatchSpec {
                body_prefix: super::body_prefix(&operation, name.as_deref()),
                representation_variables,
                variable_usages,
            })
        });
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if lookup(&kept).is_none() && kept.len() < MAX_KEPT {
            kept.push((key.into_boxed_slice(), spec.clone()));
        }
        spec
    }

    /// How many member sets are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The alias of member `part`'s `_entities` field in the combined document.
pub(crate) fn alias(part: usize) -> String {
    format!("_e{part}")
}

/// The combined document for entity fetch operations `operations` (as the planner writes them:
/// `query Name($representations:[_Any!]!,...){_entities(representations:$representations){...}}`),
/// with its operation name and its representation variables; `None` when one of them is not of
/// that form (then the members go alone).
pub(crate) fn combine(operations: &[&str]) -> Option<(String, Option<String>, Vec<String>)> {
    let mut variables: Vec<Node<VariableDefinition>> = Vec::new();
    let mut selections = Vec::new();
    let mut name = None;
    let mut parsed = Vec::new();
    for operation in operations {
        let document = Document::parse(*operation, "fetch.graphql").ok()?;
        let [Definition::OperationDefinition(op)] = &document.definitions[..] else {
            return None;
        };
        parsed.push(op.clone());
    }
    // A representation variable must not shadow a client variable: no client variable may
    // start with the prefix.
    let mut prefix = String::from("_sy_r");
    while parsed
        .iter()
        .flat_map(|op| &op.variables)
        .any(|v| v.name.starts_with(prefix.as_str()))
    {
        prefix.push('r');
    }
    let mut representation_variables = Vec::new();
    for (part, op) in parsed.iter().enumerate() {
        if name.is_none() {
            name = op.name.as_ref().map(|n| n.to_string());
        }
        let [Selection::Field(entities)] = &op.selection_set[..] else {
            return None;
        };
        if entities.name != "_entities" || entities.alias.is_some() {
            return None;
        }
        let variable = format!("{prefix}{part}");
        let variable_name = Name::new(&variable).ok()?;
        variables.push(Node::new(VariableDefinition {
            name: variable_name.clone(),
            ty: Node::new(Type::NonNullList(Box::new(Type::NonNullNamed(
                Name::new("_Any").ok()?,
            )))),
            default_value: None,
            directives: Default::default(),
        }));
        for v in &op.variables {
            if v.name != "representations" && !variables.iter().any(|have| have.name == v.name) {
                variables.push(v.clone());
            }
        }
        selections.push(Selection::Field(Node::new(Field {
            alias: Some(Name::new(&alias(part)).ok()?),
            name: entities.name.clone(),
            arguments: vec![Node::new(Argument {
                name: Name::new("representations").ok()?,
                value: Node::new(Value::Variable(variable_name)),
            })],
            directives: Default::default(),
            selection_set: entities.selection_set.clone(),
        })));
        representation_variables.push(variable);
    }
    let mut document = Document::new();
    document
        .definitions
        .push(Definition::OperationDefinition(Node::new(
            OperationDefinition {
                operation_type: apollo_compiler::ast::OperationType::Query,
                name: name.as_deref().and_then(|n| Name::new(n).ok()),
                variables,
                directives: Default::default(),
                selection_set: selections,
            },
        )));
    let text = document.serialize().no_indent().to_string();
    Some((text, name, representation_variables))
}

/// Each member's share of a batch's response: its `_entities` list (under that name, as the
/// member's own request would have had it), the errors whose path starts at its alias (re-pathed
/// to `_entities`), and the errors that belong to no member where its list is missing. Only the first member counts the response's bytes and
/// passes back its headers, so nothing is counted twice.
pub(crate) fn split(fetched: Arc<Fetched>, parts: usize) -> Vec<Arc<Fetched>> {
    let (mut data, errors, bytes, headers) = match Arc::try_unwrap(fetched) {
        Ok(Fetched {
            response,
            bytes,
            headers,
            ..
        }) => (response.data, response.errors, bytes, headers),
        Err(shared) => (
            shared.response.data.clone(),
            shared.response.errors.clone(),
            shared.bytes,
            shared.headers.clone(),
        ),
    };
    let lists: Vec<Option<Data>> = (0..parts)
        .map(|part| match &mut data {
            Some(Data::Object(object)) => object.shift_remove(&alias(part)),
            _ => None,
        })
        .collect();
    let missing: Vec<bool> = lists
        .iter()
        .map(|list| list.as_ref().is_none_or(Data::is_null))
        .collect();
    let any_missing = missing.contains(&true);
    let mut out = Vec::with_capacity(parts);
    for (part, entities) in lists.into_iter().enumerate() {
        let key = alias(part);
        // An error that belongs to no member goes to each member whose list is missing (a
        // request that failed as a whole fails each), else once, to the first.
        let takes_loose = if any_missing {
            missing[part]
        } else {
            part == 0
        };
        let mut own_errors = Vec::new();
        for error in errors.iter().flatten() {
            let first = error
                .get("path")
                .and_then(|p| p.as_array())
                .and_then(|p| p.first())
                .and_then(|k| k.as_str());
            match first {
                Some(first) if first == key => {
                    let mut error = error.clone();
                    if let Some(serde_json::Value::Array(path)) = error.get_mut("path") {
                        path[0] = serde_json::Value::String("_entities".into());
                    }
                    own_errors.push(error);
                }
                Some(first) if first.starts_with("_e") && first[2..].parse::<usize>().is_ok() => {}
                _ if takes_loose => own_errors.push(error.clone()),
                _ => {}
            }
        }
        let data = entities
            .map(|list| Data::Object(DataMap::from_entries(vec![(Str::plain("_entities"), list)])));
        out.push(Arc::new(Fetched {
            response: super::json::Response {
                data,
                errors: (!own_errors.is_empty()).then_some(own_errors),
            },
            bytes: if part == 0 { bytes } else { 0 },
            headers: if part == 0 {
                headers.clone()
            } else {
                Vec::new()
            },
            // Each member's share is this request's own.
            waiters: 1,
            derived: Default::default(),
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combines_entity_operations_under_aliases() {
        let (text, name, variables) = combine(&[
            "query Q__s0__1($representations:[_Any!]!,$v0:Boolean!){_entities(representations:$representations){...on E{a @skip(if:$v0)}}}",
            "query Q__s0__2($representations:[_Any!]!,$v0:Boolean!,$w:[Int]=[1,2]){_entities(representations:$representations){...on E{b(w:$w)}}}",
        ])
        .unwrap();
        assert_eq!(name.as_deref(), Some("Q__s0__1"));
        assert_eq!(variables, ["_sy_r0", "_sy_r1"]);
        let document = Document::parse(text.as_str(), "q.graphql").unwrap();
        let [Definition::OperationDefinition(op)] = &document.definitions[..] else {
            panic!("{text}");
        };
        let declared: Vec<String> = op
            .variables
            .iter()
            .map(|v| v.serialize().no_indent().to_string())
            .collect();
        assert_eq!(
            declared,
            [
                "$_sy_r0: [_Any!]!",
                "$v0: Boolean!",
                "$_sy_r1: [_Any!]!",
                "$w: [Int] = [1, 2]"
            ]
        );
        assert!(
            text.contains("_e0: _entities(representations: $_sy_r0)"),
            "{text}"
        );
        assert!(
            text.contains("_e1: _entities(representations: $_sy_r1)"),
            "{text}"
        );
        // A client variable named like the representation variables moves them aside.
        let (_, _, variables) = combine(&[
            "query($representations:[_Any!]!,$_sy_r0:Int){_entities(representations:$representations){...on E{a(x:$_sy_r0)}}}",
            "query($representations:[_Any!]!){_entities(representations:$representations){...on E{b}}}",
        ])
        .unwrap();
        assert_eq!(variables, ["_sy_rr0", "_sy_rr1"]);
        // Anything else is left alone.
        assert!(combine(&["{ a }", "{ b }"]).is_none());
    }

    #[test]
    fn keeps_one_combined_request_per_member_set() {
        let a = "query A($representations:[_Any!]!,$v:Int){_entities(representations:$representations){...on E{a(v:$v)}}}";
        let b = "query B($representations:[_Any!]!){_entities(representations:$representations){...on E{b}}}";
        let v = vec!["v".to_owned()];
        let batches = Batches::default();
        let first = batches.spec(&[(1, a, &v), (4, b, &[])]).unwrap();
        assert_eq!(first.representation_variables, ["_sy_r0", "_sy_r1"]);
        assert_eq!(first.variable_usages, ["v"]);
        let prefix = String::from_utf8(first.body_prefix.clone()).unwrap();
        assert!(prefix.contains(r#""operationName":"A""#), "{prefix}");
        // The same set again: the kept document, not a new one.
        let again = batches.spec(&[(1, a, &v), (4, b, &[])]).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // Another set of the same plan is kept beside it.
        let other = batches.spec(&[(4, b, &[]), (7, a, &v)]).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(batches.len(), 2);
        // Operations that cannot be combined: no batch, and asking again does not retry.
        assert!(batches.spec(&[(2, "{ a }", &[]), (3, b, &[])]).is_none());
        assert_eq!(batches.len(), 3);
        // Past MAX_KEPT sets, a set is still combined but no longer kept.
        for order in 10..10 + MAX_KEPT as u32 {
            assert!(batches
                .spec(&[(order, a, &v), (order + 100, b, &[])])
                .is_some());
        }
        assert_eq!(batches.len(), MAX_KEPT);
    }

    #[test]
    fn splits_lists_and_errors_by_alias() {
        let body = br#"{"data":{"_e0":[{"a":1}],"_e1":[null]},"errors":[{"message":"x","path":["_e1",0,"b"]},{"message":"y"}]}"#;
        let fetched = Arc::new(Fetched {
            response: crate::execute::json::parse_response(body).unwrap(),
            bytes: body.len(),
            headers: Vec::new(),
            waiters: 1,
            derived: Default::default(),
        });
        let parts = split(fetched, 2);
        let json = |f: &Fetched| serde_json::to_value(&f.response.data).unwrap();
        assert_eq!(
            json(&parts[0]),
            serde_json::json!({"_entities": [{"a": 1}]})
        );
        // The error that belongs to no member goes once, to the first.
        let loose = parts[0].response.errors.as_ref().unwrap();
        assert_eq!(loose.len(), 1);
        assert_eq!(loose[0]["message"], "y");
        assert_eq!(parts[0].bytes, body.len());
        assert_eq!(json(&parts[1]), serde_json::json!({"_entities": [null]}));
        let errors = parts[1].response.errors.as_ref().unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["path"], serde_json::json!(["_entities", 0, "b"]));
        assert_eq!(parts[1].bytes, 0);
        // A response shared with collapsed requests is copied, not moved: the same shares.
        let fetched = Arc::new(Fetched {
            response: crate::execute::json::parse_response(body).unwrap(),
            bytes: body.len(),
            headers: Vec::new(),
            waiters: 1,
            derived: Default::default(),
        });
        let holder = Arc::clone(&fetched);
        let copies = split(fetched, 2);
        for (copy, part) in copies.iter().zip(&parts) {
            assert_eq!(json(copy), json(part));
            assert_eq!(copy.response.errors, part.response.errors);
        }
        assert!(holder.response.data.is_some());
        // A request that failed as a whole: each member gets the error.
        let body = br#"{"data":null,"errors":[{"message":"down"}]}"#;
        let fetched = Arc::new(Fetched {
            response: crate::execute::json::parse_response(body).unwrap(),
            bytes: body.len(),
            headers: Vec::new(),
            waiters: 1,
            derived: Default::default(),
        });
        for part in split(fetched, 2) {
            assert!(part.response.data.is_none());
            assert_eq!(part.response.errors.as_ref().unwrap().len(), 1);
        }
    }
}
