//! Writing disagreements: a ready-to-run `.case` file (gateway/tests/federation/README.md) whose
//! expected response is the reference's answer, and a `.md` note with the subgraph SDLs and both
//! answers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::scenario::Scenario;
use crate::targets::SentRequest;

/// Everything known about one disagreement.
#[derive(Debug, Clone)]
pub struct Finding<'a> {
    /// The (minimized) scenario.
    pub scenario: &'a Scenario,
    /// Switchyard's supergraph for it.
    pub supergraph: &'a str,
    /// Switchyard's answer.
    pub ours: &'a Value,
    /// The reference's answer.
    pub reference: &'a Value,
    /// Who the reference is (`Hive Router`, `the generated world`).
    pub reference_name: &'a str,
    /// Outcome label, e.g. `data differs`.
    pub label: String,
    /// File-name tag for the outcome.
    pub tag: &'static str,
    /// Extra lines for the note (e.g. what Switchyard answers on Apollo's supergraph).
    pub notes: Vec<String>,
    /// The generator features of the original shape.
    pub features: Vec<String>,
}

/// The expected response of the case: the reference's `data`, and its errors reduced to their
/// `path` (the wording of messages is each gateway's own).
pub fn expected_response(reference: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(data) = reference.get("data") {
        out.insert("data".into(), data.clone());
    }
    if let Some(errors) = reference.get("errors").and_then(Value::as_array) {
        let errors: Vec<Value> = errors
            .iter()
            .map(|e| match e.get("path") {
                Some(path) => json!({ "path": path }),
                None => json!({}),
            })
            .collect();
        if !errors.is_empty() {
            out.insert("errors".into(), Value::Array(errors));
        }
    }
    if out.is_empty() {
        out.insert("data".into(), Value::Null);
    }
    Value::Object(out)
}

/// The `.case` text for a finding.
pub fn case_text(finding: &Finding) -> String {
    let s = finding.scenario;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "=== description\ndifftest seed {} operation {}: Switchyard and {} disagree ({}).\nExpected: {}'s answer (errors compared by path only); not yet reviewed.",
        s.seed, s.op_index, finding.reference_name, finding.label, finding.reference_name
    );
    let _ = writeln!(out, "=== supergraph\n{}", finding.supergraph.trim_end());
    for (name, fixture) in &s.fixtures {
        let _ = writeln!(
            out,
            "=== fixture {name}\n{}",
            serde_json::to_string_pretty(fixture).unwrap_or_default()
        );
    }
    let _ = writeln!(out, "=== operation\n{}", s.operation.trim_end());
    if s.variables.as_object().is_some_and(|v| !v.is_empty()) {
        let _ = writeln!(out, "=== variables\n{}", s.variables);
    }
    let _ = writeln!(
        out,
        "=== response\n{}",
        serde_json::to_string_pretty(&expected_response(finding.reference)).unwrap_or_default()
    );
    out
}

/// The markdown note for a finding: subgraph SDLs, operation, both answers.
pub fn note_text(finding: &Finding) -> String {
    let s = finding.scenario;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### difftest seed {} op {}: {}\n",
        s.seed, s.op_index, finding.label
    );
    if !finding.features.is_empty() {
        let _ = writeln!(
            out,
            "Generator features of the original shape: {}.\n",
            finding.features.join(", ")
        );
    }
    for note in &finding.notes {
        let _ = writeln!(out, "{note}\n");
    }
    scenario_text(&mut out, s);
    let _ = writeln!(out, "Switchyard:\n```json\n{}\n```", finding.ours);
    let _ = writeln!(
        out,
        "{}:\n```json\n{}\n```",
        finding.reference_name, finding.reference
    );
    out
}

/// Subgraph SDLs, fixtures, operation and variables, for a note.
fn scenario_text(out: &mut String, s: &Scenario) {
    let _ = writeln!(out, "Subgraphs:");
    for (name, sdl) in &s.subgraphs {
        let body = sdl
            .lines()
            .filter(|l| !l.starts_with("extend schema @link"))
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        let _ = writeln!(out, "```graphql\n# {name}\n{body}\n```");
    }
    let _ = writeln!(
        out,
        "Fixtures:\n```json\n{}\n```",
        serde_json::to_string(&s.fixtures).unwrap_or_default()
    );
    let _ = writeln!(out, "Operation:\n```graphql\n{}\n```", s.operation.trim());
    if s.variables.as_object().is_some_and(|v| !v.is_empty()) {
        let _ = writeln!(out, "Variables: `{}`", s.variables);
    }
}

/// The markdown note for an operation whose subgraph requests are worth a look (Switchyard sent
/// more than Hive Router, or repeated one): `title` and `lines` say why, then the scenario and
/// the request lists (`reference`: Hive Router's, when it ran).
pub fn fetch_note_text(
    s: &Scenario,
    title: &str,
    lines: &[String],
    ours: &[SentRequest],
    reference: Option<&[SentRequest]>,
) -> String {
    let mut out = format!(
        "### difftest seed {} op {}: {title}\n\n",
        s.seed, s.op_index
    );
    for line in lines {
        let _ = writeln!(out, "{line}\n");
    }
    scenario_text(&mut out, s);
    let lists = [("Switchyard", Some(ours)), ("Hive Router", reference)];
    for (who, requests) in lists.into_iter().filter_map(|(w, r)| Some((w, r?))) {
        let _ = writeln!(out, "{who}'s subgraph requests:");
        for r in requests {
            let query = r.body.get("query").and_then(Value::as_str).unwrap_or("?");
            let variables = r.body.get("variables").map(Value::to_string);
            let _ = writeln!(
                out,
                "- {}: `{query}`{}",
                r.subgraph,
                variables
                    .map(|v| format!(" variables `{v}`"))
                    .unwrap_or_default()
            );
        }
        out.push('\n');
    }
    out
}

/// Writes `<stem>.case` and `<stem>.md` into `dir`; returns the case path.
pub fn write_finding(dir: &Path, stem: &str, finding: &Finding) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let case = dir.join(format!("{stem}.case"));
    std::fs::write(&case, case_text(finding))?;
    std::fs::write(dir.join(format!("{stem}.md")), note_text(finding))?;
    Ok(case)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_testkit::Case;

    #[test]
    fn case_text_parses_back() {
        let scenario = Scenario {
            seed: 3,
            op_index: 1,
            subgraphs: vec![("a".into(), "type Query { x: Int }".into())],
            fixtures: [("a".to_string(), json!({"Query": {"x": 1}}))]
                .into_iter()
                .collect(),
            operation: "query Q($v: Boolean!) { x @skip(if: $v) }".into(),
            variables: json!({"v": false}),
        };
        let reference = json!({"data": {"x": null}, "errors": [{"message": "m", "path": ["x"]}, {"message": "n"}]});
        let finding = Finding {
            scenario: &scenario,
            supergraph: "type Query { x: Int }",
            ours: &json!({"data": {"x": 1}}),
            reference: &reference,
            reference_name: "Hive Router",
            label: "data differs".into(),
            tag: "data",
            notes: vec![],
            features: vec![],
        };
        let case = Case::parse(&case_text(&finding)).unwrap();
        assert_eq!(case.operation, "query Q($v: Boolean!) { x @skip(if: $v) }");
        assert_eq!(case.variables, json!({"v": false}));
        assert_eq!(case.fixtures["a"], json!({"Query": {"x": 1}}));
        assert_eq!(
            case.response,
            json!({"data": {"x": null}, "errors": [{"path": ["x"]}, {}]})
        );
        assert!(case.description.contains("seed 3 operation 1"));
    }
}
