//! The chat subgraph service (being built).
