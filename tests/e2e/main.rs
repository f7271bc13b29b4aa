//! End-to-end tests across the whole stack, as one test binary: each module was its own binary,
//! and every one of them linked all five services and the gateway, so merging them saves a
//! dozen links of the largest binary in the workspace (CI builds on two cores).
//!
//! Modules share `common` (starting stacks, signing members up, throw-away PostgreSQL
//! databases). Tests of different modules now run side by side in one process, so no test may
//! change process-wide state (environment variables, the working directory): pass settings
//! through `StackOptions` instead.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

mod connections;
mod consistency;
mod content_and_chat;
mod deploy_manifests;
mod dev_command;
mod erasure;
mod failure_isolation;
mod gateway_lifecycle;
mod guard_limits;
mod monitoring;
mod read_your_writes;
mod schema_current;
mod service_lifecycle;
mod traces;
