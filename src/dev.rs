//! `switchyard dev` (what `cargo run` runs): the whole platform on embedded defaults.
//!
//! Every service on its own loopback port with its own store under one data directory, the
//! supergraph composed from their schemas, the gateway on 127.0.0.1:4000, demo data on the first
//! run. A second run reuses the data directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use switchyard::client::GraphQLClient;
use switchyard::seed;
use switchyard::stack::{Stack, StackOptions, SERVICES};
use switchyard_gateway::GatewayConfig;

/// Options of `switchyard dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Address the gateway listens on.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:4000")]
    pub listen: SocketAddr,
    /// Gateway config file (TOML).
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where every service keeps its data (`<dir>/<service>/`).
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Do not create demo data on the first run.
    #[arg(long)]
    pub no_seed: bool,
    /// Redis for the event bus (default: the in-process bus).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Address of the gateway's metrics listener (`/metrics`, `/status`), or `off` (overrides
    /// the config file and `SWITCHYARD_METRICS_LISTEN`).
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

impl Default for DevArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            args: DevArgs,
        }
        // Parsing no arguments applies the same defaults and environment as `switchyard dev`.
        Defaults::parse_from(["switchyard"]).args
    }
}

/// Starts the stack, seeds it once, and serves until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> Result<()> {
    let mut options = StackOptions::embedded(&args.data_dir, args.listen);
    options.gateway = GatewayConfig::load(args.config.as_deref())?;
    if let Some(metrics_listen) = &args.metrics_listen {
        options.gateway.metrics_listen = switchyard_gateway::parse_optional_addr(metrics_listen)
            .map_err(|e| anyhow::anyhow!("--metrics-listen: {e}"))?;
    }
    options.redis_url = args.redis_url.clone();
    let stack = Stack::start(options).await?;
    let client = GraphQLClient::new(stack.graphql_url());

    let seeded = if args.no_seed {
        None
    } else {
        Some(
            seed::seed_once(&client, &args.data_dir)
                .await
                .context("seeding demo data")?,
        )
    };

    // The full path: "data in data" (the default, relative) said nothing about where.
    let data_dir = std::fs::canonicalize(&args.data_dir).unwrap_or_else(|_| args.data_dir.clone());
    println!("Switchyard is up. Data directory: {}", data_dir.display());
    println!("  GraphiQL:  {}", stack.graphql_url());
    if let Some(addr) = stack.gateway_metrics_addr() {
        println!("  Status:    http://{addr}/status (metrics: http://{addr}/metrics)");
    }
    for name in SERVICES {
        println!(
            "  {name:<10} {} (direct, for debugging; clients go through the gateway)",
            stack.service_url(name).unwrap_or_default()
        );
    }
    if let Some(seeded) = &seeded {
        let query = format!(
            "{{ connectionDegree(from: \"{}\", to: \"{}\") {{ degree path {{ handle displayName headline }} }} }}",
            seeded.id("amit"),
            seeded.id("amrita")
        );
        println!(
            "  Members:   {} — log in as <handle>@example.com, password in {}",
            seed::MEMBERS.map(|m| m.0).join(", "),
            seed::seed_file(&args.data_dir).display()
        );
        stack.gateway().set_graphiql_default_query(Some(format!(
            "# How is Amit connected to Amrita? (demo data; run it with ▶ or Ctrl-Enter)\n\
             {{\n  connectionDegree(from: \"{}\", to: \"{}\") {{\n    degree\n    \
             path {{ handle displayName headline }}\n  }}\n}}\n",
            seeded.id("amit"),
            seeded.id("amrita")
        )));
        println!("  Try:       {query}");
        println!(
            "  or:        curl -s {} -H 'content-type: application/json' -d '{}'",
            stack.graphql_url(),
            serde_json::json!({ "query": query })
        );
    }
    println!("Ctrl-C stops everything.");

    crate::shutdown_signal().await;
    println!("Stopping…");
    stack.shutdown().await
}
