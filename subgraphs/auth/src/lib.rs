//! The auth subgraph service (being built).
