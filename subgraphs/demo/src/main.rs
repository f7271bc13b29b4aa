//! `switchyard-demo-subgraphs`: serves the four demo subgraphs (or one), or prints a schema.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use switchyard_demo_subgraphs::{sdl, serve, DemoSubgraph};
use tokio::net::TcpListener;

/// Serve the demo subgraphs: all four on PORT..PORT+3 (4001..4004 by default), or one.
#[derive(Debug, Parser)]
#[command(name = "switchyard-demo-subgraphs", version)]
struct Args {
    /// Serve only this subgraph (accounts, products, inventory, reviews).
    #[arg(long)]
    subgraph: Option<DemoSubgraph>,
    /// Port of the single subgraph, or the first of four consecutive ports; 0 gives each a free
    /// port. Each prints "NAME URL" on stdout once it listens. Defaults: accounts 4001,
    /// products 4002, inventory 4003, reviews 4004.
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Async worker threads; 0 means one per CPU this process may run on (see `taskset`). With
    /// one, a single-threaded runtime serves everything, which saves cross-thread wake-ups.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print this subgraph's SDL (with federation directives) and exit.
    #[arg(long, value_name = "NAME")]
    print_schema: Option<DemoSubgraph>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(s) = args.print_schema {
        print!("{}", sdl(s));
        return ExitCode::SUCCESS;
    }
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let plan: Vec<(DemoSubgraph, u16)> = match (args.subgraph, args.port) {
        (Some(s), port) => vec![(s, port.unwrap_or(s.default_port()))],
        (None, None) => DemoSubgraph::ALL
            .into_iter()
            .map(|s| (s, s.default_port()))
            .collect(),
        // Port 0 means "any free port" for each of the four, not four consecutive ones.
        (None, Some(0)) => DemoSubgraph::ALL.into_iter().map(|s| (s, 0)).collect(),
        (None, Some(base)) => DemoSubgraph::ALL.into_iter().zip(base..).collect(),
    };

    let mut servers = tokio::task::JoinSet::new();
    for (s, port) in plan {
        let listener = TcpListener::bind(SocketAddr::new(args.host, port))
            .await
            .with_context(|| format!("binding {s} to {}:{port}", args.host))?;
        let addr = listener.local_addr()?;
        // One line per subgraph on stdout, so scripts that asked for port 0 learn the port.
        println!("{s} http://{addr}/graphql");
        servers.spawn(async move { serve(s, listener).await.with_context(|| format!("{s}")) });
    }

    tokio::select! {
        Some(done) = servers.join_next() => done.context("server task panicked")?,
        signal = shutdown_signal() => signal,
    }
}

async fn shutdown_signal() -> Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
