//! Subcommands whose argument parsing and output live beside the CLI rather than in a library.

pub mod compose;
