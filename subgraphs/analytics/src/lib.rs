//! The analytics subgraph service (being built).
