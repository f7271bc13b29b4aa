//! `switchyard-content`: the content subgraph binary.

use clap::{Parser, Subcommand};
use switchyard_content::{open_stores, Config, Indexer, Service};
use switchyard_subgraph_kit::{server, EventBus, SubgraphArgs};

/// The Switchyard content subgraph (posts, comments, reactions, search).
#[derive(Parser)]
#[command(name = "switchyard-content", version)]
struct Cli {
    #[command(flatten)]
    common: SubgraphArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Rebuild the search index from the database (stop the service first).
    Reindex,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.common.print_schema {
        print!("{}", switchyard_content::sdl());
        return Ok(());
    }
    // tantivy logs every commit at info; keep its warnings only unless RUST_LOG says otherwise.
    cli.common.init_tracing("info,tantivy=warn");
    let config = Config::load(cli.common.config.as_deref())?;
    if let Some(Command::Reindex) = cli.command {
        let (store, index) = open_stores(&config).await?;
        let started = std::time::Instant::now();
        let posts = Indexer::new(store, index).rebuild().await?;
        println!("reindexed {posts} posts in {:.1?}", started.elapsed());
        return Ok(());
    }
    let bus = EventBus::from_redis_url(config.redis_url.as_deref()).await?;
    let listen = config.listen;
    let service = Service::open(config, bus).await?;
    let listener = server::bind(listen).await?;
    service.serve(listener, server::shutdown_on_signal()).await
}
