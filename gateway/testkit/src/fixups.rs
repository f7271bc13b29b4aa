//! Spec-shaped errors and nulls for async-graphql's dynamic executor.
//!
//! async-graphql's dynamic executor omits errored fields instead of nulling them and cannot put
//! `null` inside a list of objects, so resolvers never fail: they record errors and null positions
//! here and return a placeholder; after execution the response is patched per the GraphQL spec
//! (null at the position, propagated up to the nearest nullable one).

use std::collections::HashSet;
use std::sync::Mutex;

use async_graphql::{Pos, QueryPathNode, QueryPathSegment};
use serde_json::{json, Map, Value};

/// A response path: keys and list indexes.
pub(crate) type Path = Vec<Value>;

/// Errors and null positions recorded while executing one request.
#[derive(Default)]
pub(crate) struct Fixups {
    inner: Mutex<FixupsInner>,
}

#[derive(Default)]
struct FixupsInner {
    errors: Vec<Value>,
    nulls: Vec<Path>,
    non_null: HashSet<Path>,
}

impl Fixups {
    fn lock(&self) -> std::sync::MutexGuard<'_, FixupsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn error(
        &self,
        message: String,
        path: &Path,
        pos: Option<Pos>,
        extensions: Option<Value>,
    ) {
        let mut error = Map::new();
        error.insert("message".into(), Value::String(message));
        if let Some(pos) = pos {
            error.insert(
                "locations".into(),
                json!([{"line": pos.line, "column": pos.column}]),
            );
        }
        error.insert("path".into(), Value::Array(path.clone()));
        if let Some(extensions) = extensions {
            error.insert("extensions".into(), extensions);
        }
        self.lock().errors.push(Value::Object(error));
    }

    pub(crate) fn null(&self, path: &Path) {
        self.lock().nulls.push(path.clone());
    }

    pub(crate) fn non_null(&self, path: &Path) {
        self.lock().non_null.insert(path.clone());
    }

    /// Writes the recorded nulls (propagated) and errors into a serialized response.
    pub(crate) fn apply(&self, response: &mut Value) {
        let inner = self.lock();
        let Some(object) = response.as_object_mut() else {
            return;
        };
        if !inner.errors.is_empty() {
            let errors = object
                .entry("errors")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = errors {
                list.extend(inner.errors.iter().cloned());
            }
        }
        let Some(data) = object.get_mut("data") else {
            return;
        };
        for path in &inner.nulls {
            let mut position = path.clone();
            loop {
                if position.is_empty() {
                    *data = Value::Null;
                    break;
                }
                if !set_null(data, &position) {
                    // Already inside a nulled subtree.
                    break;
                }
                if !inner.non_null.contains(&position) {
                    break;
                }
                position.pop();
            }
        }
    }
}

/// Sets the value at `path` to null; false when the path does not lead anywhere.
fn set_null(data: &mut Value, path: &[Value]) -> bool {
    let mut current = data;
    for segment in path {
        current = match (current, segment) {
            (Value::Object(map), Value::String(key)) => match map.get_mut(key) {
                Some(v) => v,
                None => return false,
            },
            (Value::Array(items), Value::Number(n)) => {
                match n.as_u64().and_then(|i| items.get_mut(i as usize)) {
                    Some(v) => v,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    *current = Value::Null;
    true
}

/// The response path of the field being resolved.
pub(crate) fn path_of(node: Option<&QueryPathNode<'_>>) -> Path {
    let mut segments = Vec::new();
    let mut current = node;
    while let Some(n) = current {
        segments.push(match n.segment {
            QueryPathSegment::Index(i) => Value::from(i),
            QueryPathSegment::Name(name) => Value::String(name.to_string()),
        });
        current = n.parent;
    }
    segments.reverse();
    segments
}
