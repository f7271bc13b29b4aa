//! The profile subgraph service (being built).
