//! One scenario (subgraph SDLs, fixtures, one operation) and the runner that composes it, starts
//! everything and compares the gateways' answers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use apollo_compiler::ExecutableDocument;
use serde_json::Value;
use switchyard_gateway::planner::Supergraph;

use crate::compare::Outcome;
use crate::compose::{compose_ours, ApolloComposer};
use crate::targets::{SentRequest, Session, SessionSpec, Target};

/// Subgraphs, fixtures and one operation: everything a `.case` file needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Generator seed it came from.
    pub seed: u64,
    /// Index of the operation within the generated shape.
    pub op_index: usize,
    /// Subgraph name and SDL.
    pub subgraphs: Vec<(String, String)>,
    /// Fixture per subgraph name.
    pub fixtures: BTreeMap<String, Value>,
    /// The client operation.
    pub operation: String,
    /// Its variables (a JSON object).
    pub variables: Value,
}

/// Both composers' results for one set of subgraphs.
#[derive(Debug, Clone)]
pub struct Composition {
    /// Switchyard's supergraph or its errors.
    pub ours: Result<String, String>,
    /// Apollo's supergraph or its errors; `None` without Apollo's composer.
    pub apollo: Option<Result<String, String>>,
}

impl Composition {
    /// The composers disagree on whether the subgraphs compose.
    pub fn disagrees(&self) -> bool {
        self.apollo
            .as_ref()
            .is_some_and(|apollo| apollo.is_ok() != self.ours.is_ok())
    }

    /// Both composed (or only ours ran and it composed).
    pub fn usable(&self) -> bool {
        self.ours.is_ok() && self.apollo.as_ref().is_none_or(Result::is_ok)
    }
}

/// Both gateways' answers to one operation.
#[derive(Debug, Clone)]
pub struct Answers {
    /// Switchyard's response.
    pub ours: Value,
    /// The reference's response (`None` without Hive Router).
    pub reference: Option<Value>,
    /// Their comparison (`None` without Hive Router).
    pub outcome: Option<Outcome>,
    /// The subgraph requests Switchyard sent for the operation.
    pub ours_requests: Vec<SentRequest>,
    /// The subgraph requests Hive Router sent for it (`None` without Hive Router).
    pub reference_requests: Option<Vec<SentRequest>>,
}

/// Composers, the reference router and a scratch directory, shared by every scenario of a run.
#[derive(Debug)]
pub struct Runner {
    /// Apollo's composer, when available.
    pub apollo: Option<ApolloComposer>,
    /// Hive Router binary, when the run compares against it.
    pub hive_bin: Option<PathBuf>,
    /// Scratch directory (router configs and logs).
    pub dir: PathBuf,
}

impl Runner {
    /// Composes with both composers.
    pub async fn compose(&mut self, subgraphs: &[(String, String)]) -> anyhow::Result<Composition> {
        let ours = compose_ours(subgraphs);
        let apollo = match &mut self.apollo {
            Some(composer) => Some(composer.compose(subgraphs).await?),
            None => None,
        };
        Ok(Composition { ours, apollo })
    }

    /// Starts the subgraphs and gateways for a composed scenario.
    pub async fn session(
        &mut self,
        composition: &Composition,
        fixtures: &BTreeMap<String, Value>,
    ) -> anyhow::Result<Session> {
        let ours = composition
            .ours
            .as_ref()
            .map_err(|e| anyhow::anyhow!("Switchyard's composer failed: {e}"))?;
        let apollo = composition.apollo.as_ref().and_then(|a| a.as_deref().ok());
        Session::start(&SessionSpec {
            ours,
            apollo,
            fixtures,
            hive_bin: self.hive_bin.as_deref(),
            dir: &self.dir,
        })
        .await
    }

    /// Composes, starts and runs `scenario` from scratch; `None` when it does not compose, the
    /// operation is not valid, or something fails to start (a minimizing step that broke it).
    pub async fn evaluate(&mut self, scenario: &Scenario) -> Option<(Composition, Answers)> {
        let composition = self.compose(&scenario.subgraphs).await.ok()?;
        if !composition.usable() {
            return None;
        }
        if !operation_is_valid(composition.ours.as_ref().ok()?, &scenario.operation) {
            return None;
        }
        let mut session = self.session(&composition, &scenario.fixtures).await.ok()?;
        let answers = ask(&mut session, &scenario.operation, &scenario.variables).await;
        Some((composition, answers))
    }
}

/// Sends `operation` to Switchyard, then to the reference, and compares; records the subgraph
/// requests each one sent (one gateway at a time, so the fixture subgraphs' logs tell them apart).
pub async fn ask(session: &mut Session, operation: &str, variables: &Value) -> Answers {
    let marks = session.request_marks();
    let ours = session
        .run(Target::Ours, operation, variables)
        .await
        .unwrap_or(Value::Null);
    let ours_requests = session.requests_since(&marks);
    let ours = match session
        .concurrent_copies_differ(operation, variables, &ours)
        .await
    {
        Some(differing) => differing,
        None => ours,
    };
    let marks = session.request_marks();
    let reference = session.run(Target::Hive, operation, variables).await;
    let reference_requests = reference.as_ref().map(|_| session.requests_since(&marks));
    let outcome = reference.as_ref().map(|r| Outcome::of(&ours, r));
    Answers {
        ours,
        reference,
        outcome,
        ours_requests,
        reference_requests,
    }
}

/// Whether `operation` is valid against the API schema of `supergraph`.
pub fn operation_is_valid(supergraph: &str, operation: &str) -> bool {
    let Ok(supergraph) = Supergraph::parse(supergraph) else {
        return false;
    };
    ExecutableDocument::parse_and_validate(supergraph.api_schema(), operation, "operation.graphql")
        .is_ok()
}
