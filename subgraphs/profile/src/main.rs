//! `switchyard-profile`: the profile subgraph as a standalone service.

use clap::Parser;
use switchyard_profile::{Config, Service};
use switchyard_subgraph_kit::{server, EventBus, SubgraphArgs};

/// The profile subgraph: members, connections, degrees and suggestions.
#[derive(Parser)]
#[command(name = "switchyard-profile", version)]
struct Cli {
    #[command(flatten)]
    common: SubgraphArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.common.print_schema {
        print!("{}", switchyard_profile::sdl());
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
