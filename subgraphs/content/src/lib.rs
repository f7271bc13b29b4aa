//! The content subgraph service (being built).
