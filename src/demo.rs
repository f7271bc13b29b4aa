//! `switchyard demo`: the 4-subgraph benchmark workload (accounts, products, inventory, reviews)
//! behind the gateway, each subgraph on its own loopback port. The supergraph is composed at
//! start-up from the subgraphs' own SDLs, so it can never drift from them.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use switchyard_compose::SubgraphSource;
use switchyard_demo_subgraphs::DemoSubgraph;
use switchyard_gateway::{Gateway, GatewayConfig};

/// A query to paste into GraphiQL that crosses all four subgraphs.
const SAMPLE_QUERY: &str = "{ topProducts(first: 2) { name price inStock shippingEstimate reviews { body author { username } } } }";

/// Options of `switchyard demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Address the gateway listens on.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:4000")]
    pub listen: SocketAddr,
    /// Gateway config file (TOML).
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Starts every subgraph, then the gateway over them, and serves until Ctrl-C.
pub async fn run(args: DemoArgs) -> Result<()> {
    let mut sources = Vec::new();
    let mut subgraph_tasks = Vec::new();
    for subgraph in DemoSubgraph::ALL {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding a subgraph port")?;
        let addr = listener.local_addr()?;
        sources.push(SubgraphSource::new(
            subgraph.name(),
            format!("http://{addr}/graphql"),
            switchyard_demo_subgraphs::sdl(subgraph),
        ));
        tracing::info!(
            subgraph = subgraph.name(),
            "subgraph on http://{addr}/graphql"
        );
        subgraph_tasks.push(tokio::spawn(switchyard_demo_subgraphs::serve(
            subgraph, listener,
        )));
    }

    let supergraph = switchyard_compose::compose(&sources)
        .context("composing the demo subgraphs")?
        .supergraph_sdl;
    let mut config = GatewayConfig::load(args.config.as_deref())?;
    config.listen = args.listen;
    let gateway = Gateway::from_supergraph_sdl(&supergraph, config)
        .context("loading the composed supergraph")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {} (is another stack running?)", args.listen))?;
    let addr = listener.local_addr()?;
    let metrics_listen = gateway.config().metrics_listen;
    println!("Switchyard is up.");
    println!("  GraphiQL:  http://{addr}/graphql");
    if let Some(metrics_addr) = metrics_listen {
        let metrics = crate::bind_metrics(metrics_addr).await?;
        let metrics_addr = metrics.local_addr()?;
        println!("  Status:    http://{metrics_addr}/status (metrics: /metrics)");
        tokio::spawn(switchyard_gateway::serve_metrics(
            metrics,
            gateway.clone(),
            crate::shutdown_signal(),
        ));
    }
    println!("  Try:       curl -s http://{addr}/graphql -H 'content-type: application/json' \\");
    println!("               -d '{{\"query\":\"{SAMPLE_QUERY}\"}}'");
    println!("Ctrl-C stops everything.");
    switchyard_gateway::serve(listener, gateway, crate::shutdown_signal()).await?;
    for task in subgraph_tasks {
        task.abort();
    }
    Ok(())
}
