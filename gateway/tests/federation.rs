//! The federation test suite: one test per `federation/cases/*.case` (format: federation/README.md).
//!
//! Each case starts its fixture subgraphs and a gateway on loopback ports, sends the operation over
//! HTTP and compares the response; it also snapshots the query plan from the planner directly.
//! Run one case: `cargo test -p switchyard-gateway --test federation -- <case name>`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use apollo_compiler::ExecutableDocument;
use libtest_mimic::{Arguments, Failed, Trial};
use switchyard_gateway::planner::{PlanOptions, QueryPlanner, Supergraph};
use switchyard_gateway::{GatewayConfig, SubgraphOverrides};
use switchyard_testkit::{match_response, post_json, start_subgraphs, Case, JsonResponse};

/// How long one case may take end to end before it is reported as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

fn main() {
    let args = Arguments::from_args();
    // Snapshot mismatches panic inside insta and are reported as case failures; a backtrace
    // per mismatch would bury the report.
    std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    let cases_dir = suite_dir().join("cases");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", cases_dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "case"))
        .collect();
    paths.sort();
    let trials = paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Trial::test(name.clone(), move || run_case(&name, &path))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/federation")
}

/// One runtime for the whole run; cases call `block_on` from libtest-mimic's worker threads.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fn run_case(name: &str, path: &Path) -> Result<(), Failed> {
    let location = path
        .strip_prefix(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or(Path::new("")),
        )
        .unwrap_or(path)
        .display()
        .to_string();
    let case = Case::load(path).map_err(|e| format!("{location}: {e}"))?;
    let sdl = case
        .supergraph_sdl()
        .ok_or_else(|| format!("{location}: supergraph not resolved"))?
        .to_string();
    let mut failures = Vec::new();
    if let Err(e) = check_plan(name, path, &case, &sdl) {
        failures.push(format!("plan: {e}"));
    }
    let outcome = runtime().block_on(async {
        tokio::time::timeout(CASE_TIMEOUT, execute_case(&case, &sdl))
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {CASE_TIMEOUT:?}")))
    });
    if let Err(e) = outcome {
        failures.push(e);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{location} ({})\n{}",
            case.description,
            failures.join("\n\n")
        )
        .into())
    }
}

/// Plans the operation with the planner directly and compares the plan (or the planning error)
/// with its snapshot. Operations that do not validate have no plan; the response check covers
/// them.
fn check_plan(name: &str, path: &Path, case: &Case, sdl: &str) -> Result<(), String> {
    let supergraph =
        Supergraph::parse(sdl).map_err(|e| format!("supergraph does not parse: {e}"))?;
    let Ok(document) = ExecutableDocument::parse_and_validate(
        supergraph.api_schema(),
        case.operation.as_str(),
        "operation.graphql",
    ) else {
        return Ok(());
    };
    let options = PlanOptions {
        enabled_override_labels: case.options.override_labels.iter().cloned().collect(),
        ..PlanOptions::default()
    };
    let planner = QueryPlanner::new(Arc::new(supergraph));
    let plan_with = |options: &PlanOptions| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            planner.plan(&document, case.options.operation_name.as_deref(), options)
        }))
        .map_err(|panic| format!("the planner panicked: {}", panic_message(&*panic)))
    };
    let plan = plan_with(&options)?;
    // The gateway runs the plan specialised by the case's condition values (when its
    // operation's `@skip` / `@include` use variables): that one is snapshotted too.
    let condition_values = match (
        &case.variables,
        document
            .operations
            .get(case.options.operation_name.as_deref()),
    ) {
        (serde_json::Value::Object(variables), Ok(operation)) => {
            switchyard_gateway::planner::condition_values(operation, &document.fragments, variables)
        }
        _ => Default::default(),
    };
    // A general plan that fails fails the request before any specialisation.
    let specialised = if condition_values.is_empty() || plan.is_err() {
        None
    } else {
        let rendered_values = serde_json::to_string(&condition_values).unwrap_or_default();
        let options = PlanOptions {
            condition_values,
            ..options.clone()
        };
        Some((rendered_values, plan_with(&options)?))
    };
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(suite_dir().join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_input_file(path);
    settings.set_description(case.description.clone());
    settings.set_omit_expression(true);
    // A case may expect planning to fail: the error is its snapshot, so a plan appearing (or
    // the message changing) shows up like any plan change.
    let render = |plan: Result<
        switchyard_gateway::planner::QueryPlan,
        switchyard_gateway::planner::PlanError,
    >| match plan {
        Ok(plan) => plan.to_string(),
        Err(e) => format!("planning fails: {e}"),
    };
    let mut rendered = render(plan);
    if let Some((values, plan)) = specialised {
        rendered.push_str(&format!(
            "\n\nSpecialised for this case's condition values {values}:\n{}",
            render(plan)
        ));
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settings.bind(|| insta::assert_snapshot!(name, rendered));
    }))
    .map_err(|panic| {
        let detail = panic_message(&*panic);
        format!("snapshot snapshots/{name}.snap does not match (review with `cargo insta review`): {detail}\n{rendered}")
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

async fn execute_case(case: &Case, sdl: &str) -> Result<(), String> {
    let subgraphs = start_subgraphs(sdl, &case.fixtures, &case.options.down)
        .await
        .map_err(|e| format!("starting subgraphs: {e}"))?;
    let config = GatewayConfig {
        subgraphs: SubgraphOverrides::from_urls(&subgraphs.urls),
        override_labels: case.options.override_labels.clone(),
        subgraph_timeout: Duration::from_secs(10),
        ..GatewayConfig::default()
    };
    let response = ask_gateway(case, sdl, config.clone()).await?;
    let mut problems = Vec::new();
    if let Err(diff) = match_response(&case.response, &response.body) {
        problems.push(format!(
            "response (HTTP {}) does not match:\n{diff}",
            response.status
        ));
    }
    if let Some(expected) = &case.requests {
        // A subgraph the case does not list must not have been asked at all.
        for subgraph in subgraphs.urls.keys() {
            let got = subgraphs.request_count(subgraph);
            if !expected.iter().any(|(name, _)| name == subgraph) && got != 0 {
                problems.push(format!(
                    "requests: `{subgraph}` received {got} request(s), expected none (not listed)"
                ));
            }
        }
        for (subgraph, want) in expected {
            if !subgraphs.urls.contains_key(subgraph) {
                problems.push(format!("requests: unknown subgraph `{subgraph}`"));
                continue;
            }
            let got = subgraphs.request_count(subgraph);
            if got as u64 != *want {
                problems.push(format!(
                    "requests: `{subgraph}` received {got} request(s), expected {want}"
                ));
            }
        }
    }
    let requests = subgraphs.describe_requests();
    drop(subgraphs);
    // A request collapsed onto another's fetch reads the shared response in place instead of
    // owning it, and concurrency decides which: every case also runs that way, same answer
    // (against fresh subgraphs: fixtures with counters answer a second mutation differently).
    // A query goes three times at once, so that the copies join each other's fetches and reuse
    // each other's representations and response; in this mode the gateway also derives each
    // reused result afresh and fails the request if the two differ.
    let fresh = start_subgraphs(sdl, &case.fixtures, &case.options.down)
        .await
        .map_err(|e| format!("starting subgraphs again: {e}"))?;
    let copies = if only_queries(&case.operation) { 3 } else { 1 };
    let shared = ask_gateway_times(
        case,
        sdl,
        GatewayConfig {
            subgraphs: SubgraphOverrides::from_urls(&fresh.urls),
            share_every_response: true,
            ..config
        },
        copies,
    )
    .await?;
    for shared in shared {
        if let Err(diff) = match_response(&case.response, &shared.body) {
            problems.push(format!(
                "response with every subgraph response read as shared, {copies} request(s) at \
                 once (HTTP {}) does not match:\n{diff}",
                shared.status
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.push(requests);
        Err(problems.join("\n"))
    }
}

/// Whether every operation in `document` is a query (sending it several times changes nothing).
fn only_queries(document: &str) -> bool {
    apollo_compiler::ast::Document::parse(document, "case.graphql").is_ok_and(|doc| {
        doc.definitions.iter().all(|definition| match definition {
            apollo_compiler::ast::Definition::OperationDefinition(op) => {
                op.operation_type == apollo_compiler::ast::OperationType::Query
            }
            _ => true,
        })
    })
}

/// Serves the supergraph with `config` and sends the case's request.
async fn ask_gateway(
    case: &Case,
    sdl: &str,
    config: GatewayConfig,
) -> Result<JsonResponse, String> {
    let mut responses = ask_gateway_times(case, sdl, config, 1).await?;
    Ok(responses.remove(0))
}

/// Serves the supergraph with `config` and sends the case's request `copies` times at once.
async fn ask_gateway_times(
    case: &Case,
    sdl: &str,
    config: GatewayConfig,
    copies: usize,
) -> Result<Vec<JsonResponse>, String> {
    let gateway = switchyard_gateway::Gateway::from_supergraph_sdl(sdl, config)
        .map_err(|e| format!("building the gateway: {e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding the gateway: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("gateway address: {e}"))?;
    let server = tokio::spawn(switchyard_gateway::serve(
        listener,
        gateway,
        std::future::pending(),
    ));
    let url = format!("http://{addr}/graphql");
    let body = case.request_body();
    let responses = futures::future::join_all(
        (0..copies).map(|_| post_json(&url, &body, &case.options.headers)),
    )
    .await;
    server.abort();
    responses
        .into_iter()
        .map(|response| response.map_err(|e| format!("request to the gateway: {e}")))
        .collect()
}
