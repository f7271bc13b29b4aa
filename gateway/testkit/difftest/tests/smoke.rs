//! Smoke run of the generator without a reference router: every shape of a fixed seed range
//! composes with Switchyard's composer, and Switchyard answers every generated operation with
//! exactly the response computed from the generated world (data, and errors at the same paths:
//! the world has field errors only where its fixtures say so), without sending one query's
//! subgraph request, or one representation within a request, twice.
//! Features that still hit open bugs are left out through `KNOWN_OPEN` (none today); add a
//! feature's name there only with an open issue for it.

use switchyard_difftest::compare::{repeated_requests, Outcome};
use switchyard_difftest::run::switchyard_answers;
use switchyard_testkit::generate::{generate, Options};

const KNOWN_OPEN: [&str; 0] = [];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_shapes_compose_and_match_the_world() {
    let options = Options {
        disabled: KNOWN_OPEN.iter().map(|f| f.to_string()).collect(),
        ..Options::default()
    };
    let mut failures = Vec::new();
    for seed in 0..40 {
        let shape = generate(seed, &options);
        let answers = match switchyard_answers(seed, &options).await {
            Ok(answers) => answers,
            Err(e) => {
                failures.push(format!("seed {seed}: {e:#}"));
                continue;
            }
        };
        for ((operation, answers), expected) in answers.iter().zip(&shape.expected) {
            for problem in repeated_requests(operation, &answers.ours_requests) {
                failures.push(format!("seed {seed}: {operation}\n  {problem}"));
            }
            let outcome = Outcome::of(&answers.ours, expected);
            if outcome.disagrees() {
                failures.push(format!(
                    "seed {seed} ({}): {operation}\n  Switchyard: {}\n  world:      {expected}",
                    outcome.label(),
                    answers.ours
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "reproduce one with `cargo run -p switchyard-difftest -- --seed N --count 1 --verbose --disable ...`\n{}",
        failures.join("\n")
    );
}
