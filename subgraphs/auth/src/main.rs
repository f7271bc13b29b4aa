//! `switchyard-auth`: the auth subgraph service.

use clap::{Parser, Subcommand};
use switchyard_auth::{Config, Service};
use switchyard_subgraph_kit::{server, EventBus, SubgraphArgs};

/// The Switchyard auth subgraph service.
#[derive(Parser)]
#[command(name = "switchyard-auth", version)]
struct Cli {
    #[command(flatten)]
    common: SubgraphArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Re-encrypt every email/phone not sealed under the active data key, then exit.
    RotateKeys {
        /// First generate a new active data key under <data_dir>/secrets/ (embedded mode only;
        /// with AUTH_DATA_KEYS, put the new key first in the list instead).
        #[arg(long)]
        new_data_key: bool,
        /// Also generate a new JWT signing key (embedded mode); it signs from the next start.
        #[arg(long)]
        new_signing_key: bool,
        /// Rows per batch.
        #[arg(long, default_value_t = 500)]
        batch_size: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.common.print_schema {
        print!("{}", switchyard_auth::sdl());
        return Ok(());
    }
    cli.common.init_tracing("info");
    let config = Config::load(cli.common.config.as_deref())?;
    match cli.command {
        Some(Command::RotateKeys {
            new_data_key,
            new_signing_key,
            batch_size,
        }) => {
            if new_signing_key {
                let kid = switchyard_auth::keys::SigningKeys::rotate_local(&config.secrets_dir())?;
                println!("new signing key {kid} (signs after the next start)");
            }
            let report = switchyard_auth::rotate_keys(&config, new_data_key, batch_size).await?;
            println!("{report}");
            anyhow::ensure!(report.failed == 0, "some fields could not be re-encrypted");
            Ok(())
        }
        None => {
            let bus = EventBus::from_redis_url(config.redis_url.as_deref()).await?;
            let service = Service::open(config.clone(), bus).await?;
            let listener = server::bind(config.listen).await?;
            service.serve(listener, server::shutdown_on_signal()).await
        }
    }
}
