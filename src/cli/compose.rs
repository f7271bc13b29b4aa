//! `switchyard compose` and `switchyard check`: thin wiring over `switchyard-compose`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use switchyard_compose::check::{self, CheckOptions, Format};
use switchyard_compose::config;

/// Arguments of `switchyard compose`.
#[derive(Debug, Clone, Args)]
pub struct ComposeArgs {
    /// rover-style supergraph.yaml (federation_version, subgraphs.*.routing_url / schema.file | schema.subgraph_url).
    #[arg(long, short = 'c', default_value = "supergraph.yaml")]
    pub config: PathBuf,
    /// Write the supergraph SDL to this file instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// Output format of `switchyard check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// Human readable.
    Text,
    /// Machine-readable JSON report.
    Json,
    /// GitHub Actions workflow annotations.
    Github,
}

/// Arguments of `switchyard check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// rover-style supergraph.yaml.
    #[arg(long, short = 'c', default_value = "supergraph.yaml")]
    pub config: PathBuf,
    /// Committed supergraph to check for drift (default: supergraph.graphql next to the config).
    #[arg(long)]
    pub supergraph: Option<PathBuf>,
    /// Base for the API-schema diff: a supergraph/schema FILE or a GIT_REF (reads the committed supergraph at that ref).
    #[arg(long, value_name = "FILE|GIT_REF")]
    pub against: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,
    /// Do not fail on breaking API changes.
    #[arg(long)]
    pub allow_breaking: bool,
}

/// Composes the configured subgraphs and writes the supergraph SDL; errors list every
/// composition error with its code, subgraph, coordinate and line.
pub fn run_compose(args: ComposeArgs) -> anyhow::Result<()> {
    let sources = config::load_subgraphs(&args.config)?;
    let composed = switchyard_compose::compose(&sources).map_err(|e| anyhow::anyhow!("{e}"))?;
    match &args.output {
        Some(path) => std::fs::write(path, &composed.supergraph_sdl)
            .with_context(|| format!("writing {}", path.display()))?,
        None => std::io::stdout()
            .write_all(composed.supergraph_sdl.as_bytes())
            .context("writing supergraph to stdout")?,
    }
    Ok(())
}

/// Runs composition, drift and breaking-change checks; the exit code is non-zero when the
/// check fails (configuration problems are returned as errors).
pub fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let report = check::check(&CheckOptions {
        config: args.config,
        supergraph: args.supergraph,
        against: args.against,
        allow_breaking: args.allow_breaking,
    })?;
    let format = match args.format {
        CheckFormat::Text => Format::Text,
        CheckFormat::Json => Format::Json,
        CheckFormat::Github => Format::Github,
    };
    std::io::stdout()
        .write_all(check::render(&report, format).as_bytes())
        .context("writing report")?;
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
