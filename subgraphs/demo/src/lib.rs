//! The 4-subgraph demo workload: accounts, products, inventory, reviews.
//!
//! Four real Apollo Federation v2 subgraphs written with typed async-graphql, modelled on the
//! classic federation demo. Each can be served alone ([`serve`]) or mounted in-process
//! ([`router`]); [`sdl`] gives the subgraph SDL that composition reads. The committed copies of
//! those SDLs and the hand-composed supergraph live in `schema/demo/`.

mod data;
mod subgraphs;

use std::fmt;
use std::str::FromStr;

use async_graphql::{EmptyMutation, EmptySubscription, ObjectType, SDLExportOptions, Schema};
use async_graphql_axum::GraphQL;
use axum::routing::{get, post_service};
use axum::Router;

pub use data::{PRODUCT_COUNT, REVIEWS_PER_PRODUCT, REVIEWS_PER_USER, USER_COUNT};

/// One of the four demo subgraphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DemoSubgraph {
    /// Users (`User @key(id)`): `me`, `users`, `user`.
    Accounts,
    /// The catalogue (`Product @key(upc)`): `topProducts`, `product`, `productsByCategory`.
    Products,
    /// Stock and shipping (`Product.inStock`, `shippingEstimate @requires(price weight)`).
    Inventory,
    /// Reviews, plus `User.reviews` and `Product.reviews`; `author @provides(username)`.
    Reviews,
}

/// The error for a subgraph name that is none of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown demo subgraph {0:?} (expected accounts, products, inventory or reviews)")]
pub struct UnknownSubgraph(pub String);

impl DemoSubgraph {
    /// All four, in default-port order (4001..=4004).
    pub const ALL: [DemoSubgraph; 4] = [
        DemoSubgraph::Accounts,
        DemoSubgraph::Products,
        DemoSubgraph::Inventory,
        DemoSubgraph::Reviews,
    ];

    /// The subgraph name used in `supergraph.yaml` and `join__Graph` (lower case).
    pub fn name(self) -> &'static str {
        match self {
            DemoSubgraph::Accounts => "accounts",
            DemoSubgraph::Products => "products",
            DemoSubgraph::Inventory => "inventory",
            DemoSubgraph::Reviews => "reviews",
        }
    }

    /// The port the committed `schema/demo/supergraph.graphql` routes this subgraph to.
    pub fn default_port(self) -> u16 {
        match self {
            DemoSubgraph::Accounts => 4001,
            DemoSubgraph::Products => 4002,
            DemoSubgraph::Inventory => 4003,
            DemoSubgraph::Reviews => 4004,
        }
    }
}

impl fmt::Display for DemoSubgraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DemoSubgraph {
    type Err = UnknownSubgraph;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DemoSubgraph::ALL
            .into_iter()
            .find(|g| g.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownSubgraph(s.to_owned()))
    }
}

/// The axum app of one subgraph: `POST`/`GET /graphql` and `GET /health`.
///
/// Generates the shared data set first so the first request doesn't pay for it.
pub fn router(s: DemoSubgraph) -> Router {
    std::sync::LazyLock::force(&data::DATASET);
    match s {
        DemoSubgraph::Accounts => graphql_router(subgraphs::accounts::schema()),
        DemoSubgraph::Products => graphql_router(subgraphs::products::schema()),
        DemoSubgraph::Inventory => graphql_router(subgraphs::inventory::schema()),
        DemoSubgraph::Reviews => graphql_router(subgraphs::reviews::schema()),
    }
}

fn graphql_router<Q: ObjectType + 'static>(
    schema: Schema<Q, EmptyMutation, EmptySubscription>,
) -> Router {
    let graphql = GraphQL::new(schema);
    Router::new()
        .route(
            "/graphql",
            post_service(graphql.clone()).get_service(graphql),
        )
        .route("/health", get(|| async { "ok" }))
}

/// Serves one subgraph on `listener` until the server fails.
pub async fn serve(s: DemoSubgraph, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(s)).await
}

/// The subgraph's SDL with its federation directives: what `{ _service { sdl } }` returns and
/// what `schema/demo/<name>.graphql` holds.
pub fn sdl(s: DemoSubgraph) -> String {
    // The same options async-graphql uses to answer `_service { sdl }`, so the two never drift.
    let options = SDLExportOptions::new().federation().compose_directive();
    match s {
        DemoSubgraph::Accounts => subgraphs::accounts::schema().sdl_with_options(options),
        DemoSubgraph::Products => subgraphs::products::schema().sdl_with_options(options),
        DemoSubgraph::Inventory => subgraphs::inventory::schema().sdl_with_options(options),
        DemoSubgraph::Reviews => subgraphs::reviews::schema().sdl_with_options(options),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in DemoSubgraph::ALL {
            assert_eq!(s.name().parse::<DemoSubgraph>(), Ok(s));
            assert_eq!(s.to_string(), s.name());
        }
        assert_eq!("Reviews".parse::<DemoSubgraph>(), Ok(DemoSubgraph::Reviews));
        assert!("shipping".parse::<DemoSubgraph>().is_err());
    }
}
