//! `switchyard-guard`: what the gateway and every subgraph share against hostile clients.
//!
//! - [`RequestLimits`]: the limits on a GraphQL request — body size, depth, aliases, fields —
//!   defined once here. The gateway's defaults are [`RequestLimits::GATEWAY`]; subgraphs get
//!   [`RequestLimits::SUBGRAPH`], derived from the gateway's so that anything the gateway
//!   accepts still fits once it is planned into subgraph requests (`tests/e2e/consistency.rs`).
//! - [`serve`]: the HTTP/1.1 server loop both use instead of `axum::serve`, with the connection
//!   hygiene `axum::serve` lacks: a header-read timeout, an idle keep-alive timeout, a cap on
//!   open connections (evicting the oldest connection that is not in a request when full), a
//!   whole-request deadline, and accept errors that back off instead of spinning
//!   ([`ConnectionLimits`]).

mod server;

pub use server::{
    raise_fd_limit, serve, serve_counted, ClientAddr, ConnectionLimits, REQUEST_TIMEOUT,
};

/// Limits on one GraphQL request, as a server enforces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Deepest field nesting, fragments expanded.
    pub max_depth: usize,
    /// Most aliased fields, fragments expanded.
    pub max_aliases: usize,
    /// Most fields, fragments expanded.
    pub max_fields: usize,
    /// Most root fields.
    pub max_root_fields: usize,
}

impl RequestLimits {
    /// What the gateway accepts from clients by default.
    pub const GATEWAY: RequestLimits = RequestLimits {
        max_body_bytes: 2 * 1024 * 1024,
        max_depth: 64,
        max_aliases: 256,
        max_fields: 2000,
        max_root_fields: 64,
    };

    /// What every subgraph accepts by default: [`RequestLimits::for_subgraphs_behind`] the
    /// gateway's defaults.
    pub const SUBGRAPH: RequestLimits = RequestLimits::for_subgraphs_behind(RequestLimits::GATEWAY);

    /// The limits a subgraph needs behind a gateway with `gateway`'s limits. The planner turns
    /// one client operation into subgraph operations that can be larger than it:
    /// - an entity fetch puts the selection under `_entities` (one level deeper) and a request
    ///   body carries every representation, so bodies get 8 times the room (at least 16 MiB);
    /// - each entity selection adds `__typename` and its key and `@requires` fields, and
    ///   renamed requirements add aliases, so fields and aliases get twice the room plus slack;
    /// - one client root field may become several subgraph root fields.
    pub const fn for_subgraphs_behind(gateway: RequestLimits) -> RequestLimits {
        let body = gateway.max_body_bytes.saturating_mul(8);
        RequestLimits {
            max_body_bytes: if body > 16 * 1024 * 1024 {
                body
            } else {
                16 * 1024 * 1024
            },
            max_depth: gateway.max_depth + 2,
            max_aliases: gateway.max_aliases.saturating_mul(2) + 64,
            max_fields: gateway.max_fields.saturating_mul(2) + 256,
            max_root_fields: gateway.max_root_fields.saturating_mul(2),
        }
    }

    /// Whether a subgraph with `self` as its limits accepts everything a gateway with
    /// `gateway`'s limits can send it.
    pub const fn covers(&self, gateway: &RequestLimits) -> bool {
        let needed = RequestLimits::for_subgraphs_behind(*gateway);
        self.max_body_bytes >= needed.max_body_bytes
            && self.max_depth >= needed.max_depth
            && self.max_aliases >= needed.max_aliases
            && self.max_fields >= needed.max_fields
            && self.max_root_fields >= needed.max_root_fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subgraph_limits_are_never_below_the_gateway_limits() {
        let (g, s) = (RequestLimits::GATEWAY, RequestLimits::SUBGRAPH);
        assert!(s.max_body_bytes >= g.max_body_bytes);
        assert!(s.max_depth > g.max_depth);
        assert!(s.max_aliases > g.max_aliases);
        assert!(s.max_fields > g.max_fields);
        assert!(s.max_root_fields >= g.max_root_fields);
        assert!(s.covers(&g));
        // A gateway configured with more room needs subgraphs with more room.
        let raised = RequestLimits {
            max_depth: 100,
            ..g
        };
        assert!(!s.covers(&raised));
        assert!(RequestLimits::for_subgraphs_behind(raised).covers(&raised));
    }
}
