//! Comparing two gateways' responses: `data` exactly, errors as present or absent and, when both
//! have some, by the set of their `path`s (error messages are each gateway's own wording).

use serde_json::Value;
use switchyard_testkit::compare::ordered_eq;

use crate::targets::SentRequest;

/// How the two responses' `data` compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataCmp {
    /// Equal, including object key order.
    Equal,
    /// The same values with object keys in a different order.
    OrderOnly,
    /// Different values.
    Differs,
}

/// The comparison of one operation's two responses; also the signature a minimized scenario
/// must keep (same kind of disagreement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Outcome {
    /// `data` compared.
    pub data: DataCmp,
    /// Switchyard's response has errors (or was no GraphQL response at all).
    pub ours_errors: bool,
    /// The reference's response has errors (or was no GraphQL response at all).
    pub reference_errors: bool,
    /// Both have errors, at different sets of paths.
    pub error_paths_differ: bool,
}

impl Outcome {
    /// Compares Switchyard's response with the reference's.
    pub fn of(ours: &Value, reference: &Value) -> Self {
        let null = Value::Null;
        let a = ours.get("data").unwrap_or(&null);
        let b = reference.get("data").unwrap_or(&null);
        let data = if ordered_eq(a, b) {
            DataCmp::Equal
        } else if a == b {
            DataCmp::OrderOnly
        } else {
            DataCmp::Differs
        };
        let ours_errors = has_errors(ours);
        let reference_errors = has_errors(reference);
        Outcome {
            data,
            ours_errors,
            reference_errors,
            error_paths_differ: ours_errors
                && reference_errors
                && error_paths(ours) != error_paths(reference),
        }
    }

    /// Whether the gateways disagree.
    pub fn disagrees(&self) -> bool {
        self.data != DataCmp::Equal
            || self.ours_errors != self.reference_errors
            || self.error_paths_differ
    }

    /// Both answered the same way, with errors: with a consistent generated world no error is
    /// due, so this points at the generator or the fixture kit (or a bug both gateways share).
    pub fn both_error(&self) -> bool {
        !self.disagrees() && self.ours_errors
    }

    /// A short label, e.g. `data differs; errors only from Switchyard`.
    pub fn label(&self) -> String {
        let data = match self.data {
            DataCmp::Equal => "same data",
            DataCmp::OrderOnly => "same data in a different key order",
            DataCmp::Differs => "data differs",
        };
        let errors = match (self.ours_errors, self.reference_errors) {
            (true, false) => "; errors only from Switchyard",
            (false, true) => "; errors only from the reference",
            (true, true) if self.error_paths_differ => "; both have errors, at different paths",
            (true, true) => "; both have errors",
            (false, false) => "",
        };
        format!("{data}{errors}")
    }

    /// A file-name-friendly tag for the label.
    pub fn tag(&self) -> &'static str {
        match (self.data, self.ours_errors, self.reference_errors) {
            (DataCmp::OrderOnly, _, _) => "order",
            (DataCmp::Differs, true, false) => "data-ours-errors",
            (DataCmp::Differs, false, true) => "data-ref-errors",
            (DataCmp::Differs, _, _) => "data",
            (DataCmp::Equal, true, false) => "ours-errors",
            (DataCmp::Equal, false, true) => "ref-errors",
            (DataCmp::Equal, true, true) if self.error_paths_differ => "error-paths",
            (DataCmp::Equal, _, _) => "same",
        }
    }
}

/// The `path`s of a response's errors, as a set (order and duplicates are each gateway's own).
pub fn error_paths(response: &Value) -> std::collections::BTreeSet<String> {
    response
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            e.get("path")
                .map_or_else(|| "-".to_string(), Value::to_string)
        })
        .collect()
}

/// Whether a response carries errors (a transport failure counts as one).
pub fn has_errors(response: &Value) -> bool {
    response.get("transport_error").is_some()
        || response
            .get("errors")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty())
}

/// What the subgraph requests of `operation` repeat: a request sent twice to one subgraph
/// (same body), or an entity representation sent twice in one `_entities` request. Each is a
/// fetch the plan could have shared (issue #19: identical fetch nodes planned once, no
/// representation twice in one request). A mutation's are not checked: its fetches may repeat
/// on purpose, after the data changed.
pub fn repeated_requests(operation: &str, requests: &[SentRequest]) -> Vec<String> {
    let mut problems = Vec::new();
    if operation.trim_start().starts_with("mutation") {
        return problems;
    }
    let mut seen = std::collections::HashSet::new();
    for r in requests {
        let body = r.body.to_string();
        if !seen.insert((r.subgraph.as_str(), body)) {
            problems.push(format!("sent to {} twice: {}", r.subgraph, brief(&r.body)));
        }
        let representations = r
            .body
            .pointer("/variables/representations")
            .and_then(Value::as_array);
        let mut in_request = std::collections::HashSet::new();
        for representation in representations.into_iter().flatten() {
            if !in_request.insert(representation.to_string()) {
                problems.push(format!(
                    "representation {representation} twice in one request to {}",
                    r.subgraph
                ));
            }
        }
    }
    problems
}

/// A request's query, cut to a readable length.
fn brief(body: &Value) -> String {
    let query = body.get("query").and_then(Value::as_str).unwrap_or("?");
    query.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_repeated_requests_and_representations() {
        let request = |subgraph: &str, body: Value| SentRequest {
            subgraph: subgraph.into(),
            body,
        };
        let entities = |reps: Value| json!({"query": "query($representations:[_Any!]!){_entities(representations:$representations){...on T{x}}}", "variables": {"representations": reps}});
        let clean = [
            request("a", json!({"query": "{ t { id } }"})),
            request(
                "b",
                entities(json!([{"__typename": "T", "id": 1}, {"__typename": "T", "id": 2}])),
            ),
            request("c", entities(json!([{"__typename": "T", "id": 1}]))),
        ];
        assert!(repeated_requests("{ t { id } }", &clean).is_empty());
        let twice = [
            request("b", entities(json!([{"__typename": "T", "id": 1}]))),
            request("b", entities(json!([{"__typename": "T", "id": 1}]))),
        ];
        let problems = repeated_requests("{ t { id } }", &twice);
        assert!(repeated_requests("mutation { m }", &twice).is_empty());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("sent to b twice"));
        let same_representation = [request(
            "b",
            entities(json!([{"__typename": "T", "id": 1}, {"__typename": "T", "id": 1}])),
        )];
        let problems = repeated_requests("{ t { id } }", &same_representation);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("twice in one request to b"));
    }

    #[test]
    fn classifies_data_order_and_errors() {
        let a = json!({"data": {"x": 1, "y": 2}});
        assert!(!Outcome::of(&a, &a).disagrees());
        let reordered = json!({"data": {"y": 2, "x": 1}});
        assert_eq!(Outcome::of(&a, &reordered).data, DataCmp::OrderOnly);
        let other = json!({"data": {"x": 1, "y": 3}});
        assert_eq!(Outcome::of(&a, &other).data, DataCmp::Differs);
        let with_error = json!({"data": {"x": 1, "y": 2}, "errors": [{"message": "boom"}]});
        let outcome = Outcome::of(&with_error, &a);
        assert!(outcome.disagrees());
        assert_eq!(outcome.tag(), "ours-errors");
        let both = Outcome::of(&with_error, &with_error);
        assert!(both.both_error() && !both.disagrees());
        let elsewhere =
            json!({"data": {"x": 1, "y": 2}, "errors": [{"message": "b", "path": ["y"]}]});
        let there = json!({"data": {"x": 1, "y": 2}, "errors": [{"message": "a", "path": ["x"]}, {"message": "c", "path": ["x"]}]});
        assert_eq!(Outcome::of(&elsewhere, &there).tag(), "error-paths");
        let same_place =
            json!({"data": {"x": 1, "y": 2}, "errors": [{"message": "z", "path": ["x"]}]});
        assert!(!Outcome::of(&there, &same_place).disagrees());
        let hang = json!({"transport_error": "timeout"});
        assert_eq!(Outcome::of(&hang, &a).tag(), "data-ours-errors");
    }
}
