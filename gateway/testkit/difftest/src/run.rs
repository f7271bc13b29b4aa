//! A bounded differential run: seeds one after another until the time is up.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use switchyard_testkit::generate::{generate, Options as GeneratorOptions, Shape};

use crate::compare::{repeated_requests, Outcome};
use crate::compose::{with_keys_reversed, ApolloComposer};
use crate::minimize::minimize;
use crate::report::{fetch_note_text, write_finding, Finding};
use crate::scenario::{ask, Answers, Composition, Runner, Scenario};
use crate::targets::{SentRequest, Target};

/// What a run does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop starting new work after this long.
    pub duration: Duration,
    /// First seed.
    pub seed: u64,
    /// Most seeds to run (`None`: until the time is up).
    pub count: Option<u64>,
    /// Where `.case`/`.md` files and `summary.md` go.
    pub out: PathBuf,
    /// Hive Router binary; without it only Switchyard runs (errors are reported, nothing compared).
    pub hive_bin: Option<PathBuf>,
    /// A `node_modules` holding `@apollo/composition` and `graphql`, for the composer cross-check.
    pub apollo_node_modules: Option<PathBuf>,
    /// Time budget for minimizing one disagreement.
    pub minimize: Duration,
    /// How many findings with the same fingerprint are written (later ones are only counted).
    pub max_per_kind: usize,
    /// Generator limits.
    pub generator: GeneratorOptions,
    /// Print every operation and both answers.
    pub verbose: bool,
}

/// One entry of the run summary.
#[derive(Debug, Clone)]
struct Entry {
    seed: u64,
    op: usize,
    what: String,
    file: Option<String>,
}

/// Counters and lists for `summary.md`.
#[derive(Debug, Default)]
struct Summary {
    seeds: u64,
    operations: u64,
    agreed: u64,
    written: Vec<Entry>,
    duplicates: BTreeMap<String, Vec<(u64, usize)>>,
    both_error: Vec<Entry>,
    ours_error: Vec<Entry>,
    composition: Vec<Entry>,
    setup: Vec<Entry>,
    fetches: FetchTally,
    more_fetches: Vec<Entry>,
    repeats: Vec<Entry>,
}

/// Subgraph requests per operation that both gateways answered alike without errors.
#[derive(Debug, Default)]
struct FetchTally {
    operations: u64,
    ours: u64,
    reference: u64,
    fewer: u64,
    equal: u64,
    more: u64,
}

impl FetchTally {
    fn add(&mut self, ours: usize, reference: usize) {
        self.operations += 1;
        self.ours += ours as u64;
        self.reference += reference as u64;
        match ours.cmp(&reference) {
            std::cmp::Ordering::Less => self.fewer += 1,
            std::cmp::Ordering::Equal => self.equal += 1,
            std::cmp::Ordering::Greater => self.more += 1,
        }
    }

    fn line(&self) -> String {
        format!(
            "subgraph requests over {} operations answered alike without errors: Switchyard {}, Hive Router {}; Switchyard sent fewer in {}, as many in {}, more in {}",
            self.operations, self.ours, self.reference, self.fewer, self.equal, self.more
        )
    }
}

/// Runs seeds until the time or count is up; returns the number of disagreements found.
pub async fn run(options: &RunOptions) -> anyhow::Result<usize> {
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let scratch = std::env::temp_dir().join(format!("switchyard-difftest-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let apollo = match &options.apollo_node_modules {
        Some(dir) => Some(ApolloComposer::start(dir, &scratch).await?),
        None => None,
    };
    let mut runner = Runner {
        apollo,
        hive_bin: options.hive_bin.clone(),
        dir: scratch.clone(),
    };
    let header = format!(
        "reference: {}; composers: switchyard-compose{}",
        options
            .hive_bin
            .as_ref()
            .map_or("none (Switchyard only)".to_string(), |p| format!(
                "Hive Router ({})",
                p.display()
            )),
        runner.apollo.as_ref().map_or(String::new(), |a| format!(
            " and @apollo/composition {}",
            a.version
        )),
    );
    println!("difftest: {header}");
    let started = Instant::now();
    let end = started + options.duration;
    let mut summary = Summary::default();
    let mut fingerprints: BTreeMap<String, usize> = BTreeMap::new();
    let mut seed = options.seed;
    let mut found = 0;
    while Instant::now() < end && options.count.is_none_or(|c| seed < options.seed + c) {
        let result = run_seed(
            &mut runner,
            options,
            seed,
            end,
            &mut summary,
            &mut fingerprints,
        )
        .await;
        match result {
            Ok(n) => found += n,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&scratch);
                return Err(e.context(format!("seed {seed}")));
            }
        }
        summary.seeds += 1;
        seed += 1;
        write_summary(options, &header, &summary, seed, started.elapsed())?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if summary.fetches.operations > 0 {
        println!("difftest: {}", summary.fetches.line());
    }
    println!(
        "difftest: {} seeds ({}..{}), {} operations, {} agreed, {} disagreements ({} written to {}), {} both-error, {} composition notes, {} setup failures in {:.0?}",
        summary.seeds,
        options.seed,
        seed,
        summary.operations,
        summary.agreed,
        found,
        summary.written.len(),
        options.out.display(),
        summary.both_error.len(),
        summary.composition.len(),
        summary.setup.len(),
        started.elapsed()
    );
    Ok(found)
}

struct Pending {
    op: usize,
    outcome: Outcome,
    on_apollo: Option<Value>,
    ours: Value,
    reference: Option<Value>,
}

/// Which of the two original answers matches the world the fixtures were cut from.
fn world_note(p: &Pending, expected: &Value) -> String {
    let matches = |v: &Value| !Outcome::of(v, expected).disagrees();
    let hive = p.reference.as_ref().is_some_and(matches);
    match (matches(&p.ours), hive) {
        (true, false) => format!("World check: Switchyard's original answer matches the generated world, Hive Router's does not (world: `{expected}`)."),
        (false, true) => "World check: Hive Router's original answer matches the generated world, Switchyard's does not.".to_string(),
        (true, true) => "World check: both match the world (an order or error-only difference).".to_string(),
        (false, false) => format!("World check: neither original answer matches the generated world (world: `{expected}`)."),
    }
}

async fn run_seed(
    runner: &mut Runner,
    options: &RunOptions,
    seed: u64,
    end: Instant,
    summary: &mut Summary,
    fingerprints: &mut BTreeMap<String, usize>,
) -> anyhow::Result<usize> {
    let shape = generate(seed, &options.generator);
    let features: Vec<String> = shape.features.iter().map(|f| f.to_string()).collect();
    let mut composition = runner.compose(&shape.subgraphs).await?;
    if composition.disagrees() || composition.ours.is_err() {
        let stem = format!("seed{seed}_compose");
        let key_order = match (&composition.ours, &composition.apollo) {
            (Ok(_), Some(Err(_))) => apollo_accepts_keys_reversed(runner, &shape.subgraphs).await?,
            _ => false,
        };
        let mut text = composition_note(seed, &shape.subgraphs, &composition);
        if key_order {
            text.push_str(KEY_ORDER_NOTE);
        }
        std::fs::write(options.out.join(format!("{stem}.md")), text)?;
        let what = match (&composition.ours, &composition.apollo) {
            (Err(_), Some(Ok(_))) => "only Apollo's composer accepts the shape",
            (Ok(_), Some(Err(_))) if key_order => {
                "only Switchyard's composer accepts the shape; Apollo's accepts it with the @key directives reversed (an order-dependent verdict, not a rule)"
            }
            (Ok(_), Some(Err(_))) => "only Switchyard's composer accepts the shape",
            _ => "neither composer accepts the shape (generator artefact)",
        };
        println!("seed {seed}: {what}");
        summary.composition.push(Entry {
            seed,
            op: 0,
            what: what.into(),
            file: Some(format!("{stem}.md")),
        });
    }
    if composition.ours.is_err() {
        return Ok(0);
    }
    if matches!(composition.apollo, Some(Err(_))) {
        // Hive Router then runs on Switchyard's supergraph.
        composition.apollo = None;
    }
    let mut session = match runner.session(&composition, &shape.fixtures).await {
        Ok(session) => session,
        Err(e) => {
            println!("seed {seed}: setup failed: {e:#}");
            summary.setup.push(Entry {
                seed,
                op: 0,
                what: format!("{e:#}"),
                file: None,
            });
            return Ok(0);
        }
    };
    let mut pending = Vec::new();
    for (op, operation) in shape.operations.iter().enumerate() {
        summary.operations += 1;
        let variables = &shape.variables[op];
        let answers = ask(&mut session, operation, variables).await;
        let expected = &shape.expected[op];
        if options.verbose {
            println!(
                "seed {seed} op {op}: {operation} {variables}\n  Switchyard:  {}",
                answers.ours
            );
            if let Some(reference) = &answers.reference {
                println!("  Hive Router: {reference}");
            }
            println!("  world:       {expected}");
        }
        let repeats = repeated_requests(operation, &answers.ours_requests);
        if !repeats.is_empty() {
            let name = format!("seed{seed}_op{op}_repeats.md");
            let scenario = scenario_of(&shape, seed, op);
            std::fs::write(
                options.out.join(&name),
                fetch_note_text(
                    &scenario,
                    "Switchyard repeated a subgraph request or a representation",
                    &repeats,
                    &answers.ours_requests,
                    answers.reference_requests.as_deref(),
                ),
            )?;
            println!("seed {seed} op {op}: {} -> {name}", repeats.join("; "));
            summary.repeats.push(Entry {
                seed,
                op,
                what: repeats.join("; "),
                file: Some(name),
            });
        }
        let versus_world = Outcome::of(&answers.ours, expected);
        match answers.outcome {
            None if versus_world.disagrees() => pending.push(Pending {
                op,
                outcome: versus_world,
                on_apollo: None,
                ours: answers.ours.clone(),
                reference: None,
            }),
            None => summary.agreed += 1,
            Some(outcome) if outcome.disagrees() => {
                let on_apollo = session
                    .run(Target::OursOnApollo, operation, variables)
                    .await;
                pending.push(Pending {
                    op,
                    outcome,
                    on_apollo,
                    ours: answers.ours.clone(),
                    reference: answers.reference.clone(),
                });
            }
            Some(outcome) => {
                summary.agreed += 1;
                if let (false, Some(theirs)) = (outcome.ours_errors, &answers.reference_requests) {
                    compare_fetches(
                        options,
                        || scenario_of(&shape, seed, op),
                        &outcome,
                        &answers,
                        theirs,
                        summary,
                        fingerprints,
                    )?;
                }
                if outcome.both_error() || versus_world.disagrees() {
                    summary.both_error.push(Entry {
                        seed,
                        op,
                        what: format!(
                            "{}: Switchyard: {} | Hive Router: {}",
                            versus_world.label(),
                            first_error(&answers.ours),
                            answers
                                .reference
                                .as_ref()
                                .map(first_error)
                                .unwrap_or_default()
                        ),
                        file: None,
                    });
                }
            }
        }
    }
    drop(session);
    let found = pending.len();
    for p in pending {
        let original = scenario_of(&shape, seed, p.op);
        let expected = &shape.expected[p.op];
        let has_reference = runner.hive_bin.is_some();
        let now = Instant::now();
        let deadline = (now + options.minimize).min(end.max(now + Duration::from_secs(5)));
        let (scenario, composition, ours, reference) = if has_reference {
            let minimized = minimize(runner, &original, p.outcome, deadline, None).await;
            let (scenario, composition, answers) = match runner.evaluate(&minimized).await {
                Some((c, a)) if a.outcome == Some(p.outcome) => (minimized, c, a),
                _ => match runner.evaluate(&original).await {
                    Some((c, a)) => (original, c, a),
                    None => continue,
                },
            };
            let Some(reference) = answers.reference.clone() else {
                continue;
            };
            (scenario, composition, answers.ours, reference)
        } else {
            let minimized = minimize(runner, &original, p.outcome, deadline, Some(&shape)).await;
            // Schema edits keep the world's answer for the (already minimized) operation.
            let Some(world) = shape.expected_for(&minimized.operation, &minimized.variables) else {
                continue;
            };
            let Some((composition, answers)) = runner.evaluate(&minimized).await else {
                continue;
            };
            (minimized, composition, answers.ours, world)
        };
        let outcome = Outcome::of(&ours, &reference);
        if !outcome.disagrees() {
            continue;
        }
        let fingerprint = fingerprint(&scenario, &outcome, &ours, &reference);
        let seen = fingerprints.entry(fingerprint.clone()).or_default();
        *seen += 1;
        if *seen > options.max_per_kind {
            println!(
                "seed {seed} op {}: {} (duplicate of kind {fingerprint})",
                p.op,
                outcome.label()
            );
            summary
                .duplicates
                .entry(fingerprint)
                .or_default()
                .push((seed, p.op));
            continue;
        }
        let mut notes = vec![format!("Kind: `{fingerprint}`.")];
        if has_reference {
            notes.push(world_note(&p, expected));
        } else {
            notes.push("Reference: the generated world (no Hive Router in this run); the case expects the world's answer for the operation (schema minimized only by edits that keep that answer).".into());
        }
        if let Some(on_apollo) = &p.on_apollo {
            let ours_original = Outcome::of(on_apollo, &reference);
            notes.push(if ours_original.disagrees() {
                "Switchyard on Apollo's supergraph (original shape) also disagrees with Hive Router: a gateway difference, not a composer one.".to_string()
            } else {
                "Switchyard on Apollo's supergraph (original shape) agrees with Hive Router: the difference comes from Switchyard's composer.".to_string()
            });
        }
        let supergraph = composition.ours.clone().unwrap_or_default();
        let stem = format!("seed{seed}_op{}_{}", p.op, outcome.tag());
        let finding = Finding {
            scenario: &scenario,
            supergraph: &supergraph,
            ours: &ours,
            reference: &reference,
            reference_name: if has_reference {
                "Hive Router"
            } else {
                "the generated world"
            },
            label: outcome.label(),
            tag: outcome.tag(),
            notes,
            features: features.clone(),
        };
        let path = write_finding(&options.out, &stem, &finding)?;
        println!(
            "seed {seed} op {}: {} -> {}",
            p.op,
            outcome.label(),
            path.display()
        );
        summary.written.push(Entry {
            seed,
            op: p.op,
            what: format!("{} `{fingerprint}`", outcome.label()),
            file: Some(format!("{stem}.case")),
        });
    }
    Ok(found)
}

/// Operation `op` of the shape generated from `seed`, as a scenario of its own.
fn scenario_of(shape: &Shape, seed: u64, op: usize) -> Scenario {
    Scenario {
        seed,
        op_index: op,
        subgraphs: shape.subgraphs.clone(),
        fixtures: shape.fixtures.clone(),
        operation: shape.operations[op].clone(),
        variables: shape.variables[op].clone(),
    }
}

/// Tallies the subgraph requests of an operation both gateways answered alike without errors;
/// where Switchyard sent more than Hive Router, lists it and writes a note with both request
/// lists (difftest compares answers, and this is where it sees extra fetches).
fn compare_fetches(
    options: &RunOptions,
    scenario: impl FnOnce() -> Scenario,
    outcome: &Outcome,
    answers: &Answers,
    theirs: &[SentRequest],
    summary: &mut Summary,
    fingerprints: &mut BTreeMap<String, usize>,
) -> anyhow::Result<()> {
    let ours = &answers.ours_requests;
    summary.fetches.add(ours.len(), theirs.len());
    if ours.len() <= theirs.len() {
        return Ok(());
    }
    // Built only here: most operations send no more than Hive Router does.
    let scenario = &scenario();
    let reference = answers.reference.as_ref().unwrap_or(&Value::Null);
    let kind = format!(
        "more fetches | {}",
        fingerprint(scenario, outcome, &answers.ours, reference)
    );
    let seen = fingerprints.entry(kind.clone()).or_default();
    *seen += 1;
    let file = if *seen <= options.max_per_kind {
        let name = format!("seed{}_op{}_fetches.md", scenario.seed, scenario.op_index);
        std::fs::write(
            options.out.join(&name),
            fetch_note_text(
                scenario,
                &format!(
                    "Switchyard sent {} subgraph requests, Hive Router {}",
                    ours.len(),
                    theirs.len()
                ),
                &[format!(
                    "Kind: `{kind}`. Both answered alike, without errors."
                )],
                ours,
                Some(theirs),
            ),
        )?;
        Some(name)
    } else {
        None
    };
    println!(
        "seed {} op {}: Switchyard sent {} subgraph requests, Hive Router {}{}",
        scenario.seed,
        scenario.op_index,
        ours.len(),
        theirs.len(),
        file.as_ref()
            .map(|f| format!(" -> {f}"))
            .unwrap_or_default()
    );
    summary.more_fetches.push(Entry {
        seed: scenario.seed,
        op: scenario.op_index,
        what: format!(
            "Switchyard {}, Hive Router {} (`{kind}`)",
            ours.len(),
            theirs.len()
        ),
        file,
    });
    Ok(())
}

/// What kind of disagreement this is, for de-duplication: the outcome and the federation
/// features the minimized scenario still uses.
pub fn fingerprint(
    scenario: &Scenario,
    outcome: &Outcome,
    ours: &Value,
    reference: &Value,
) -> String {
    let mut diffs = Vec::new();
    leaf_diffs(
        ours.get("data").unwrap_or(&Value::Null),
        reference.get("data").unwrap_or(&Value::Null),
        &mut diffs,
    );
    if !diffs.is_empty()
        && diffs
            .iter()
            .all(|(a, b)| *a == Value::String("C".into()) && b.is_null())
    {
        return "issue #12 F2: @inaccessible enum value returned instead of null".into();
    }
    if !diffs.is_empty()
        && diffs
            .iter()
            .all(|(a, b)| a.is_null() && has_empty_object(b))
    {
        return "D4: an object whose selected fields are all skipped through a variable becomes null"
            .into();
    }
    const SCHEMA_MARKERS: [&str; 11] = [
        "@shareable",
        "@external",
        "@requires",
        "@provides",
        "@override",
        "@inaccessible",
        "@interfaceObject",
        "interface ",
        "union ",
        "resolvable: false",
        "(mode:",
    ];
    const OPERATION_MARKERS: [&str; 6] = ["...", "@skip", "@include", "__typename", "(mode:", "$"];
    let mut markers = BTreeSet::new();
    for (_, sdl) in &scenario.subgraphs {
        let body: String = sdl
            .lines()
            .filter(|l| !l.starts_with("extend schema"))
            .collect::<Vec<_>>()
            .join("\n");
        for m in SCHEMA_MARKERS {
            if body.contains(m) {
                markers.insert(m.trim().to_string());
            }
        }
        if body.matches("@key").count() > body.matches("\ntype ").count() + 1 {
            markers.insert("two keys".into());
        }
    }
    for m in OPERATION_MARKERS {
        if scenario.operation.contains(m) {
            markers.insert(format!("op {m}"));
        }
    }
    format!(
        "{} | {} subgraphs | {}",
        outcome.tag(),
        scenario.subgraphs.len(),
        markers.into_iter().collect::<Vec<_>>().join(" ")
    )
}

/// Whether `value` is or contains `{}` or `[]` (what is left of a selection whose fields are
/// all skipped).
fn has_empty_object(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty() || map.values().any(has_empty_object),
        Value::Array(items) => items.is_empty() || items.iter().any(has_empty_object),
        _ => false,
    }
}

/// The differing leaves of two JSON values (ours, reference), where both have the same shape
/// around them.
fn leaf_diffs(a: &Value, b: &Value, out: &mut Vec<(Value, Value)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                leaf_diffs(v, y.get(k).unwrap_or(&Value::Null), out);
            }
            for (k, v) in y {
                if !x.contains_key(k) {
                    out.push((Value::Null, v.clone()));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (v, w) in x.iter().zip(y) {
                leaf_diffs(v, w, out);
            }
        }
        _ if a != b => out.push((a.clone(), b.clone())),
        _ => {}
    }
}

fn first_error(response: &Value) -> String {
    if let Some(e) = response.get("transport_error") {
        return format!("transport: {e}");
    }
    response
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .map(|e| {
            e.get("message")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .chars()
                .take(200)
                .collect()
        })
        .unwrap_or_default()
}

/// Appended to a composition note when Apollo's composer accepts the shape once each type's
/// `@key` directives are reversed.
const KEY_ORDER_NOTE: &str = "\nApollo's composer accepts these subgraphs with each type's `@key` directives in reverse order: its satisfiability search skips a key move after one with the same key fields (assuming a direct move exists, which from an `@interfaceObject` implementation it need not), so its verdict depends on key order. Switchyard's composer accepts both orders by design (seeds 7320, 9379; gateway/compose/src/satisfiability.rs).\n";

/// Whether Apollo's composer accepts `subgraphs` with every type's `@key` directives reversed.
async fn apollo_accepts_keys_reversed(
    runner: &mut Runner,
    subgraphs: &[(String, String)],
) -> anyhow::Result<bool> {
    let Some(apollo) = runner.apollo.as_mut() else {
        return Ok(false);
    };
    let mut changed = false;
    let reversed: Vec<(String, String)> = subgraphs
        .iter()
        .map(|(name, sdl)| match with_keys_reversed(sdl) {
            Some(r) => {
                changed = true;
                (name.clone(), r)
            }
            None => (name.clone(), sdl.clone()),
        })
        .collect();
    Ok(changed && apollo.compose(&reversed).await?.is_ok())
}

fn composition_note(seed: u64, subgraphs: &[(String, String)], c: &Composition) -> String {
    let mut out = format!("### difftest seed {seed}: composition\n\n");
    let _ = writeln!(
        out,
        "Switchyard's composer: {}\n",
        match &c.ours {
            Ok(_) => "composes".to_string(),
            Err(e) => format!("fails:\n```\n{e}\n```"),
        }
    );
    if let Some(apollo) = &c.apollo {
        let _ = writeln!(
            out,
            "Apollo's composer: {}\n",
            match apollo {
                Ok(_) => "composes".to_string(),
                Err(e) => format!("fails:\n```\n{e}\n```"),
            }
        );
    }
    for (name, sdl) in subgraphs {
        let _ = writeln!(out, "```graphql\n# {name}\n{}\n```", sdl.trim());
    }
    out
}

fn write_summary(
    options: &RunOptions,
    header: &str,
    s: &Summary,
    next_seed: u64,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let mut out = String::from("# difftest run summary\n\n");
    let _ = writeln!(
        out,
        "{header}\n\nseeds {}..{} ({} seeds, {} operations) in {:.0?}: {} agreed, {} findings written, {} duplicates, {} both-error, {} Switchyard-only errors (no reference), {} composition notes, {} setup failures.\n",
        options.seed,
        next_seed,
        s.seeds,
        s.operations,
        elapsed,
        s.agreed,
        s.written.len(),
        s.duplicates.values().map(Vec::len).sum::<usize>(),
        s.both_error.len(),
        s.ours_error.len(),
        s.composition.len(),
        s.setup.len()
    );
    if s.fetches.operations > 0 {
        let _ = writeln!(out, "{}.\n", s.fetches.line());
    }
    let mut section = |title: &str, entries: &[Entry]| {
        if entries.is_empty() {
            return;
        }
        let _ = writeln!(out, "## {title}\n");
        for e in entries {
            let file = e
                .file
                .as_ref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default();
            let _ = writeln!(out, "- seed {} op {}: {}{file}", e.seed, e.op, e.what);
        }
        out.push('\n');
    };
    section("Disagreements written", &s.written);
    section("Both gateways answered with errors", &s.both_error);
    section("Switchyard errors (no reference)", &s.ours_error);
    section(
        "Switchyard sent more subgraph requests than Hive Router (answers alike)",
        &s.more_fetches,
    );
    section(
        "Switchyard repeated a subgraph request or a representation",
        &s.repeats,
    );
    section("Composition", &s.composition);
    section("Setup failures", &s.setup);
    if !s.duplicates.is_empty() {
        let _ = writeln!(out, "## Duplicates (not written)\n");
        for (kind, list) in &s.duplicates {
            let seeds: Vec<String> = list.iter().map(|(s, o)| format!("{s}/{o}")).collect();
            let _ = writeln!(out, "- `{kind}`: {}", seeds.join(", "));
        }
    }
    std::fs::write(options.out.join("summary.md"), out)?;
    Ok(())
}

/// Switchyard alone over `seed`'s shape: each operation's response (for the smoke test and for
/// runs without a reference router).
pub async fn switchyard_answers(
    seed: u64,
    generator: &GeneratorOptions,
) -> anyhow::Result<Vec<(String, Answers)>> {
    let shape = generate(seed, generator);
    let mut runner = Runner {
        apollo: None,
        hive_bin: None,
        dir: std::env::temp_dir(),
    };
    let composition = runner.compose(&shape.subgraphs).await?;
    let mut session = runner.session(&composition, &shape.fixtures).await?;
    let mut out = Vec::new();
    for (operation, variables) in shape.operations.iter().zip(&shape.variables) {
        out.push((
            operation.clone(),
            ask(&mut session, operation, variables).await,
        ));
    }
    Ok(out)
}
