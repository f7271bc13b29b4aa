//! Differential testing of federation semantics: shapes from `switchyard_testkit::generate` are
//! composed by Switchyard's composer (and Apollo's, when available), served by fixture subgraphs,
//! and every generated operation is sent through Switchyard and Hive Router; disagreements are
//! minimized and written as `.case` files (gateway/tests/federation/README.md).
//!
//! The binary `switchyard-difftest` (and `scripts/difftest.sh`) drives a bounded run; see
//! [`run::RunOptions`].

pub mod compare;
pub mod compose;
pub mod minimize;
pub mod report;
pub mod run;
pub mod scenario;
pub mod targets;
