//! The library half of the `switchyard` CLI: the platform stack that `switchyard dev` (and so
//! `cargo run`) runs, its demo seed, and a small GraphQL client — shared by the binary and the
//! end-to-end tests in `tests/`. The stack and the seed need the `stack` feature (on by default).

pub mod client;
#[cfg(feature = "stack")]
pub mod seed;
#[cfg(feature = "stack")]
pub mod stack;
