//! The 4-subgraph demo workload: accounts, products, inventory, reviews.
