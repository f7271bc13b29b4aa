//! Execution benchmarks (filled in by the bench work).
fn main() {}
