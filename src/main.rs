//! The `switchyard` CLI: thin wiring over the gateway, planner, composer and service crates
//! (the services only with the `stack` feature, on by default).

mod alloc;
mod cli;
#[cfg(feature = "stack")]
mod demo;
#[cfg(feature = "stack")]
mod dev;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use switchyard_gateway::{Gateway, GatewayConfig, LiveGateway, ReloadSource};
use switchyard_planner::{PlanOptions, QueryPlanner, Supergraph};

// The gateway allocates and frees many small objects per request (parsed subgraph values,
// merged entities); mimalloc spent ~10% less CPU per request than the system allocator on the
// nested load test (scripts/load.sh).
#[global_allocator]
static ALLOCATOR: alloc::Mimalloc = alloc::Mimalloc;

/// Switchyard: a GraphQL federation gateway.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
struct Cli {
    /// Log filter (`RUST_LOG` syntax); the `RUST_LOG` variable wins when set.
    #[arg(long, global = true, default_value = "info,tantivy=warn")]
    log: String,
    /// Log as JSON lines (`--json-logs` works too).
    #[arg(long, global = true, alias = "json-logs")]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole stack on embedded defaults: the subgraphs and the gateway (the default).
    #[cfg(feature = "stack")]
    Dev(dev::DevArgs),
    /// Run the 4-subgraph benchmark workload (accounts, products, inventory, reviews) behind the gateway.
    #[cfg(feature = "stack")]
    Demo(demo::DemoArgs),
    /// Serve a supergraph composed by any Federation 2 composer.
    Gateway(GatewayArgs),
    /// Print the query plan for an operation.
    Plan(PlanArgs),
    /// Compose subgraph schemas (rover's supergraph.yaml) into a supergraph SDL.
    Compose(cli::compose::ComposeArgs),
    /// Check composition, drift of the committed supergraph and breaking changes (for CI).
    Check(cli::compose::CheckArgs),
}

#[derive(Debug, clap::Args)]
struct GatewayArgs {
    /// The supergraph SDL file.
    #[arg(long, env = "SWITCHYARD_SUPERGRAPH")]
    supergraph: PathBuf,
    /// Address to listen on (overrides the config file).
    #[arg(long, env = "SWITCHYARD_LISTEN")]
    listen: Option<SocketAddr>,
    /// Gateway config file (TOML).
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the metrics listener (`/metrics`, `/status`), or `off` (overrides the config
    /// file and `SWITCHYARD_METRICS_LISTEN`).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Poll the supergraph and config files and reload when they change (as `watch = true`
    /// in the config file); SIGHUP reloads with or without it.
    #[arg(long)]
    watch: bool,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// The supergraph SDL file.
    #[arg(long)]
    supergraph: PathBuf,
    /// The operation: a file holding it, `-` for standard input, or the operation text itself
    /// (`--query '{ me { id } }'`).
    #[arg(long)]
    query: PathBuf,
    /// Operation variables as a JSON object: the plan is the one the gateway runs for them,
    /// with the `@skip` / `@include` conditions on them (and on defaults) decided. Without it,
    /// the general plan, which decides conditions on variables at run time.
    #[arg(long)]
    variables: Option<String>,
    /// Which operation of the document to plan.
    #[arg(long)]
    operation_name: Option<String>,
    /// Progressive-override labels to treat as enabled (repeatable).
    #[arg(long = "override-label")]
    override_labels: Vec<String>,
    /// Print the plan as JSON instead of a tree.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The services' logging, so every binary logs alike: stderr, colour only on a terminal.
    switchyard_telemetry::init_tracing(&cli.log, cli.log_json);
    let Some(command) = cli.command.or_else(default_command) else {
        eprintln!(
            "error: this build of switchyard has no platform stack (built without the `stack` \
             feature), so there is no default command: run `switchyard gateway --supergraph FILE` \
             (see `switchyard --help`)"
        );
        return ExitCode::from(2);
    };
    let result = match command {
        #[cfg(feature = "stack")]
        Command::Dev(args) => runtime().and_then(|rt| rt.block_on(dev::run(args))),
        #[cfg(feature = "stack")]
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(demo::run(args))),
        Command::Gateway(args) => runtime().and_then(|rt| rt.block_on(run_gateway(args))),
        Command::Plan(args) => run_plan(args),
        Command::Compose(args) => cli::compose::run_compose(args),
        Command::Check(args) => match cli::compose::run_check(args) {
            Ok(code) => return code,
            Err(err) => Err(err),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `switchyard` with no subcommand runs: the whole stack (`cargo run`), when it is built in.
fn default_command() -> Option<Command> {
    #[cfg(feature = "stack")]
    return Some(Command::Dev(dev::DevArgs::default()));
    #[cfg(not(feature = "stack"))]
    None
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `--query`'s value: text that is no file's name and holds a selection set is the operation
/// itself, which is how people first try `plan`; anything else is read as a file.
fn read_operation(arg: &Path) -> Result<String> {
    let text = arg.to_string_lossy();
    if text.contains('{') && !arg.exists() {
        return Ok(text.into_owned());
    }
    read_file(arg)
}

fn read_file(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

async fn run_gateway(args: GatewayArgs) -> Result<()> {
    let sdl = read_file(&args.supergraph)?;
    let metrics_listen = match &args.metrics_listen {
        Some(text) => Some(
            switchyard_gateway::parse_optional_addr(text)
                .map_err(|e| anyhow::anyhow!("--metrics-listen: {e}"))?,
        ),
        None => None,
    };
    let (listen, watch) = (args.listen, args.watch);
    // The command line wins over the file, on every reload too.
    let adjust = move |config: &mut GatewayConfig| {
        if let Some(listen) = listen {
            config.listen = listen;
        }
        if let Some(metrics_listen) = metrics_listen {
            config.metrics_listen = metrics_listen;
        }
        config.watch |= watch;
    };
    let mut config = GatewayConfig::load(args.config.as_deref())?;
    adjust(&mut config);
    let source = ReloadSource {
        supergraph: args.supergraph.clone(),
        config: args.config.clone(),
        adjust: Arc::new(adjust),
    };
    let listen = config.listen;
    let metrics_listen = config.metrics_listen;
    let watch = config.watch.then_some(config.watch_interval);
    let gateway = Gateway::from_supergraph_sdl(&sdl, config)
        .with_context(|| format!("loading supergraph {}", args.supergraph.display()))?;
    let live = LiveGateway::new(gateway);
    live.mark_loaded(&source);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(
        "gateway listening on http://{}/graphql",
        listener.local_addr()?
    );
    if let Some(addr) = metrics_listen {
        let metrics = bind_metrics(addr).await?;
        let addr = metrics.local_addr()?;
        tracing::info!("metrics on http://{addr}/metrics, status on http://{addr}/status");
        tokio::spawn(switchyard_gateway::serve_live_metrics(
            metrics,
            live.clone(),
            shutdown_signal(),
        ));
    }
    if let Some(interval) = watch {
        tracing::info!(
            ?interval,
            "watching {} for changes",
            args.supergraph.display()
        );
        tokio::spawn(live.clone().watch(source.clone(), interval));
    }
    #[cfg(unix)]
    {
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("listening for SIGHUP")?;
        tokio::spawn(reload_on_hangup(hangups, live.clone(), source));
    }
    switchyard_gateway::serve_live(listener, live, shutdown_signal()).await?;
    Ok(())
}

/// Reloads the supergraph and config on every SIGHUP.
#[cfg(unix)]
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    live: LiveGateway,
    source: ReloadSource,
) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the supergraph and config");
        let (live, source) = (live.clone(), source.clone());
        // Parsing a supergraph and building its planner is CPU work.
        let _ = tokio::task::spawn_blocking(move || live.reload_from(&source)).await;
    }
}

/// Binds the metrics listener, saying how to move or turn it off when the port is taken.
pub(crate) async fn bind_metrics(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "metrics listener on {addr} (set metrics_listen / SWITCHYARD_METRICS_LISTEN to another \
             address, or to `off`)"
        )
    })
}

fn run_plan(args: PlanArgs) -> Result<()> {
    let sdl = read_file(&args.supergraph)?;
    let query = read_operation(&args.query)?;
    let variables = args
        .variables
        .as_deref()
        .map(|vars| {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(vars)
                .context("--variables is not a JSON object")
        })
        .transpose()?;
    let supergraph = Arc::new(
        Supergraph::parse(&sdl)
            .with_context(|| format!("loading supergraph {}", args.supergraph.display()))?,
    );
    // The gateway's own parse and validation, so `plan` reports an operation's mistakes in the
    // words (and with the locations) a client of the gateway would get.
    let document = switchyard_gateway::parse_and_validate(supergraph.api_schema(), &query)
        .context("--query is not a valid operation")?;
    let condition_values = match &variables {
        Some(variables) => {
            let operation = document
                .operations
                .get(args.operation_name.as_deref())
                .map_err(|err| anyhow::anyhow!("{}", err.message()))?;
            switchyard_planner::condition_values(operation, &document.fragments, variables)
        }
        None => Default::default(),
    };
    let options = PlanOptions {
        enabled_override_labels: args.override_labels.into_iter().collect(),
        condition_values,
    };
    let plan =
        QueryPlanner::new(supergraph).plan(&document, args.operation_name.as_deref(), &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        println!("{plan}");
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, so servers can drain and stop cleanly.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
