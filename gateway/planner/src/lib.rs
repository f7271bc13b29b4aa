//! Switchyard's supergraph model and query planner.
//!
//! Pure: no I/O, no async. `Supergraph::parse` reads a Federation 2 supergraph SDL; `QueryPlanner`
//! turns a validated operation into a `QueryPlan`, a plain data structure that prints as a tree.

// Size limits from issue #18; thresholds (150 lines, 6 parameters) in this crate's clippy.toml.
#![warn(clippy::too_many_lines)]

pub mod plan;
mod selection;
pub mod supergraph;

pub use plan::{PlanError, PlanOptions, QueryPlan, QueryPlanner};
pub use selection::{
    condition_values, condition_variables, specialisable, specialised_conditions,
    MAX_SPECIALISED_CONDITIONS,
};
pub use supergraph::{OverrideLabel, SubgraphInfo, Supergraph, SupergraphError};
