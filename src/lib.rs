//! The library half of the `switchyard` CLI: the platform stack that `switchyard dev` (and so
//! `cargo run`) runs, its demo seed, and a small GraphQL client — shared by the binary and the
//! end-to-end tests in `tests/`.

pub mod client;
pub mod seed;
pub mod stack;
