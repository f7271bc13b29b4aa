//! Standalone harness for the CLI module `src/cli/compose.rs` (the same file the `switchyard`
//! binary uses), so it is compiled and usable here: `cargo run -p switchyard-compose --example
//! compose_cli -- check --config schema/supergraph.yaml`.

#[path = "../../../src/cli/compose.rs"]
mod compose;

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
enum Cli {
    /// Compose a supergraph.
    Compose(compose::ComposeArgs),
    /// Check composition, drift and breaking changes.
    Check(compose::CheckArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse() {
        Cli::Compose(a) => compose::run_compose(a).map(|()| ExitCode::SUCCESS),
        Cli::Check(a) => compose::run_check(a),
    }
}
