//! The four subgraph schemas. Each module stands for one service: it reads only its own part of
//! the shared data set and knows other services' types only through federation keys.

pub(crate) mod accounts;
pub(crate) mod inventory;
pub(crate) mod products;
pub(crate) mod reviews;
