//! `switchyard-analytics`: the analytics subgraph as a standalone process.

use clap::Parser;
use switchyard_analytics::{Config, Service};
use switchyard_subgraph_kit::{server, EventBus, SubgraphArgs};

/// The Switchyard analytics subgraph.
#[derive(Parser)]
#[command(name = "switchyard-analytics", version)]
struct Cli {
    #[command(flatten)]
    common: SubgraphArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.common.print_schema {
        print!("{}", switchyard_analytics::sdl());
        return Ok(());
    }
    cli.common.init_tracing("info");
    let config = Config::load(cli.common.config.as_deref())?;
    let bus = EventBus::from_redis_url(config.redis_url.as_deref()).await?;
    let listen = config.listen;
    let service = Service::open(config, bus).await?;
    let listener = server::bind(listen).await?;
    service.serve(listener, server::shutdown_on_signal()).await
}
