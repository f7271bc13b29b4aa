//! The subgraph SDL a service publishes (`--print-schema`) and the command-line flags every
//! service binary shares.
//!
//! The committed `schema/<service>.graphql` files are what composition reads, so they must be
//! the federation SDL exactly as the running service would answer `_service { sdl }`.

use std::path::PathBuf;

use async_graphql::{ObjectType, SDLExportOptions, Schema, SubscriptionType};

/// The Federation 2 `@link` the SDL must start with for composition to treat it as Fed 2.
const FEDERATION_LINK: &str =
    "extend schema @link(url: \"https://specs.apollo.dev/federation/v2.5\", import: [\"@key\", \"@tag\", \"@shareable\", \"@inaccessible\", \"@override\", \"@external\", \"@provides\", \"@requires\", \"@composeDirective\", \"@interfaceObject\"])\n\n";

/// The schema's federation SDL, with a Federation 2 `@link` header.
pub fn federation_sdl<Q, M, S>(schema: &Schema<Q, M, S>) -> String
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let sdl = schema.sdl_with_options(SDLExportOptions::new().federation());
    // async-graphql emits the link itself; keep a fallback so a version that stops doing so
    // still produces a Fed 2 subgraph instead of a silently Fed 1 one.
    if sdl.contains("@link(") {
        sdl
    } else {
        format!("{FEDERATION_LINK}{sdl}")
    }
}

/// Flags every subgraph binary accepts; `#[command(flatten)]` it into the service's own CLI.
///
/// The log flags are the `switchyard` CLI's (`--log`, `--log-json`), so one convention holds
/// for every binary; `--json-logs`, the services' old spelling, still works as a hidden alias.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SubgraphArgs {
    /// Configuration file (TOML, YAML or JSON); environment variables override it. Without it,
    /// `<SERVICE>_CONFIG` (e.g. `AUTH_CONFIG`) names the file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the subgraph's federation SDL and exit.
    #[arg(long)]
    pub print_schema: bool,
    /// Log filter (`RUST_LOG` syntax); the `RUST_LOG` variable wins when set.
    #[arg(long)]
    pub log: Option<String>,
    /// Log JSON lines instead of text.
    #[arg(long, alias = "json-logs")]
    pub log_json: bool,
}

impl SubgraphArgs {
    /// Installs logging as these flags ask: `--log`, else `default_filter`; `--log-json`.
    pub fn init_tracing(&self, default_filter: &str) {
        crate::init_tracing(self.log.as_deref().unwrap_or(default_filter), self.log_json);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{EmptyMutation, EmptySubscription, Object, SimpleObject, ID};
    use clap::Parser;

    #[derive(SimpleObject)]
    struct Member {
        id: ID,
    }

    struct Query;

    #[Object]
    impl Query {
        async fn member(&self, id: ID) -> Member {
            Member { id }
        }

        #[graphql(entity)]
        async fn member_by_id(&self, id: ID) -> Member {
            Member { id }
        }
    }

    #[test]
    fn sdl_is_federation_2_and_hides_federation_machinery() {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish();
        let sdl = federation_sdl(&schema);
        assert!(sdl.contains("@link("), "{sdl}");
        assert!(sdl.contains("specs.apollo.dev/federation/v2"), "{sdl}");
        assert!(sdl.contains("type Member @key(fields: \"id\")"), "{sdl}");
        assert!(!sdl.contains("_entities"), "{sdl}");
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: SubgraphArgs,
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::parse_from(["svc", "--print-schema", "--config", "svc.toml"]);
        assert!(cli.common.print_schema);
        assert_eq!(cli.common.config, Some(PathBuf::from("svc.toml")));
        assert!(!cli.common.log_json);
        assert_eq!(cli.common.log, None);
        let cli = Cli::parse_from(["svc", "--log-json", "--log", "debug"]);
        assert!(cli.common.log_json);
        assert_eq!(cli.common.log.as_deref(), Some("debug"));
        let cli = Cli::parse_from(["svc", "--json-logs"]);
        assert!(cli.common.log_json, "the old spelling still works");
    }
}
