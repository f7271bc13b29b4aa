//! Prints generated shapes as JSON lines (`{"seed", "subgraphs", "fixtures", "operations", "variables", "expected", "features"}`)
//! for seeds `FROM..TO`, so other tools (e.g. an outside composer) can check them.
//! Usage: cargo run -p switchyard-testkit --example gen_shape -- FROM [TO]

use switchyard_testkit::generate::{generate, Options};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("seeds are integers"))
        .collect();
    let from = args.first().copied().unwrap_or(0);
    let to = args.get(1).copied().unwrap_or(from + 1);
    for seed in from..to {
        let shape = generate(seed, &Options::default());
        let line = serde_json::json!({
            "seed": shape.seed,
            "subgraphs": shape.subgraphs,
            "fixtures": shape.fixtures,
            "operations": shape.operations,
            "variables": shape.variables,
            "expected": shape.expected,
            "features": shape.features,
        });
        println!("{line}");
    }
}
