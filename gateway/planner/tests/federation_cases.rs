//! Plans every case of the federation suite (`gateway/tests/federation/cases`): each operation
//! that validates must plan, and the plan's fetch count per subgraph must not exceed the
//! case's expected request count. The end-to-end run (responses) lives in the gateway crate.
//! `CASE=<substring>` picks cases; `PRINT=1` prints each plan, `PRINT=json` its JSON (with the
//! subgraph operations exactly as sent).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apollo_compiler::ExecutableDocument;
use switchyard_planner::plan::PlanNode;
use switchyard_planner::{PlanOptions, QueryPlanner, Supergraph};

/// Cases that expect entity fetches at different response paths to share one request; a
/// `Flatten` has one path, so the plan has one fetch per path (as Apollo's planner does).
const MERGES_ACROSS_PATHS: &[&str] = &["core_same_field_different_arguments"];

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/federation/cases")
}

fn sections(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut body = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            if let Some(prev) = current.take() {
                out.insert(prev, std::mem::take(&mut body));
            }
            current = Some(name.trim().to_string());
        } else if current.is_some() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some(prev) = current {
        out.insert(prev, body);
    }
    out
}

/// Checks that every root fetch carries the response keys its operation text selects at the
/// top (what the executor paths a failed fetch's errors to), read back here from the text.
fn check_root_keys(node: &PlanNode, case: &str, failures: &mut Vec<String>) {
    match node {
        PlanNode::Sequence { nodes } | PlanNode::Parallel { nodes } => nodes
            .iter()
            .for_each(|n| check_root_keys(n, case, failures)),
        PlanNode::Fetch(f) => {
            let expected = if f.requires.is_some() {
                Vec::new()
            } else {
                keys_in_text(&f.operation)
            };
            if f.root_keys != expected {
                failures.push(format!(
                    "{case}: root keys {:?} of `{}`, expected {expected:?}",
                    f.root_keys, f.operation
                ));
            }
        }
        PlanNode::Flatten(f) => check_root_keys(&f.node, case, failures),
        PlanNode::Condition(c) => {
            for branch in [&c.if_clause, &c.else_clause].into_iter().flatten() {
                check_root_keys(branch, case, failures);
            }
        }
    }
}

/// Top-level response keys of a fetch's operation text: inline fragments entered, `__typename`
/// left out, each once.
fn keys_in_text(operation: &str) -> Vec<String> {
    use apollo_compiler::ast::{Definition, Document, Selection};
    fn collect(selections: &[Selection], keys: &mut Vec<String>) {
        for selection in selections {
            match selection {
                Selection::Field(field) => {
                    let key = field.response_name().as_str();
                    if key != "__typename" && !keys.iter().any(|k| k == key) {
                        keys.push(key.to_owned());
                    }
                }
                Selection::InlineFragment(inline) => collect(&inline.selection_set, keys),
                Selection::FragmentSpread(_) => panic!("fetch operations inline fragments"),
            }
        }
    }
    let document = Document::parse(operation, "fetch.graphql").expect("fetch operations parse");
    let mut keys = Vec::new();
    for definition in &document.definitions {
        if let Definition::OperationDefinition(op) = definition {
            collect(&op.selection_set, &mut keys);
        }
    }
    keys
}

/// Whether the case's plan snapshot records a planning error.
fn expects_planning_error(cases: &std::path::Path, name: &str) -> bool {
    let snapshot = cases.join("../snapshots").join(format!("{name}.snap"));
    std::fs::read_to_string(snapshot).is_ok_and(|text| text.contains("\nplanning fails: "))
}

/// When the executor sends what, as far as the plan tells: each fetch starts in the step that one
/// event opens (the start, or a response's arrival), and the executor sends the entity fetches
/// to one subgraph that start in one step as one request, at most 16 together
/// (gateway/src/execute/batch.rs).
#[derive(Default)]
struct Schedule {
    /// Root fetches per subgraph.
    root: BTreeMap<String, u64>,
    /// Entity fetches per (step, subgraph), with the event their request's response is: the
    /// step is the event that opened it.
    entities: BTreeMap<(u32, String), (u64, u32)>,
    /// Events so far (0: the start).
    events: u32,
}

impl Schedule {
    fn event(&mut self) -> u32 {
        self.events += 1;
        self.events
    }

    /// Walks `node` started in step `step` with the given variables; returns the event it
    /// finishes at.
    fn walk(&mut self, node: &PlanNode, vars: &serde_json::Value, step: u32) -> u32 {
        match node {
            PlanNode::Sequence { nodes } => nodes.iter().fold(step, |at, n| self.walk(n, vars, at)),
            PlanNode::Parallel { nodes } => {
                let mut ends: Vec<u32> = nodes
                    .iter()
                    .map(|n| self.walk(n, vars, step))
                    .filter(|&end| end != step)
                    .collect();
                ends.dedup();
                match ends[..] {
                    [] => step,
                    [one] => one,
                    // Whichever response comes last, which only timing tells.
                    _ => self.event(),
                }
            }
            PlanNode::Fetch(f) if f.requires.is_some() => {
                let events = &mut self.events;
                let (count, event) = self
                    .entities
                    .entry((step, f.service_name.clone()))
                    .or_insert_with(|| {
                        *events += 1;
                        (0, *events)
                    });
                *count += 1;
                *event
            }
            PlanNode::Fetch(f) => {
                *self.root.entry(f.service_name.clone()).or_default() += 1;
                self.event()
            }
            PlanNode::Flatten(f) => self.walk(&f.node, vars, step),
            PlanNode::Condition(c) => {
                let branch = if vars[&c.condition].as_bool().unwrap_or(false) {
                    &c.if_clause
                } else {
                    &c.else_clause
                };
                match branch {
                    Some(n) => self.walk(n, vars, step),
                    None => step,
                }
            }
        }
    }

    /// Requests per subgraph.
    fn requests(&self) -> BTreeMap<String, u64> {
        let mut out = self.root.clone();
        for ((_, service), (n, _)) in &self.entities {
            *out.entry(service.clone()).or_default() += n.div_ceil(16);
        }
        out
    }
}

#[test]
fn every_federation_case_plans() {
    let dir = cases_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no federation cases at {}", dir.display());
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    paths.sort();
    let only = std::env::var("CASE").ok();
    let mut failures = Vec::new();
    let mut extra_fetches = Vec::new();
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let s = sections(&text);
        let sdl = match (s.get("supergraph"), s.get("supergraph-file")) {
            (Some(sdl), _) => sdl.clone(),
            (None, Some(file)) => std::fs::read_to_string(dir.join(file.trim())).unwrap(),
            _ => continue,
        };
        let sg = match Supergraph::parse(&sdl) {
            Ok(sg) => Arc::new(sg),
            Err(e) => {
                failures.push(format!("{name}: supergraph: {e}"));
                continue;
            }
        };
        let options: serde_json::Value = s
            .get("options")
            .map(|o| serde_json::from_str(o).unwrap())
            .unwrap_or(serde_json::json!({}));
        let op_name = options["operation_name"].as_str();
        let labels: HashSet<String> = options["override_labels"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let Ok(doc) =
            ExecutableDocument::parse_and_validate(sg.api_schema(), &s["operation"], "op.graphql")
        else {
            continue; // cases about rejected operations
        };
        let planner = QueryPlanner::new(sg);
        let opts = PlanOptions {
            enabled_override_labels: labels,
            ..PlanOptions::default()
        };
        match planner.plan(&doc, op_name, &opts) {
            Ok(plan) => {
                match std::env::var("PRINT").as_deref() {
                    Ok("json") => println!(
                        "=== {name}\n{}",
                        serde_json::to_string_pretty(&plan).unwrap()
                    ),
                    Ok(_) => println!("=== {name}\n{plan}"),
                    Err(_) => {}
                }
                let mut fetches = BTreeMap::new();
                let mut vars: serde_json::Value = s
                    .get("variables")
                    .map(|v| serde_json::from_str(v).unwrap())
                    .unwrap_or(serde_json::json!({}));
                if let Ok(op) = doc.operations.get(op_name) {
                    for def in &op.variables {
                        if vars.get(def.name.as_str()).is_none() {
                            if let Some(apollo_compiler::ast::Value::Boolean(b)) =
                                def.default_value.as_deref()
                            {
                                vars[def.name.as_str()] = serde_json::Value::Bool(*b);
                            }
                        }
                    }
                }
                if let Some(node) = &plan.node {
                    let mut schedule = Schedule::default();
                    schedule.walk(node, &vars, 0);
                    fetches = schedule.requests();
                    check_root_keys(node, &name, &mut failures);
                }
                if let Some(req) = s.get("requests") {
                    let expected: BTreeMap<String, u64> = serde_json::from_str(req).unwrap();
                    for (svc, n) in expected {
                        let got = fetches.get(&svc).copied().unwrap_or(0);
                        // Zero expected requests depend on data (empty lists, null parents)
                        // or on request validation, which the plan cannot know.
                        if n > 0 && got > n && !MERGES_ACROSS_PATHS.contains(&name.as_str()) {
                            extra_fetches.push(format!("{name}: {svc}: {got} fetches > {n}"));
                        }
                    }
                }
            }
            // Cases about unsatisfiable operations snapshot the planning error instead.
            Err(e) if !expects_planning_error(&dir, &name) => failures.push(format!("{name}: {e}")),
            Err(_) => {}
        }
    }
    for e in &extra_fetches {
        println!("more fetches than requests: {e}");
    }
    assert!(
        failures.is_empty(),
        "cases that fail to plan:\n{}",
        failures.join("\n")
    );
    assert!(
        extra_fetches.is_empty(),
        "plans with extra fetches:\n{}",
        extra_fetches.join("\n")
    );
}
