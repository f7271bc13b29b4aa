//! The `switchyard` CLI: thin wiring over the gateway, planner and demo crates.

fn main() {
    println!("switchyard");
}
