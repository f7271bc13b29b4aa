//! Monitoring end to end: every process of the platform serves Prometheus metrics on its own
//! metrics listener (never on the public port), with the series an on-call engineer needs.

use crate::common;

use serde_json::{json, Value};
use switchyard::client::get;
use switchyard::stack::SERVICES;

/// The value of the series `name{labels}` (labels written exactly as the exposition prints
/// them, e.g. `outcome="ok"`), or `None` when the series is missing.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}

fn has_family(text: &str, name: &str, kind: &str) -> bool {
    text.lines().any(|l| l == format!("# TYPE {name} {kind}"))
}

/// Every metric family a scrape declares (`# TYPE name kind`).
fn families(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// The `switchyard_*` series names a deploy file mentions, histogram suffixes removed.
fn series_named_in(text: &str) -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("switchyard_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        found.insert(base.to_owned());
        rest = &tail[end..];
    }
    found
}

async fn metrics_text(addr: &str) -> String {
    let (status, content_type, body) = get(&format!("http://{addr}/metrics"), "text/plain")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    body
}

/// Each service's `/status` on its GraphQL port, which names its metrics listener.
async fn service_status(stack: &switchyard::stack::Stack, name: &str) -> Value {
    let url = stack
        .service_url(name)
        .unwrap()
        .replace("/graphql", "/status");
    let (status, _, body) = get(&url, "application/json").await.unwrap();
    assert_eq!(status, 200, "{name}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_serves_the_key_series_on_its_metrics_listener() {
    let t = common::start_stack(|_| {}).await;
    let amit = common::sign_up(&t.client, "amit", "Amit").await;
    // A named query across services, an anonymous one, a rejected one and a field error.
    let who = "query WhoIs($id: ID!) { member(id: $id) { handle posts(first: 1) { totalCount } } }";
    for _ in 0..3 {
        t.client.data(who, json!({ "id": amit.id })).await.unwrap();
    }
    let rejected = t
        .client
        .send("query Broken { nope }", json!({}))
        .await
        .unwrap();
    assert_eq!(rejected.status, 400);
    // Every service answers a part of this one; without a token chat refuses its part.
    let mine = "query Mine($id: ID!) { member(id: $id) { conversations(first: 1) { totalCount } stats { messagesSent } } }";
    let signed_in = t
        .client
        .with_token(&amit.token)
        .send(mine, json!({ "id": amit.id }))
        .await
        .unwrap();
    let anonymous = t.client.send(mine, json!({ "id": amit.id })).await.unwrap();
    let errors = [&signed_in, &anonymous]
        .iter()
        .filter(|r| !r.errors().is_empty())
        .count();

    // The public port does not expose metrics.
    let public = t.stack.gateway_addr();
    let (status, _, _) = get(&format!("http://{public}/metrics"), "text/plain")
        .await
        .unwrap();
    assert_eq!(status, 404, "metrics must stay off the public port");

    // Held open over the scrape: counted among the gateway's open connections.
    let held = tokio::net::TcpStream::connect(public).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let gateway = t.stack.gateway_metrics_addr().expect("a metrics listener");
    let text = metrics_text(&gateway.to_string()).await;
    assert!(
        sample(&text, "switchyard_gateway_open_connections") >= Some(1.0),
        "{text}"
    );
    drop(held);
    let mut exported = families(&text);
    assert!(
        has_family(&text, "switchyard_gateway_requests_total", "counter"),
        "{text}"
    );
    assert!(has_family(
        &text,
        "switchyard_gateway_request_duration_seconds",
        "histogram"
    ));
    assert_eq!(
        sample(
            &text,
            r#"switchyard_gateway_requests_total{operation="WhoIs",outcome="ok"}"#
        ),
        Some(3.0),
        "{text}"
    );
    // An executed request is "ok" only when its response carries no error.
    let mine_ok = sample(
        &text,
        r#"switchyard_gateway_requests_total{operation="Mine",outcome="ok"}"#,
    );
    let mine_errors = sample(
        &text,
        r#"switchyard_gateway_requests_total{operation="Mine",outcome="field_errors"}"#,
    );
    assert_eq!(mine_errors, Some(errors as f64), "{text}");
    assert_eq!(mine_ok, Some((2 - errors) as f64), "{text}");
    assert!(
        sample(
            &text,
            r#"switchyard_gateway_requests_total{operation="(invalid)",outcome="request_error"}"#
        ) >= Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"switchyard_gateway_request_duration_seconds_count{operation="WhoIs"}"#
        ),
        Some(3.0)
    );
    // The first WhoIs was planned, the next two came from the cache.
    assert!(sample(&text, "switchyard_gateway_plan_cache_hits_total") >= Some(2.0));
    assert!(sample(&text, "switchyard_gateway_plan_cache_misses_total") >= Some(1.0));
    assert!(sample(&text, "switchyard_gateway_plan_cache_entries") >= Some(1.0));
    let defaults = switchyard_gateway::GatewayConfig::default();
    assert_eq!(
        sample(&text, "switchyard_gateway_plan_cache_capacity_entries"),
        Some(defaults.plan_cache_size as f64)
    );
    assert_eq!(
        sample(&text, "switchyard_gateway_plan_cache_budget_bytes"),
        Some(defaults.plan_cache_bytes as f64)
    );
    assert!(sample(&text, "switchyard_gateway_plan_cache_bytes") > Some(0.0));
    for subgraph in ["auth", "profile", "content"] {
        assert!(
            sample(
                &text,
                &format!(
                    r#"switchyard_gateway_subgraph_requests_total{{outcome="ok",subgraph="{subgraph}"}}"#
                )
            ) >= Some(1.0),
            "{subgraph}: {text}"
        );
        assert!(
            sample(
                &text,
                &format!(
                    r#"switchyard_gateway_subgraph_request_duration_seconds_count{{subgraph="{subgraph}"}}"#
                )
            ) >= Some(1.0)
        );
    }
    for subgraph in SERVICES {
        assert_eq!(
            sample(
                &text,
                &format!(r#"switchyard_gateway_subgraph_circuit_state{{subgraph="{subgraph}"}}"#)
            ),
            Some(0.0),
            "{subgraph}: {text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(
                    r#"switchyard_gateway_subgraph_inflight_requests{{subgraph="{subgraph}"}}"#
                )
            ),
            Some(0.0)
        );
    }
    assert!(has_family(
        &text,
        "switchyard_gateway_subgraph_collapsed_fetches_total",
        "counter"
    ));
    assert_eq!(
        sample(&text, "switchyard_gateway_active_subscriptions"),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "switchyard_gateway_websocket_connections"),
        Some(0.0)
    );
    // No id ever becomes a label value.
    assert!(!text.contains(&amit.id), "a member id leaked into a label");

    for name in SERVICES {
        let status = service_status(&t.stack, name).await;
        assert_eq!(status["service"], name);
        assert_eq!(status["status"], "ok", "{name}: {status}");
        let addr = status["metricsAddress"].as_str().expect("metrics address");
        let text = metrics_text(addr).await;
        exported.extend(families(&text));
        let answered = sample(&text, r#"switchyard_service_requests_total{outcome="ok"}"#)
            .unwrap_or(0.0)
            + sample(
                &text,
                r#"switchyard_service_requests_total{outcome="error"}"#,
            )
            .unwrap_or(0.0);
        assert!(answered >= 1.0, "{name}: {text}");
        assert!(has_family(
            &text,
            "switchyard_service_request_duration_seconds",
            "histogram"
        ));
        assert_eq!(
            sample(&text, "switchyard_db_up"),
            Some(1.0),
            "{name}: {text}"
        );
        assert!(sample(&text, r#"switchyard_db_pool_connections{state="idle"}"#).is_some());
        assert!(sample(&text, "switchyard_db_pool_max_connections") >= Some(1.0));
        assert!(sample(&text, "switchyard_db_errors_total").is_some());
        if name != "analytics" {
            // Services that publish: outbox backlog and age.
            assert!(
                sample(&text, "switchyard_outbox_backlog_events").is_some(),
                "{name}"
            );
            assert!(sample(&text, "switchyard_outbox_oldest_unsent_age_seconds").is_some());
            assert!(sample(&text, "switchyard_outbox_published_events_total").is_some());
        }
        if name != "auth" {
            assert!(
                sample(
                    &text,
                    &format!(r#"switchyard_consumer_lag_events{{group="{name}"}}"#)
                )
                .is_some(),
                "{name}: {text}"
            );
        }
    }
    // auth published account.created; profile handled it.
    let auth = service_status(&t.stack, "auth").await;
    let auth_metrics = metrics_text(auth["metricsAddress"].as_str().unwrap()).await;
    assert!(sample(&auth_metrics, "switchyard_outbox_published_events_total") >= Some(1.0));
    let profile = service_status(&t.stack, "profile").await;
    let profile_metrics = metrics_text(profile["metricsAddress"].as_str().unwrap()).await;
    assert!(
        sample(
            &profile_metrics,
            r#"switchyard_events_consumed_total{group="profile",outcome="handled"}"#
        ) >= Some(1.0),
        "{profile_metrics}"
    );
    assert_eq!(
        sample(&profile_metrics, "switchyard_graph_members"),
        Some(1.0)
    );
    assert_eq!(
        sample(&profile_metrics, "switchyard_graph_connections"),
        Some(0.0)
    );
    assert!(sample(&profile_metrics, "switchyard_graph_index_bytes").is_some());
    let content = service_status(&t.stack, "content").await;
    let content_metrics = metrics_text(content["metricsAddress"].as_str().unwrap()).await;
    assert!(sample(&content_metrics, "switchyard_search_index_queue_depth").is_some());
    assert!(sample(&content_metrics, "switchyard_search_index_documents").is_some());
    let chat = service_status(&t.stack, "chat").await;
    let chat_metrics = metrics_text(chat["metricsAddress"].as_str().unwrap()).await;
    assert_eq!(
        sample(&chat_metrics, "switchyard_chat_fanout_subscribers"),
        Some(0.0)
    );
    assert_eq!(
        sample(&chat_metrics, "switchyard_chat_fanout_conversations"),
        Some(0.0)
    );

    // The alert rules and the dashboard use only series the code exports.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring");
    let alerts = std::fs::read_to_string(root.join("alerts.yml")).unwrap();
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(&alerts).unwrap();
    assert!(rules["groups"][0]["rules"].as_sequence().unwrap().len() >= 8);
    let dashboard = std::fs::read_to_string(root.join("grafana-dashboard.json")).unwrap();
    let parsed: Value = serde_json::from_str(&dashboard).unwrap();
    assert!(parsed["panels"].as_array().unwrap().len() >= 10);
    for (file, text) in [
        ("alerts.yml", &alerts),
        ("grafana-dashboard.json", &dashboard),
    ] {
        let used = series_named_in(text);
        assert!(used.len() >= 8, "{file} uses {used:?}");
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses series nobody exports: {unknown:?}"
        );
    }
    t.stack.shutdown().await.unwrap();
}

/// The alert rules' own unit tests (`deploy/monitoring/alerts.test.yml`: a stopped subgraph,
/// an open breaker, growing lag and backlog fire; a shrinking backlog and a healthy gateway do
/// not), run by promtool (Debian's `prometheus` package; a failure under `CI=true` without it).
#[test]
fn the_alert_rules_pass_their_unit_tests() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring");
    let run = std::process::Command::new("promtool")
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(&root)
        .output();
    let output = match run {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var("CI").is_err(),
                "CI=true needs promtool for the alert rule tests (apt-get install prometheus)"
            );
            eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus)");
            return;
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Headless Chromium, or `None` when it is not installed (a failure under `CI=true`).
fn chromium() -> Option<std::path::PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(|name| std::path::Path::new("/usr/bin").join(name))
        .find(|path| path.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true needs Chromium for the status view test (apt-get install chromium)"
        );
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium)");
    }
    found
}

/// Runs headless Chromium on `url` with `extra` arguments and returns its standard output.
fn run_chromium(
    browser: &std::path::Path,
    profile: &std::path::Path,
    extra: &[String],
    url: &str,
) -> String {
    let output = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,720",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_view_shows_a_stopped_service_in_red_and_the_rest_in_green() {
    let mut t = common::start_stack(|_| {}).await;
    let amit = common::sign_up(&t.client, "amit", "Amit").await;
    let who = "query WhoIs($id: ID!) { member(id: $id) { handle posts(first: 1) { totalCount } } }";
    t.client.data(who, json!({ "id": amit.id })).await.unwrap();
    let status_url = format!("http://{}/status", t.stack.gateway_metrics_addr().unwrap());

    // All well: green, in JSON and in HTML.
    let (code, content_type, body) = get(&status_url, "application/json").await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(content_type.starts_with("application/json"));
    let healthy: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(healthy["status"], "ok", "{healthy:#}");
    assert_eq!(healthy["headline"], "All systems normal");
    let names: Vec<&str> = healthy["subgraphs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["analytics", "auth", "chat", "content", "profile"]);
    for subgraph in healthy["subgraphs"].as_array().unwrap() {
        assert_eq!(subgraph["reachable"], true);
        assert_eq!(subgraph["breaker"], "closed");
        let checks = subgraph["service"]["checks"].as_array().unwrap();
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == "database" && c["status"] == "ok"),
            "{subgraph:#}"
        );
    }
    let content = &healthy["subgraphs"][3];
    assert!(
        content["requests"]["count"].as_u64().unwrap() >= 1,
        "{content:#}"
    );
    assert!(content["service"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "search index"));

    // Chat goes away: its row turns red with a plain reason, the others stay green.
    t.stack.stop_service("chat").await.unwrap();
    let mine = "query Mine($id: ID!) { member(id: $id) { handle conversations(first: 1) { totalCount } } }";
    let partial = t
        .client
        .with_token(&amit.token)
        .send(mine, json!({ "id": amit.id }))
        .await
        .unwrap();
    assert_eq!(partial.body["data"]["member"]["handle"], "amit");
    let (code, _, body) = get(&format!("{status_url}.json"), "application/json")
        .await
        .unwrap();
    assert_eq!(
        code, 503,
        "a platform with a service down answers 503: {body}"
    );
    let down: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(down["status"], "down");
    assert_eq!(down["headline"], "chat is down");
    for subgraph in down["subgraphs"].as_array().unwrap() {
        let expected = if subgraph["name"] == "chat" {
            "down"
        } else {
            "ok"
        };
        assert_eq!(subgraph["status"], expected, "{subgraph:#}");
    }
    let chat = &down["subgraphs"][2];
    assert_eq!(chat["reachable"], false);
    assert!(
        chat["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("chat cannot be reached (connection refused)"),
        "{chat:#}"
    );

    // What a person sees: the browser gets HTML with the same verdicts.
    let (code, content_type, html) = get(&status_url, "text/html").await.unwrap();
    assert_eq!(code, 200);
    assert!(content_type.starts_with("text/html"));
    assert!(
        html.contains("id=\"overall\" data-status=\"down\""),
        "{html}"
    );

    if let Some(browser) = chromium() {
        let profile = tempfile::tempdir().unwrap();
        let dom = run_chromium(
            &browser,
            profile.path(),
            &["--dump-dom".to_owned()],
            &status_url,
        );
        assert!(
            dom.contains("id=\"subgraph-chat\" data-status=\"down\""),
            "{dom}"
        );
        for name in ["analytics", "auth", "content", "profile"] {
            assert!(
                dom.contains(&format!("id=\"subgraph-{name}\" data-status=\"ok\"")),
                "{name}: {dom}"
            );
        }
        assert!(dom.contains("chat is down"));
        // A screenshot, for the README (`SWITCHYARD_SCREENSHOT=docs/status.png` keeps it).
        let shot = std::env::var("SWITCHYARD_SCREENSHOT")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| profile.path().join("status.png"));
        run_chromium(
            &browser,
            profile.path(),
            &[format!("--screenshot={}", shot.display())],
            &status_url,
        );
        let png = std::fs::read(&shot).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{} bytes",
            png.len()
        );
    }

    // Back up: green again.
    t.stack.restart_service("chat").await.unwrap();
    let (code, _, body) = get(&format!("{status_url}.json"), "application/json")
        .await
        .unwrap();
    let back: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(back["subgraphs"][2]["reachable"], true, "{back:#}");
    assert_ne!(back["subgraphs"][2]["status"], "down", "{back:#}");
    assert_ne!(code, 503);
    t.stack.shutdown().await.unwrap();
}
