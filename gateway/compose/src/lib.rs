//! Federation 2 composition: subgraph SDLs -> supergraph SDL (Apollo format), plus the schema
//! checks CI runs (`switchyard compose` / `switchyard check`).
//!
//! Pipeline: [`subgraph::parse`] (federation `@link` names resolved, Fed 1 subgraphs upgraded)
//! -> [`validate::validate`] (directive usage per subgraph) -> [`merge::merge`] (type merging,
//! sharing, override, ...) -> [`satisfiability::check`] -> [`print::print`] (deterministic
//! supergraph SDL: `@link` v1.0, `join` v0.3, or v0.5 once `overrideLabel` is used).
//!
//! Around it: [`config`] reads rover's `supergraph.yaml` (files or `{ _service { sdl } }`),
//! [`api`] derives the client-facing API schema and classifies changes, [`check`] runs the CI
//! check (composition errors, drift, breaking changes) and renders text/JSON/GitHub reports.
//!
//! `@cost`/`@listSize` propagate as Apollo's composer merges them (highest weight and assumed
//! size, slicing arguments and sized fields united). Not implemented yet: `@composeDirective`
//! and composition hints. `@context`/`@fromContext` are refused (UNSUPPORTED_FEATURE) rather
//! than dropped.
//! Satisfiability follows key/requires/provides edges per (type, subgraph) state; it is a
//! conservative approximation of Apollo's query-graph algorithm, not a port of it.

// Size limits from issue #18; thresholds (150 lines, 6 parameters) in this crate's clippy.toml.
#![warn(clippy::too_many_lines)]

pub mod api;
pub mod check;
pub mod config;
pub mod error;
pub mod fieldset;
pub mod merge;
pub mod model;
pub mod print;
pub mod satisfiability;
pub mod subgraph;
pub mod synthetic;
pub mod validate;

pub use error::{CompositionError, CompositionErrors};
pub use subgraph::SubgraphSource;

/// A successful composition.
#[derive(Debug, Clone)]
pub struct Composed {
    /// The supergraph SDL, deterministic for a given input.
    pub supergraph_sdl: String,
    /// The merged model it was printed from.
    pub merged: model::Merged,
}

/// Composes subgraphs into a supergraph; subgraphs are ordered by name so output is stable.
pub fn compose(sources: &[SubgraphSource]) -> Result<Composed, CompositionErrors> {
    let mut sources: Vec<&SubgraphSource> = sources.iter().collect();
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in &sources {
        if s.name.is_empty() || s.name == "_" {
            errors.push(
                CompositionError::new(
                    "INVALID_SUBGRAPH_NAME",
                    format!(
                        "Invalid name \"{}\" for a subgraph: this name is reserved",
                        s.name
                    ),
                )
                .in_subgraph(&s.name),
            );
        }
        if !seen.insert(&s.name) {
            errors.push(
                CompositionError::new(
                    "INVALID_SUBGRAPH_NAME",
                    format!("A subgraph named \"{}\" already exists", s.name),
                )
                .in_subgraph(&s.name),
            );
        }
    }
    if sources.is_empty() {
        errors.push(CompositionError::new(
            "NO_QUERIES",
            "No subgraphs to compose",
        ));
    }
    let mut subs = Vec::new();
    for s in &sources {
        match subgraph::parse(s) {
            Ok(sub) => subs.push(sub),
            Err(e) => errors.extend(e),
        }
    }
    let names: Vec<String> = subs.iter().map(|s| s.name.clone()).collect();
    for s in &subs {
        errors.extend(validate::validate(s, &names));
    }
    if !errors.is_empty() {
        return Err(CompositionErrors(errors));
    }
    let merged = merge::merge(&subs).map_err(CompositionErrors)?;
    let sat = satisfiability::check(&subs, &merged);
    if !sat.is_empty() {
        return Err(CompositionErrors(sat));
    }
    Ok(Composed {
        supergraph_sdl: print::print(&merged),
        merged,
    })
}
