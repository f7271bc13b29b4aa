//! `switchyard-difftest`: a bounded differential run of generated Federation 2 shapes through
//! Switchyard and Hive Router (usually started by `scripts/difftest.sh`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use switchyard_difftest::run::{run, RunOptions};
use switchyard_testkit::generate::{Options as GeneratorOptions, FEATURES_THAT_CAN_BE_DISABLED};

/// Differential testing: generated shapes through Switchyard and Hive Router.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Stop starting new seeds after this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most seeds to run.
    #[arg(long)]
    count: Option<u64>,
    /// Output directory for `.case`/`.md` findings and summary.md.
    #[arg(long, default_value = "difftest-out")]
    out: PathBuf,
    /// Hive Router binary (without it only Switchyard runs and its errors are listed).
    #[arg(long, env = "HIVE_ROUTER_BIN")]
    hive_router: Option<PathBuf>,
    /// A node_modules directory with @apollo/composition and graphql, for the composer cross-check.
    #[arg(long, env = "APOLLO_NODE_MODULES")]
    apollo_node_modules: Option<PathBuf>,
    /// Seconds spent minimizing one disagreement.
    #[arg(long, default_value_t = 60)]
    minimize_seconds: u64,
    /// Findings of one kind written before later ones are only counted.
    #[arg(long, default_value_t = 2)]
    max_per_kind: usize,
    /// Print every operation and both answers.
    #[arg(long)]
    verbose: bool,
    /// A generator feature to leave out (repeatable), e.g. to keep a known open bug out of a run:
    /// "enum with an @inaccessible value", "interface condition in a union selection".
    #[arg(long = "disable", value_name = "FEATURE")]
    disabled: Vec<String>,
    /// Operations generated per shape.
    #[arg(long, default_value_t = 6)]
    operations: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    for feature in &args.disabled {
        if !FEATURES_THAT_CAN_BE_DISABLED.contains(&feature.as_str()) {
            eprintln!(
                "difftest: unknown feature {feature:?}; known: {FEATURES_THAT_CAN_BE_DISABLED:?}"
            );
            return ExitCode::from(2);
        }
    }
    // A path that names no file would fail every seed's start of Hive Router, one by one.
    if let Some(bin) = args.hive_router.as_ref().filter(|bin| !bin.is_file()) {
        eprintln!(
            "difftest: no Hive Router binary at {} (--hive-router / HIVE_ROUTER_BIN)",
            bin.display()
        );
        return ExitCode::from(2);
    }
    let options = RunOptions {
        duration: Duration::from_secs(args.seconds),
        seed: args.seed,
        count: args.count,
        out: args.out,
        hive_bin: args.hive_router,
        apollo_node_modules: args.apollo_node_modules,
        minimize: Duration::from_secs(args.minimize_seconds),
        max_per_kind: args.max_per_kind,
        generator: GeneratorOptions {
            operations: args.operations,
            disabled: args.disabled.into_iter().collect(),
            ..GeneratorOptions::default()
        },
        verbose: args.verbose,
    };
    // Stopped by a signal, the run is dropped, so the reference gateways and fixture servers it
    // started (`kill_on_drop`) stop with it: a killed run used to leave Hive Router spinning on
    // a core, which skewed whatever was measured next on the machine.
    tokio::select! {
        result = run(&options) => match result {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("difftest: {e:#}");
                ExitCode::from(2)
            }
        },
        signal = stop_signal() => {
            eprintln!("difftest: stopped by {signal}; the processes it started are stopped too");
            ExitCode::from(130)
        }
    }
}

/// Waits for SIGINT or SIGTERM and names it.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(terminate) => {
                terminate.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = terminated => "SIGTERM",
    }
}
